"""A device serving a separate-coding bundle refuses, at startup, a deployment channel its LDPC block cannot cross."""

from __future__ import annotations

from pathlib import Path

from sjscc.cli import main

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "sscc-cnn-q4-ldpc"


def test_a_deployment_channel_the_block_cannot_cross_stops_the_device_with_its_name(capsys) -> None:
    status = main(["device", "--bundle", str(BUNDLE), "--channel", "ge", "--p", "0.1", "--edge", "127.0.0.1:1",
                   "--port", "0"])
    assert status == 2
    assert "channel=ge is not available" in capsys.readouterr().err
