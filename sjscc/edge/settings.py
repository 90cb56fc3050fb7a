"""Every ``sjscc edge`` setting, once: its flag, its ``SJSCC_*`` variable, its default, converter and help.

The parser (:func:`add_arguments`), the command (:class:`EdgeSettings`), the container files and the docs all
read this table; ``tests/edge/test_edge_settings_table.py`` checks that the parser's flags are exactly its rows.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sjscc.common.cli_support import (
    DEFAULT_BUNDLE,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    PORT,
    POSITIVE_INT,
    TORCH_THREADS_HELP,
    Setting,
    add_settings,
    setting_values,
)

SETTINGS: tuple[Setting, ...] = (
    Setting("--bundle", "SJSCC_BUNDLE", DEFAULT_BUNDLE, "model bundle folder"),
    Setting("--host", "SJSCC_EDGE_HOST", "127.0.0.1", "address to bind"),
    Setting("--port", "SJSCC_EDGE_PORT", 50051, "port to bind", PORT),
    Setting("--compute-device", "SJSCC_COMPUTE_DEVICE", "auto",
            "torch device for the model: auto (CUDA when available, else CPU), cpu, cuda, cuda:1"),
    Setting("--max-batch-size", "SJSCC_MAX_BATCH_SIZE", 8, "most requests that share one forward pass", POSITIVE_INT),
    Setting("--max-wait-ms", "SJSCC_MAX_WAIT_MS", 2.0,
            "longest a request waits for its batch to fill (only while other requests are arriving)", NON_NEGATIVE),
    Setting("--max-queue", "SJSCC_MAX_QUEUE", 64,
            "most requests waiting for a batch; past it the edge answers RESOURCE_EXHAUSTED at once", POSITIVE_INT),
    Setting("--drain-delay", "SJSCC_DRAIN_DELAY", 0.0,
            "seconds between SIGTERM (health turns NOT_SERVING) and refusing new RPCs", NON_NEGATIVE),
    Setting("--tls-cert", "SJSCC_TLS_CERT", None,
            "PEM certificate (chain) of the edge; with --tls-key turns TLS on"),
    Setting("--tls-key", "SJSCC_TLS_KEY", None, "PEM private key of --tls-cert"),
    Setting("--tls-client-ca", "SJSCC_TLS_CLIENT_CA", None,
            "PEM CA bundle: require every client to present a certificate it signed (mutual TLS)"),
    Setting("--torch-threads", "SJSCC_TORCH_THREADS", 0, TORCH_THREADS_HELP, NON_NEGATIVE_INT),
)


@dataclass(frozen=True)
class EdgeSettings:
    """The parsed value of each row of :data:`SETTINGS`."""

    bundle: str
    host: str
    port: int
    compute_device: str
    max_batch_size: int
    max_wait_ms: float
    max_queue: int
    drain_delay: float
    tls_cert: str | None
    tls_key: str | None
    tls_client_ca: str | None
    torch_threads: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EdgeSettings:
        return cls(**setting_values(args, SETTINGS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sjscc edge`` options, one per row of :data:`SETTINGS`."""
    add_settings(parser, SETTINGS)
