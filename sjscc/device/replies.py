"""What :class:`~sjscc.device.client.EdgeClient` hands back: the edge's prediction(s) and what the link did.

A fixed request gives one :class:`EdgeAnswer`; a progressive one a :class:`ProgressiveAnswer` with one
:class:`StepAnswer` per step sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from sjscc.device.link import ChannelReport
from sjscc.proto import sjscc_pb2


@dataclass(frozen=True)
class EdgeAnswer:
    """The edge's prediction for one whole payload, the link's report, and the RPC time without the channel."""

    prediction: sjscc_pb2.Prediction
    channel: ChannelReport
    rpc_ms: float


@dataclass(frozen=True)
class StepAnswer:
    """The edge's answer after one step, and what the channel did to that step's bits."""

    step: int
    prediction: sjscc_pb2.StepPrediction
    flipped_bits: int
    erased_bits: int

    @property
    def confidence(self) -> float:
        return float(self.prediction.top[0].prob) if self.prediction.top else 0.0


@dataclass(frozen=True)
class ProgressiveAnswer:
    """A whole progressive exchange: one answer per step sent; ``channel`` sums the steps actually sent."""

    steps: list[StepAnswer]
    channel: ChannelReport
    rpc_ms: float
    threshold: float

    @property
    def prediction(self) -> sjscc_pb2.StepPrediction:
        return self.steps[-1].prediction

    @property
    def confident(self) -> bool:
        return self.steps[-1].confidence >= self.threshold
