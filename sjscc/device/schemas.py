"""The device API's answers as pydantic models, so the OpenAPI document gives a generated client real types.

``extra="allow"``: a field added to an answer (e.g. by a later feature) passes through before the model lists it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The layout of the packed payload (sjscc.common.bitstream), as the include=bits fields carry it.
BIT_ORDER = "packed [T, c2, h2, w2] row-major, most significant bit first, zero-padded to a byte"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorAnswer(BaseModel):
    """Every 4xx/5xx: what went wrong, in words."""

    detail: str = Field(description="what was wrong with the request, or why it could not be served")


class ClassScore(_Answer):
    label: str
    prob: float = Field(ge=0, le=1)
    class_index: int = Field(ge=0)


class PayloadBits(_Answer):
    payload_bits: int = Field(ge=1, description="T*c2*h2*w2: the bits the channel acted on")
    timesteps: int = Field(ge=1, description="T, spike time steps")
    latent_shape: list[int] = Field(description="[c2, h2, w2]")
    wire_bytes: int = Field(ge=0, description="the serialized gRPC request as sent")
    data_frame_bytes: int | None = Field(None, ge=0, description="wire_bytes plus its gRPC prefix and HTTP/2 DATA "
                                                                 "frame header: the part of the request's TCP cost "
                                                                 "the device can count")
    firing_rate: float = Field(ge=0, le=1, description="fraction of payload bits that are 1")
    sent: str | None = Field(None, description=f"only with include=bits: base64 of the payload as sent ({BIT_ORDER})")
    received: str | None = Field(None, description="only with include=bits: base64 of the payload as the edge "
                                                   "received it; a bit differing from 'sent' was flipped")
    erased: str | None = Field(None, description="only with include=bits: base64 of the erased-bit mask (BEC), "
                                                 "null when no bit was erased")
    bit_order: str | None = Field(None, description="only with include=bits: how the base64 fields are laid out")


class CodeAnswer(_Answer):
    """Separate coding: the channel code the bundle's bits crossed the link in, and what became of the block."""

    kind: str = Field(description="the channel code: ldpc (5G NR, belief propagation at the edge)")
    crc: str = Field(description="the CRC that tells the edge whether the block decoded")
    rate: float = Field(gt=0, le=1, description="code rate (information bits + CRC) / coded bits")
    info_bits: int = Field(ge=1, description="source bits in the block (the codec's payload)")
    coded_bits: int = Field(ge=1, description="coded bits sent over the channel")
    symbols: int = Field(ge=1, description="channel uses of the block at the code's modulation")
    decoded: bool = Field(description="whether the block passed its CRC after BP decoding at the edge")
    on_failure: str = Field(description="what the edge does with a failed block: erase (classify fill bits) or "
                                        "misclassify (no label)")


class ChannelAnswer(_Answer):
    kind: str
    p: float = Field(ge=0, le=1)
    seed: int | None = None
    flipped_bits: int = Field(ge=0)
    erased_bits: int = Field(ge=0)
    burst: float | None = Field(None, description="ge: the mean burst length (null for the other kinds)")
    interleave: int | None = Field(None, description="the bit interleaver's seed, null when none")
    snr_db: float | None = Field(None, description="awgn/rayleigh: Eb/N0 in dB (null for the binary channels); p is "
                                                   "then the link's closed-form hard-decision bit error rate")
    modulation: str | None = Field(None, description="awgn/rayleigh: bpsk, qpsk or 16qam (Gray)")
    coherence: str | int | None = Field(None, description="awgn/rayleigh: packet, step or N symbols per fade")
    decisions: str | None = Field(None, description="awgn/rayleigh: hard (bits to the edge) or soft (quantised LLRs)")
    soft_bits: int | None = Field(None, description="soft decisions: bits per quantised LLR sent to the edge")
    symbols: int | None = Field(None, ge=0, description="awgn/rayleigh: channel uses spent on the payload")
    code: CodeAnswer | None = Field(None, description="bundles with a channel code (separate coding): the code, "
                                                      "its rate and whether the block decoded; null otherwise")


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
    instance: str = Field("", description="the edge replica that served the request (its hostname)")


class ClassifyAnswer(_Answer):
    request_id: str
    label: str | None = Field(description="the class; null only when a channel-coded block failed its CRC and the "
                                          "failure policy is misclassify (channel.code)")
    class_index: int | None = Field(ge=0, description="null exactly when label is")
    top: list[ClassScore]
    model_id: str
    bits: PayloadBits
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
