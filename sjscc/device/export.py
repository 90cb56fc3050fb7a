"""The device half as a portable ONNX model (``sjscc export-device``), for ONNX Runtime on a server or a phone.

What the graph computes, for a *preprocessed* image ``[B, 3, S, S]`` (resized and normalized with the bundle's
mean/std, as :func:`sjscc.device.pipeline.preprocess` does):

- the backbone head, with every Conv-BN pair folded into one convolution (``torch.fx``'s ``fuse``);
- the codec's encoder written with plain tensor operations, so no SpikingJelly (or any custom) operator ends up
  in the graph:

  * SNN: ``I1 = Conv1(F)`` once (F is the same at every step), then T unrolled steps of the soft-reset IF
    neuron of DESIGN.md, ``m += I;  S = [m >= V_th];  m -= S * V_th``; the T spike maps go through ``Conv2`` as
    one batch of ``T * B`` (t-major, as :func:`sjscc.common.codecs.snn._per_step` does) and a second IF;
  * CNN-q<n>: Conv-ReLU, Conv-Sigmoid, ``round(x (2^n - 1))`` and its n bit planes, most significant first,
    computed as ``floor(level / 2^k) mod 2`` (exact on integer levels, no integer shift operator needed);

- output ``bits`` ``[B, T, c2, h2, w2]`` as uint8 in {0, 1}. Packing them into bytes stays outside the graph
  (:mod:`sjscc.common.bitstream`), so the wire format has one implementation.

The batch axis is dynamic. The model's metadata names the bundle's ``model_id``, codec and payload shape, and the
runtime refuses a file whose model id is not the bundle's. Next to ``device.onnx`` the export writes the ORT
format (``device.ort`` + ``device.required_operators.config``, for a reduced ONNX Runtime Mobile build) and
the text of onnxruntime's mobile usability check (``device.mobile_usability.txt``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn
from torch.fx.experimental.optimization import fuse
from torch.nn.utils.fusion import fuse_conv_bn_eval

from sjscc.common.bundle import MANIFEST, Bundle, BundleError
from sjscc.common.codecs import parse_codec_name
from sjscc.common.model import SplitModel

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "bits"
METADATA_PREFIX = "sjscc."
# Where the manifest records an exported device half (outside the model id's fields: the id does not change).
MANIFEST_KEY = "exports"
MOBILE_REPORT_SUFFIX = ".mobile_usability.txt"


class ExportError(ValueError):
    """A bundle whose device half cannot be exported, or an exported file that does not fit its bundle."""


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` (eval mode) with each Conv-BN pair replaced by one convolution with a bias.

    ``W' = W * gamma / sqrt(var + eps)``, ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``: the same function
    in exact arithmetic; in float32 the folded sums round differently, which is what the agreement check measures.
    """
    return fuse(module.eval(), inplace=False)


def _folded_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    return fuse_conv_bn_eval(conv.eval(), norm.eval())


def integrate_and_fire(currents: list[torch.Tensor], v_threshold: float) -> list[torch.Tensor]:
    """Soft-reset IF over T steps with plain tensor operations: ``m_t = m_{t-1} + I_t; S_t = [m_t >= V_th];
    m_t -= S_t V_th``, m_0 = 0. Returns S_1..S_T as float tensors in {0, 1}: SpikingJelly's ``IFNode(v_reset=None)``
    to the bit (its charge is the same float32 add, and ``m - V_th >= 0`` is ``m >= V_th`` in IEEE arithmetic)."""
    membrane = currents[0]  # m_0 = 0 and 0 + I_1 is I_1 exactly: no zeros tensor (no Shape operators) needed
    spikes = []
    for step, current in enumerate(currents):
        membrane = membrane + current if step else membrane
        spike = (membrane >= v_threshold).to(current.dtype)
        membrane = membrane - spike * v_threshold
        spikes.append(spike)
    return spikes


class SNNEncoderGraph(nn.Module):
    """The SNN encoder unrolled over its T steps, BN folded: ``[B, c, h, w]`` -> spikes ``[B, T, c2, h, w]``."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.timesteps = int(encoder.timesteps)
        self.v_threshold = float(encoder.if1.node.v_threshold)
        self.conv1 = _folded_conv(encoder.block1[0], encoder.block1[1])
        self.conv2 = _folded_conv(encoder.block2[0], encoder.block2[1])

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        current1 = self.conv1(feature)
        spikes1 = integrate_and_fire([current1] * self.timesteps, self.v_threshold)
        # One Conv2 per step, not one over a [T*B] batch: splitting a dynamic batch back into steps would need
        # Shape/Slice operators, and per-image convolution sums are the same either way.
        spikes2 = integrate_and_fire([self.conv2(spikes) for spikes in spikes1], self.v_threshold)
        return torch.stack(spikes2, 1)


class CNNEncoderGraph(nn.Module):
    """The CNN-q<n> encoder, BN folded, quantiser in the graph: ``[B, c, h, w]`` -> bit planes ``[B, n, c2, h, w]``."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        layers = encoder.layers
        self.n_bits = int(encoder.n_bits)
        self.conv1 = _folded_conv(layers[0], layers[1])
        self.conv2 = _folded_conv(layers[3], layers[4])

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        value = torch.sigmoid(self.conv2(torch.relu(self.conv1(feature))))
        levels = torch.round(value * (2**self.n_bits - 1))
        planes = [torch.remainder(torch.floor(levels / 2.0**k), 2.0) for k in range(self.n_bits - 1, -1, -1)]
        return torch.stack(planes, 1)


ENCODER_GRAPHS = {"snn": SNNEncoderGraph, "snn-progressive": SNNEncoderGraph, "cnn": CNNEncoderGraph}


class DeviceGraph(nn.Module):
    """Head (BN folded) + the encoder's graph form; bits out as uint8."""

    def __init__(self, model: SplitModel, codec: str) -> None:
        super().__init__()
        family, _ = parse_codec_name(codec)
        if model.codec is None or family not in ENCODER_GRAPHS:
            raise ExportError(f"codec {codec!r} has no export; known: snn, snn-progressive, cnn-q<n>")
        head = model.head
        if not isinstance(head, fx.GraphModule):
            head = fx.symbolic_trace(head)
        self.head = fold_batch_norm(head)
        self.encoder = ENCODER_GRAPHS[family](model.codec.encoder)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.head(image)).to(torch.uint8)


@dataclass(frozen=True)
class ExportedModel:
    """The files one export wrote (``ort`` and ``mobile_report`` are None when skipped) and the ONNX file's hash."""

    onnx: Path
    sha256: str
    ort: Path | None
    required_operators: Path | None
    mobile_report: Path | None
    operators: list[str]


def device_graph(bundle: Bundle) -> DeviceGraph:
    """The exportable device half of ``bundle`` (CPU, eval mode)."""
    model = bundle.build(halves=("device",), device="cpu")
    return DeviceGraph(model, bundle.manifest["codec"]).eval()


def onnx_bytes(bundle: Bundle, opset: int = OPSET) -> bytes:
    """The device half of ``bundle`` as a serialized ONNX model (dynamic batch, metadata set)."""
    import onnx

    graph = device_graph(bundle)
    size = bundle.spec.image_size
    example = torch.zeros(1, 3, size, size)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings_quiet():
        torch.onnx.export(graph, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {METADATA_PREFIX + key: value for key, value in metadata(bundle).items()})
    proto.doc_string = (f"sjscc device half of model {bundle.model_id}: preprocessed image [B,3,{size},{size}] -> "
                        f"bits [B,{','.join(map(str, bundle.payload_shape))}] uint8")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


@contextlib.contextmanager
def warnings_quiet():
    """The TorchScript exporter warns about its own deprecation and about traced Python ints; neither applies."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def metadata(bundle: Bundle) -> dict[str, str]:
    """What an exported file says about itself, checked against the bundle when it is loaded."""
    return {"model_id": bundle.model_id, "codec": bundle.manifest["codec"],
            "payload_shape": json.dumps(bundle.payload_shape), "image_size": str(bundle.spec.image_size),
            "mean": json.dumps(list(bundle.spec.mean)), "std": json.dumps(list(bundle.spec.std))}


def check_metadata(props: dict[str, str], bundle: Bundle, source: str) -> None:
    """Refuse an exported model made from another bundle (or from nothing sjscc wrote)."""
    found = {key[len(METADATA_PREFIX):]: value for key, value in props.items() if key.startswith(METADATA_PREFIX)}
    expected = metadata(bundle)
    if found.get("model_id") != expected["model_id"]:
        raise ExportError(f"{source} is the device half of model {found.get('model_id')!r}, not of the bundle's "
                          f"{bundle.model_id!r}; export it again with `sjscc export-device`")
    for key in ("codec", "payload_shape", "image_size"):
        if found.get(key) != expected[key]:
            raise ExportError(f"{source}: metadata {key}={found.get(key)!r}, bundle says {expected[key]!r}")


def operator_list(model_bytes: bytes) -> list[str]:
    """The distinct ONNX operators of a model, ``domain:op`` for anything outside the default domain."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    return sorted({f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in proto.graph.node})


def mobile_usability_report(path: Path) -> str:
    """The text of onnxruntime's ``check_onnx_model_mobile_usability`` for ``path`` (NNAPI / CoreML coverage)."""
    from onnxruntime.tools.mobile_helpers import usability_checker

    stream = io.StringIO()
    logger = logging.getLogger("sjscc.export.usability")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            try_eps = usability_checker.analyze_model(path, skip_optimize=False, logger=logger)
    finally:
        logger.removeHandler(handler)
    verdict = ("NNAPI (Android) or CoreML (iOS) may run this model; compare them with the CPU EP on the phone."
               if try_eps else "Use the CPU execution provider: NNAPI/CoreML would take too little of the graph.")
    return stream.getvalue().replace(str(path.parent) + "/", "") + f"\nVerdict: {verdict}\n"


def convert_to_ort(path: Path, target_platform: str = "arm") -> tuple[Path, Path]:
    """``device.ort`` (optimisations fixed for ``target_platform``) and the operator config for a reduced build."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)  # it logs each config file it writes
    with contextlib.redirect_stdout(io.StringIO()):
        convert_onnx_models_to_ort(path, output_dir=path.parent, optimization_styles=[OptimizationStyle.Fixed],
                                   target_platform=target_platform)
    ort_path = path.with_suffix(".ort")
    config = path.with_suffix(".required_operators.config")
    if not ort_path.is_file():
        raise ExportError(f"onnxruntime did not write {ort_path}")
    return ort_path, config


def export_device(bundle: Bundle, out: str | Path, *, ort: bool = True, mobile_report: bool = True,
                  target_platform: str = "arm", opset: int = OPSET) -> ExportedModel:
    """Write ``out`` (ONNX) and, next to it, the ORT form and the mobile usability report."""
    path = Path(out)
    if path.suffix != ".onnx":
        raise ExportError(f"--out {path}: the file name must end in .onnx (the .ort file is written beside it)")
    if not path.parent.is_dir():
        raise ExportError(f"--out {path}: folder {path.parent} does not exist")
    data = onnx_bytes(bundle, opset)
    path.write_bytes(data)
    ort_path = config = report_path = None
    if ort:
        ort_path, config = convert_to_ort(path, target_platform)
    if mobile_report:
        report_path = path.with_name(path.stem + MOBILE_REPORT_SUFFIX)
        report_path.write_text(mobile_usability_report(path))
    return ExportedModel(path, hashlib.sha256(data).hexdigest(), ort_path, config, report_path, operator_list(data))


def record_in_manifest(bundle: Bundle, exported: ExportedModel) -> dict[str, Any]:
    """Name the exported file and its SHA-256 in the bundle's manifest (``exports.onnx``); the model id is unchanged.

    Only a file inside the bundle folder can be recorded (the manifest holds a relative path).
    """
    folder = bundle.path.resolve()
    try:
        relative = exported.onnx.resolve().relative_to(folder)
    except ValueError:
        raise ExportError(f"{exported.onnx} is outside the bundle folder {folder}; only a file inside it can be "
                          "recorded in the manifest") from None
    entry = {"file": str(relative), "sha256": exported.sha256, "opset": OPSET, "operators": exported.operators}
    manifest = dict(bundle.manifest)
    manifest[MANIFEST_KEY] = {**manifest.get(MANIFEST_KEY, {}), "onnx": entry}
    (bundle.path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    bundle.manifest.clear()
    bundle.manifest.update(manifest)
    return entry


def recorded_onnx(bundle: Bundle) -> bytes | None:
    """The ONNX device half the manifest records (hash checked), or None when it records none."""
    entry = bundle.manifest.get(MANIFEST_KEY, {}).get("onnx")
    if entry is None:
        return None
    path = bundle.path / str(entry.get("file", ""))
    if not path.is_file() or bundle.path.resolve() not in path.resolve().parents:
        raise BundleError(f"{bundle.path / MANIFEST} records the ONNX device half {entry.get('file')!r}, which is not "
                          "a file in the bundle")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise BundleError(f"{path} was altered: its SHA-256 does not match the manifest")
    return data


def describe(exported: ExportedModel) -> str:
    """What the command prints: the files and the operator set."""
    lines = [f"wrote {exported.onnx} ({exported.onnx.stat().st_size / 1e6:.1f} MB, sha256 {exported.sha256[:16]}...)"]
    for label, path in (("ORT format", exported.ort), ("operators for a reduced build", exported.required_operators),
                        ("mobile usability report", exported.mobile_report)):
        if path is not None:
            lines.append(f"wrote {path} ({label})")
    lines.append(f"{len(exported.operators)} operators: {', '.join(exported.operators)}")
    return "\n".join(lines)


def run_export(args: Any) -> int:
    """``sjscc export-device`` (parser in :mod:`sjscc.device.commands`): export, optionally record, print the files."""
    from sjscc.common.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    exported = export_device(bundle, args.out, ort=not args.no_ort, mobile_report=not args.no_mobile_report,
                             target_platform=args.target_platform)
    print(describe(exported))
    if args.record:
        record_in_manifest(bundle, exported)
        print(f"recorded {exported.onnx.name} in {bundle.path / MANIFEST} (model id {bundle.model_id} unchanged)")
    return 0
