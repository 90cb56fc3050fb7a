"""The three-step trainer end to end on a tiny synthetic CIFAR folder: steps, export, resume, alpha, the
cached step-2 path, the paper configs, and one DistributedDataParallel step under torchrun (gloo, 2 CPUs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_spec
from safetensors.torch import load_file

from sjscc.common.bundle import load_bundle
from sjscc.common.config import load_config
from sjscc.common.model import build_split_model
from sjscc.training.config import ChannelConfig, DataConfig, OptimConfig, TrainConfig
from sjscc.training.evaluate import evaluate_bundle
from sjscc.training.trainer import CHECKPOINT, LOG, WEIGHTS, Trainer, train

CONFIGS = Path(__file__).resolve().parents[2] / "sjscc" / "training" / "configs"


def tiny_config(root: Path, out: Path, step: int, codec: str | None = "snn", init: Path | str = "",
                export: Path | str = "", epochs: int = 2, batch_size: int = 32, limit: int = 100,
                augment: bool = True, **overrides) -> TrainConfig:
    """A config on the tiny ResNet-20 geometry of ``tiny_spec``: seconds per step on one CPU core."""
    spec = tiny_spec(codec or "snn", timesteps=4)
    spec.codec = codec
    lr = 0.01 if step == 1 else 0.002
    config = TrainConfig(
        step=step, out=str(out), init=str(init), model=spec, export=str(export),
        channel=ChannelConfig(kind="bsc", p=0.1),
        optim=OptimConfig(optimizer="adam", lr=lr, weight_decay=0.0, epochs=epochs, batch_size=batch_size,
                          schedule="step", step_epochs=1, gamma=0.5),
        data=DataConfig(root=str(root), dataset="cifar10", limit=limit, augment=augment),
        export_repeats=2,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / LOG).read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(synthetic_cifar10: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Step 1 once; then steps 2 and 3 (with export) for the SNN and the 4-bit CNN baseline."""
    base = tmp_path_factory.mktemp("runs")
    train(tiny_config(synthetic_cifar10, base / "backbone", 1, codec=None))
    folders = {"backbone": base / "backbone"}
    for codec in ("snn", "cnn-q4"):
        step2, step3 = base / codec / "step2", base / codec / "step3"
        train(tiny_config(synthetic_cifar10, step2, 2, codec, init=folders["backbone"]))
        train(tiny_config(synthetic_cifar10, step3, 3, codec, init=step2, export=base / f"bundle-{codec}"))
        folders.update({f"{codec}/step2": step2, f"{codec}/step3": step3, f"{codec}/bundle": base / f"bundle-{codec}"})
    return folders


@pytest.mark.parametrize("codec", ["snn", "cnn-q4"])
def test_three_steps_end_to_end(runs: dict[str, Path], codec: str) -> None:
    backbone = load_file(runs["backbone"] / WEIGHTS)
    step2 = load_file(runs[f"{codec}/step2"] / WEIGHTS)
    step3 = load_file(runs[f"{codec}/step3"] / WEIGHTS)
    assert not any(k.startswith("codec.") for k in backbone)
    head_keys = [k for k in backbone if k.startswith("head.") and "num_batches_tracked" not in k]
    # step 2 freezes the backbone (weights and BN statistics); step 3 trains it jointly with the codec
    assert all(torch.equal(backbone[k], step2[k]) for k in backbone)
    assert any(not torch.equal(step2[k], step3[k]) for k in head_keys)
    assert any(not torch.equal(step2[k], step3[k]) for k in step2 if k.startswith("codec."))

    for name, step in ((f"{codec}/step2", 2), (f"{codec}/step3", 3)):
        log = read_log(runs[name])
        assert [r["epoch"] for r in log] == [1, 2] and {r["step"] for r in log} == {step}
        for record in log:
            assert 0.0 <= record["val_accuracy"] <= 1.0 and record["train_images"] == 100
            assert 0.0 < record["train_firing_rate"] < 1.0
        assert (runs[name] / CHECKPOINT).is_file() and (runs[name] / "config.yaml").is_file()
    assert log[1]["lr"] == pytest.approx(0.002 * 0.25)  # halved after each of the two epochs

    bundle = load_bundle(runs[f"{codec}/bundle"])
    assert bundle.manifest["codec"] == codec and bundle.timesteps == 4 and bundle.latent_shape == [2, 8, 8]
    metrics = bundle.manifest["metrics"]
    assert metrics["split"] == "val" and metrics["n_images"] == 20
    assert 0.0 <= metrics["clean_accuracy"] <= 1.0 and len(metrics["train_channel_accuracies"]) == 2
    assert bundle.manifest["train_channel"]["kind"] == "bsc" and bundle.manifest["train_channel"]["p"] == 0.1


@pytest.mark.parametrize("codec", ["snn", "cnn-q4"])
def test_loaded_bundle_reproduces_export_metrics(runs: dict[str, Path], codec: str) -> None:
    manifest = load_bundle(runs[f"{codec}/bundle"]).manifest
    metrics, args = manifest["metrics"], manifest["metrics"]["eval_args"]
    report = evaluate_bundle(runs[f"{codec}/bundle"], split="val", channels=[args["channel"]],
                             probabilities=[args["p"]], repeats=args["repeats"], seed=args["seed"],
                             batch_size=args["batch_size"], limit=args["limit"], device="cpu")
    assert report["n_images"] == metrics["n_images"]
    assert report["clean_accuracy"] == metrics["clean_accuracy"]
    (row,) = report["results"]
    assert row["accuracies"] == metrics["train_channel_accuracies"]
    assert row["accuracy_mean"] == metrics["train_channel_accuracy_mean"]
    assert report["firing_rate"]["mean"] == pytest.approx(metrics["firing_rate"], abs=1e-7)


def _state(folder: Path) -> dict:
    return torch.load(folder / CHECKPOINT, weights_only=True)


def test_resume_continues_with_the_same_state(synthetic_cifar10: Path, runs: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed after writing epoch 2's log line but before its checkpoint resumes at epoch 2 and ends
    bit-identical to an uninterrupted run (step 3: augmentation, shuffling and channel noise all in play)."""
    make = lambda out: tiny_config(synthetic_cifar10, out, 3, "snn", init=runs["snn/step2"], limit=64)  # noqa: E731
    train(make(tmp_path / "straight"))

    original = Trainer._save_checkpoint

    def killed_in_epoch_two(self: Trainer, epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt("killed")
        original(self, epoch)

    monkeypatch.setattr(Trainer, "_save_checkpoint", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(make(tmp_path / "killed"))
    assert [r["epoch"] for r in read_log(tmp_path / "killed")] == [1, 2]  # the log line got out, the checkpoint not
    assert _state(tmp_path / "killed")["epoch"] == 0
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    with (tmp_path / "killed" / LOG).open("a") as log:
        log.write('{"epoch": 3, "step": 3, "train_lo')  # and a line cut short, as a kill mid-write leaves it

    resumed = Trainer(make(tmp_path / "killed"))
    resumed.resume()
    assert resumed.start_epoch == 1
    resumed.run(resume=True)

    straight, killed = _state(tmp_path / "straight"), _state(tmp_path / "killed")
    assert killed["epoch"] == straight["epoch"] == 1
    for key, value in straight["model"].items():
        assert torch.equal(value, killed["model"][key]), key
    assert straight["scheduler"] == killed["scheduler"]
    for key, value in straight["optimizer"]["state"].items():
        assert all(torch.equal(v, killed["optimizer"]["state"][key][n]) for n, v in value.items())
    drop = lambda log: [{k: v for k, v in r.items() if k != "seconds"} for r in log]  # noqa: E731
    assert drop(read_log(tmp_path / "killed")) == drop(read_log(tmp_path / "straight"))


def test_alpha_changes_the_loss(synthetic_cifar10: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    """One batch per epoch: the logged loss is exactly CE + (alpha - rate)^2, with the same CE and rate."""
    losses = {}
    for alpha in (None, 0.5, 0.0):
        config = tiny_config(synthetic_cifar10, tmp_path / str(alpha), 2, "snn", init=runs["backbone"], epochs=1,
                             batch_size=100, alpha=alpha)
        losses[alpha] = Trainer(config).train_epoch(0)
    rate = losses[None]["train_firing_rate"]
    assert losses[0.5]["train_firing_rate"] == pytest.approx(rate)
    for alpha in (0.5, 0.0):
        expected = losses[None]["train_loss"] + (alpha - rate) ** 2
        assert losses[alpha]["train_loss"] == pytest.approx(expected, abs=1e-5)
    assert losses[0.5]["train_loss"] != losses[0.0]["train_loss"]


def test_label_smoothing_is_the_smoothed_cross_entropy(synthetic_cifar10: Path, tmp_path: Path) -> None:
    """One batch per epoch at the same initial weights: the logged loss is (1 - e) CE + e * mean(-log p)."""
    losses, logits = {}, {}
    for eps in (0.0, 0.3):
        config = tiny_config(synthetic_cifar10, tmp_path / str(eps), 1, None, epochs=1, batch_size=100,
                             augment=False, label_smoothing=eps)
        trainer = Trainer(config)
        seen: list[torch.Tensor] = []
        trainer.net.register_forward_hook(lambda module, args, out, seen=seen: seen.append(out[0].detach()))
        losses[eps] = trainer.train_epoch(0)["train_loss"]
        logits[eps] = seen[0]
    assert torch.equal(logits[0.0], logits[0.3])
    uniform = -torch.log_softmax(logits[0.0], dim=1).mean().item()
    assert losses[0.3] == pytest.approx(0.7 * losses[0.0] + 0.3 * uniform, abs=1e-5)
    assert abs(losses[0.3] - losses[0.0]) > 1e-3
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got 1.0"):
        Trainer(tiny_config(synthetic_cifar10, tmp_path / "bad", 1, None, label_smoothing=1.0))


def test_cached_step2_matches_uncached(synthetic_cifar10: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    """Step 2 on cached head features computes the same loss and gradients as running the frozen head."""
    trainers = {}
    for cached in (True, False):
        config = tiny_config(synthetic_cifar10, tmp_path / str(cached), 2, "snn", init=runs["backbone"],
                             augment=False, cache_features=cached)
        trainers[cached] = Trainer(config)
    assert trainers[True].use_cache and not trainers[False].use_cache
    index = torch.arange(10, 42)
    outcome = {}
    for cached, trainer in trainers.items():
        trainer._train_mode()
        inputs = trainer._inputs(trainer.train_set, trainer.train_features, index, None)
        labels = trainer.train_set.labels[index]
        generator = torch.Generator().manual_seed(7)
        logits, coded = trainer.net(inputs, trainer.channel, 0.1, generator, trainer.use_cache)
        loss = torch.nn.functional.cross_entropy(logits, labels) + (0.5 - coded.bits.mean()) ** 2
        trainer.optimizer.zero_grad()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        outcome[cached] = (loss.item(), grads)
    assert outcome[True][0] == pytest.approx(outcome[False][0], abs=1e-6)
    assert outcome[True][1].keys() == outcome[False][1].keys() and outcome[True][1]
    assert all(name.startswith("codec.") for name in outcome[True][1])
    for name, grad in outcome[True][1].items():
        assert torch.allclose(grad, outcome[False][1][name], atol=1e-6, rtol=1e-4), name


def test_bad_step_inputs_are_clear(synthetic_cifar10: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="step 2 needs init"):
        Trainer(tiny_config(synthetic_cifar10, tmp_path / "a", 2, "snn"))
    with pytest.raises(ValueError, match="set init to the run folder of step 2"):
        Trainer(tiny_config(synthetic_cifar10, tmp_path / "b", 3, "snn", init=runs["backbone"]))
    with pytest.raises(FileNotFoundError, match="train the previous step first"):
        Trainer(tiny_config(synthetic_cifar10, tmp_path / "c", 2, "snn", init=tmp_path / "missing"))
    config = tiny_config(synthetic_cifar10, tmp_path / "d", 1, None)
    config.data.dataset = "cifar100"
    with pytest.raises(ValueError, match="cifar-100-python"):
        Trainer(config)


PAPER = {"resnet50": ("cifar_resnet50", "layer4.0", (2048, 4, 4), 256, 32),
         "vgg16": ("cifar_vgg16_bn", "features.33", (512, 2, 2), 64, 8)}


@pytest.mark.parametrize("backbone", sorted(PAPER))
def test_paper_configs(backbone: str) -> None:
    name, split_at, shape, c1, c2 = PAPER[backbone]
    step1 = load_config(TrainConfig, CONFIGS / f"paper-{backbone}-backbone.yaml")
    assert step1.step == 1 and step1.model.codec is None and step1.data.dataset == "cifar100"
    assert step1.model.backbone.num_classes == 100
    for codec in ("snn", "cnn"):
        step2 = load_config(TrainConfig, CONFIGS / f"paper-{backbone}-{codec}-step2.yaml")
        step3 = load_config(TrainConfig, CONFIGS / f"paper-{backbone}-{codec}-step3.yaml")
        for config, step, lr in ((step2, 2, 1e-4), (step3, 3, 1e-5)):
            o = config.optim
            assert config.step == step and o.optimizer == "adam" and o.lr == pytest.approx(lr)
            assert (o.epochs, o.batch_size, o.schedule, o.step_epochs, o.gamma) == (50, 32, "step", 10, 0.5)
            assert config.model.backbone.name == name and config.model.backbone.split == split_at
            cc = config.model.codec_config
            assert (cc.in_channels, cc.c1, cc.c2, cc.timesteps) == (shape[0], c1, c2, 8)
            assert (config.channel.kind, config.channel.p) == ("bsc", 0.15)
            assert config.alpha == (0.5 if codec == "snn" else None)
        assert step3.init == step2.out and step2.init == step1.out and step3.export
    # the README's overrides give the other conditions
    t4 = load_config(TrainConfig, CONFIGS / f"paper-{backbone}-cnn-step2.yaml",
                     ["model.codec=cnn-q4", "model.codec_config.timesteps=4", "channel.kind=bec", "channel.p=0.25"])
    settings = (t4.model.codec, t4.model.codec_config.timesteps, t4.channel.kind, t4.channel.p)
    assert settings == ("cnn-q4", 4, "bec", 0.25)
    if backbone == "vgg16":  # ResNet50 takes seconds to trace on a loaded CPU; its geometry is tested with backbones
        model = build_split_model(step3.model)
        assert model.feature_shape == shape and model.latent_shape == [c2, shape[1], shape[2]]


@pytest.mark.slow
def test_ddp_two_processes_gloo(synthetic_cifar10: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    """One tiny step-2 epoch under torchrun with 2 CPU processes: both ranks train, rank 0 writes the files."""
    out = tmp_path / "ddp"
    overrides = {
        "step": 2, "out": str(out), "init": str(runs["backbone"]), "alpha": 0.5,
        "model": {**json.loads(json.dumps(tiny_spec("snn", timesteps=4).to_dict()))},
        "channel": {"kind": "bsc", "p": 0.1},
        "optim": {"optimizer": "adam", "lr": 0.002, "weight_decay": 0.0, "epochs": 1, "batch_size": 16},
        "data": {"root": str(synthetic_cifar10), "dataset": "cifar10", "limit": 64},
    }
    config = tmp_path / "ddp.yaml"
    config.write_text(json.dumps(overrides))  # JSON is YAML
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "sjscc.cli", "train", "--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (record,) = read_log(out)
    assert record["world_size"] == 2
    assert record["train_images"] == 64  # both ranks' shards were counted: 2 x 32 per epoch
    assert _state(out)["epoch"] == 0 and (out / WEIGHTS).is_file()


def test_cli_resume_in_a_new_process_state(synthetic_cifar10: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    """``sjscc train --resume`` in a fresh Trainer: a run stopped after epoch 1 and resumed to epoch 2 equals a
    2-epoch run (the step schedule does not depend on the total epoch count)."""
    from sjscc.cli import main
    from sjscc.common.config import to_yaml

    def config_file(out: Path) -> Path:
        path = tmp_path / f"{out.name}.yaml"
        path.write_text(to_yaml(tiny_config(synthetic_cifar10, out, 2, "snn", init=runs["backbone"], limit=64)))
        return path

    assert main(["train", "--config", str(config_file(tmp_path / "straight"))]) == 0
    stopped = config_file(tmp_path / "stopped")
    assert main(["train", "--config", str(stopped), "--set", "optim.epochs=1"]) == 0
    assert main(["train", "--config", str(stopped), "--resume"]) == 0
    assert [r["epoch"] for r in read_log(tmp_path / "stopped")] == [1, 2]
    straight, stopped_state = load_file(tmp_path / "straight" / WEIGHTS), load_file(tmp_path / "stopped" / WEIGHTS)
    assert all(torch.equal(value, stopped_state[key]) for key, value in straight.items())
