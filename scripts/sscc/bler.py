"""Block error rate of each CRC + 5G LDPC code of the SSCC sweep against Eb/N0 over AWGN (issue 24).

A code's BLER at an SNR does not depend on the image, so it is measured once per (k, n, modulation, decisions) and
combined with each source's accuracy (scripts/sscc/frontier.py). Adaptive grid: 1 dB steps with few blocks while
every block fails, then 0.5 dB steps with ``--blocks`` blocks until a point has no block error. Results append to
``--out`` (JSON lines) so an interrupted sweep keeps what it measured.

    nice -n 10 python scripts/sscc/bler.py --decisions soft --out docs/results/sscc/bler-awgn.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sjscc.common.channels.coding import CRC_BITS, MAX_RATE, MIN_RATE, CodedLink, bits_per_symbol

BUDGETS = (128, 256, 512, 1024)
RUNG_BITS = 64  # CNN-q<n> sends n bit planes of a 64-value latent


def codes(crc: str = "CRC16") -> list[tuple[int, int, str]]:
    """(k, n, modulation) of every rung x budget x modulation whose rate-matched code is valid.

    QPSK with Gray mapping is two BPSKs: at equal Eb/N0 per information bit its BLER equals BPSK's for the same
    (k, n), so QPSK needs no curve of its own (checked at a few points by ``--check-qpsk``).
    """
    found = set()
    for budget in BUDGETS:
        for modulation in ("bpsk", "qpsk", "16qam"):
            n = budget * bits_per_symbol(modulation)
            for rung in range(1, 9):
                k = RUNG_BITS * rung
                if MIN_RATE <= (k + CRC_BITS[crc]) / n <= MAX_RATE:
                    found.add((k, n, "16qam" if modulation == "16qam" else "bpsk"))
    return sorted(found, key=lambda c: (c[1], c[2] != "bpsk", c[0]))


def measure(link: CodedLink, snr_db: float, blocks: int, seed: int, batch: int = 64) -> int:
    """Block errors (CRC failures) among ``blocks`` random blocks at ``snr_db``; noise seeded by the SNR itself."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + round(snr_db * 100) + 7919 * link.n + link.k)
    errors = 0
    for start in range(0, blocks, batch):
        size = min(batch, blocks - start)
        bits = (torch.rand(size, link.k, generator=generator) < 0.5).float()
        errors += int((~link(bits, snr_db, generator).decoded).sum())
    return errors


def sweep(link: CodedLink, start_db: float, blocks: int, coarse_blocks: int, seed: int) -> list[dict]:
    rows, snr = [], start_db
    while True:  # coarse: walk up while every block fails
        errors = measure(link, snr, coarse_blocks, seed)
        rows.append({"snr_db": snr, "blocks": coarse_blocks, "errors": errors})
        if errors < coarse_blocks:
            break
        snr += 1.0
    snr -= 0.5
    while True:
        errors = measure(link, snr, blocks, seed)
        rows.append({"snr_db": snr, "blocks": blocks, "errors": errors})
        if errors == 0 or snr > 40:
            break
        snr += 0.5
    return sorted(rows, key=lambda r: r["snr_db"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", default="soft", choices=("hard", "soft"))
    parser.add_argument("--modulations", default="bpsk,16qam")
    parser.add_argument("--max-n", type=int, default=4096)
    parser.add_argument("--blocks", type=int, default=96)
    parser.add_argument("--coarse-blocks", type=int, default=24)
    parser.add_argument("--extra", default="", help="more codes as k:n:modulation,...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    done = set()
    if args.out.exists():
        rows = map(json.loads, args.out.read_text().splitlines())
        done = {(r["k"], r["n"], r["modulation"], r["decisions"]) for r in rows}
    extra = [tuple(int(v) if v.isdigit() else v for v in c.split(":")) for c in args.extra.split(",") if c]
    for k, n, modulation in codes() + extra:
        wanted = (k, n, modulation) in extra or (modulation in args.modulations.split(",") and n <= args.max_n)
        if not wanted or (k, n, modulation, args.decisions) in done:
            continue
        link = CodedLink(k, n, modulation, "awgn", args.decisions)
        start = -2.0 if modulation == "bpsk" else 0.0
        began = time.time()
        rows = sweep(link, start, args.blocks, args.coarse_blocks, args.seed)
        record = {"k": k, "n": n, "modulation": modulation, "decisions": args.decisions, "channel": "awgn",
                  "rate": link.rate, "crc": "CRC16", "num_iter": 20, "seconds": round(time.time() - began, 1),
                  "points": rows}
        with args.out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(k, n, modulation, args.decisions, record["seconds"], "s", flush=True)


if __name__ == "__main__":
    main()
