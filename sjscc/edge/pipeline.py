"""The edge's half of the road, without gRPC: bits -> reconstructor -> converter -> tail -> top-k classes.

Every request is checked before it can join a batch, so one malformed request never fails its neighbours:
:class:`RequestError` is a request that cannot be read as sent (the server answers INVALID_ARGUMENT) and
:class:`ModelMismatchError` a well-formed request made for another model (FAILED_PRECONDITION).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sjscc.common import bitstream
from sjscc.common.bundle import Bundle, BundleHalf
from sjscc.common.channels.radio import SOFT_BITS_RANGE, levels_to_probability, unpack_levels
from sjscc.common.devices import select_device

DEFAULT_TOP_K = 5


class RequestError(ValueError):
    """A request whose header or payload cannot be decoded (wrong length, shape, padding)."""


class ModelMismatchError(ValueError):
    """A request encoded by another model than the one this edge serves."""


@dataclass(frozen=True)
class EncodedRequest:
    """One image's bits and the control header that travels with them (mirrors ``sjscc.v1.EncodedFeature``)."""

    payload: bytes
    timesteps: int
    latent_shape: tuple[int, ...]
    codec: str
    model_id: str
    request_id: str = ""
    erasure_mask: bytes | None = None
    top_k: int = 0
    soft_bits: int = 0
    """0: ``payload`` is bits; k: k-bit LLR levels of a soft-decision radio link (decoded to P(bit = 1))."""
    coded_bits: int = 0
    """0: the payload is source bits; n: the n coded bits (or their LLR levels) of the bundle's LDPC block."""
    hard_llr: float = 0.0
    """Hard decisions on a coded block: the reliability the receiver gives each decided bit."""
    on_failure: str = ""
    """Policy for a block whose CRC fails (``erase`` | ``misclassify``); empty: the bundle's."""


@dataclass(frozen=True)
class DecodedRequest:
    """A checked request: its bits as a ``[T, c2, h2, w2]`` tensor, ready to be batched."""

    request_id: str
    bits: torch.Tensor
    top_k: int
    decode_ms: float
    decoded: bool | None = None
    """Coded requests: whether the block passed its CRC (None for an uncoded request)."""
    on_failure: str = ""
    """Coded requests: the policy applied; ``misclassify`` on a failed block withholds the classes."""
    llr: torch.Tensor | None = None
    """Coded requests before BP: the block's LLRs ``[n]`` (:meth:`EdgePipeline.decode_blocks` replaces them by
    the decoded bits)."""


@dataclass(frozen=True)
class ClassScore:
    label: str
    prob: float
    class_index: int


@dataclass(frozen=True)
class EdgePrediction:
    """Top-k classes for one request; ``edge_compute_ms`` is its own decode plus its batch's forward pass."""

    request_id: str
    top: list[ClassScore]
    edge_compute_ms: float
    batch_size: int
    decoded: bool | None = None
    on_failure: str = ""


class EdgePipeline(BundleHalf):
    """The edge half of one bundle: the codec's decoder (reconstructor + converter) and the backbone tail.

    ``erasure_seed`` seeds the fair coins that replace erased bits when a request carries an erasure mask
    (a receiver that knows its erasures reads them as random bits, as the papers' BEC does).
    """

    def __init__(self, bundle: Bundle, device: str = "auto", erasure_seed: int | None = None,
                 default_top_k: int = DEFAULT_TOP_K) -> None:
        super().__init__(bundle)
        self.device = select_device(device)
        model = bundle.build(halves=("edge",), device=self.device)
        self.decoder = model.codec.decoder
        self.tail = model.tail
        self.default_top_k = default_top_k
        self._erasure_coins = torch.Generator()
        if erasure_seed is None:
            self._erasure_coins.seed()
        else:
            self._erasure_coins.manual_seed(erasure_seed)
        self.code, self.on_failure, self.fill = None, "", ""
        if bundle.manifest.get("channel_code") is not None:
            self._load_code(bundle)

    def _load_code(self, bundle: Bundle) -> None:
        """The bundle's channel code (separate coding): the edge runs its BP decoder and CRC, then the policy."""
        from sjscc.common.channels.coding import failure_policy, link_for

        self.code = link_for(bundle.manifest)
        self.on_failure, self.fill = failure_policy(bundle.manifest)
        if self.code.k != self.payload_bits:
            raise ValueError(f"channel_code k = {self.code.k} but the codec sends {self.payload_bits} bits per image")

    def warmup(self) -> None:
        """One forward pass on zeros, so the first real request does not pay for lazy initialisation."""
        self.logits(torch.zeros(1, *self.payload_shape))

    def check_header(self, request: EncodedRequest, compact: bool = True) -> None:
        """The header against the served model; ``compact`` lets codec and shape be left out (the model id is a
        content hash over both), as compact whole-payload requests do. Raises, naming the field."""
        if not request.model_id:
            raise RequestError("model_id is required: the edge refuses bits it cannot attribute to a model")
        if request.model_id != self.model_id:
            raise ModelMismatchError(
                f"request was encoded for model {request.model_id!r} but this edge serves {self.model_id!r}"
            )
        if (request.codec or not compact) and request.codec != self.codec:
            raise ModelMismatchError(f"request uses codec {request.codec!r} but this edge serves {self.codec!r}")
        shape = (int(request.timesteps), *(int(d) for d in request.latent_shape))
        if not (compact and shape == (0,)) and shape != self.payload_shape:
            raise RequestError(
                f"header says timesteps={request.timesteps}, latent_shape={list(request.latent_shape)} but model "
                f"{self.model_id} expects timesteps={self.timesteps}, latent_shape={list(self.latent_shape)}"
            )

    def unpack(self, request: EncodedRequest, shape: tuple[int, ...], what: str = "") -> torch.Tensor:
        """The request's payload as bits of ``shape``, erased bits (when it carries a mask) replaced by fair coins;
        ``what`` prefixes the error (e.g. ``"step 3 "``). A soft-decision payload gives ``P(bit = 1)`` instead."""
        if request.soft_bits:
            return self._soft_input(request, shape, what)
        try:
            bits = bitstream.unpack(request.payload, shape)
        except bitstream.PayloadError as error:
            raise RequestError(f"{what}payload: {error}") from None
        if request.erasure_mask is None:
            return bits
        try:
            erased = bitstream.unpack(request.erasure_mask, shape).bool()
        except bitstream.PayloadError as error:
            raise RequestError(f"{what}erasure_mask: {error}") from None
        coins = (torch.rand(bits.shape, generator=self._erasure_coins) < 0.5).to(bits.dtype)
        return torch.where(erased, coins, bits)

    def _soft_input(self, request: EncodedRequest, shape: tuple[int, ...], what: str) -> torch.Tensor:
        """k-bit LLR levels -> ``P(bit = 1)`` of ``shape``: what the decoder reads for soft decisions
        (:attr:`sjscc.common.codecs.Codec.received_input`)."""
        if request.erasure_mask is not None:
            raise RequestError("a soft-decision payload carries no erasure mask")
        levels = self._soft_levels(request, math.prod(shape), what)
        return levels_to_probability(torch.from_numpy(levels.astype("int64")).view(shape), request.soft_bits)

    @staticmethod
    def _soft_levels(request: EncodedRequest, count: int, what: str = "") -> np.ndarray:
        """The request's ``count`` k-bit LLR levels (numpy uint8); a wrong size or k is a :class:`RequestError`."""
        low, high = SOFT_BITS_RANGE
        if not low <= request.soft_bits <= high:
            raise RequestError(f"soft_bits must be 0 (bits) or {low}..{high} (LLR levels), got {request.soft_bits}")
        try:
            return unpack_levels(request.payload, count, request.soft_bits)
        except ValueError as error:
            raise RequestError(f"{what}payload: {error}") from None

    def top_k(self, requested: int) -> int:
        """The number of classes to answer with: the request's, else the edge's default, at most all classes."""
        return min(requested or self.default_top_k, len(self.classes))

    def decode(self, request: EncodedRequest) -> DecodedRequest:
        """Check the header against the model and unpack the payload; raises before any compute is spent."""
        start = time.perf_counter()
        self.check_header(request)
        if request.coded_bits:
            return self._decode_block(request, start)
        bits = self.unpack(request, self.payload_shape)
        return DecodedRequest(request.request_id, bits, self.top_k(request.top_k), (time.perf_counter() - start) * 1e3)

    def block_llrs(self, request: EncodedRequest) -> torch.Tensor:
        """The coded block's LLRs ``[1, n]`` (Sionna's sign, ln P(1)/P(0)) from its hard bits or soft levels."""
        from sjscc.common.channels.radio import dequantize_llr

        if self.code is None:
            raise ModelMismatchError(f"request carries a coded block but model {self.model_id} names no channel code")
        if request.coded_bits != self.code.n:
            raise RequestError(f"coded_bits={request.coded_bits} but this bundle's code sends {self.code.n}")
        if request.erasure_mask is not None:
            raise RequestError("a coded block carries no erasure mask")
        if request.soft_bits:
            levels = self._soft_levels(request, self.code.n)
            return dequantize_llr(torch.from_numpy(levels.astype("int64")), request.soft_bits).view(1, -1)
        if not (math.isfinite(request.hard_llr) and request.hard_llr >= 0):
            raise RequestError(f"hard_llr must be a finite reliability >= 0, got {request.hard_llr}")
        try:
            bits = bitstream.unpack(request.payload, (1, self.code.n))
        except bitstream.PayloadError as error:
            raise RequestError(f"coded payload: {error}") from None
        return (2.0 * bits.float() - 1.0) * request.hard_llr

    def _decode_block(self, request: EncodedRequest, start: float) -> DecodedRequest:
        """Check a coded request and read its block's LLRs; BP waits for the batch (:meth:`decode_blocks`)."""
        from sjscc.common.channels.coding import FAILURE_POLICIES

        on_failure = request.on_failure or self.on_failure
        if on_failure not in FAILURE_POLICIES:
            raise RequestError(f"on_failure must be one of {FAILURE_POLICIES}, got {request.on_failure!r}")
        llr = self.block_llrs(request)[0]
        placeholder = torch.zeros(self.payload_shape)
        return DecodedRequest(request.request_id, placeholder, self.top_k(request.top_k),
                              (time.perf_counter() - start) * 1e3, None, on_failure, llr)

    def decode_blocks(self, batch: Sequence[DecodedRequest]) -> list[DecodedRequest]:
        """BP + CRC for the batch's coded blocks in one call (in the batcher's thread, off the event loop), then
        each block's failure policy (F4's :func:`recover`): ``erase`` classifies fill bits in place of a failed
        block, ``misclassify`` withholds the classes. Uncoded requests pass unchanged."""
        from sjscc.common.channels.coding import recover

        coded = [index for index, item in enumerate(batch) if item.llr is not None]
        result = list(batch)
        if not coded:
            return result
        with torch.inference_mode():
            bits, ok = self.code.decode(torch.stack([batch[i].llr for i in coded]))
        for row, index in enumerate(coded):
            item = batch[index]
            filled, _ = recover(bits[row: row + 1], ok[row: row + 1], item.on_failure, self.fill,
                                generator=self._erasure_coins)
            result[index] = dataclasses.replace(item, bits=filled.view(self.payload_shape).float(),
                                                decoded=bool(ok[row]), llr=None)
        return result

    @torch.inference_mode()
    def logits(self, bits: torch.Tensor) -> torch.Tensor:
        """``tail(converter(reconstructor(bits)))`` for a batch ``[B, T, c2, h2, w2]``; returned on the CPU."""
        return self.tail(self.decoder(bits.to(self.device))).float().cpu()

    def predict(self, batch: Sequence[DecodedRequest]) -> list[EdgePrediction]:
        """BP for the batch's coded blocks, then one forward pass for the whole batch; each request gets its own
        top-k."""
        if not batch:
            return []
        start = time.perf_counter()
        batch = self.decode_blocks(batch)
        probs = torch.softmax(self.logits(torch.stack([item.bits for item in batch])), dim=1)
        forward_ms = (time.perf_counter() - start) * 1e3
        predictions = []
        for item, row in zip(batch, probs, strict=True):
            values, indices = row.topk(item.top_k)
            top = [ClassScore(self.classes[i], float(v), int(i)) for v, i in zip(values, indices.tolist(), strict=True)]
            if item.decoded is False and item.on_failure == "misclassify":
                top = []  # a failed block counted wrong: the edge names no class
            predictions.append(EdgePrediction(item.request_id, top, item.decode_ms + forward_ms, len(batch),
                                              item.decoded, item.on_failure))
        return predictions

    def infer(self, request: EncodedRequest) -> EdgePrediction:
        """Decode and predict one request on its own (the reference the batcher must match)."""
        return self.predict([self.decode(request)])[0]


# --- progressive transmission (codec snn-progressive) --------------------------------------------------


@dataclass(frozen=True)
class EncodedStepRequest(EncodedRequest):
    """One time step of one image's bits (``[c2, h2, w2]``) and its header (mirrors ``sjscc.v1.EncodedStep``):
    the whole-payload header plus the step's number, 1-based."""

    step: int = 1


@dataclass
class ProgressiveSession:
    """The steps one stream has delivered so far (``[c2, h2, w2]`` each, erasures already filled)."""

    request_id: str
    steps: list[torch.Tensor]


def decode_step(pipeline: EdgePipeline, session: ProgressiveSession | None,
                request: EncodedStepRequest) -> tuple[ProgressiveSession, DecodedRequest]:
    """Check one step against the model and the stream, append it, and return the prefix ``[t, c2, h2, w2]``.

    The prefix is decoded from step 1 again at every step (:class:`~sjscc.common.codecs.progressive.
    ProgressiveDecoder` reads a prefix, not a neuron state), which keeps requests independent and batchable;
    for T = 8 the reconstructor is a small part of the edge's work next to the tail, which runs once per step
    either way.
    """
    start = time.perf_counter()
    if not pipeline.progressive:
        raise ModelMismatchError(f"this edge serves model {pipeline.model_id} with the fixed-T codec "
                                 f"{pipeline.codec!r}: it cannot decode a prefix; use Infer with all "
                                 f"{pipeline.timesteps} steps")
    pipeline.check_header(request, compact=False)
    session = session or ProgressiveSession(request.request_id, [])
    expected = len(session.steps) + 1
    if expected > pipeline.timesteps:
        raise RequestError(f"step {request.step} after the last one: the model has {pipeline.timesteps} steps")
    if request.step != expected:
        raise RequestError(f"step {request.step} out of order: this stream expects step {expected}")
    if request.request_id != session.request_id:
        raise RequestError(f"request_id changed within a stream: {session.request_id!r} then {request.request_id!r}")
    session.steps.append(pipeline.unpack(request, pipeline.latent_shape, f"step {request.step} "))
    decoded = DecodedRequest(request.request_id, torch.stack(session.steps), pipeline.top_k(request.top_k),
                             (time.perf_counter() - start) * 1e3)
    return session, decoded


def predict_prefixes(pipeline: EdgePipeline, batch: Sequence[DecodedRequest]) -> list[EdgePrediction]:
    """The batch function of the progressive stream: one forward pass per prefix length present in the batch.

    Prefixes of different lengths cannot share a tensor (nor a converter), so the batch is grouped by t;
    each group is exactly :meth:`EdgePipeline.predict` on equal-length prefixes.
    """
    results: dict[int, EdgePrediction] = {}
    by_length: dict[int, list[int]] = {}
    for index, item in enumerate(batch):
        by_length.setdefault(int(item.bits.shape[0]), []).append(index)
    for indices in by_length.values():
        for index, prediction in zip(indices, pipeline.predict([batch[i] for i in indices]), strict=True):
            results[index] = dataclasses.replace(prediction, batch_size=len(batch))
    return [results[i] for i in range(len(batch))]
