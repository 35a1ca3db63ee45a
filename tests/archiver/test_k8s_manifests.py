"""Structural checks of deploy/k8s: the fields each kind needs, and that the manifests agree
with each other and with the layout `python -m archiver export-kserve` writes."""

from pathlib import Path

import pytest
import yaml

from operations.kserve import CLUSTER_SETTINGS, CONFIG_PATH, MODEL_STORE, MOUNT

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
IMAGE = "pytorch/torchserve:0.12.0-cpu"


def load_all() -> dict:
    found = {}
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.fixture(scope="module")
def docs() -> dict:
    return load_all()


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def assert_serves_the_export(container):
    assert container["image"] == IMAGE
    args = container["args"]
    assert f"--model-store={MOUNT}/{MODEL_STORE}" in args
    assert f"--ts-config={MOUNT}/{CONFIG_PATH}" in args
    assert "--foreground" in args  # the container's main process must be TorchServe itself
    assert CLUSTER_SETTINGS["model_store"] == f"{MOUNT}/{MODEL_STORE}"
    ports = {p["containerPort"] for p in container["ports"]}
    assert port_of(CLUSTER_SETTINGS["inference_address"]) in ports


def test_every_kind_is_there(docs):
    assert {kind for kind, _ in docs} >= {
        "ServingRuntime",
        "InferenceService",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodMonitor",
        "ConfigMap",
    }


def test_the_serving_runtime_runs_torchserve_on_the_export(docs):
    runtime = docs[("ServingRuntime", "imagelab-torchserve")]
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"  # KServe's name for the model container
    assert_serves_the_export(container)
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": 8080}
    assert runtime["spec"]["annotations"]["prometheus.kserve.io/port"] == str(
        port_of(CLUSTER_SETTINGS["metrics_address"])
    )


def test_the_inference_service_uses_the_runtime(docs):
    runtime = docs[("ServingRuntime", "imagelab-torchserve")]
    model = docs[("InferenceService", "imagelab")]["spec"]["predictor"]["model"]
    assert model["runtime"] == "imagelab-torchserve"
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["storageUri"].startswith(("s3://", "gs://", "pvc://", "https://"))


def test_the_deployment_serves_the_same_export_with_probes(docs):
    deployment = docs[("Deployment", "imagelab")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert_serves_the_export(container)
    names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/ping" and names[get["port"]] == 8080, probe
    assert container["livenessProbe"]["failureThreshold"] * container["livenessProbe"]["periodSeconds"] >= 60
    (init,) = pod["initContainers"]
    storage_uri = docs[("InferenceService", "imagelab")]["spec"]["predictor"]["model"]["storageUri"]
    assert init["args"] == [storage_uri, MOUNT]
    mounts = {m["mountPath"] for m in container["volumeMounts"]} & {m["mountPath"] for m in init["volumeMounts"]}
    assert mounts == {MOUNT}
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_service_reaches_the_pods_named_ports(docs):
    pod = docs[("Deployment", "imagelab")]["spec"]["template"]
    service = docs[("Service", "imagelab")]["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    names = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= names


def test_the_hpa_scales_the_deployment_on_the_adapters_queue_latency(docs):
    hpa = docs[("HorizontalPodAutoscaler", "imagelab")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "imagelab"}
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    (metric,) = hpa["metrics"]
    rules = yaml.safe_load(docs[("ConfigMap", "imagelab-adapter-rules")]["data"]["config.yaml"])["rules"]
    (rule,) = [r for r in rules if r["name"]["as"] == metric["pods"]["metric"]["name"]]
    assert metric["type"] == "Pods"
    assert "ts_queue_latency_microseconds" in rule["seriesQuery"]
    assert "ts_queue_latency_microseconds" in rule["metricsQuery"] and "rate(" in rule["metricsQuery"]


def test_the_network_policy_and_pod_monitor_select_the_pods(docs):
    labels = docs[("Deployment", "imagelab")]["spec"]["template"]["metadata"]["labels"]
    policy = docs[("NetworkPolicy", "imagelab")]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    open_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert port_of(CLUSTER_SETTINGS["management_address"]) not in open_ports
    assert CLUSTER_SETTINGS["management_address"].startswith("http://127.0.0.1:")
    monitor = docs[("PodMonitor", "imagelab")]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["podMetricsEndpoints"][0]["port"] == "metrics"
