"""What runs the device half: PyTorch (the bundle's modules) or ONNX Runtime (the exported graph), one interface.

A runtime maps normalized images ``[B, 3, S, S]`` (float32) to bits ``[B, T, c2, h2, w2]`` (float32 in {0, 1},
on the CPU). :class:`sjscc.device.pipeline.DevicePipeline` builds one with :func:`build_runtime` and never asks
which it has, so the app, the client and the tests work the same on either.

- ``torch``: head + encoder as trained, SpikingJelly neurons; the neurons hold state during a pass, so passes
  take turns under a lock.
- ``onnx``: the graph of :mod:`sjscc.device.export` (BN folded, IF steps unrolled) in an ``InferenceSession``
  on the CPU execution provider. It is the file the bundle's manifest records (``sjscc export-device --record``,
  hash checked) or, when it records none, exported from the bundle's weights at start-up. ``session.run`` is
  thread-safe and stateless, so no lock. Its intra-op threads do not spin between requests, so an idle device
  leaves the cores to whatever shares the machine (an edge, in the demo).
"""

from __future__ import annotations

import threading
from typing import Protocol

import torch

from sjscc.common.bundle import Bundle
from sjscc.common.devices import select_device
from sjscc.device.settings import RUNTIMES

# ORT graph optimisation levels by name: "all" is what serving uses; "off" is the reference the agreement check
# compares against (no fusion, no layout change: the exported graph as written).
OPTIMIZATION_LEVELS = ("off", "basic", "extended", "all")


class DeviceRuntime(Protocol):
    """Head + encoder of one bundle: ``runtime(images)`` -> bits; ``name`` says which runtime it is."""

    name: str

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class TorchRuntime:
    """The bundle's PyTorch modules on ``device`` (CPU or a GPU)."""

    name = "torch"

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        self.device = select_device(device)
        model = bundle.build(halves=("device",), device=self.device)
        self.head = model.head
        self.encoder = model.codec.encoder
        self._lock = threading.Lock()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with self._lock:
            bits = self.encoder(self.head(images.to(self.device)))
        return bits.float().cpu()


class OnnxRuntime:
    """The exported device half in ONNX Runtime (CPU execution provider).

    ``model``: serialized ONNX bytes to run instead of the bundle's recorded export (the agreement check passes
    a fresh export); ``threads``: intra-op threads (0: ONNX Runtime's default, one per physical core);
    ``optimization``: one of :data:`OPTIMIZATION_LEVELS`.
    """

    name = "onnx"

    def __init__(self, bundle: Bundle, device: str = "cpu", threads: int = 0, optimization: str = "all",
                 model: bytes | None = None) -> None:
        import onnxruntime

        from sjscc.device.export import INPUT_NAME, OUTPUT_NAME, check_metadata, onnx_bytes, recorded_onnx

        if select_device(device).type != "cpu":
            raise ValueError(f"--runtime onnx runs on the CPU execution provider; --compute-device {device!r} is "
                             "for --runtime torch")
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0: ONNX Runtime's default), got {threads}")
        if optimization not in OPTIMIZATION_LEVELS:
            raise ValueError(f"unknown graph optimisation {optimization!r}; use one of "
                             f"{', '.join(OPTIMIZATION_LEVELS)}")
        levels = onnxruntime.GraphOptimizationLevel
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = {"off": levels.ORT_DISABLE_ALL, "basic": levels.ORT_ENABLE_BASIC,
                                            "extended": levels.ORT_ENABLE_EXTENDED,
                                            "all": levels.ORT_ENABLE_ALL}[optimization]
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = "the exported device half"
        if model is None:
            model = recorded_onnx(bundle)
            source = str(bundle.path / bundle.manifest["exports"]["onnx"]["file"]) if model is not None else source
        if model is None:
            model = onnx_bytes(bundle)
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        check_metadata(self.session.get_modelmeta().custom_metadata_map, bundle, source)
        self.optimization = optimization
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        (bits,) = self.session.run([self.output_name], {self.input_name: array})
        return torch.from_numpy(bits).float()


def build_runtime(name: str, bundle: Bundle, device: str = "cpu", threads: int = 0) -> DeviceRuntime:
    """The device half of ``bundle`` in runtime ``name`` (``torch`` or ``onnx``)."""
    if name == "torch":
        return TorchRuntime(bundle, device)
    if name == "onnx":
        return OnnxRuntime(bundle, device, threads)
    raise ValueError(f"unknown device runtime {name!r}; use one of {', '.join(RUNTIMES)}")
