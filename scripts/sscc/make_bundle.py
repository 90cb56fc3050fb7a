"""Export an SSCC bundle: CNN-q<n> + CRC + 5G LDPC, from a trained CNN-q<n> rung or a CNN-q8 re-quantised to n bits.

``--source`` is a trained rung of the fixed-rate ladder (``scripts/reproduce-cpu.sh rate-ladder``, e.g.
``runs/cpu-wide/rate-ladder/bundles/cnn-q4``: its own encoder, quantiser and decoder) or, as a stand-in, the shipped
CNN-q8, whose latent is then re-quantised to n bits and read by its own decoder.

The manifest's ``channel_code`` names the code the link must apply (``sjscc.common.channels.coding.link_for``
rebuilds it): ``{"kind": "ldpc", "crc": "CRC16", "k": 64 n, "n": coded bits, "rate", "modulation",
"channel_uses", "on_failure", "fill"}``. Weights are stored as float16 (the bundle is 6 MB instead of 12; they
load into the float32 model), and ``metrics`` are measured on the validation split with those weights.

    python scripts/sscc/make_bundle.py --source runs/cpu-wide/rate-ladder/bundles/cnn-q4 --rung 4 \
        --channel-uses 256 --modulation qpsk --out bundles/sscc-cnn-q4-ldpc
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from sjscc.common.bundle import load_bundle, save_bundle
from sjscc.common.channels.coding import CRC_BITS, bits_per_symbol, link_for
from sjscc.common.model import build_split_model
from sjscc.training.data import Normalize, load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="bundles/baseline-cnn-q8")
    parser.add_argument("--rung", type=int, default=4)
    parser.add_argument("--channel-uses", type=int, default=256)
    parser.add_argument("--modulation", default="qpsk")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = load_bundle(args.source)
    config = dataclasses.replace(source.spec.codec_config, timesteps=args.rung)
    spec = dataclasses.replace(source.spec, codec=f"cnn-q{args.rung}", codec_config=config)
    model = build_split_model(spec)
    state = source.build().state_dict()
    model.load_state_dict({k: v.half().float() for k, v in state.items()})  # what float16 storage will give back
    model.eval()
    k = 64 * args.rung
    n = args.channel_uses * bits_per_symbol(args.modulation)
    code = {"kind": "ldpc", "standard": "5G NR (Sionna LDPC5GEncoder/LDPC5GDecoder, BP 20 iterations)",
            "crc": "CRC16", "k": k, "n": n, "rate": (k + CRC_BITS["CRC16"]) / n, "modulation": args.modulation,
            "channel_uses": args.channel_uses, "on_failure": "erase", "fill": "random"}
    val = load_split(args.data_root, "cifar10", "val")
    normalize = Normalize(tuple(spec.mean), tuple(spec.std))
    correct = 0
    with torch.no_grad():
        for start in range(0, len(val.labels), 500):
            logits, _ = model(normalize(val.images[start:start + 500]))
            correct += int((logits.argmax(1) == val.labels[start:start + 500]).sum())
    metrics = {"split": "val", "dataset": "cifar10", "n_images": len(val.labels),
               "clean_accuracy": correct / len(val.labels), "device": "cpu",
               "note": "clean = the channel code's successful block; BLER curves in docs/results/sscc"}
    lineage: dict = {"weights_from": source.model_id, "weights_dtype": "float16"}
    if source.manifest.get("codec") != spec.codec:  # a stand-in: another rung's latent re-quantised
        lineage["requantised_from_bits"] = source.timesteps
    else:
        lineage["trained_rung"] = True
        lineage["training"] = source.manifest.get("training")
    half = {k: v.half() for k, v in model.state_dict().items()}
    model.load_state_dict(half)  # float16 values into the float32 model; save_bundle keeps the module's dtype
    model.half()
    bundle = save_bundle(model, spec, args.out, source.classes, {"kind": "none", "p": 0.0}, metrics,
                         extra={"channel_code": code, "lineage": lineage})
    link_for(bundle.manifest)  # the manifest's code is one the link can build
    print(bundle.path, bundle.model_id, metrics["clean_accuracy"])


if __name__ == "__main__":
    main()
