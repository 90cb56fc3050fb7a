"""Prometheus metrics of the device: bits and bytes sent, channel damage, latency per stage, errors.

Each app gets its own registry (no process-global state), exposed as text by ``GET /metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BITS_BUCKETS = tuple(2**k for k in range(6, 21))  # 64 bits .. 1 Mbit per request
COUNT_BUCKETS = (0, 1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)
LATENCY_STAGES = ("device_compute", "pack", "channel", "rpc", "edge_compute", "total")


class DeviceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("sjscc_device_requests", "Classification requests by HTTP status.", ["status"],
                                registry=r)
        self.errors = Counter("sjscc_device_errors", "Failed classification requests by cause.", ["kind"], registry=r)
        self.payload_bits = Counter("sjscc_device_payload_bits", "Payload bits sent to the edge.", registry=r)
        self.wire_bytes = Counter("sjscc_device_wire_bytes", "Serialized gRPC request bytes sent to the edge.",
                                  registry=r)
        self.flipped_bits = Counter("sjscc_device_flipped_bits", "Payload bits the channel delivered wrong.",
                                    ["channel"], registry=r)
        self.erased_bits = Counter("sjscc_device_erased_bits", "Payload bits the channel erased.", ["channel"],
                                   registry=r)
        self.payload_bits_per_request = Histogram("sjscc_device_request_payload_bits", "Payload bits per request.",
                                                  buckets=BITS_BUCKETS, registry=r)
        self.wire_bytes_per_request = Histogram("sjscc_device_request_wire_bytes", "Wire bytes per request.",
                                                buckets=tuple(b // 8 for b in BITS_BUCKETS), registry=r)
        self.flipped_bits_per_request = Histogram("sjscc_device_request_flipped_bits", "Flipped bits per request.",
                                                  buckets=COUNT_BUCKETS, registry=r)
        self.erased_bits_per_request = Histogram("sjscc_device_request_erased_bits", "Erased bits per request.",
                                                 buckets=COUNT_BUCKETS, registry=r)
        self.latency = Histogram("sjscc_device_latency_seconds", "Latency per stage of a classification.", ["stage"],
                                 buckets=LATENCY_BUCKETS_S, registry=r)

    def observe_success(self, channel: str, payload_bits: int, wire_bytes: int, flipped_bits: int, erased_bits: int,
                        latency_ms: dict[str, float]) -> None:
        self.requests.labels(status="200").inc()
        self.payload_bits.inc(payload_bits)
        self.wire_bytes.inc(wire_bytes)
        self.flipped_bits.labels(channel=channel).inc(flipped_bits)
        self.erased_bits.labels(channel=channel).inc(erased_bits)
        self.payload_bits_per_request.observe(payload_bits)
        self.wire_bytes_per_request.observe(wire_bytes)
        self.flipped_bits_per_request.observe(flipped_bits)
        self.erased_bits_per_request.observe(erased_bits)
        for stage, milliseconds in latency_ms.items():
            self.latency.labels(stage=stage).observe(milliseconds / 1e3)

    def observe_error(self, status: int, kind: str) -> None:
        self.requests.labels(status=str(status)).inc()
        self.errors.labels(kind=kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
