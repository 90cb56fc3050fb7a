"""``GET /v1/model``: what the device serves, for the web page and for people: identity, wire format, classes,
and the bundle's own accuracy against the channel's p, when the bundle carries it.

The curve comes from evaluation reports (the JSON ``sjscc eval --out`` writes) that name this bundle's model id:
rows in the manifest's ``metrics.results`` when an export put them there, and ``results/*.json`` inside the
bundle folder (``sjscc eval --bundle B ... --out B/results/bsc.json``). Reports for another model id are
ignored, so a stale file cannot pass for this model's accuracy. Only JSON is read, never a pickle.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from sjscc.common.bundle import Bundle, BundleHalf

log = logging.getLogger("sjscc.device")

MAX_REPORT_BYTES = 1_000_000
MAX_REPORTS = 20
CARD_METRICS = ("dataset", "split", "n_images", "clean_accuracy", "firing_rate")


class AccuracyPoint(BaseModel):
    p: float
    accuracy_mean: float
    accuracy_std: float


class AccuracyCurve(BaseModel):
    channel: str = Field(description="the channel swept: bsc, bec, ...")
    source: str = Field(description="where in the bundle the report was found")
    dataset: str | None = None
    split: str | None = None
    n_images: int | None = None
    points: list[AccuracyPoint] = Field(description="sorted by p")


class ModelCard(BaseModel):
    """The answer of ``GET /v1/model`` (OpenAPI documentation; the route returns the card as built)."""

    model_id: str
    codec: str | None = None
    backbone: str | None = None
    split: str | None = None
    timesteps: int
    latent_shape: list[int] = Field(description="[c2, h2, w2]")
    payload_bits: int = Field(description="T x c2 x h2 x w2")
    classes: list[str]
    train_channel: dict[str, Any] | None = None
    channel_code: dict[str, Any] | None = Field(None, description="separate coding: the manifest's channel code "
                                                                  "(kind, crc, k, n, rate, modulation, on_failure)")
    metrics: dict[str, Any] = Field(description="clean_accuracy, dataset, split, n_images, firing_rate when known")
    accuracy_curves: list[AccuracyCurve] = Field(description="the bundle's accuracy against p, when it carries any")


def _curve_rows(rows: object) -> dict[str, list[dict[str, float]]]:
    """Eval result rows grouped by channel; rows without a channel, p and accuracy (or with a confidence
    threshold, which are another experiment) are skipped."""
    curves: dict[str, list[dict[str, float]]] = {}
    if not isinstance(rows, list):
        return curves
    for row in rows:
        if not isinstance(row, dict) or "confidence" in row:
            continue
        kind, p, accuracy = row.get("channel"), row.get("p"), row.get("accuracy_mean")
        if not isinstance(kind, str) or not isinstance(p, (int, float)) or not isinstance(accuracy, (int, float)):
            continue
        std = row.get("accuracy_std")
        curves.setdefault(kind, []).append({"p": float(p), "accuracy_mean": float(accuracy),
                                            "accuracy_std": float(std) if isinstance(std, (int, float)) else 0.0})
    return curves


def _read_report(path: Path) -> dict[str, Any] | None:
    if path.stat().st_size > MAX_REPORT_BYTES:
        log.warning("ignoring %s: larger than %d bytes", path, MAX_REPORT_BYTES)
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("ignoring %s: not a readable JSON eval report (%s)", path, error)
        return None
    return report if isinstance(report, dict) else None


def accuracy_curves(bundle: Bundle) -> list[dict[str, Any]]:
    """The bundle's accuracy against p, one curve per channel and source, points sorted by p."""
    sources: list[tuple[str, dict[str, Any]]] = []
    metrics = bundle.manifest.get("metrics")
    if isinstance(metrics, dict) and "results" in metrics:
        sources.append(("manifest.json metrics", metrics))
    results_dir = bundle.path / "results"
    if results_dir.is_dir():
        for path in sorted(results_dir.glob("*.json"))[:MAX_REPORTS]:
            report = _read_report(path)
            if report is not None and report.get("bundle") == bundle.model_id:
                sources.append((f"results/{path.name}", report))
    curves = []
    for source, report in sources:
        for kind, points in _curve_rows(report.get("results")).items():
            curves.append({"channel": kind, "source": source, "dataset": report.get("dataset"),
                           "split": report.get("split"), "n_images": report.get("n_images"),
                           "points": sorted(points, key=lambda point: point["p"])})
    return curves


def model_card(bundle: Bundle) -> dict[str, Any]:
    """The JSON of ``GET /v1/model`` for one bundle."""
    manifest = bundle.manifest
    metrics = manifest.get("metrics") if isinstance(manifest.get("metrics"), dict) else {}
    return {
        "model_id": bundle.model_id,
        "codec": manifest.get("codec"),
        "backbone": manifest.get("backbone"),
        "split": manifest.get("split"),
        "timesteps": bundle.timesteps,
        "latent_shape": bundle.latent_shape,
        "payload_bits": math.prod(bundle.payload_shape),
        "classes": bundle.classes,
        "train_channel": manifest.get("train_channel"),
        "channel_code": manifest.get("channel_code"),
        "metrics": {key: metrics[key] for key in CARD_METRICS if key in metrics},
        "accuracy_curves": accuracy_curves(bundle),
    }


def wire_format_card(half: BundleHalf) -> dict[str, Any]:
    """What any device knows without the bundle folder: identity and wire format, no curves."""
    return {"model_id": half.model_id, "codec": half.codec, "timesteps": half.timesteps,
            "latent_shape": list(half.latent_shape), "payload_bits": half.payload_bits,
            "classes": list(half.classes), "metrics": {}, "accuracy_curves": []}
