"""Ship a trained bundle from runs/ into bundles/: the same model with float16 weights (half the size), its
validation accuracy re-measured with those weights, its training record kept.

A bundle's weights are float32 as training leaves them (12 MB for the half-width ResNet-18); stored as float16
they load into the float32 model with a rounding that moves the validation accuracy by hundredths of a point
(measured here and written into ``metrics``), so a bundle that is committed costs 6 MB. The model id changes
(it hashes the weights); ``lineage.weights_from`` names the float32 bundle it came from.

    python scripts/ship_bundle.py runs/radio/bundles/snn-awgn-soft bundles/snn-awgn-soft --data-root ../shared/data
"""

from __future__ import annotations

import argparse

import torch

from sjscc.common.bundle import load_bundle, save_bundle
from sjscc.training.data import Normalize, load_split

STANDARD = {"format", "backbone", "split", "codec", "timesteps", "latent_shape", "feature_shape", "payload_bits",
            "classes", "train_channel", "metrics", "spec", "files", "model_id", "progressive"}


@torch.no_grad()
def clean_accuracy(model: torch.nn.Module, normalize: Normalize, images: torch.Tensor, labels: torch.Tensor) -> float:
    correct = 0
    for start in range(0, len(labels), 500):
        logits, _ = model(normalize(images[start:start + 500]))
        correct += int((logits.argmax(1) == labels[start:start + 500]).sum())
    return correct / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a bundle folder (float32 weights)")
    parser.add_argument("out", help="the float16 bundle to write")
    parser.add_argument("--data-root", default="../shared/data")
    args = parser.parse_args()
    source = load_bundle(args.source)
    model = source.build().eval()
    normalize = Normalize(tuple(source.spec.mean), tuple(source.spec.std))
    val = load_split(args.data_root, "cifar10", "val")
    before = clean_accuracy(model, normalize, val.images, val.labels)
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    after = clean_accuracy(model, normalize, val.images, val.labels)
    metrics = {**source.manifest.get("metrics", {}), "clean_accuracy_float16_val": after,
               "clean_accuracy_float32_val": before, "float16_note": "weights stored as float16"}
    extra = {k: v for k, v in source.manifest.items() if k not in STANDARD}
    extra["lineage"] = {**(extra.get("lineage") or {}), "weights_from": source.model_id, "weights_dtype": "float16"}
    model.half()
    bundle = save_bundle(model, source.spec, args.out, source.classes, source.manifest["train_channel"], metrics,
                         extra=extra)
    print(f"{bundle.path} {bundle.model_id}: clean val accuracy float32 {before:.4f}, float16 {after:.4f}")


if __name__ == "__main__":
    main()
