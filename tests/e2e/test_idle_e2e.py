"""Observe, don't poll: on the real control plane, counted by the apiserver's own request counters.

This module runs its own operator with a 10-minute resync and a canary interval of an hour for the
reaction tests, so anything that happens within a few seconds here was caused by a watch event, not
by a timer: a pod turning ready, a hand edit, a deleted Service. The idle test uses a 2 s canary and
counts, at the apiserver, what the operator does between canaries: nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from operator_support import (
    OperatorProcess,
    get_json,
    pipeline_manifest,
    service_host,
    wait_ready,
    wait_until,
)

from rerank_operator.sandbox import ClusterClient
from rerank_operator.standin.server import StandinServer

SUFFIX = uuid.uuid4().hex[:6]
NS = f"idle-{SUFFIX}"
IDLE, REACT = "idle", "react"
SERVED = "BAAI/bge-reranker-base"
TIMEOUT = 60
CANARY_SECONDS = 2
OPERATOR_RESOURCES = ("deployments", "services", "configmaps", "poddisruptionbudgets", "rerankpipelines")
# written by the operator only (the controllers update status with PUT, kubelets/kwok patch pods/nodes)
WRITE_VERBS = ("APPLY", "PATCH", "POST", "CREATE", "DELETE")

SA = "rerank-operator-idle"
READS, WRITES = f"{SA}-{SUFFIX}-reads", f"{SA}-{SUFFIX}-writes"
_SAMPLE = re.compile(r"^apiserver_flowcontrol_dispatched_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def attribution(schema: str, verbs: list[str], precedence: int) -> dict[str, Any]:
    """A FlowSchema for the operator's ServiceAccount alone (the built-in ``workload-high`` level)."""
    subject = {"kind": "ServiceAccount", "serviceAccount": {"name": SA, "namespace": NS}}
    every = {
        "verbs": verbs,
        "apiGroups": ["*"],
        "resources": ["*"],
        "clusterScope": True,
        "namespaces": ["*"],
    }
    rule: dict[str, Any] = {"subjects": [subject], "resourceRules": [every]}
    if "get" in verbs:  # discovery (/api, /apis, /version) is a read too
        rule["nonResourceRules"] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": schema},
        "spec": {
            "priorityLevelConfiguration": {"name": "workload-high"},
            "matchingPrecedence": precedence,
            "rules": [rule],
        },
    }


def operator_requests(cluster: ClusterClient) -> Counter[str]:
    """The operator's requests so far, by FlowSchema: ``READS`` (get, list, watch) and ``WRITES``."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    out: Counter[str] = Counter({READS: 0, WRITES: 0})
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        schema = dict(_LABEL.findall(match["labels"])).get("flow_schema", "")
        if schema in (READS, WRITES):
            out[schema] += int(float(match["value"]))
    return out


def delta(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in (READS, WRITES)}


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    with StandinServer(served_model=SERVED) as server:
        yield server


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterClient, standin: StandinServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    cluster.create_namespace(NS)
    binding = f"{SA}-{SUFFIX}"
    cluster.kubectl("create", "serviceaccount", SA, "-n", NS)
    cluster.kubectl(
        "create", "clusterrolebinding", binding, "--clusterrole=cluster-admin", f"--serviceaccount={NS}:{SA}"
    )
    cluster.apply(
        [
            attribution(READS, ["get", "list", "watch"], 1000),
            attribution(WRITES, ["create", "update", "patch", "delete", "deletecollection"], 1001),
        ]
    )
    target = f"127.0.0.1:{standin.port}"
    overrides = {service_host(n, NS): target for n in (IDLE, REACT)}
    op = OperatorProcess(cluster, tmp_path_factory.mktemp("idle-operator-logs"), overrides)
    op.env["KUBECONFIG"] = str(cluster.service_account_kubeconfig(NS, SA))  # counted by its own FlowSchemas
    op.env["RERANK_OPERATOR_RESYNC_SECONDS"] = "600"  # no resync within these tests
    op.start()
    try:
        yield op
    finally:
        cluster.kubectl("delete", "rrp", "--all", "-n", NS, "--wait=false", check=False)
        op.stop()
        cluster.kubectl("delete", "flowschema", READS, WRITES, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)
        cluster.delete_namespaces(NS)


def ready(cluster: ClusterClient, op: OperatorProcess, name: str) -> dict[str, Any]:
    return wait_ready(cluster, op, name, NS, timeout=TIMEOUT)


def canaries(standin: StandinServer) -> int:
    return sum(1 for r in standin.request_log if r.method == "POST" and r.path.endswith("rerank"))


def events(cluster: ClusterClient, name: str) -> list[dict[str, Any]]:
    listed = get_json(cluster, "events", "-n", NS, "--field-selector", f"involvedObject.name={name}") or {}
    return [e for e in listed.get("items", []) if e.get("involvedObject", {}).get("kind") == "RerankPipeline"]


def test_an_idle_pipeline_makes_no_api_request(
    cluster: ClusterClient, operator: OperatorProcess, standin: StandinServer
) -> None:
    cluster.apply(
        pipeline_manifest(IDLE, NS, probe={"intervalSeconds": CANARY_SECONDS, "failureThreshold": 2})
    )
    ready(cluster, operator, IDLE)
    # a normal creation: one Event, Normal, when the pipeline turned Ready (and what it published)
    told = wait_until(lambda: events(cluster, IDLE), timeout=10, what="the Ready Event", operator=operator)
    assert [(e["type"], e["reason"]) for e in told] == [("Normal", "Ready")], told
    time.sleep(3)  # the passes woken by the operator's own last writes

    before, probes = operator_requests(cluster), canaries(standin)
    assert before[READS] > 0 and before[WRITES] > 0, "the FlowSchemas count the operator"
    time.sleep(3 * CANARY_SECONDS + 1)  # more than two canary intervals
    after = operator_requests(cluster)
    assert delta(before, after) == {READS: 0, WRITES: 0}, "an idle pipeline made API requests"
    assert canaries(standin) - probes >= 2, "the canary kept its schedule"
    assert [(e["type"], e["reason"]) for e in events(cluster, IDLE)] == [("Normal", "Ready")]


def test_pod_ready_hand_edits_and_deleted_children_are_handled_without_a_resync(
    cluster: ClusterClient, operator: OperatorProcess, standin: StandinServer
) -> None:
    # canary every hour, resync every 10 minutes: only watch events can drive what follows
    cluster.apply(pipeline_manifest(REACT, NS, probe={"intervalSeconds": 3600, "failureThreshold": 2}))
    obj = ready(cluster, operator, REACT)  # the pod turned ready after the first pass: a watch event
    assert obj["status"]["readyReplicas"] == 1
    deployment = f"{REACT}-reranker"

    # a hand edit of the Deployment (a value the operator sets) is restored
    live = get_json(cluster, "deployment", deployment, "-n", NS)
    assert live is not None
    budget = live["spec"]["progressDeadlineSeconds"]
    patch = '{"spec":{"progressDeadlineSeconds":7}}'
    cluster.kubectl("patch", "deployment", deployment, "-n", NS, "--type=merge", "-p", patch)
    wait_until(
        lambda: (
            (get_json(cluster, "deployment", deployment, "-n", NS) or {})
            .get("spec", {})
            .get("progressDeadlineSeconds")
            == budget
        ),
        timeout=15,
        what="the Deployment edit restored",
        operator=operator,
    )

    # a hand edit of the published ConfigMap is restored
    cm = f"{REACT}-ranker"
    cluster.kubectl("patch", "configmap", cm, "-n", NS, "--type=merge", "-p", '{"data":{"ready":"false"}}')
    wait_until(
        lambda: (get_json(cluster, "configmap", cm, "-n", NS) or {}).get("data", {}).get("ready") == "true",
        timeout=15,
        what="the published ConfigMap restored",
        operator=operator,
    )

    # a deleted Service is recreated
    old = get_json(cluster, "service", deployment, "-n", NS)
    assert old is not None
    cluster.kubectl("delete", "service", deployment, "-n", NS)
    recreated = wait_until(
        lambda: (
            (svc := get_json(cluster, "service", deployment, "-n", NS))
            and svc["metadata"]["uid"] != old["metadata"]["uid"]
            and svc
        ),
        timeout=15,
        what="the Service recreated",
        operator=operator,
    )
    assert [o["kind"] for o in recreated["metadata"]["ownerReferences"]] == ["RerankPipeline"]


def test_a_restart_writes_nothing_and_republishes_nothing(
    cluster: ClusterClient, operator: OperatorProcess, standin: StandinServer
) -> None:
    ready(cluster, operator, IDLE)
    time.sleep(2)
    cm_before = get_json(cluster, "configmap", f"{IDLE}-ranker", "-n", NS)
    assert cm_before is not None
    operator.stop()
    before, probes = operator_requests(cluster), canaries(standin)
    operator.start()
    wait_until(
        lambda: canaries(standin) >= probes + 2,
        timeout=TIMEOUT,
        what="canaries after the restart",
        operator=operator,
    )
    changes = delta(before, operator_requests(cluster))
    assert changes[READS] > 0, "the restarted operator listed and watched (its memory)"
    assert changes[WRITES] == 0, f"the restarted operator wrote: {json.dumps(changes)}"
    cm_after = get_json(cluster, "configmap", f"{IDLE}-ranker", "-n", NS)
    assert cm_after is not None
    assert cm_after["metadata"]["resourceVersion"] == cm_before["metadata"]["resourceVersion"]
