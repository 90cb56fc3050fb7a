"""The device's channel settings and interceptor with the GE burst channel and the bit interleaver."""

from __future__ import annotations

import pytest
import torch

from sjscc.common import bitstream
from sjscc.common.channels import apply_to_payload, build_channel
from sjscc.common.params import parse_burst, parse_interleave
from sjscc.device.link import ChannelInterceptor, ChannelSettings, settings_for_request
from sjscc.proto import sjscc_pb2

SHAPE = (8, 4, 4, 4)


def _request() -> sjscc_pb2.EncodedFeature:
    bits = (torch.rand(SHAPE, generator=torch.Generator().manual_seed(3)) < 0.4).float()
    return sjscc_pb2.EncodedFeature(payload=bitstream.pack(bits), timesteps=SHAPE[0], latent_shape=list(SHAPE[1:]),
                                    codec="snn", model_id="m", request_id="r", top_k=3)


@pytest.mark.parametrize("interleave", [None, 9])
def test_interceptor_draws_exactly_what_the_channel_function_draws(interleave: int | None) -> None:
    sent = _request()
    received, report = ChannelInterceptor(ChannelSettings("ge", 0.15, burst=6, interleave=interleave),
                                          seed=4).transmit(sent, None)
    expected = apply_to_payload(build_channel("ge", burst=6, interleave=interleave), sent.payload, list(SHAPE), 0.15,
                                torch.Generator().manual_seed(4))
    assert received.payload == expected.payload and report.flipped_bits == expected.flipped_bits > 0
    assert (report.kind, report.p, report.burst, report.interleave) == ("ge", 0.15, 6.0, interleave)
    assert report.erased_bits == 0 and report.payload_bits == 512


def test_settings_for_request_overrides_burst_and_interleaver() -> None:
    defaults = ChannelSettings("bsc", 0.1, interleave=5)
    assert settings_for_request(defaults, "ge", burst="4") == ChannelSettings("ge", 0.1, burst=4.0, interleave=5)
    assert settings_for_request(defaults, interleave="none").interleave is None
    assert settings_for_request(defaults, interleave="12").interleave == 12
    assert settings_for_request(defaults).burst == 8.0
    report = ChannelInterceptor(defaults, seed=1).transmit(_request(), None)[1]
    assert report.burst is None and report.interleave == 5  # burst is reported for ge only


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"burst": "0.5"}, "burst length must be a finite number >= 1"),
    ({"burst": "long"}, "burst .* must be a number >= 1, got 'long'"),
    ({"channel": "ge", "p": "0.6", "burst": "1"}, r"at most L/\(L\+1\)"),
    ({"interleave": "-3"}, r"interleave must be a seed in \[0, "),
    ({"interleave": "x"}, "interleave must be a seed"),
])
def test_bad_overrides_name_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_for_request(ChannelSettings("bsc", 0.1), **kwargs)


def test_parsers_accept_flags_and_environment_strings() -> None:
    assert parse_burst(" 12.5 ") == 12.5 and parse_burst(3) == 3.0
    assert parse_interleave(None) is None and parse_interleave("off") is None and parse_interleave(" 7 ") == 7
