"""The committed gRPC stubs are what ``python -m sjscc.proto.generate`` produces, and pyproject.toml asks
for at least the runtime versions the generated code checks for at import."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sjscc.proto import generate, sjscc_pb2

ROOT = Path(__file__).resolve().parents[2]


def _lower_bound(requirements: list[str], package: str) -> tuple[int, ...]:
    for requirement in requirements:
        match = re.fullmatch(rf"{re.escape(package)}\s*(>=|==)\s*([0-9.]+)", requirement.strip())
        if match:
            return tuple(int(x) for x in match.group(2).split("."))
    raise AssertionError(f"{package} has no '>=' or '==' bound in {requirements}")


def test_committed_stubs_equal_fresh_generation(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) generates the stubs")
    written = generate.generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(generate.GENERATED_FILES)
    for name in generate.GENERATED_FILES:
        fresh = (tmp_path / name).read_text()
        committed = (generate.PROTO_DIR / name).read_text()
        assert fresh == committed, f"sjscc/proto/{name} is stale: run `python -m sjscc.proto.generate`"


def test_service_stub_imports_package_relative() -> None:
    text = (generate.PROTO_DIR / "sjscc_pb2_grpc.py").read_text()
    assert "from . import sjscc_pb2 as" in text
    assert not re.search(r"^import sjscc_pb2", text, flags=re.MULTILINE)


def test_dependency_bounds_cover_the_generated_code() -> None:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dependencies = project["project"]["dependencies"]
    pb2 = (generate.PROTO_DIR / "sjscc_pb2.py").read_text()
    gencode = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),"
                        r"\s*(\d+),", pb2)
    assert gencode, "sjscc_pb2.py has no runtime version check to compare with"
    assert _lower_bound(dependencies, "protobuf") >= tuple(int(x) for x in gencode.groups())
    grpc_generated = re.search(r"GRPC_GENERATED_VERSION = '([0-9.]+)'",
                               (generate.PROTO_DIR / "sjscc_pb2_grpc.py").read_text())
    assert grpc_generated
    assert _lower_bound(dependencies, "grpcio") >= tuple(int(x) for x in grpc_generated.group(1).split("."))
    # The generator is pinned, so a fresh install regenerates byte-identical stubs.
    tools = [r for r in project["project"]["optional-dependencies"]["dev"] if r.startswith("grpcio-tools")]
    assert tools == [f"grpcio-tools=={grpc_generated.group(1)}"]


def test_messages_round_trip_with_optional_erasure_mask() -> None:
    message = sjscc_pb2.EncodedFeature(payload=b"\x01\x02", timesteps=4, latent_shape=[2, 8, 8], codec="snn",
                                       model_id="abc", request_id="r1")
    again = sjscc_pb2.EncodedFeature.FromString(message.SerializeToString())
    assert again == message
    assert not again.HasField("erasure_mask")  # absent, not merely empty: "no erasure information"
    message.erasure_mask = b""
    assert sjscc_pb2.EncodedFeature.FromString(message.SerializeToString()).HasField("erasure_mask")
    service = sjscc_pb2.DESCRIPTOR.services_by_name["EdgeInference"]
    assert service.full_name == "sjscc.v1.EdgeInference"
    assert {m.name for m in service.methods} == {"Infer", "ModelInfo", "InferProgressive"}
