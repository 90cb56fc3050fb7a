"""The device half exported to ONNX (sjscc/device/export.py) and run by ONNX Runtime (sjscc/device/runtime.py):
the same bits as the PyTorch device half, for both codec kinds, through the pipeline and through the REST API."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import tiny_spec
from PIL import Image

from sjscc.common import bitstream
from sjscc.common.bundle import load_bundle, save_bundle
from sjscc.common.model import build_split_model
from sjscc.device.export import (
    ExportError,
    export_device,
    integrate_and_fire,
    onnx_bytes,
    record_in_manifest,
)
from sjscc.device.pipeline import DevicePipeline, preprocess
from sjscc.device.runtime import OnnxRuntime, TorchRuntime, build_runtime

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "hubble_deep_field")
# Spike mismatch allowed between the torch and the ONNX Runtime device halves: the target (1e-4) over the
# few thousand bits a test sees means "no bit may differ" on these inputs; a flip would fail the test.
MAX_MISMATCH = 1e-4


def _bundle(tmp_path, codec: str, seed: int = 0):
    torch.manual_seed(seed)
    spec = tiny_spec(codec=codec)
    model = build_split_model(spec).eval()
    # Non-trivial batch-norm statistics, so folding them into the convolutions is actually exercised.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return save_bundle(model, spec, tmp_path / codec, CLASSES, train_channel={"kind": "bsc", "p": 0.1},
                       metrics={"note": "random weights"})


def _images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _photo_tensors(size: int = 32) -> torch.Tensor:
    from skimage import data

    from sjscc.common.model import CIFAR10_MEAN, CIFAR10_STD

    pictures = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]
    return torch.stack([preprocess(p, size, CIFAR10_MEAN, CIFAR10_STD) for p in pictures])


def _mismatch(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a != b).float().mean())


def test_plain_tensor_if_is_spikingjellys_soft_reset_neuron() -> None:
    from sjscc.common.neurons import IF

    currents = torch.randn(8, 64, 5, generator=torch.Generator().manual_seed(3)) * 0.7
    currents[:, 0, 0] = 0.25  # reaches V_th = 1 exactly at step 4: >= fires
    (expected,) = IF(1.0)(currents)
    got = torch.stack(integrate_and_fire(list(currents), 1.0))
    assert torch.equal(got, expected)
    assert got[:, 0, 0].tolist() == [0, 0, 0, 1, 0, 0, 0, 1]


@pytest.mark.parametrize("codec", ["snn", "snn-progressive", "cnn-q4"])
def test_exported_device_half_gives_the_torch_bits(tmp_path, codec) -> None:
    bundle = _bundle(tmp_path, codec)
    torch_bits = TorchRuntime(bundle)(_images(16))
    for optimization in ("off", "all"):
        onnx_bits = OnnxRuntime(bundle, optimization=optimization)(_images(16))
        assert onnx_bits.shape == (16, *bundle.payload_shape)
        assert set(onnx_bits.unique().tolist()) <= {0.0, 1.0}
        assert _mismatch(onnx_bits, torch_bits) <= MAX_MISMATCH, optimization
    # not a constant: the bits depend on the image
    assert 0.05 < float(torch_bits.mean()) < 0.95


def test_the_shipped_bundles_agree_on_photos() -> None:
    """The trained default (SNN) and CNN-q8 bundles, six photos: at most MAX_MISMATCH of their 3,072 bits differ."""
    photos = _photo_tensors()
    for name in ("default", "baseline-cnn-q8"):
        bundle = load_bundle(BUNDLES / name)
        torch_bits = TorchRuntime(bundle)(photos)
        onnx_bits = OnnxRuntime(bundle)(photos)
        assert _mismatch(onnx_bits, torch_bits) <= MAX_MISMATCH, name


def test_export_writes_onnx_ort_operators_and_the_mobile_report(tmp_path) -> None:
    bundle = _bundle(tmp_path, "snn")
    exported = export_device(bundle, tmp_path / "device.onnx")
    model = onnx.load(str(exported.onnx))
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["sjscc.model_id"] == bundle.model_id
    assert json.loads(props["sjscc.payload_shape"]) == bundle.payload_shape
    # dynamic batch axis in and out; uint8 bits out
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    # plain operators only: no SpikingJelly or Python op, batch norm folded away
    assert "BatchNormalization" not in exported.operators
    assert all(":" not in op for op in exported.operators), exported.operators
    assert {"Conv", "GreaterOrEqual", "Cast"} <= set(exported.operators)
    assert exported.ort is not None and exported.ort.read_bytes()[4:8] == b"ORTM"
    assert "Conv" in exported.required_operators.read_text()
    assert "Checking device.onnx for usability with ORT Mobile" in exported.mobile_report.read_text()
    # the .ort file runs and gives the ONNX file's bits, at batch 1 and batch 5
    ort_session = onnxruntime.InferenceSession(str(exported.ort), providers=["CPUExecutionProvider"])
    onnx_session = onnxruntime.InferenceSession(str(exported.onnx), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        images = _images(batch).numpy()
        a, b = ort_session.run(None, {"image": images})[0], onnx_session.run(None, {"image": images})[0]
        assert a.dtype == np.uint8 and a.shape == (batch, *bundle.payload_shape)
        assert np.mean(a != b) <= MAX_MISMATCH


def test_the_out_file_name_is_checked(tmp_path) -> None:
    bundle = _bundle(tmp_path, "snn")
    with pytest.raises(ExportError, match="must end in .onnx"):
        export_device(bundle, tmp_path / "device.bin", ort=False, mobile_report=False)
    with pytest.raises(ExportError, match="does not exist"):
        export_device(bundle, tmp_path / "nowhere" / "device.onnx", ort=False, mobile_report=False)


def test_a_recorded_export_keeps_the_model_id_and_is_hash_checked(tmp_path) -> None:
    bundle = _bundle(tmp_path, "snn")
    model_id = bundle.model_id
    exported = export_device(bundle, bundle.path / "device.onnx", ort=False, mobile_report=False)
    record_in_manifest(bundle, exported)
    reloaded = load_bundle(bundle.path)  # the manifest still verifies
    assert reloaded.model_id == model_id
    assert reloaded.manifest["exports"]["onnx"]["file"] == "device.onnx"
    assert torch.equal(OnnxRuntime(reloaded)(_images(4)), TorchRuntime(reloaded)(_images(4)))
    with pytest.raises(ExportError, match="outside the bundle folder"):
        record_in_manifest(reloaded, export_device(reloaded, tmp_path / "x.onnx", ort=False, mobile_report=False))
    (bundle.path / "device.onnx").write_bytes(exported.onnx.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="altered"):
        OnnxRuntime(load_bundle(bundle.path))


def test_the_onnx_runtime_refuses_another_bundles_model(tmp_path) -> None:
    bundle = _bundle(tmp_path, "snn")
    other = _bundle(tmp_path / "other", "snn", seed=5)
    with pytest.raises(ExportError, match="not of the bundle's"):
        OnnxRuntime(bundle, model=onnx_bytes(other))


def test_runtime_settings_are_checked(tmp_path) -> None:
    bundle = _bundle(tmp_path, "snn")
    with pytest.raises(ValueError, match="unknown device runtime 'tflite'"):
        build_runtime("tflite", bundle)
    with pytest.raises(ValueError, match="graph optimisation"):
        OnnxRuntime(bundle, optimization="max")
    with pytest.raises(ValueError, match="threads must be >= 0"):
        OnnxRuntime(bundle, threads=-1)


def test_the_pipeline_sends_the_same_payload_on_either_runtime() -> None:
    from skimage import data

    bundle = load_bundle(BUNDLES / "default")
    pipelines = {name: DevicePipeline(bundle, runtime=name, max_batch_size=1) for name in ("torch", "onnx")}
    assert pipelines["onnx"].runtime.name == "onnx"
    for name in PHOTOS[:3]:
        buffer = io.BytesIO()
        Image.fromarray(getattr(data, name)()).save(buffer, format="PNG")
        encoded = {runtime: p.encode_image(buffer.getvalue()) for runtime, p in pipelines.items()}
        assert encoded["onnx"].payload == encoded["torch"].payload, name
        assert len(encoded["onnx"].payload) == bitstream.payload_bytes(bundle.payload_shape)



@pytest.mark.slow
def test_rest_answers_are_the_same_with_runtime_onnx(tiny_bundle, tmp_path) -> None:
    """One edge, a torch device and an ONNX device (chosen by SJSCC_RUNTIME): the same answer to the same upload."""
    import os

    import httpx
    from skimage import data

    from sjscc.tools.services import device_is_ready, edge_is_serving, free_port, start_service, wait_until

    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    edge_address = f"127.0.0.1:{free_port()}"
    started = [start_service("edge", ["edge", "--bundle", str(tiny_bundle.path), "--host", "127.0.0.1",
                                      "--port", edge_address.rsplit(":", 1)[1]], tmp_path, env)]
    urls = {}
    try:
        wait_until(lambda: edge_is_serving(edge_address), started[0], 120.0)
        for runtime in ("torch", "onnx"):
            port = free_port()
            started.append(start_service(f"device-{runtime}", [
                "device", "--bundle", str(tiny_bundle.path), "--edge", edge_address, "--port", str(port),
            ], tmp_path, {**env, "SJSCC_RUNTIME": runtime}))
            urls[runtime] = f"http://127.0.0.1:{port}"
        for runtime, service in zip(urls, started[1:], strict=True):
            wait_until(lambda url=urls[runtime]: device_is_ready(url), service, 120.0)
        assert "runtime onnx" in started[2].log_tail()
        for name, params in (("chelsea", {}), ("astronaut", {}), ("coffee", {"channel": "bsc", "p": 0.1, "seed": 3})):
            buffer = io.BytesIO()
            Image.fromarray(getattr(data, name)()).save(buffer, format="PNG")
            answers = {runtime: httpx.post(f"{url}/v1/classify", params=params, timeout=30.0,
                                           files={"image": ("x.png", buffer.getvalue(), "image/png")})
                       for runtime, url in urls.items()}
            assert {r.status_code for r in answers.values()} == {200}, {k: r.text for k, r in answers.items()}
            torch_answer, onnx_answer = (answers[r].json() for r in ("torch", "onnx"))
            for key in ("label", "class_index", "top", "model_id", "bits"):
                assert onnx_answer[key] == torch_answer[key], (name, key)
            assert onnx_answer["channel"]["flipped_bits"] == torch_answer["channel"]["flipped_bits"]
    finally:
        for service in reversed(started):
            service.stop()


def test_the_export_command_writes_the_files_and_records_them(tmp_path, capsys) -> None:
    from sjscc.cli import main

    bundle = _bundle(tmp_path, "cnn-q4")
    out = bundle.path / "device.onnx"
    assert main(["export-device", "--bundle", str(bundle.path), "--out", str(out), "--no-mobile-report",
                 "--record"]) == 0
    printed = capsys.readouterr().out
    assert "device.ort (ORT format)" in printed and f"model id {bundle.model_id} unchanged" in printed
    assert out.with_suffix(".ort").is_file() and not out.with_name("device.mobile_usability.txt").exists()
    assert load_bundle(bundle.path).manifest["exports"]["onnx"]["operators"][0] == "Add"
    assert main(["export-device", "--bundle", str(bundle.path), "--out", str(tmp_path / "d.pt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
