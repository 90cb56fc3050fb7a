"""The device API's answers as pydantic models, so the OpenAPI document gives a generated client real types.

``extra="allow"``: a field added to an answer (e.g. by a later feature) passes through before the model lists it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorAnswer(BaseModel):
    """Every 4xx/5xx: what went wrong, in words."""

    detail: str = Field(description="what was wrong with the request, or why it could not be served")


class ClassScore(_Answer):
    label: str
    prob: float = Field(ge=0, le=1)
    class_index: int = Field(ge=0)


class BitsReport(_Answer):
    payload_bits: int = Field(ge=1, description="T*c2*h2*w2: the bits the channel acted on")
    timesteps: int = Field(ge=1)
    latent_shape: list[int]
    wire_bytes: int = Field(ge=0, description="the serialized gRPC request as sent")
    firing_rate: float = Field(ge=0, le=1)


class ChannelAnswer(_Answer):
    kind: str
    p: float = Field(ge=0, le=1)
    seed: int | None = None
    flipped_bits: int = Field(ge=0)
    erased_bits: int = Field(ge=0)


class LatencyMs(_Answer):
    device_compute: float
    pack: float
    channel: float
    rpc: float
    edge_compute: float
    total: float


class EdgeReport(_Answer):
    batch_size: int
    queue_ms: float
    compute_device: str


class ClassifyAnswer(_Answer):
    request_id: str
    label: str
    class_index: int = Field(ge=0)
    top: list[ClassScore]
    model_id: str
    bits: BitsReport
    channel: ChannelAnswer
    latency_ms: LatencyMs
    edge: EdgeReport


class EdgeHealth(_Answer):
    address: str
    serving: bool
    model_verified: bool


class HealthAnswer(_Answer):
    status: str = Field(description="ok when the edge serves, degraded otherwise (the device itself is alive)")
    model_id: str
    edge: EdgeHealth


class ReadyAnswer(_Answer):
    status: str
    model_id: str
    edge: EdgeHealth
