"""Every ``sjscc device`` setting, once: its flag, its ``SJSCC_*`` variable, its default, converter and help.

The parser (:func:`add_arguments`), the command (:class:`DeviceSettings`), the container files and the docs all
read this table; ``tests/device/test_settings_table.py`` checks that the parser's flags are exactly its rows.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sjscc.common.channels.settings import CHANNEL_NAMES, ERASURE_POLICIES, MODULATIONS
from sjscc.common.cli_support import (
    BURST,
    DEFAULT_BUNDLE,
    EDGE_ADDRESS,
    INTERLEAVE,
    NON_NEGATIVE_INT,
    PORT,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    SEED,
    TORCH_THREADS_HELP,
    Setting,
    add_settings,
    converter,
    named_choice,
    setting_values,
)
from sjscc.common.params import parse_decisions, parse_link_coherence, parse_modulation, parse_snr_db, parse_soft_bits

RPC_TIMEOUT_S = 5.0
MAX_IMAGE_BYTES = 10 * 1024 * 1024
# What runs head + encoder (sjscc/device/runtime.py); named here so the parser does not load torch or onnxruntime.
RUNTIMES = ("torch", "onnx")

SETTINGS: tuple[Setting, ...] = (
    Setting("--bundle", "SJSCC_BUNDLE", DEFAULT_BUNDLE, "model bundle folder"),
    Setting("--edge", "SJSCC_EDGE", "127.0.0.1:50051",
            "edge address H:P; a list H1:P1,H2:P2 or a DNS name with several addresses is balanced by gRPC "
            "round_robin", EDGE_ADDRESS),
    Setting("--host", "SJSCC_DEVICE_HOST", "127.0.0.1", "address to bind"),
    Setting("--port", "SJSCC_DEVICE_PORT", 8000, "port to bind", PORT),
    Setting("--channel", "SJSCC_CHANNEL", "none", "channel applied to the payload bits (ge: Gilbert-Elliott bursts)",
            named_choice("channel", CHANNEL_NAMES), "{" + ",".join(CHANNEL_NAMES) + "}"),
    Setting("--p", "SJSCC_P", 0.0, "bit error (BSC), erasure (BEC) probability or mean bit error rate (GE)",
            PROBABILITY),
    Setting("--burst", "SJSCC_BURST", "8", "ge: mean burst length in bits (runs of consecutive bit errors), >= 1",
            BURST, "L"),
    Setting("--interleave", "SJSCC_INTERLEAVE", None,
            "seed of the bit interleaver around the channel (default: none)", INTERLEAVE, "SEED"),
    Setting("--snr-db", "SJSCC_SNR_DB", 6.0, "awgn/rayleigh: Eb/N0 in dB per information bit, in [-30, 60]",
            converter("Eb/N0", parse_snr_db), "DB"),
    Setting("--modulation", "SJSCC_MODULATION", "bpsk", "awgn/rayleigh: Gray-mapped modulation (Sionna)",
            converter("modulation", parse_modulation), "{" + ",".join(MODULATIONS) + "}"),
    Setting("--coherence", "SJSCC_COHERENCE", "packet",
            "rayleigh: one fade per payload (packet), per time step (step) or per N symbols; perfect CSI at the "
            "receiver", converter("coherence", parse_link_coherence), "packet|step|N"),
    Setting("--decisions", "SJSCC_DECISIONS", "hard",
            "awgn/rayleigh: hard bits to the edge, or soft: k-bit quantised LLRs (see --soft-bits)",
            converter("decisions", parse_decisions), "{hard,soft}"),
    Setting("--soft-bits", "SJSCC_SOFT_BITS", 4, "soft decisions: bits per quantised LLR on the wire (2..8)",
            converter("soft bits", parse_soft_bits), "K"),
    Setting("--seed", "SJSCC_SEED", None, "channel seed, an integer (default: fresh randomness)", SEED),
    Setting("--erasure-policy", "SJSCC_ERASURE_POLICY", "random",
            "what the edge reads for a BEC-erased bit: a fair coin (the papers'), 0, or a coin drawn by the edge "
            "from an erasure mask sent beside the payload",
            named_choice("erasure policy", ERASURE_POLICIES), "{" + ",".join(ERASURE_POLICIES) + "}"),
    Setting("--compute-device", "SJSCC_COMPUTE_DEVICE", "cpu", "torch device for head and encoder"),
    Setting("--max-image-bytes", "SJSCC_MAX_IMAGE_BYTES", MAX_IMAGE_BYTES,
            "largest upload accepted, in bytes (however the body is sent)", POSITIVE_INT),
    Setting("--max-image-pixels", "SJSCC_MAX_IMAGE_PIXELS", None,
            "largest image accepted, in pixels (width x height); default (128 x the model's input side)^2, at most "
            "4096^2", POSITIVE_INT),
    Setting("--rpc-timeout", "SJSCC_RPC_TIMEOUT", RPC_TIMEOUT_S,
            "time budget of a request, in seconds; what is left of it when the bits leave is the gRPC deadline at "
            "the edge", POSITIVE),
    Setting("--max-in-flight", "SJSCC_MAX_IN_FLIGHT", 32,
            "most classifications in progress; past it the answer is 503 + Retry-After at once", POSITIVE_INT),
    Setting("--api-token", "SJSCC_API_TOKEN", None,
            "require 'Authorization: Bearer TOKEN' on the API (/healthz and /readyz stay open); prefer "
            "SJSCC_API_TOKEN to keep it out of the process list"),
    Setting("--edge-ca", "SJSCC_EDGE_CA", None,
            "PEM CA bundle that signs the edge's certificate; turns TLS to the edge on"),
    Setting("--tls-cert", "SJSCC_TLS_CERT", None,
            "PEM client certificate for mutual TLS with the edge (needs --edge-ca)"),
    Setting("--tls-key", "SJSCC_TLS_KEY", None, "PEM private key of --tls-cert"),
    Setting("--edge-server-name", "SJSCC_EDGE_SERVER_NAME", None,
            "name to check in the edge's certificate when the address does not carry it"),
    Setting("--keepalive", "SJSCC_KEEPALIVE", 10.0,
            "seconds between gRPC keepalive pings to the edge (a dead connection is noticed within twice this)",
            POSITIVE),
    Setting("--max-batch-size", "SJSCC_DEVICE_MAX_BATCH_SIZE", 32,
            "most concurrent requests that share one head + encoder pass (1: no batching)", POSITIVE_INT),
    Setting("--torch-threads", "SJSCC_TORCH_THREADS", 0, TORCH_THREADS_HELP, NON_NEGATIVE_INT),
    Setting("--runtime", "SJSCC_RUNTIME", "torch",
            "what runs head + encoder: torch (the bundle's modules) or onnx (the device half exported to ONNX, in "
            "ONNX Runtime on the CPU: the file the manifest records, else exported at start); same answers. "
            "--torch-threads also sets ONNX Runtime's intra-op threads", named_choice("runtime", RUNTIMES),
            "{" + ",".join(RUNTIMES) + "}"),
)


@dataclass(frozen=True)
class DeviceSettings:
    """The parsed value of each row of :data:`SETTINGS` (strings still raw where the service parses them:
    ``burst``, ``interleave`` and ``seed``)."""

    bundle: str
    edge: str
    host: str
    port: int
    channel: str
    p: float
    burst: object
    interleave: str | None
    snr_db: float
    modulation: str
    coherence: str | int
    decisions: str
    soft_bits: int
    seed: str | None
    erasure_policy: str
    compute_device: str
    max_image_bytes: int
    max_image_pixels: int | None
    rpc_timeout: float
    max_in_flight: int
    api_token: str | None
    edge_ca: str | None
    tls_cert: str | None
    tls_key: str | None
    edge_server_name: str | None
    keepalive: float
    max_batch_size: int
    torch_threads: int
    runtime: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DeviceSettings:
        return cls(**setting_values(args, SETTINGS))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sjscc device`` options, one per row of :data:`SETTINGS`."""
    add_settings(parser, SETTINGS)
