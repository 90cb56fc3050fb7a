"""deploy/k8s validated offline against the Kubernetes JSON schemas (kubernetes-validate, pinned version,
strict: unknown fields are errors), and checked for what the deployment relies on: the device reaches the
edges through a headless Service (DNS round-robin) over mutual TLS from Secrets, the API token from a Secret,
NetworkPolicies that let only the device reach the edge and only the ingress reach the device, probes that
speak TLS, resource requests, non-root pods, the GPU and cert-manager overlays rendered the way kustomize
renders them (and by kustomize itself, `kubectl kustomize`, where kubectl is installed), and the Secrets that
scripts/make-certs.sh --kubernetes writes."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sjscc.cli import build_parser
from sjscc.edge import healthcheck

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (dev extra) is missing")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33"  # the schemas the manifests are checked against (shipped inside the package)
EDGE_LABELS = {"app.kubernetes.io/name": "sjscc", "app.kubernetes.io/component": "edge"}
DEVICE_LABELS = {"app.kubernetes.io/name": "sjscc", "app.kubernetes.io/component": "device"}
BASE_KINDS = {("Deployment", "sjscc-edge"), ("Service", "sjscc-edge"), ("NetworkPolicy", "sjscc-edge"),
              ("Deployment", "sjscc-device"), ("Service", "sjscc-device"), ("NetworkPolicy", "sjscc-device"),
              ("Ingress", "sjscc-device")}
CERT_MANAGER_KINDS = {("Issuer", "sjscc-selfsigned"), ("Certificate", "sjscc-ca"), ("Issuer", "sjscc-ca"),
                      ("Certificate", "sjscc-edge-tls"), ("Certificate", "sjscc-device-tls")}


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


VARIANTS = {"cpu": lambda: resources(), "gpu": gpu_resources, "cert-manager": lambda: resources(K8S / "cert-manager")}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: dict) -> dict[str, str]:
    """Plain values; a value from a Secret reads ``secret:NAME/KEY``."""
    out = {}
    for item in container(deployment)["env"]:
        if "value" in item:
            out[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            out[item["name"]] = f"secret:{ref['name']}/{ref['key']}"
    return out


def secret_mounts(deployment: dict) -> dict[str, str]:
    """Mount path -> Secret name, for the container's Secret volumes."""
    secrets = {v["name"]: v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
               if "secret" in v}
    return {m["mountPath"]: secrets[m["name"]] for m in container(deployment)["volumeMounts"] if m["name"] in secrets}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_manifest_is_valid_against_the_kubernetes_schemas(variant: str) -> None:
    rendered = VARIANTS[variant]()
    assert set(rendered) == BASE_KINDS | (CERT_MANAGER_KINDS if variant == "cert-manager" else set())
    for key, resource in rendered.items():
        if resource["apiVersion"].startswith("cert-manager.io/"):
            continue  # a CRD: no schema ships with Kubernetes; test_cert_manager_makes_the_secrets_mounted checks it
        assert kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION, key


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for `kubectl kustomize`) is not installed")
@pytest.mark.parametrize("variant, folder", [("cpu", K8S), ("gpu", K8S / "gpu"),
                                             ("cert-manager", K8S / "cert-manager")])
def test_kustomize_renders_what_the_tests_check(variant: str, folder: Path) -> None:
    """kustomize itself (offline) accepts each folder and renders the same objects as the helpers above (up to
    the order of environment variables, which a patch puts first)."""
    result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    rendered = {(doc["kind"], doc["metadata"]["name"]): doc for doc in yaml.safe_load_all(result.stdout) if doc}

    def env_sorted(objects: dict[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
        objects = copy.deepcopy(objects)
        for (kind, _), resource in objects.items():
            if kind == "Deployment":
                container(resource)["env"].sort(key=lambda item: item["name"])
        return objects

    assert env_sorted(rendered) == env_sorted(VARIANTS[variant]())


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
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):  # grpc.health.v1 over mutual TLS
        assert edge[probe]["exec"]["command"] == ["python", "-m", "sjscc.edge.healthcheck"], probe
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
        assert (args.tls_cert, args.tls_key, args.tls_client_ca) == (
            f"{TLS_DIR}/tls.crt", f"{TLS_DIR}/tls.key", f"{TLS_DIR}/ca.crt")
        probe = healthcheck.build_parser().parse_args([])  # the exec probe, in the same environment
        assert (probe.edge_ca, probe.tls_cert, probe.tls_key) == (
            f"{TLS_DIR}/ca.crt", f"{TLS_DIR}/tls.crt", f"{TLS_DIR}/tls.key")
    else:
        assert (args.edge, args.host, args.port, args.channel, args.p) == ("sjscc-edge:50051", "0.0.0.0", 8000,
                                                                             "none", 0.0)
        assert (args.edge_ca, args.tls_cert, args.tls_key, args.edge_server_name) == (
            f"{TLS_DIR}/ca.crt", f"{TLS_DIR}/tls.crt", f"{TLS_DIR}/tls.key", "sjscc-edge")
        assert args.api_token == "secret:sjscc-api-token/token"


TLS_DIR = "/etc/sjscc/tls"


def test_mutual_tls_and_the_token_come_from_secrets() -> None:
    rendered = resources()
    edge, device = rendered[("Deployment", "sjscc-edge")], rendered[("Deployment", "sjscc-device")]
    assert secret_mounts(edge) == {TLS_DIR: "sjscc-edge-tls"} and secret_mounts(device) == {TLS_DIR: "sjscc-device-tls"}
    for deployment in (edge, device):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["fsGroup"] == 10001  # the key is readable by the container's user only
        (tls,) = [v for v in pod["volumes"] if "secret" in v]
        assert tls["secret"]["defaultMode"] == 0o440
    edge_env, device_env = env(edge), env(device)
    assert edge_env["SJSCC_TLS_CLIENT_CA"] == f"{TLS_DIR}/ca.crt"  # mutual: a client certificate is required
    assert device_env["SJSCC_API_TOKEN"] == "secret:sjscc-api-token/token"
    assert {edge_env["SJSCC_TLS_CERT"], edge_env["SJSCC_TLS_KEY"], device_env["SJSCC_TLS_CERT"],
            device_env["SJSCC_EDGE_CA"]} <= {f"{TLS_DIR}/{name}" for name in ("tls.crt", "tls.key", "ca.crt")}


def test_network_policies_let_only_the_device_reach_the_edge_and_only_the_ingress_reach_the_device() -> None:
    rendered = resources()
    edge_policy, device_policy = rendered[("NetworkPolicy", "sjscc-edge")], rendered[("NetworkPolicy", "sjscc-device")]
    edge, device = rendered[("Deployment", "sjscc-edge")], rendered[("Deployment", "sjscc-device")]
    assert edge_policy["spec"]["podSelector"]["matchLabels"] == edge["spec"]["template"]["metadata"]["labels"]
    assert device_policy["spec"]["podSelector"]["matchLabels"] == device["spec"]["template"]["metadata"]["labels"]
    (edge_rule,) = edge_policy["spec"]["ingress"]
    assert edge_rule["from"] == [{"podSelector": {"matchLabels": DEVICE_LABELS}}]
    assert edge_rule["ports"] == [{"protocol": "TCP", "port": container(edge)["ports"][0]["containerPort"]}]
    assert set(edge_policy["spec"]["policyTypes"]) == {"Ingress", "Egress"} and edge_policy["spec"]["egress"] == []
    (device_rule,) = device_policy["spec"]["ingress"]
    (source,) = device_rule["from"]
    assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert device_rule["ports"] == [{"protocol": "TCP", "port": container(device)["ports"][0]["containerPort"]}]
    to_edge, to_dns = device_policy["spec"]["egress"]
    assert to_edge["to"] == [{"podSelector": {"matchLabels": EDGE_LABELS}}]
    assert {port["port"] for port in to_dns["ports"]} == {53}
    ingress = rendered[("Ingress", "sjscc-device")]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "sjscc-device" and backend["port"]["name"] == "http"


def test_cert_manager_makes_the_secrets_mounted() -> None:
    rendered = resources(K8S / "cert-manager")
    edge_cert, device_cert = rendered[("Certificate", "sjscc-edge-tls")], rendered[("Certificate", "sjscc-device-tls")]
    mounted = {secret_mounts(rendered[("Deployment", name)])[TLS_DIR] for name in ("sjscc-edge", "sjscc-device")}
    assert {edge_cert["spec"]["secretName"], device_cert["spec"]["secretName"]} == mounted
    for certificate in (edge_cert, device_cert):
        assert certificate["apiVersion"] == "cert-manager.io/v1"
        assert certificate["spec"]["issuerRef"] == {"name": "sjscc-ca", "kind": "Issuer", "group": "cert-manager.io"}
    ca = rendered[("Certificate", "sjscc-ca")]
    assert ca["spec"]["isCA"] is True and rendered[("Issuer", "sjscc-ca")]["spec"]["ca"]["secretName"] == ca["spec"][
        "secretName"]
    device_env = env(rendered[("Deployment", "sjscc-device")])
    assert device_env["SJSCC_EDGE_SERVER_NAME"] in edge_cert["spec"]["dnsNames"]  # what the device checks
    assert "127.0.0.1" in edge_cert["spec"]["ipAddresses"]  # where the edge's own probe connects
    assert {"server auth", "client auth"} <= set(edge_cert["spec"]["usages"])  # the probe presents it as a client
    assert "client auth" in device_cert["spec"]["usages"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="scripts/make-certs.sh needs openssl")
def test_the_certificate_script_writes_the_secrets_the_deployments_mount() -> None:
    result = subprocess.run([str(ROOT / "scripts" / "make-certs.sh"), "--kubernetes"], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    secrets = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(result.stdout) if doc}
    mounted = {secret_mounts(resources()[("Deployment", name)])[TLS_DIR] for name in ("sjscc-edge", "sjscc-device")}
    assert set(secrets) == mounted
    for secret in secrets.values():
        assert kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION
        assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"tls.crt", "tls.key", "ca.crt"}
