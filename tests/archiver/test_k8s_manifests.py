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
    assert container["command"][-1] == "torchserve"  # exec'd by the export check before it
    assert_probes(container, {p["name"]: p["containerPort"] for p in container["ports"]})
    assert container["livenessProbe"]["initialDelaySeconds"] >= 600  # Knative takes no startupProbe
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
    assert_probes(container, {p["name"]: p["containerPort"] for p in container["ports"]})
    fetch, verify = pod["initContainers"]
    storage_uri = docs[("InferenceService", "imagelab")]["spec"]["predictor"]["model"]["storageUri"]
    assert fetch["args"] == [storage_uri, MOUNT]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[MOUNT] == {m["mountPath"]: m["name"] for m in fetch["volumeMounts"]}[MOUNT]
    assert verify["command"][-1] == MOUNT  # runs after the fetch, on what it fetched
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def assert_probes(container, named_ports: dict):
    """Liveness on the port only (a reloading worker must not get the pod killed); readiness
    on /ping (every model has its workers); a startup probe, if any, on the port too."""
    inference = port_of(CLUSTER_SETTINGS["inference_address"])
    resolve = lambda port: named_ports.get(port, port)  # noqa: E731
    assert set(container["livenessProbe"]) & {"httpGet", "exec", "grpc"} == set()
    assert resolve(container["livenessProbe"]["tcpSocket"]["port"]) == inference
    assert container["livenessProbe"]["failureThreshold"] * container["livenessProbe"]["periodSeconds"] >= 60
    readiness = container["readinessProbe"]["httpGet"]
    assert readiness["path"] == "/ping" and resolve(readiness["port"]) == inference
    if "startupProbe" in container:
        assert resolve(container["startupProbe"]["tcpSocket"]["port"]) == inference
        assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 600


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


def test_the_pod_monitor_selects_the_deployments_pods(docs):
    labels = docs[("Deployment", "imagelab")]["spec"]["template"]["metadata"]["labels"]
    monitor = docs[("PodMonitor", "imagelab")]["spec"]
    assert selects(monitor["selector"], labels)
    assert monitor["podMetricsEndpoints"][0]["port"] == "metrics"


# -- who can reach the pods actually deployed ---------------------------------------------------

KNATIVE_POD_PORTS = {8012, 8013, 9090}  # queue-proxy: HTTP/1, HTTP/2, the autoscaler's metrics
ISTIO_POD_PORTS = {15020}  # the sidecar's merged Prometheus endpoint
POLICY_KINDS = ("NetworkPolicy", "PeerAuthentication", "RequestAuthentication", "AuthorizationPolicy")


def selects(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against a pod's labels."""
    if not selector:
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def predictor_pod_labels(docs) -> dict:
    """The labels KServe puts on an InferenceService's predictor pods: the ServingRuntime's,
    the InferenceService's, the predictor's, then serving.kserve.io/inferenceservice=<name>
    and component=predictor (KServe's predictor buildObjectMeta, later ones winning)."""
    isvc = docs[("InferenceService", "imagelab")]
    predictor = isvc["spec"]["predictor"]
    runtime = docs[("ServingRuntime", predictor["model"]["runtime"])]
    return {
        **runtime["spec"].get("labels", {}),
        **isvc["metadata"].get("labels", {}),
        **predictor.get("labels", {}),
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
        "component": "predictor",
    }


def deployed_pods(docs) -> dict:
    """name -> (pod labels, ports that accept traffic) for every pod the manifests create."""
    deployment = docs[("Deployment", "imagelab")]["spec"]["template"]
    runtime = docs[("ServingRuntime", "imagelab-torchserve")]["spec"]
    return {
        "deployment": (
            deployment["metadata"]["labels"],
            {p["containerPort"] for p in deployment["spec"]["containers"][0]["ports"]},
        ),
        "kserve-predictor": (
            predictor_pod_labels(docs),
            # Knative allows one container port; the metrics port is named by KServe's annotation.
            {p["containerPort"] for p in runtime["containers"][0]["ports"]}
            | {int(runtime["annotations"]["prometheus.kserve.io/port"])}
            | KNATIVE_POD_PORTS
            | ISTIO_POD_PORTS,
        ),
    }


def policies(docs, kind: str) -> list:
    return [doc for (k, _), doc in docs.items() if k == kind]


def pod_selector(policy: dict) -> dict:
    spec = policy["spec"]
    return spec["podSelector"] if policy["kind"] == "NetworkPolicy" else spec["selector"]


def test_the_predictor_labels_are_kserves_not_the_deployments(docs):
    labels = predictor_pod_labels(docs)
    assert labels["serving.kserve.io/inferenceservice"] == "imagelab" and labels["component"] == "predictor"
    # The old only NetworkPolicy selected this label, which KServe does not put on its pods.
    assert "app.kubernetes.io/name" not in labels


@pytest.mark.parametrize("pod", ["deployment", "kserve-predictor"])
def test_every_deployed_pod_is_default_denied_both_ways(docs, pod):
    labels, _ = deployed_pods(docs)[pod]
    deny = [
        p
        for p in policies(docs, "NetworkPolicy")
        if selects(p["spec"]["podSelector"], labels)
        and {"Ingress", "Egress"} <= set(p["spec"]["policyTypes"])
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, f"no default-deny NetworkPolicy selects the {pod} pods ({labels})"
    egress = [
        p for p in policies(docs, "NetworkPolicy") if selects(pod_selector(p), labels) and p["spec"].get("egress")
    ]
    assert egress, f"no egress policy for the {pod} pods"
    for policy in egress:
        for rule in policy["spec"]["egress"]:
            assert rule.get("to") and rule.get("ports"), f"{policy['metadata']['name']}: an egress rule open to all"


@pytest.mark.parametrize("pod", ["deployment", "kserve-predictor"])
def test_ingress_rules_name_pod_and_namespace_together_and_open_only_served_ports(docs, pod):
    labels, served_ports = deployed_pods(docs)[pod]
    management = port_of(CLUSTER_SETTINGS["management_address"])
    rules = [
        (p["metadata"]["name"], rule)
        for p in policies(docs, "NetworkPolicy")
        if selects(p["spec"]["podSelector"], labels)
        for rule in p["spec"].get("ingress", [])
    ]
    assert rules, f"nothing may reach the {pod} pods"
    for name, rule in rules:
        assert rule.get("from") and rule.get("ports"), f"{name}: a rule open to every source or port"
        for source in rule["from"]:
            # Both in one entry: a pod must match both (in two entries either one would do).
            assert {"namespaceSelector", "podSelector"} <= set(source), f"{name}: {source}"
            assert source["namespaceSelector"] and source["podSelector"], f"{name}: an empty selector matches all"
        ports = {p["port"] for p in rule["ports"]}
        assert ports <= served_ports, f"{name}: {ports - served_ports} is not a port of the {pod} pods"
        assert management not in ports


def test_every_policy_selects_a_deployed_pod(docs):
    pods = deployed_pods(docs)
    for kind in POLICY_KINDS:
        for policy in policies(docs, kind):
            assert any(selects(pod_selector(policy), labels) for labels, _ in pods.values()), (
                f"{kind} {policy['metadata']['name']} selects no pod the manifests create"
            )


def test_the_predictor_pods_take_only_authenticated_mesh_traffic(docs):
    labels = predictor_pod_labels(docs)
    isvc = docs[("InferenceService", "imagelab")]
    assert isvc["metadata"]["annotations"]["sidecar.istio.io/inject"] == "true"
    (mtls,) = [p for p in policies(docs, "PeerAuthentication") if selects(pod_selector(p), labels)]
    assert mtls["spec"]["mtls"]["mode"] == "STRICT"
    (jwt,) = [p for p in policies(docs, "RequestAuthentication") if selects(pod_selector(p), labels)]
    issuers = {rule["issuer"] for rule in jwt["spec"]["jwtRules"]}
    (allow,) = [p for p in policies(docs, "AuthorizationPolicy") if selects(pod_selector(p), labels)]
    assert allow["spec"]["action"] == "ALLOW"  # with rules: whatever no rule matches is denied
    inference_rules = [
        r for r in allow["spec"]["rules"] if any("/predictions/*" in o["operation"]["paths"] for o in r["to"])
    ]
    assert inference_rules
    for rule in inference_rules:
        principals = [p for s in rule["from"] for p in s["source"].get("requestPrincipals", [])]
        assert principals and all(p.rsplit("/", 1)[0] in issuers for p in principals), principals
    for rule in allow["spec"]["rules"]:
        unauthenticated = not any(s["source"].get("requestPrincipals") for s in rule["from"])
        if unauthenticated:  # system callers: health and metrics paths only
            paths = {p for o in rule["to"] for p in o["operation"]["paths"]}
            assert paths <= {"/healthz", "/metrics"}, paths


# -- the pods themselves -------------------------------------------------------------------------


def pod_specs(docs) -> dict:
    """name -> (pod-level spec, containers) for the Deployment and the KServe predictor."""
    deployment = docs[("Deployment", "imagelab")]["spec"]["template"]["spec"]
    runtime = docs[("ServingRuntime", "imagelab-torchserve")]["spec"]
    predictor = docs[("InferenceService", "imagelab")]["spec"]["predictor"]
    return {
        "deployment": (deployment, deployment["initContainers"] + deployment["containers"]),
        "kserve-predictor": (predictor, runtime["containers"]),
    }


@pytest.mark.parametrize("pod", ["deployment", "kserve-predictor"])
def test_the_pods_run_restricted(docs, pod):
    spec, containers = pod_specs(docs)[pod]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in containers:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        seccomp = context.get("seccompProfile") or spec["securityContext"].get("seccompProfile")
        assert seccomp == {"type": "RuntimeDefault"}, container["name"]


@pytest.mark.parametrize("pod", ["deployment", "kserve-predictor"])
def test_the_pods_check_the_export_against_the_pinned_sums(docs, pod):
    _, containers = pod_specs(docs)[pod]
    (check,) = [c for c in containers if "/etc/imagelab/verify.sh" in c.get("command", [])]
    assert check["command"][:3] == ["bash", "/etc/imagelab/verify.sh", MOUNT]
    (pinned,) = [e for e in check["env"] if e["name"] == "IMAGELAB_EXPORT_SUMS_SHA256"]
    assert pinned["valueFrom"]["configMapKeyRef"] == {"name": "imagelab-export-verify", "key": "sums-sha256"}
    config_map = docs[("ConfigMap", "imagelab-export-verify")]["data"]
    assert {"verify.sh", "sums-sha256"} <= set(config_map)
