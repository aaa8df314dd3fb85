"""Autoscaling on the real control plane: server-side apply field ownership of ``spec.replicas``, the
real HPA controller (kube-controller-manager) bound to the Deployment, writes through the
Deployment's ``scale`` subresource as an HPA makes them, and the add-on children (ScaledObject,
PodMonitor) against CRDs this test creates itself.

The operator runs with a 2 s resync, so every wait below spans several passes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from operator_support import (
    OperatorProcess,
    condition,
    get_json,
    pipeline_manifest,
    printed_columns,
    service_host,
    wait_until,
)

from rerank_operator import FIELD_MANAGER
from rerank_operator.reconcile.replicas import HANDOVER_MANAGER
from rerank_operator.sandbox import ClusterClient
from rerank_operator.standin.server import StandinServer

SUFFIX = uuid.uuid4().hex[:6]
NS = {key: f"as-{key}-{SUFFIX}" for key in ("handover", "addons")}
PIPELINES = [("scaled", NS["handover"]), ("keda", NS["addons"]), ("monitored", NS["addons"])]
SERVED = "BAAI/bge-reranker-base"
TIMEOUT = 90
# A resync is 2 s (OperatorProcess): this covers several passes and resyncs.
SEVERAL_RESYNCS = 8.0


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    with StandinServer(served_model=SERVED) as server:
        yield server


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterClient, standin: StandinServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    for ns in NS.values():
        cluster.create_namespace(ns)
    overrides = {service_host(name, ns): f"127.0.0.1:{standin.port}" for name, ns in PIPELINES}
    op = OperatorProcess(cluster, tmp_path_factory.mktemp("operator-logs"), overrides)
    op.start()
    try:
        yield op
    finally:
        for ns in NS.values():
            cluster.kubectl("delete", "rrp", "--all", "-n", ns, "--wait=false", check=False)
        op.stop()
        cluster.delete_namespaces(*NS.values())


def rrp(cluster: ClusterClient, name: str, ns: str) -> dict[str, Any] | None:
    return get_json(cluster, "rrp", name, "-n", ns)


def deployment(cluster: ClusterClient, name: str, ns: str) -> dict[str, Any]:
    # kubectl leaves managedFields out unless asked: the tests read who owns spec.replicas
    dep = get_json(cluster, "deployment", f"{name}-reranker", "-n", ns, "--show-managed-fields")
    assert dep is not None, f"deployment {ns}/{name}-reranker missing"
    return dep


def replicas_owners(dep: dict[str, Any]) -> set[str]:
    """Managers whose managedFields entry owns spec.replicas (with the subresource they wrote through)."""
    out = set()
    for entry in dep["metadata"].get("managedFields") or []:
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            sub = entry.get("subresource")
            out.add(f"{entry['manager']}/{entry['operation']}" + (f"/{sub}" if sub else ""))
    return out


def patch_spec(cluster: ClusterClient, name: str, ns: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("patch", "rrp", name, "-n", ns, "--type=merge", "-p", json.dumps({"spec": spec}))


def scale_like_an_hpa(cluster: ClusterClient, name: str, ns: str, replicas: int) -> None:
    """What the HPA controller does: read the Deployment's Scale, PUT it back with a new count."""
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}-reranker/scale"
    scale = json.loads(cluster.kubectl("get", "--raw", path).stdout)
    scale["spec"]["replicas"] = replicas
    cluster.kubectl("replace", "--raw", f"{path}?fieldManager=e2e-hpa", "-f", "-", input=json.dumps(scale))


def ready_status(cluster: ClusterClient, name: str, ns: str) -> dict[str, Any] | None:
    obj = rrp(cluster, name, ns)
    c = condition(obj, "Ready")
    return obj if obj and c and c["status"] == "True" else None


class Watch:
    """Samples the Deployment's spec.replicas and the pipeline's Ready until told to stop checking:
    a reset to the default (1) between two waits would show up here even if it was undone."""

    def __init__(self, cluster: ClusterClient, name: str, ns: str) -> None:
        self.cluster, self.name, self.ns = cluster, name, ns
        self.replicas: list[int] = []
        self.ready: list[str] = []

    def sample(self) -> None:
        self.replicas.append(int(deployment(self.cluster, self.name, self.ns)["spec"]["replicas"]))
        self.ready.append(
            str((condition(rrp(self.cluster, self.name, self.ns), "Ready") or {}).get("status"))
        )

    def hold(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            time.sleep(0.25)


def test_scale_survives_the_operator(cluster: ClusterClient, operator: OperatorProcess) -> None:
    """Turning autoscaling on keeps the live count; the real HPA binds to the Deployment and reports
    it cannot read its metric (Degraded, its own reason); a write through the scale subresource stands
    through passes, resyncs and an operator restart, with status following it; turning autoscaling
    off restores spec.replicas."""
    ns, name = NS["handover"], "scaled"
    cluster.apply(pipeline_manifest(name, ns, replicas=3))
    wait_until(
        lambda: (obj := ready_status(cluster, name, ns)) and obj["status"].get("readyReplicas") == 3,
        timeout=TIMEOUT,
        what="3 ready replicas",
        operator=operator,
    )
    # owned by the operator alone: through its create (an Update entry), or an apply since
    assert replicas_owners(deployment(cluster, name, ns)) <= {
        f"{FIELD_MANAGER}/Update",
        f"{FIELD_MANAGER}/Apply",
    }
    assert replicas_owners(deployment(cluster, name, ns))
    pods_before = {p["metadata"]["name"] for p in get_json(cluster, "pods", "-n", ns)["items"]}

    # 1. autoscaling on: the count stays 3 at every sample, no pod goes away
    patch_spec(cluster, name, ns, {"autoscaling": {"minReplicas": 1, "maxReplicas": 4}})
    watch = Watch(cluster, name, ns)

    def hpa_bound() -> dict[str, Any] | None:
        watch.sample()
        hpa = get_json(cluster, "hpa", f"{name}-reranker", "-n", ns)
        st = (hpa or {}).get("status") or {}
        able = condition(hpa, "AbleToScale") or {}
        return hpa if st.get("currentReplicas") == 3 and able.get("status") == "True" else None

    hpa = wait_until(hpa_bound, timeout=TIMEOUT, what="the HPA controller reads the Deployment's scale")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{name}-reranker",
    }
    assert [o["kind"] for o in hpa["metadata"]["ownerReferences"]] == ["RerankPipeline"]
    watch.hold(SEVERAL_RESYNCS)
    assert set(watch.replicas) == {3}, f"spec.replicas was reset while handing it over: {watch.replicas}"
    dep = deployment(cluster, name, ns)
    owners = replicas_owners(dep)
    assert f"{FIELD_MANAGER}/Apply" not in owners, owners  # the operator's applies no longer carry it
    assert f"{FIELD_MANAGER}/Update" not in owners, owners  # nor its create-time entry (folded first)
    assert f"{HANDOVER_MANAGER}/Apply" in owners, owners
    pods_now = {p["metadata"]["name"] for p in get_json(cluster, "pods", "-n", ns)["items"]}
    assert pods_before <= pods_now, "a pod was removed during the handover"

    # 2. there is no custom-metrics API here: the HPA says so, the pipeline is Degraded with that reason
    def degraded() -> dict[str, Any] | None:
        hpa = get_json(cluster, "hpa", f"{name}-reranker", "-n", ns)
        active = condition(hpa, "ScalingActive") or {}
        c = condition(rrp(cluster, name, ns), "Degraded") or {}
        if (
            active.get("status") == "False"
            and c.get("status") == "True"
            and c.get("reason") == active.get("reason")
        ):
            return c
        return None

    c = wait_until(degraded, timeout=TIMEOUT, what="Degraded with the HPA's own reason", operator=operator)
    assert c["reason"].startswith("FailedGet"), c
    obj = rrp(cluster, name, ns)
    assert obj is not None
    assert condition(obj, "Ready")["status"] == "True"
    assert obj["status"]["autoscaling"]["reason"] == c["reason"]

    # 3. an HPA-style write through the scale subresource stands, and status follows it
    scale_like_an_hpa(cluster, name, ns, 2)

    def followed() -> dict[str, Any] | None:
        obj = rrp(cluster, name, ns)
        st = (obj or {}).get("status") or {}
        return obj if st.get("replicas") == 2 and st.get("readyReplicas") == 2 else None

    wait_until(followed, timeout=TIMEOUT, what="status.replicas follows the scale to 2", operator=operator)
    watch = Watch(cluster, name, ns)
    watch.hold(SEVERAL_RESYNCS)
    assert set(watch.replicas) == {2}, watch.replicas
    assert set(watch.ready) == {"True"}, watch.ready
    assert "e2e-hpa/Update/scale" in replicas_owners(deployment(cluster, name, ns))

    operator.stop()  # a new process, with nothing in memory, must not take the count back either
    operator.start()
    watch = Watch(cluster, name, ns)
    watch.hold(SEVERAL_RESYNCS)
    assert set(watch.replicas) == {2}, watch.replicas
    table = cluster.kubectl("get", "rrp", name, "-n", ns).stdout
    columns = printed_columns(table)
    # ready and desired follow the scale; the HPA computed no count of its own (it has no metrics),
    # so AUTOSCALER is empty rather than the HPA's placeholder 0
    assert (columns["REPLICAS"], columns["DESIRED"], columns["AUTOSCALER"]) == ("2", "2", ""), table

    # 4. autoscaling off: spec.replicas applies again and the HPA goes
    patch_spec(cluster, name, ns, {"autoscaling": None, "replicas": 3})

    def handed_back() -> dict[str, Any] | None:
        dep = deployment(cluster, name, ns)
        obj = rrp(cluster, name, ns)
        gone = get_json(cluster, "hpa", f"{name}-reranker", "-n", ns) is None
        st = (obj or {}).get("status") or {}
        ok = (
            dep["spec"]["replicas"] == 3 and gone and "autoscaling" not in st and st.get("readyReplicas") == 3
        )
        return obj if ok else None

    wait_until(
        handed_back, timeout=TIMEOUT, what="spec.replicas restored and the HPA deleted", operator=operator
    )
    assert f"{FIELD_MANAGER}/Apply" in replicas_owners(deployment(cluster, name, ns))
    watch = Watch(cluster, name, ns)
    watch.hold(4)
    assert set(watch.replicas) == {3}, watch.replicas


def minimal_crd(group: str, version: str, kind: str, plural: str, required: list[str]) -> dict[str, Any]:
    """A stand-in CRD for an add-on the sandbox cannot run (KEDA, prometheus-operator): our own minimal
    schema, requiring the spec fields the operator's children must carry, everything else preserved."""
    spec_schema: dict[str, Any] = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "required": required,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": spec_schema,
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


ADDON_CRDS = [
    minimal_crd("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects", ["scaleTargetRef", "triggers"]),
    minimal_crd(
        "monitoring.coreos.com", "v1", "PodMonitor", "podmonitors", ["selector", "podMetricsEndpoints"]
    ),
]


@pytest.fixture
def addon_crds(cluster: ClusterClient) -> Iterator[None]:
    yield
    for crd in ADDON_CRDS:
        cluster.kubectl(
            "delete", "crd", crd["metadata"]["name"], "--ignore-not-found", "--wait=false", check=False
        )


def test_keda_and_pod_monitor_only_where_their_api_exists(
    cluster: ClusterClient, operator: OperatorProcess, addon_crds: None
) -> None:
    ns = NS["addons"]
    keda = {
        "provider": "keda",
        "minReplicas": 1,
        "maxReplicas": 2,
        "keda": {"serverAddress": "http://prom.monitoring.svc:9090"},
    }
    cluster.apply(pipeline_manifest("keda", ns, autoscaling=keda))
    cluster.apply(pipeline_manifest("monitored", ns, monitoring={"podMonitor": {"enabled": True}}))

    # neither API is served: status says so, the pipelines still serve at their size
    def reported_missing() -> bool:
        k, m = rrp(cluster, "keda", ns), rrp(cluster, "monitored", ns)
        degraded = condition(k, "Degraded") or {}
        monitor = ((m or {}).get("status") or {}).get("podMonitor") or {}
        return (
            degraded.get("reason") == "AutoscalerNotInstalled"
            and monitor.get("state") == "NotInstalled"
            and (condition(m, "Ready") or {}).get("status") == "True"
        )

    wait_until(reported_missing, timeout=TIMEOUT, what="NotInstalled in status", operator=operator)
    message = (condition(rrp(cluster, "keda", ns), "Degraded") or {})["message"]
    assert "KEDA is not installed" in message and "scaledobjects" in message
    # created without a count: the apiserver defaulted it, and our create's Update entry owns the
    # default until the first apply, which hands it over first (test_scale_survives_the_operator);
    # no apply of ours ever carries a count
    owners = replicas_owners(deployment(cluster, "keda", ns))
    assert f"{FIELD_MANAGER}/Apply" not in owners, owners

    # the add-ons are installed; a new operator process discovers them (discovery is cached)
    for crd in ADDON_CRDS:
        cluster.apply(crd)
        cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s"
        )
    operator.stop()
    operator.start()

    def applied() -> tuple[dict[str, Any], dict[str, Any]] | None:
        so = get_json(cluster, "scaledobjects.keda.sh", "keda-reranker", "-n", ns)
        pm = get_json(cluster, "podmonitors.monitoring.coreos.com", "monitored-reranker", "-n", ns)
        m = rrp(cluster, "monitored", ns)
        state = (((m or {}).get("status") or {}).get("podMonitor") or {}).get("state")
        k = condition(rrp(cluster, "keda", ns), "Degraded") or {}
        return (so, pm) if so and pm and state == "Applied" and k.get("status") == "False" else None

    so, pm = wait_until(
        applied, timeout=TIMEOUT, what="ScaledObject and PodMonitor applied", operator=operator
    )
    assert so["spec"]["scaleTargetRef"]["name"] == "keda-reranker"
    assert so["spec"]["triggers"][0]["metadata"]["serverAddress"] == "http://prom.monitoring.svc:9090"
    assert [o["kind"] for o in so["metadata"]["ownerReferences"]] == ["RerankPipeline"]
    assert pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "monitored"
    assert [o["kind"] for o in pm["metadata"]["ownerReferences"]] == ["RerankPipeline"]

    # switched off again: the PodMonitor goes, and so does the ScaledObject with autoscaling
    patch_spec(cluster, "monitored", ns, {"monitoring": {"podMonitor": {"enabled": False}}})
    patch_spec(cluster, "keda", ns, {"autoscaling": None})

    def removed() -> bool:
        so = get_json(cluster, "scaledobjects.keda.sh", "keda-reranker", "-n", ns)
        pm = get_json(cluster, "podmonitors.monitoring.coreos.com", "monitored-reranker", "-n", ns)
        m_status = (rrp(cluster, "monitored", ns) or {}).get("status") or {}
        k_status = (rrp(cluster, "keda", ns) or {}).get("status") or {}
        return so is None and pm is None and "podMonitor" not in m_status and "autoscaling" not in k_status

    wait_until(removed, timeout=TIMEOUT, what="the add-on children deleted", operator=operator)
    assert deployment(cluster, "keda", ns)["spec"]["replicas"] == 1  # spec.replicas (default 1) again
