"""The separate-coding bundle served for real (issue 24, "Servable"): ``bundles/sscc-cnn-q4-ldpc`` behind an edge and a
device on loopback. The device's link sends one CRC + 5G LDPC block per image over the radio link, the edge runs BP
and the CRC; the answer's ``channel.code`` says what happened.

Checked: a clean link and a high SNR decode and give the clean label; a very low SNR fails the CRC and the failure
policy is applied (``erase``: a label from fill bits; ``misclassify``: no label); settings the block cannot cross are
400s that name the setting.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from sjscc.tools.services import device_is_ready, edge_is_serving, free_port, start_service, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "bundles" / "sscc-cnn-q4-ldpc"
STARTUP_TIMEOUT_S = 120.0
INFO_BITS, CODED_BITS, SYMBOLS = 256, 512, 256  # the bundle's manifest: k, n, and n / 2 QPSK channel uses


def photo() -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def http(tmp_path_factory) -> Iterator[httpx.Client]:
    log_dir = tmp_path_factory.mktemp("sscc-logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    edge_port, device_port = free_port(), free_port()
    edge = start_service("edge", ["edge", "--bundle", str(BUNDLE), "--host", "127.0.0.1", "--port", str(edge_port)],
                         log_dir, env)
    device = start_service("device", ["device", "--bundle", str(BUNDLE), "--edge", f"127.0.0.1:{edge_port}",
                                      "--host", "127.0.0.1", "--port", str(device_port), "--channel", "none",
                                      "--rpc-timeout", "30"], log_dir, env)
    url = f"http://127.0.0.1:{device_port}"
    try:
        wait_until(lambda: edge_is_serving(f"127.0.0.1:{edge_port}"), edge, STARTUP_TIMEOUT_S)
        wait_until(lambda: device_is_ready(url), device, STARTUP_TIMEOUT_S)
        with httpx.Client(base_url=url, timeout=60.0) as client:
            yield client
    finally:
        device.stop()
        edge.stop()


def classify(http: httpx.Client, **params) -> httpx.Response:
    return http.post("/v1/classify", params=params, files={"image": ("cat.png", photo(), "image/png")})


def check_code(code: dict, decoded: bool, on_failure: str) -> None:
    assert code == {"kind": "ldpc", "crc": "CRC16", "rate": 0.53125, "info_bits": INFO_BITS,
                    "coded_bits": CODED_BITS, "symbols": SYMBOLS, "decoded": decoded, "on_failure": on_failure}


def test_a_clean_link_and_a_high_snr_decode_the_block_and_give_the_clean_label(http) -> None:
    clean = classify(http)
    assert clean.status_code == 200, clean.text
    body = clean.json()
    check_code(body["channel"]["code"], True, "erase")
    assert body["bits"]["payload_bits"] == INFO_BITS and body["label"] is not None
    for decisions, wire_payload_bytes in (("hard", CODED_BITS // 8), ("soft", CODED_BITS * 4 // 8)):
        reply = classify(http, channel="awgn", snr_db="6", decisions=decisions, seed="3")
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        check_code(answer["channel"]["code"], True, "erase")
        assert answer["channel"]["modulation"] == "qpsk" and answer["channel"]["symbols"] == SYMBOLS
        # QPSK at Eb/N0 = 6 dB per information bit is 3.25 dB per coded bit: BER 0.02, about 10 of the 512 coded
        # bits wrong, which BP corrects (this seed draws the same noise for both decisions)
        assert 0 < answer["channel"]["flipped_bits"] < 30
        assert answer["bits"]["wire_bytes"] > wire_payload_bytes  # the coded block (or its 4-bit LLRs) crossed
        assert (answer["label"], answer["top"]) == (body["label"], body["top"])  # decoded: the very same bits


def test_a_very_low_snr_fails_the_crc_and_the_policy_is_applied(http) -> None:
    erased = classify(http, channel="rayleigh", snr_db="-10", decisions="soft", seed="5")
    assert erased.status_code == 200, erased.text
    body = erased.json()
    check_code(body["channel"]["code"], False, "erase")  # the bundle's policy: classify fill bits
    assert body["label"] is not None and body["channel"]["flipped_bits"] > CODED_BITS // 5
    counted_wrong = classify(http, channel="awgn", snr_db="-10", seed="5", on_failure="misclassify")
    assert counted_wrong.status_code == 200, counted_wrong.text
    answer = counted_wrong.json()
    check_code(answer["channel"]["code"], False, "misclassify")
    assert answer["label"] is None and answer["class_index"] is None and answer["top"] == []


@pytest.mark.parametrize(("params", "named"), [
    ({"channel": "bec", "p": "0.1"}, "channel=bec"),
    ({"channel": "ge", "p": "0.1"}, "channel=ge"),
    ({"channel": "awgn", "modulation": "16qam"}, "modulation=16qam"),
    ({"channel": "rayleigh", "coherence": "step"}, "coherence=step"),
    ({"channel": "awgn", "on_failure": "retry"}, "on_failure"),
    ({"channel": "bsc", "p": "0.01", "interleave": "3"}, "interleave"),
])
def test_settings_the_block_cannot_cross_are_400s_that_name_them(http, params, named) -> None:
    reply = classify(http, **params)
    assert reply.status_code == 400, reply.text
    assert named in reply.json()["detail"]


def test_hard_bits_through_a_bsc_are_decoded_too(http) -> None:
    reply = classify(http, channel="bsc", p="0.02", seed="1")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["channel"]["flipped_bits"] > 0 and body["channel"]["code"]["decoded"] is True
