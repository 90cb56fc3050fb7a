"""Per-image correctness of every source of the SSCC frontier on the validation split (issue 24).

Sources: CNN-q<n> for n = 1..8: with ``--rungs DIR`` the trained fixed-rate ladder (``DIR/cnn-q<n>`` for n < 8,
``scripts/reproduce-cpu.sh rate-ladder``; n = 8 is the shipped CNN-q8), else the shipped CNN-q8's latent
re-quantised to n bits (a stand-in: same encoder and decoder, ``round(z (2^n - 1)) / (2^n - 1)``); their accuracy
when a failed block is erased (fair-coin or zero fill); the shipped SNN and progressive SNN and CNN-q<n> *uncoded*
over BPSK/QPSK (hard decisions = a BSC with p = Q(sqrt(2 Es/N0)) per bit for BPSK, Q(sqrt(Es/N0)) for Gray QPSK) and
16-QAM (Sionna mapper and demapper, simulated); and "send the picture": WebP of the 32x32 image (or its 16x16
downscale, upscaled at the edge) at a ladder of qualities, classified by the whole backbone (head + tail of
bundles/baseline-cnn-q8, no codec).
The validation split is cut into two seeded halves: ``design`` (configurations are picked on it) and ``report``.

    nice -n 10 python scripts/sscc/sources.py --data-root ../shared/data --out docs/results/sscc/sources.json
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sionna.phy.mapping import Demapper, Mapper
from sionna.phy.utils import complex_normal

from sjscc.common.bundle import load_bundle
from sjscc.common.codecs.cnn import from_bit_planes, to_bit_planes
from sjscc.training.data import Normalize, load_split

WEBP_QUALITIES = {32: (0, 30, 90), 16: (0, 90)}
RIFF_HEADER = 20  # "RIFF" size "WEBP" "VP8 " size: rebuilt at the edge from the payload length, never sent
BPSK_GRID = [-30.0, -20.0, -15.0, -10.0] + [float(x) for x in range(-7, 11)]  # Es/N0 dB per channel use;
# the deep points are for the Rayleigh average (a deep fade sends the link to p ~ 0.5)
QAM_GRID = [-20.0, -10.0, -4.0] + [float(x) for x in range(0, 21, 2)]
QAM_SOURCES = ("cnn-q8", "snn", "progressive-t8")  # the 512-bit sources that 16-QAM fits in 128 channel uses


def q_function(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def halves(n: int, seed: int = 24) -> np.ndarray:
    """0 = design half, 1 = report half: a seeded random half of the images each."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    side = np.zeros(n, dtype=np.int8)
    side[order[n // 2:]] = 1
    return side


def per_half(correct: np.ndarray, side: np.ndarray) -> list[int]:
    return [int(correct[side == h].sum()) for h in (0, 1)]


class Model:
    """A bundle's head, codec and tail on cached features, with the few entry points the sweep needs."""

    def __init__(self, path: str, images: torch.Tensor, shared: Model | None = None) -> None:
        bundle = load_bundle(path)
        self.model = bundle.build()
        spec = bundle.spec
        self.normalize = Normalize(tuple(spec.mean), tuple(spec.std))
        if shared is not None and _same_head(self.model, shared.model):  # the shipped bundles share one head
            self.features = shared.features
            return
        with torch.no_grad():
            self.features = torch.cat([self.model.head(self.normalize(images[i:i + 500]))
                                       for i in range(0, len(images), 500)])

    @torch.no_grad()
    def classify_features(self, features: torch.Tensor) -> np.ndarray:
        return torch.cat([self.model.tail(features[i:i + 500]).argmax(1) for i in range(0, len(features), 500)]).numpy()

    @torch.no_grad()
    def classify_images(self, images: torch.Tensor) -> np.ndarray:
        """The whole model at the edge on a received picture: head, the codec without a channel, tail.

        The codec stays in: the shipped tails were fine-tuned on decoded features, and head + tail alone score
        far lower (``backbone_no_codec`` in the output)."""
        return np.concatenate([self.model(self.normalize(images[i:i + 500]))[0].argmax(1).numpy()
                               for i in range(0, len(images), 500)])

    @torch.no_grad()
    def bits(self) -> torch.Tensor:
        features = self.features
        return torch.cat([self.model.codec.encoder(features[i:i + 500]) for i in range(0, len(features), 500)])

    @torch.no_grad()
    def decode(self, bits: torch.Tensor) -> np.ndarray:
        return torch.cat([self.model.tail(self.model.codec.decoder(bits[i:i + 500])).argmax(1)
                          for i in range(0, len(bits), 500)]).numpy()


def _same_head(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    mine, theirs = a.head.state_dict(), b.head.state_dict()
    return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def bsc(bits: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    flips = torch.rand(bits.shape, generator=generator) < p
    return torch.where(flips, 1 - bits, bits)


_QAM16 = (Mapper("qam", 4), Demapper("app", "qam", 4, hard_out=True))


def qam16_hard(bits: torch.Tensor, esno_db: float, generator: torch.Generator) -> torch.Tensor:
    """Gray 16-QAM, AWGN at ``esno_db`` per symbol, hard decisions; bits grouped by 4 in payload order."""
    flat = bits.reshape(bits.shape[0], -1).float()
    symbols = _QAM16[0](flat)
    no = 10 ** (-esno_db / 10)
    received = _QAM16[1](symbols + complex_normal(list(symbols.shape), var=no, device="cpu", generator=generator), no)
    return received.reshape(bits.shape)


def uncoded(name: str, decode, bits: torch.Tensor, labels: np.ndarray, side: np.ndarray, seed: int) -> list[dict]:
    """Accuracy per half over BPSK (BSC) and 16-QAM hard-decision links at every grid SNR; noise keyed by the SNR."""
    rows = []
    for esno in BPSK_GRID:
        generator = torch.Generator().manual_seed(seed * 100_003 + round(esno * 100) + 10_000)
        p = q_function(math.sqrt(2 * 10 ** (esno / 10)))
        rows.append({"source": name, "modulation": "bpsk", "esno_db": esno, "ber": p,
                     "correct": per_half(decode(bsc(bits, p, generator)) == labels, side)})
    for esno in QAM_GRID if name in QAM_SOURCES else ():
        generator = torch.Generator().manual_seed(seed * 100_003 + round(esno * 100) + 20_000)
        received = qam16_hard(bits, esno, generator)
        rows.append({"source": name, "modulation": "16qam", "esno_db": esno,
                     "ber": float((received != bits).float().mean()),
                     "correct": per_half(decode(received) == labels, side)})
    return rows


def webp_payload(array: np.ndarray, quality: int, side: int) -> bytes:
    image = Image.fromarray(array)
    if side != array.shape[0]:
        image = image.resize((side, side), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality)
    data = buffer.getvalue()
    if data[12:16] != b"VP8 ":
        raise ValueError("expected a lossy WebP (VP8) stream")
    return data[RIFF_HEADER:]


def webp_decode(payload: bytes, size: int = 32) -> np.ndarray:
    """Rebuild the RIFF container from the payload length, decode, upscale to the model's input size."""
    chunk = b"VP8 " + len(payload).to_bytes(4, "little") + payload + (b"\0" if len(payload) % 2 else b"")
    riff = b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk
    image = Image.open(io.BytesIO(riff)).convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image)


def pictures(model: Model, val_images: torch.Tensor, labels: np.ndarray) -> list[dict]:
    """Per image and (side, quality): payload bits and whether the whole backbone gets the decoded picture right."""
    arrays = val_images.permute(0, 2, 3, 1).numpy()
    rows = []
    for side, qualities in WEBP_QUALITIES.items():
        for quality in qualities:
            payloads = [webp_payload(a, quality, side) for a in arrays]
            decoded = torch.from_numpy(np.stack([webp_decode(p) for p in payloads])).permute(0, 3, 1, 2).contiguous()
            correct = model.classify_images(decoded) == labels
            rows.append({"source": f"webp{side}-q{quality}", "side": side, "quality": quality,
                         "bits": [8 * len(p) for p in payloads], "correct": correct.astype(int).tolist()})
            print(rows[-1]["source"], np.mean(rows[-1]["bits"]), correct.mean(), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--cnn", default="bundles/baseline-cnn-q8")
    parser.add_argument("--snn", default="bundles/default")
    parser.add_argument("--progressive", default="bundles/progressive")
    parser.add_argument("--rungs", help="folder of the trained CNN-q1..q7 bundles (cnn-q<n>/); default: re-quantise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--picture-images", type=int, default=1000, help="0: no pictures")
    parser.add_argument("--prefixes", type=lambda t: [int(v) for v in t.split(",")], default=[8],
                        help="progressive prefixes (time steps) to sweep")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.time()
    val = load_split(args.data_root, "cifar10", "val")
    images = val.images[: args.limit] if args.limit else val.images
    labels = (val.labels[: args.limit] if args.limit else val.labels).numpy()
    side = halves(len(labels))
    out: dict = {"split": "val", "n_images": len(labels), "half_sizes": [int((side == h).sum()) for h in (0, 1)],
                 "halves_seed": 24, "sources": {}, "uncoded": [], "pictures": []}
    cnn = Model(args.cnn, images)
    out["backbone_no_codec"] = per_half(cnn.classify_features(cnn.features) == labels, side)
    gray = torch.full_like(images[:1], 128)
    out["backbone_gray_label"] = int(cnn.classify_images(gray)[0])
    with torch.no_grad():
        layers = cnn.model.codec.encoder.layers
        latent = torch.cat([layers(cnn.features[i:i + 500]) for i in range(0, len(labels), 500)])
    decoder, tail = cnn.model.codec.decoder, cnn.model.tail
    out["rungs"] = f"trained: {args.rungs}" if args.rungs else "q8 latent re-quantised"
    for n in range(1, 9):
        if args.rungs and n < 8:  # a trained rung: its own encoder, quantiser and decoder
            rung = Model(str(Path(args.rungs) / f"cnn-q{n}"), images, shared=cnn)
            planes, decode = rung.bits(), rung.decode
        else:
            planes = to_bit_planes(latent, n)

            def decode(bits: torch.Tensor) -> np.ndarray:
                with torch.no_grad():
                    return torch.cat([tail(decoder.layers(from_bit_planes(bits[i:i + 500]))).argmax(1)
                                      for i in range(0, len(bits), 500)]).numpy()

        coin = torch.Generator().manual_seed(args.seed + 77)
        out["sources"][f"cnn-q{n}"] = {
            "bits": 64 * n, "clean": per_half(decode(planes) == labels, side),
            "erase_random": per_half(decode((torch.rand(planes.shape, generator=coin) < 0.5).float()) == labels, side),
            "erase_zero": per_half(decode(torch.zeros_like(planes)) == labels, side),
        }
        print(f"cnn-q{n}", out["sources"][f"cnn-q{n}"], round(time.time() - began), flush=True)
        if n in (2, 4, 8):
            out["uncoded"] += uncoded(f"cnn-q{n}", decode, planes, labels, side, args.seed)
    for name, path in (("snn", args.snn), ("progressive", args.progressive)):
        model = Model(path, images, shared=cnn)
        bits = model.bits()
        if name == "snn":
            clean = per_half(model.decode(bits) == labels, side)
            out["sources"]["snn"] = {"bits": int(bits[0].numel()), "clean": clean}
            out["uncoded"] += uncoded("snn", model.decode, bits, labels, side, args.seed)
        else:
            for steps in args.prefixes:
                prefix = bits[:, :steps].contiguous()
                out["sources"][f"progressive-t{steps}"] = {"bits": int(prefix[0].numel()),
                                                           "clean": per_half(model.decode(prefix) == labels, side)}
                out["uncoded"] += uncoded(f"progressive-t{steps}", model.decode, prefix, labels, side, args.seed)
        print(name, round(time.time() - began), flush=True)
    if args.picture_images:  # the first images of the split (both halves), to keep the full-backbone runs affordable
        count = args.picture_images
        out["picture_images"] = count
        out["pictures"] = pictures(cnn, images[:count], labels[:count])
    out["labels_half"] = side.tolist()
    out["seconds"] = round(time.time() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out))
    print("done", out["seconds"], "s")


if __name__ == "__main__":
    main()
