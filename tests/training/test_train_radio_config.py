"""A training config names a radio link like any channel; the trainer gets the one RadioChannel it describes."""

from __future__ import annotations

import pytest

from sjscc.common.channels import RadioChannel
from sjscc.common.config import load_config
from sjscc.training.config import TrainConfig
from sjscc.training.steps import build_training_channel


def test_config_channel_builds_the_radio_link() -> None:
    config = load_config(TrainConfig, "sjscc/training/configs/cpu-snn-awgn-soft-step3.yaml", [])
    channel = build_training_channel(config.channel)
    assert isinstance(channel, RadioChannel) and channel.name == "awgn"
    assert channel.settings.describe() == {"snr_db": -2.0, "modulation": "bpsk", "coherence": "packet",
                                           "decisions": "soft", "snr_db_max": 6.0}
    assert channel.settings.soft_bits == 4


def test_bad_radio_config_is_a_value_error() -> None:
    config = load_config(TrainConfig, None, ["channel.kind=rayleigh", "channel.coherence=zero"])
    with pytest.raises(ValueError, match="coherence"):
        build_training_channel(config.channel)
