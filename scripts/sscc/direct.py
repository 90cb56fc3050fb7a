"""Direct runs of CNN-q<n> + CRC + 5G LDPC, image by image, to check the frontier's BLER combination (issue 24).

Each point sends the first ``--images`` images of the report half through the whole chain (encoder, n-bit
quantiser, CRC, LDPC, modulation, channel, BP, CRC check, erasure fill, decoder, tail) and records the measured
block error rate and accuracy, and the same images' clean and erased accuracy, so scripts/sscc/frontier.py can
compare ``(1 - BLER_curve) clean + BLER_curve erased`` with the direct accuracy.

    nice -n 10 python scripts/sscc/direct.py --points 2:128:qpsk:awgn:4.0,... --out docs/results/sscc/direct.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from sjscc.common.bundle import load_bundle
from sjscc.common.channels.coding import CodedLink, bits_per_symbol, recover
from sjscc.common.codecs.cnn import from_bit_planes, to_bit_planes
from sjscc.training.data import Normalize, load_split

sys.path.insert(0, str(Path(__file__).parent))
from sources import halves  # noqa: E402  (the same halves as the sweep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", required=True, help="rung:budget:modulation:channel:EsN0_dB, comma-separated")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--bundle", default="bundles/baseline-cnn-q8")
    parser.add_argument("--rungs", help="folder of the trained CNN-q1..q7 bundles (cnn-q<n>/), as sources.py --rungs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    val = load_split(args.data_root, "cifar10", "val")
    report = torch.from_numpy((halves(len(val.labels)) == 1).nonzero()[0][: args.images])
    images, labels = val.images[report], val.labels[report]
    def latent_of(path: str) -> tuple[torch.nn.Module, torch.Tensor]:
        bundle = load_bundle(path)
        model = bundle.build()
        normalize = Normalize(tuple(bundle.spec.mean), tuple(bundle.spec.std))
        with torch.no_grad():
            return model, model.codec.encoder.layers(model.head(normalize(images)))

    shipped = latent_of(args.bundle)
    for text in args.points.split(","):
        rung, budget, modulation, channel, esno = text.split(":")
        rung, budget, esno = int(rung), int(budget), float(esno)
        began = time.time()
        trained = bool(args.rungs) and rung < 8  # the trained rung's own encoder and decoder, else re-quantised q8
        model, latent = latent_of(str(Path(args.rungs) / f"cnn-q{rung}")) if trained else shipped
        planes = to_bit_planes(latent, rung)
        n = budget * bits_per_symbol(modulation)
        link = CodedLink(64 * rung, n, modulation, channel, "soft")
        ebno = esno - 10 * math.log10(link.rate * bits_per_symbol(modulation))
        generator = torch.Generator().manual_seed(args.seed * 1_000_003 + round(esno * 100) + 31 * n + rung)
        out = link(planes.reshape(len(labels), -1), ebno, generator)
        bits, wrong = recover(out.bits, out.decoded, "erase", "random", generator)

        def accuracy(bits: torch.Tensor, planes: torch.Tensor = planes, model: torch.nn.Module = model) -> float:
            with torch.no_grad():
                logits = model.tail(model.codec.decoder.layers(from_bit_planes(bits.reshape(planes.shape))))
            return float((logits.argmax(1) == labels).float().mean())

        coin_generator = torch.Generator().manual_seed(args.seed + 77)
        coins = (torch.rand(planes.shape, generator=coin_generator) < 0.5).float()
        record = {"rung": rung, "trained_rung": trained, "budget": budget, "modulation": modulation,
                  "channel": channel, "esno_db": esno,
                  "ebno_db": ebno, "k": link.k, "n": n, "images": len(labels),
                  "bler": float((~out.decoded).float().mean()),
                  "accuracy": accuracy(bits), "clean": accuracy(planes), "erased": accuracy(coins),
                  "seconds": round(time.time() - began, 1)}
        with args.out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(record, flush=True)


if __name__ == "__main__":
    main()
