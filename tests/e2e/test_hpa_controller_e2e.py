"""The real HPA controller (kube-controller-manager) scales an autoscaled pipeline on vLLM's queue.

The metric path is the one a cluster has, minus Prometheus: the stand-in's ``/metrics`` (a vLLM
``vllm:num_requests_waiting`` gauge the test sets) is served as a ``Pods`` metric by a small
custom-metrics API (``rerank_operator.sandbox.custom_metrics``) that the apiserver's aggregator routes
to through an ExternalName Service. The HPA controller reads it every 15 s and writes the Deployment's
``scale`` subresource; the operator must let those writes stand and follow them in status.

The APIService is cluster-wide: it answers only for this module's namespace and is removed at the end.
"""

from __future__ import annotations

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
from rerank_operator.sandbox import ClusterClient, Sandbox
from rerank_operator.sandbox.custom_metrics import CustomMetricsServer, registration
from rerank_operator.standin.server import StandinServer

NS = f"as-hpa-{uuid.uuid4().hex[:6]}"
NAME = "driven"
METRIC = "vllm:num_requests_waiting"
SERVED = "BAAI/bge-reranker-base"
TIMEOUT = 120  # HPA sync period 15 s, plus scheduling and kwok


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    with StandinServer(served_model=SERVED) as server:
        yield server


@pytest.fixture(scope="module")
def metrics_api(sandbox: Sandbox, standin: StandinServer) -> Iterator[CustomMetricsServer]:
    assert sandbox.pki is not None

    def pods(namespace: str, selector: str) -> list[str]:
        listed = sandbox.kubectl_json("get", "pods", "-n", namespace, *(["-l", selector] if selector else []))
        return [p["metadata"]["name"] for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]

    server = CustomMetricsServer(
        source_url=f"{standin.url}/metrics",
        pods=pods,
        metrics=[METRIC],
        namespaces=[NS],
        cert_file=sandbox.pki.serving_cert,  # the sandbox's throw-away loopback certificate
        key_file=sandbox.pki.serving_key,
    ).start()
    objects = registration(server.port, name=f"custom-metrics-{NS}")
    try:
        sandbox.apply(objects)

        def available() -> bool:
            api = get_json(sandbox, "apiservice", objects[1]["metadata"]["name"]) or {}
            return (condition(api, "Available") or {}).get("status") == "True"

        sandbox.wait_for(available, timeout=60, what="the custom-metrics APIService to be Available")
        yield server
    finally:
        for obj in reversed(objects):
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            ns = obj["metadata"].get("namespace")
            sandbox.kubectl(
                "delete", kind, name, *(["-n", ns] if ns else []), "--ignore-not-found", check=False
            )
        server.stop()


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterClient, sandbox: Sandbox, standin: StandinServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator (``cluster``: the CRDs are installed; ``sandbox``: the same cluster, for its PKI)."""
    sandbox.create_namespace(NS)
    op = OperatorProcess(
        sandbox,
        tmp_path_factory.mktemp("operator-logs"),
        {service_host(NAME, NS): f"127.0.0.1:{standin.port}"},
    )
    op.start()
    try:
        yield op
    finally:
        sandbox.kubectl("delete", "rrp", "--all", "-n", NS, "--wait=false", check=False)
        op.stop()
        sandbox.delete_namespaces(NS)


def state(sandbox: Sandbox) -> tuple[int, dict[str, Any], dict[str, Any]]:
    dep = get_json(sandbox, "deployment", f"{NAME}-reranker", "-n", NS) or {}
    obj = get_json(sandbox, "rrp", NAME, "-n", NS) or {}
    hpa = get_json(sandbox, "hpa", f"{NAME}-reranker", "-n", NS) or {}
    return int((dep.get("spec") or {}).get("replicas") or 0), obj, hpa


def test_the_real_hpa_scales_on_the_standins_queue(
    sandbox: Sandbox, metrics_api: CustomMetricsServer, standin: StandinServer, operator: OperatorProcess
) -> None:
    standin.metrics.set_waiting(0)
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 0}, "scaleDown": {"stabilizationWindowSeconds": 0}}
    autoscaling = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "metric": {"targetAverageValue": 2},
        "behavior": behavior,
    }
    sandbox.apply(pipeline_manifest(NAME, NS, autoscaling=autoscaling))

    def active() -> dict[str, Any] | None:
        replicas, obj, hpa = state(sandbox)
        scaling = condition(hpa, "ScalingActive") or {}
        ready = condition(obj, "Ready") or {}
        return (
            obj
            if scaling.get("status") == "True" and ready.get("status") == "True" and replicas == 1
            else None
        )

    obj = wait_until(active, timeout=TIMEOUT, what="Ready, the HPA reading its metric", operator=operator)
    assert (condition(obj, "Degraded") or {}).get("status") == "False", obj["status"]
    assert "reason" not in obj["status"]["autoscaling"]
    assert any(METRIC in path for path in metrics_api.requests), (
        "the HPA controller never asked for the metric"
    )

    # a queue of 6 per pod against a target of 2: the HPA wants 3 pods (its maximum)
    standin.metrics.set_waiting(6)
    readiness: list[str] = []

    def scaled_up() -> dict[str, Any] | None:
        replicas, obj, _ = state(sandbox)
        readiness.append(str((condition(obj, "Ready") or {}).get("status")))
        st = obj.get("status") or {}
        done = replicas == 3 and st.get("replicas") == 3 and st.get("readyReplicas") == 3
        return obj if done and (st.get("autoscaling") or {}).get("desiredReplicas") == 3 else None

    obj = wait_until(
        scaled_up, timeout=TIMEOUT, what="the HPA scales to 3 and status follows", operator=operator
    )
    assert set(readiness) == {"True"}, f"Ready dropped during a scale-up: {readiness}"
    # the operator's applies never carried the count (the HPA controller's scale write itself records
    # no owner of spec.replicas on 1.37: only kubectl's scale writes did in test_autoscaling_e2e)
    dep = get_json(sandbox, "deployment", f"{NAME}-reranker", "-n", NS, "--show-managed-fields") or {}
    ours = [e for e in dep["metadata"]["managedFields"] if e["manager"] == FIELD_MANAGER]
    assert ours and all("f:replicas" not in (e.get("fieldsV1") or {}).get("f:spec", {}) for e in ours)
    table = sandbox.kubectl("get", "rrp", NAME, "-n", NS).stdout
    columns = printed_columns(table)
    assert (columns["REPLICAS"], columns["DESIRED"], columns["AUTOSCALER"]) == ("3", "3", "3"), table

    # several operator resyncs later the HPA's count still stands
    end = time.monotonic() + 8
    while time.monotonic() < end:
        assert state(sandbox)[0] == 3
        time.sleep(0.5)

    # the queue drains: back to minReplicas
    standin.metrics.set_waiting(0)

    def scaled_down() -> dict[str, Any] | None:
        replicas, obj, _ = state(sandbox)
        st = obj.get("status") or {}
        return obj if replicas == 1 and st.get("replicas") == 1 and st.get("readyReplicas") == 1 else None

    obj = wait_until(scaled_down, timeout=TIMEOUT, what="the HPA scales back to 1", operator=operator)
    assert (condition(obj, "Ready") or {}).get("status") == "True"
