"""The ``image`` field sent as a plain form value: Starlette's text decoding undone, byte for byte."""

from __future__ import annotations

import io
from typing import Annotated

import pytest
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.testclient import TestClient
from PIL import Image

from sjscc.device.uploads import form_charset, plain_value_bytes, plain_value_upload


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (7, 5), (200, 30, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def _echo_app() -> FastAPI:
    """What the device's route does with the field: a plain value becomes an upload of the same bytes."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request, image: Annotated[UploadFile | str, File()]) -> dict:
        if isinstance(image, str):
            image = plain_value_upload(image, request.headers.get("content-type", ""))
        return {"hex": (await image.read()).hex()}

    return app


BODIES = {
    "png": _png(),
    "every byte value": bytes(range(256)) * 3,
    "invalid utf-8 start": b"\xff\xd8\xff\xe0 jpeg-ish",
    "ascii text": b"hello, not a picture",
    "utf-8 text past latin-1": "snowman \u2603".encode(),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_a_plain_value_reaches_the_route_as_the_bytes_sent(name: str) -> None:
    body = BODIES[name]
    with TestClient(_echo_app()) as client:
        as_file = client.post("/echo", files={"image": ("a.bin", body, "application/octet-stream")}).json()
        as_value = client.post("/echo", files={"image": (None, body)}).json()
    assert bytes.fromhex(as_value["hex"]) == bytes.fromhex(as_file["hex"]) == body


def test_the_bytes_are_recovered_for_each_way_starlette_decodes() -> None:
    data = bytes(range(256))
    assert plain_value_bytes(data.decode("latin-1")) == data  # not UTF-8: Starlette's Latin-1 fallback
    assert plain_value_bytes("caf\u00e9 \u2603") == "caf\u00e9 \u2603".encode()  # UTF-8 text past U+00FF
    assert plain_value_bytes("abc") == b"abc"
    assert plain_value_bytes(data.decode("latin-1"), "iso8859-1") == data
    assert plain_value_bytes("\u00e9t\u00e9", "cp1252") == "\u00e9t\u00e9".encode("cp1252")


def test_the_forms_charset_is_read_as_starlette_reads_it() -> None:
    assert form_charset("multipart/form-data; boundary=x") == "utf-8"
    assert form_charset('multipart/form-data; charset="ISO-8859-1"; boundary=x') == "iso8859-1"
    assert form_charset("multipart/form-data; charset=no-such-charset") == "latin-1"
    assert form_charset("") == "utf-8"
