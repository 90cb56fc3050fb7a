"""deploy/k8s validated offline against the Kubernetes JSON schemas (kubernetes-validate, pinned version,
strict: unknown fields are errors), and checked for what the deployment relies on: the device reaches the
edges through a headless Service (DNS round-robin), probes, resource requests, non-root pods, and the GPU
overlay rendered the way kustomize's strategic merge renders it."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from sjscc.cli import build_parser

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (dev extra) is missing")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33"  # the schemas the manifests are checked against (shipped inside the package)
EDGE_LABELS = {"app.kubernetes.io/name": "sjscc", "app.kubernetes.io/component": "edge"}


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources(folder: Path = K8S) -> dict[tuple[str, str], dict]:
    """The resources a kustomization lists, by (kind, name)."""
    kustomization = documents(folder / "kustomization.yaml")[0]
    found = {}
    for entry in kustomization["resources"]:
        target = (folder / entry).resolve()
        for doc in (resources(target).values() if target.is_dir() else documents(target)):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def strategic_merge(base: object, patch: object) -> object:
    """Kubernetes' strategic merge for what the GPU patch uses: maps merge, lists of named items (containers,
    env) merge by name, other lists (tolerations) are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i
                                                                     for i in base + patch):
        merged_list = [copy.deepcopy(i) for i in base]
        for item in patch:
            index = next((n for n, old in enumerate(merged_list) if old["name"] == item["name"]), None)
            if index is None:
                merged_list.append(item)
            else:
                merged_list[index] = strategic_merge(merged_list[index], item)
        return merged_list
    return copy.deepcopy(patch)


def gpu_resources() -> dict[tuple[str, str], dict]:
    overlay = documents(K8S / "gpu" / "kustomization.yaml")[0]
    rendered = resources((K8S / "gpu" / overlay["resources"][0]).resolve())
    for patch_entry in overlay["patches"]:
        patch = documents(K8S / "gpu" / patch_entry["path"])[0]
        key = (patch["kind"], patch["metadata"]["name"])
        rendered[key] = strategic_merge(rendered[key], patch)
    return rendered


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(deployment)["env"]}


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_every_manifest_is_valid_against_the_kubernetes_schemas(variant: str) -> None:
    rendered = resources() if variant == "cpu" else gpu_resources()
    assert set(rendered) == {("Deployment", "sjscc-edge"), ("Service", "sjscc-edge"),
                             ("Deployment", "sjscc-device"), ("Service", "sjscc-device")}
    for key, resource in rendered.items():
        assert kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION, key


def test_an_invalid_manifest_is_refused() -> None:
    deployment = copy.deepcopy(resources()[("Deployment", "sjscc-edge")])
    container(deployment)["livenessProbe"]["periodSecond"] = 10  # a typo: unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    del deployment["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=False)


def test_the_device_reaches_every_edge_pod_through_a_headless_service() -> None:
    rendered = resources()
    edge, edge_service = rendered[("Deployment", "sjscc-edge")], rendered[("Service", "sjscc-edge")]
    device, device_service = rendered[("Deployment", "sjscc-device")], rendered[("Service", "sjscc-device")]
    assert edge_service["spec"]["clusterIP"] == "None"  # DNS answers with every ready pod
    assert edge_service["spec"]["selector"] == edge["spec"]["template"]["metadata"]["labels"] == EDGE_LABELS
    assert edge["spec"]["selector"]["matchLabels"] == EDGE_LABELS and edge["spec"]["replicas"] >= 2
    host, port = env(device)["SJSCC_EDGE"].split(":")
    assert host == edge_service["metadata"]["name"]
    assert int(port) == edge_service["spec"]["ports"][0]["port"] == int(env(edge)["SJSCC_EDGE_PORT"])
    assert device_service["spec"]["selector"] == device["spec"]["template"]["metadata"]["labels"]
    assert container(device)["ports"][0]["containerPort"] == int(env(device)["SJSCC_DEVICE_PORT"])


def test_pods_have_probes_requests_and_run_as_non_root() -> None:
    for name in ("sjscc-edge", "sjscc-device"):
        deployment = resources()[("Deployment", name)]
        pod, main = deployment["spec"]["template"]["spec"], container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert main["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                           "capabilities": {"drop": ["ALL"]}}
        assert {"cpu", "memory"} <= set(main["resources"]["requests"]) and "memory" in main["resources"]["limits"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in main, (name, probe)
    edge = container(resources()[("Deployment", "sjscc-edge")])
    assert edge["readinessProbe"]["grpc"]["port"] == edge["ports"][0]["containerPort"]  # grpc.health.v1
    device = container(resources()[("Deployment", "sjscc-device")])
    assert device["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert device["readinessProbe"]["httpGet"]["path"] == "/readyz"  # edge reachable and serving our model


def test_the_gpu_overlay_gives_the_edge_a_gpu_and_changes_nothing_else() -> None:
    cpu, gpu = resources(), gpu_resources()
    edge = container(gpu[("Deployment", "sjscc-edge")])
    assert edge["image"] == "sjscc-edge:gpu"
    assert env(gpu[("Deployment", "sjscc-edge")])["SJSCC_COMPUTE_DEVICE"] == "cuda"
    assert edge["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert edge["readinessProbe"] == container(cpu[("Deployment", "sjscc-edge")])["readinessProbe"]
    assert edge["securityContext"]["readOnlyRootFilesystem"] is True  # merged, not replaced
    for key in [("Service", "sjscc-edge"), ("Deployment", "sjscc-device"), ("Service", "sjscc-device")]:
        assert gpu[key] == cpu[key], key


@pytest.mark.parametrize("name, command", [("sjscc-edge", "edge"), ("sjscc-device", "device")])
def test_the_manifest_environment_configures_the_commands(name: str, command: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("SJSCC_")]:
        monkeypatch.delenv(key)
    variables = env(resources()[("Deployment", name)])
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    args = build_parser().parse_args([command])
    if command == "edge":
        assert (args.host, args.port, args.compute_device, args.max_batch_size) == ("0.0.0.0", 50051, "cpu", 8)
    else:
        assert (args.edge, args.host, args.port, args.channel, args.p) == ("sjscc-edge:50051", "0.0.0.0", 8000,
                                                                             "none", 0.0)
