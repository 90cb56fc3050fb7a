"""Training the progressive codec: prefix sampling, the loss over prefixes, warm start from a bundle, steps 2-3."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_spec
from safetensors.torch import load_file
from test_training import read_log, tiny_config

from sjscc.common.bundle import load_bundle, save_bundle
from sjscc.common.model import build_split_model
from sjscc.training.prefix_loss import bundle_init_state, prefix_logits, prefix_loss, sample_prefixes
from sjscc.training.trainer import WEIGHTS, Trainer, train


def test_sample_prefixes() -> None:
    assert sample_prefixes(8, 0, None) == list(range(1, 9))
    assert sample_prefixes(8, 8, None) == list(range(1, 9))
    drawn = [sample_prefixes(8, 3, torch.Generator().manual_seed(s)) for s in range(20)]
    for prefixes in drawn:
        assert len(prefixes) == 3 and prefixes[-1] == 8 and len(set(prefixes)) == 3
        assert all(1 <= t <= 8 for t in prefixes)
    assert len({tuple(p) for p in drawn}) > 1  # really drawn
    assert sample_prefixes(8, 3, torch.Generator().manual_seed(4)) == drawn[4]  # and seeded
    assert sample_prefixes(8, 1, None) == [8]
    with pytest.raises(ValueError, match=">= 0"):
        sample_prefixes(8, -1, None)


def test_prefix_loss_is_the_mean_cross_entropy() -> None:
    labels = torch.tensor([0, 1])
    a = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    ce = lambda x: -torch.log_softmax(x, 1)[torch.arange(2), labels].mean()  # noqa: E731
    torch.testing.assert_close(prefix_loss([a, b], labels), (ce(a) + ce(b)) / 2)


def test_prefix_logits_match_the_model_at_full_t() -> None:
    torch.manual_seed(0)
    model = build_split_model(tiny_spec("snn-progressive")).eval()
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        logits, bits = prefix_logits(model, images, [1, 2, 4])
        full, coded = model(images)
        one = model.tail(model.codec.decoder(bits[:, :1]))
    assert len(logits) == 3 and bits.shape == (3, 4, 2, 8, 8)
    torch.testing.assert_close(logits[-1], full, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[0], one, atol=1e-5, rtol=0)
    assert torch.equal(bits, coded.bits)


def test_bundle_init_state_maps_a_fixed_snn_bundle(tiny_bundle) -> None:
    state = bundle_init_state(tiny_bundle.path)
    edge = load_file(tiny_bundle.path / "edge.safetensors")
    assert torch.equal(state["codec.decoder.reconstructor.block1.0.weight"],
                       edge["codec.decoder.reconstructor.block1.0.weight"])
    torch.testing.assert_close(state["codec.decoder.converters.3.linear.weight"],
                               edge["codec.decoder.converter.linear.weight"])
    backbone_only = bundle_init_state(tiny_bundle.path, codec=False)
    assert backbone_only and all(k.startswith(("head.", "tail.")) for k in backbone_only)


def test_steps_2_and_3_from_a_bundle(synthetic_cifar10: Path, tiny_bundle, tmp_path: Path) -> None:
    """Warm start from a fixed-T bundle, the loss over prefixes in step 2 (sampled) and 3 (all), export."""
    step2, step3, out = tmp_path / "step2", tmp_path / "step3", tmp_path / "bundle"
    config = tiny_config(synthetic_cifar10, step2, 2, "snn-progressive", epochs=1, init_bundle=str(tiny_bundle.path),
                         prefixes=2)
    trainer = Trainer(config)
    own, shipped = trainer.model.state_dict(), load_file(tiny_bundle.path / "device.safetensors")
    for name in ("head.conv1.weight", "codec.encoder.block1.0.weight"):
        assert torch.equal(own[name].cpu(), shipped[name])
    before = {k: v.clone() for k, v in own.items()}
    trainer.run()
    after = trainer.model.state_dict()
    assert torch.equal(after["tail.fc.weight"], before["tail.fc.weight"])  # step 2: backbone frozen
    assert not torch.equal(after["codec.decoder.converters.0.linear.weight"],
                           before["codec.decoder.converters.0.linear.weight"])  # short prefixes are trained
    (record,) = read_log(step2)
    assert len(record["val_prefix_accuracy"]) == 4
    assert all(0.0 <= a <= 1.0 for a in record["val_prefix_accuracy"])
    assert record["train_firing_rate"] > 0

    train(tiny_config(synthetic_cifar10, step3, 3, "snn-progressive", init=step2, export=out, epochs=1,
                      freeze_head=True))
    bundle = load_bundle(out)
    assert bundle.progressive and bundle.manifest["codec"] == "snn-progressive"
    assert bundle.manifest["training"]["last_epoch"]["val_prefix_accuracy"]
    assert (step3 / WEIGHTS).is_file()


def test_bad_init_is_clear(synthetic_cifar10: Path, tiny_bundle, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        Trainer(tiny_config(synthetic_cifar10, tmp_path / "a", 2, "snn-progressive", init=tmp_path,
                            init_bundle=str(tiny_bundle.path)))
    with pytest.raises(ValueError, match="does not exist"):
        Trainer(tiny_config(synthetic_cifar10, tmp_path / "b", 2, "snn-progressive",
                            init_bundle=str(tmp_path / "missing")))
    other = tiny_spec("snn")
    other.backbone.kwargs = {"width": 16}
    other.codec_config.in_channels = 64
    wide = save_bundle(build_split_model(other), other, tmp_path / "wide", [str(i) for i in range(10)],
                       {"kind": "bsc", "p": 0.1}, {"note": "random weights"})
    with pytest.raises(ValueError, match="does not fit this model's backbone"):
        Trainer(tiny_config(synthetic_cifar10, tmp_path / "c", 2, "snn-progressive", init_bundle=str(wide.path)))


def test_reproduce_stage_warm_starts_from_the_shipped_bundle(tmp_path: Path) -> None:
    """``reproduce-cpu.sh progressive`` plans step 2 from bundles/default and step 3 exporting bundles/progressive."""
    from test_reproduce_script import config_of, planned, run_train

    step2, step3 = (config_of(argv) for argv in planned(tmp_path, stage="progressive",
                                                                     PROGRESSIVE=str(tmp_path / "new")))
    assert (step2.step, step3.step) == (2, 3)
    assert step2.init_bundle == "bundles/default" and step2.init == "" and step2.prefixes == 4
    assert step3.init == step2.out and step3.export == str(tmp_path / "new") and step3.prefixes == 4
    for config in (step2, step3):
        assert config.model.codec == "snn-progressive" and config.alpha == 0.5
        assert config.model.codec_config.timesteps == 8 and config.channel.p_max == 0.2
    (tmp_path / "shipped").mkdir()
    (tmp_path / "shipped" / "manifest.json").write_text("{}")
    out = run_train(tmp_path, stage="progressive", PROGRESSIVE=str(tmp_path / "shipped"))
    assert "exists, skipped" in out.stdout and "sjscc train" not in out.stdout
    assert '"run": "progressive"' in (tmp_path / "runs" / "timings.jsonl").read_text()
