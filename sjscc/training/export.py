"""A trained step's model as a bundle: the measured metrics and the manifest's training record.

The metrics are measured on a fresh copy of the model built the way a loaded bundle is (default memory layout,
eval mode) with :func:`sjscc.training.evaluate.evaluate_model`, so ``sjscc eval --split val`` with the
``eval_args`` recorded here reproduces them exactly on the same device.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sjscc.common.bundle import save_bundle
from sjscc.common.channels import LINK_KINDS
from sjscc.common.model import build_split_model
from sjscc.training.config import ChannelConfig
from sjscc.training.evaluate import DEFAULT_BATCH_SIZE, evaluate_model, link_fields
from sjscc.training.steps import link_settings

if TYPE_CHECKING:
    from sjscc.training.trainer import Trainer


def export_metrics(trainer: Trainer, seed: int = 0) -> dict[str, Any]:
    """Validation accuracy without a channel and through the training channel (``export_repeats`` draws)."""
    cfg = trainer.config
    model = build_split_model(cfg.model)
    model.load_state_dict({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()})
    model = model.to(trainer.device).eval()
    link = None
    if cfg.channel.kind in LINK_KINDS:
        link = dataclasses.replace(link_settings(cfg.channel), snr_db=_metric_snr(cfg.channel), snr_db_max=None)
    report = evaluate_model(model, trainer.val_set, trainer.normalize, [cfg.channel.kind], [cfg.channel.p],
                            cfg.export_repeats, seed, trainer.device, DEFAULT_BATCH_SIZE,
                            cfg.channel.erasure_policy, burst=cfg.channel.burst,
                            interleave=cfg.channel.interleave, snrs=[link.snr_db] if link else (), link=link,
                            bsc_equivalent=False)
    (noisy,) = report["results"]
    data = cfg.data
    return {"split": "val", "dataset": data.dataset, "n_images": report["n_images"],
            "clean_accuracy": report["clean_accuracy"],
            "train_channel_accuracy_mean": noisy["accuracy_mean"],
            "train_channel_accuracy_std": noisy["accuracy_std"],
            "train_channel_accuracies": noisy["accuracies"],
            "firing_rate": report["firing_rate"]["mean"], "device": str(trainer.device),
            "eval_args": {"split": "val", "dataset": data.dataset, "channel": cfg.channel.kind,
                          "p": cfg.channel.p, "repeats": cfg.export_repeats, "seed": seed,
                          **link_fields(cfg.channel.kind, cfg.channel.burst, cfg.channel.interleave),
                          **({**link.describe(), "snr_db": link.snr_db} if link else {}),
                          "batch_size": DEFAULT_BATCH_SIZE, "limit": data.limit,
                          "val_fraction": data.val_fraction, "split_seed": data.split_seed}}


def _metric_snr(channel: ChannelConfig) -> float:
    """The Eb/N0 the export metrics use: the training SNR, or the middle of the training range."""
    return channel.snr_db if channel.snr_db_max is None else (channel.snr_db + channel.snr_db_max) / 2


def radio_fields(channel: ChannelConfig) -> dict[str, Any]:
    """A radio link's training settings for the manifest's ``train_channel`` (empty for binary channels)."""
    if channel.kind not in LINK_KINDS:
        return {}
    return {**link_settings(channel).describe(), "snr_db_max": channel.snr_db_max, "soft_bits": channel.soft_bits}


def export_bundle(trainer: Trainer, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``config.export`` from the trained model; returns what the run's record says about the bundle."""
    config = trainer.config
    started = time.time()
    metrics = export_metrics(trainer)
    channel = config.channel
    bundle = save_bundle(
        trainer.model.cpu(), config.model, config.export, trainer.val_set.classes,
        train_channel={"kind": channel.kind, "p": channel.p, "p_max": channel.p_max,
                       "erasure_policy": channel.erasure_policy,
                       **link_fields(channel.kind, channel.burst, channel.interleave),
                       **radio_fields(channel)},
        metrics=metrics,
        extra={"training": {"config": asdict(config), "last_epoch": record}},
    )
    return {"path": str(bundle.path), "model_id": bundle.model_id, "metrics": metrics,
            "export_seconds": round(time.time() - started, 1)}
