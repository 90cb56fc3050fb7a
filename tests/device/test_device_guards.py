"""The device app's guards at the ASGI level, without a server: a request whose client has gone is not
computed, the body limit holds however the body arrives, and the token is checked before anything else."""

from __future__ import annotations

import asyncio
import json

import pytest

from sjscc.device.app import create_app
from sjscc.device.client import EdgeClient, ExpectedModel
from sjscc.device.guards import Admission, BearerToken, BodySizeLimit
from sjscc.device.link import ChannelSettings
from sjscc.device.pipeline import DevicePipeline

BOUNDARY = b"xyzzy"


def multipart(image: bytes) -> bytes:
    return (b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + image + b"\r\n--" + BOUNDARY + b"--\r\n")


async def call(app, body_chunks: list[bytes], then_disconnect: bool = False, headers: list | None = None,
               path: str = "/v1/classify") -> tuple[int, dict, int]:
    """Drive ``app`` with one POST; returns (status, JSON body, body chunks the app pulled)."""
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
                for i, chunk in enumerate(body_chunks)]
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if pulled < len(messages):
            pulled += 1
            return messages[pulled - 1]
        if then_disconnect:
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers if headers is not None else
             [(b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    await asyncio.wait_for(app(scope, receive, send), 30)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body or b"{}"), pulled


@pytest.fixture(scope="module")
def pipeline(tiny_bundle) -> DevicePipeline:
    return DevicePipeline(tiny_bundle, max_image_bytes=100_000)


def test_a_request_whose_client_has_gone_is_not_computed(pipeline, monkeypatch) -> None:
    computed = []
    monkeypatch.setattr(pipeline, "encode_image", lambda data: computed.append(data))
    client = EdgeClient("127.0.0.1:1", ExpectedModel(pipeline.model_id, pipeline.codec, pipeline.timesteps,
                                                     pipeline.latent_shape), ChannelSettings())
    app = create_app(pipeline, client)
    status, _, _ = asyncio.run(call(app, [multipart(b"\x89PNG....")], then_disconnect=True))
    assert status == 499 and computed == []


def test_the_body_limit_holds_for_announced_and_streamed_bodies() -> None:
    reached = []

    async def app(scope, receive, send) -> None:
        while (await receive()).get("more_body"):
            pass
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guarded = BodySizeLimit(app, max_bytes=1000)
    status, body, _ = asyncio.run(call(guarded, [b"x" * 600, b"x" * 600],
                                       headers=[(b"content-length", b"1200")]))
    assert status == 413 and "1200 bytes; the limit is 1000" in body["detail"] and not reached
    status, body, pulled = asyncio.run(call(guarded, [b"x" * 600] * 5))  # chunked: no length
    assert status == 413 and "sent without a length" in body["detail"] and not reached
    assert pulled == 5  # the rest was read and dropped so the client can read the answer
    assert asyncio.run(call(guarded, [b"x" * 500, b"x" * 500]))[0] == 200


def test_the_token_comes_first_and_probes_stay_open() -> None:
    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guarded = BearerToken(Admission(app, max_in_flight=1, paths={"/v1/classify"}), token="t0ken")
    assert asyncio.run(call(guarded, [b""], headers=[]))[0] == 401
    assert asyncio.run(call(guarded, [b""], headers=[(b"authorization", b"Bearer t0kem")]))[0] == 401
    assert asyncio.run(call(guarded, [b""], headers=[(b"authorization", b"Bearer t0ken")]))[0] == 200
    assert asyncio.run(call(guarded, [b""], headers=[], path="/healthz"))[0] == 200
    assert asyncio.run(call(guarded, [b""], headers=[], path="/readyz"))[0] == 200
    with pytest.raises(ValueError, match="must not be empty"):
        BearerToken(app, token="")
