#!/usr/bin/env python3
"""Load and soak generator for a running device: N requests (or D seconds) at concurrency C, as JSON.

    .venv/bin/python scripts/load.py --url http://127.0.0.1:8000 --requests 2000 --concurrency 32 --pid DEVICE_PID
    .venv/bin/python scripts/load.py --url http://127.0.0.1:8000 --duration 1800 --concurrency 32 --pid DEVICE_PID

A thin caller of :func:`sjscc.tools.loadgen.soak_main` (the one load generator, shared with ``sjscc bench``):
small seeded PNG photos to ``/v1/classify``; status counts, requests lost (no HTTP answer at all), latency
percentiles, and, with ``--pid``, the device's resident memory after the warm-up and at the end (sampled every
``--sample-every`` seconds in a soak). Exit status 1 when any answer was a 5xx or lost, or memory grew by more
than ``--max-rss-growth``.
"""

from __future__ import annotations

import sys

from sjscc.tools.loadgen import soak_main

if __name__ == "__main__":
    sys.exit(soak_main())
