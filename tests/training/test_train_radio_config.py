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
    assert channel.settings.describe() == {"snr_db": -10.0, "modulation": "bpsk", "coherence": "packet",
                                           "decisions": "soft", "snr_db_max": 6.0}
    assert channel.settings.soft_bits == 4


def test_bad_radio_config_is_a_value_error() -> None:
    config = load_config(TrainConfig, None, ["channel.kind=rayleigh", "channel.coherence=zero"])
    with pytest.raises(ValueError, match="coherence"):
        build_training_channel(config.channel)


@pytest.mark.parametrize("soft, hard", [("cpu-snn-awgn-soft-step3.yaml", "cpu-snn-awgn-hard-step3.yaml"),
                                        ("cpu-cnn-q1-awgn-soft-step2.yaml", "cpu-cnn-q1-awgn-hard-step2.yaml")])
def test_each_soft_training_has_a_hard_control_that_differs_only_in_the_decisions(soft: str, hard: str) -> None:
    """"Soft beats hard" (docs/RESULTS.md) compares two trainings with one recipe: only the receiver differs."""
    import dataclasses

    configs = [load_config(TrainConfig, f"sjscc/training/configs/{name}", []) for name in (soft, hard)]
    assert (configs[0].channel.decisions, configs[1].channel.decisions) == ("soft", "hard")
    assert configs[0].channel.snr_db == configs[1].channel.snr_db == -10.0
    same = [dataclasses.replace(c, out="", export="", channel=dataclasses.replace(c.channel, decisions="hard"))
            for c in configs]
    assert same[0] == same[1]
