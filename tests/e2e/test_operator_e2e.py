"""The real operator process against the real control plane with kwok GPU nodes.

One test per scenario of the control-plane issue: apply with kubectl, too few GPUs, spec edits,
lifecycle (drift, GC, cross-namespace cleanup), admission of invalid objects, status pruning and an
operator restart mid-reconcile.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import (
    REPO,
    OperatorProcess,
    condition,
    get_json,
    grant_manifest,
    names_of,
    pipeline_manifest,
    service_host,
    wait_until,
)
from operator_support import wait_ready as support_wait_ready

from rerank_operator.models import RerankPipeline
from rerank_operator.render import revision
from rerank_operator.sandbox import ClusterClient
from rerank_operator.standin.server import StandinServer

SUFFIX = uuid.uuid4().hex[:6]
NS = {
    key: f"op-{key}-{SUFFIX}"
    for key in ("apply", "gpus", "edit", "life", "extra", "status", "restart", "lite")
}
# (pipeline name, namespace) pairs the operator will probe through the stand-in
PIPELINES = [
    ("bge-base", NS["apply"]),
    ("greedy", NS["gpus"]),
    ("edit", NS["edit"]),
    ("life", NS["life"]),
    ("keep", NS["status"]),
    ("restart", NS["restart"]),
    ("lite", NS["lite"]),
]
SERVED = "BAAI/bge-reranker-base"
READY_TIMEOUT = 90


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
    target = f"127.0.0.1:{standin.port}"
    overrides = {service_host(name, ns): target for name, ns in PIPELINES}
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


def wait_ready(cluster: ClusterClient, op: OperatorProcess, name: str, ns: str) -> dict[str, Any]:
    return support_wait_ready(
        cluster, op, name, ns, timeout=READY_TIMEOUT, describe=lambda: workload_summary(cluster, name, ns)
    )


def workload_summary(cluster: ClusterClient, name: str, ns: str) -> str:
    """Pods and nodes as the control plane sees them, for timeouts that are not the operator's fault."""
    lines = []
    pods = get_json(cluster, "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={name}") or {}
    for pod in pods.get("items", []):
        st = pod.get("status") or {}
        conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
        lines.append(
            f"pod {pod['metadata']['name']} node={pod['spec'].get('nodeName')} {st.get('phase')} {conds}"
        )
    for node in (get_json(cluster, "nodes") or {}).get("items", []):
        ready = condition(node, "Ready") or {}
        taints = [t["key"] for t in node["spec"].get("taints", [])]
        lines.append(f"node {node['metadata']['name']} Ready={ready.get('status')} taints={taints}")
    return "\n".join(lines)


def published(cluster: ClusterClient, name: str, ns: str) -> dict[str, str] | None:
    cm = get_json(cluster, "configmap", name, "-n", ns)
    return None if cm is None else dict(cm.get("data") or {})


def test_apply_example_with_kubectl(cluster: ClusterClient, operator: OperatorProcess) -> None:
    ns = NS["apply"]
    example = yaml.safe_load((REPO / "examples" / "minimal.yaml").read_text())
    example["metadata"]["namespace"] = ns
    example["spec"]["probe"] = {"intervalSeconds": 2}
    cluster.apply(example)

    obj = wait_ready(cluster, operator, "bge-base", ns)
    uid = obj["metadata"]["uid"]
    rev = revision(RerankPipeline.from_body(example))  # the default rollout: BlueGreen
    assert obj["status"]["revisions"]["active"] == rev
    for kind, name in (
        ("deployment", f"bge-base-{rev}"),
        ("service", "bge-base-reranker"),  # the endpoint, selecting that revision
        ("configmap", "bge-base-ranker"),
    ):
        child = get_json(cluster, kind, name, "-n", ns)
        assert child is not None, f"{kind}/{name} missing"
        owners = child["metadata"].get("ownerReferences") or []
        assert [o["uid"] for o in owners] == [uid], f"{kind}/{name} not owned by the pipeline"
        labels = child["metadata"]["labels"]
        for key in ("name", "instance", "component", "managed-by"):
            assert f"app.kubernetes.io/{key}" in labels

    # a first revision takes the stable Service at once: no Service of its own (that is for candidates)
    assert get_json(cluster, "service", f"bge-base-{rev}", "-n", ns) is None
    pods = get_json(cluster, "pods", "-n", ns, "-l", "app.kubernetes.io/instance=bge-base")
    assert pods is not None and pods["items"], "no reranker pods"
    nodes = {n["metadata"]["name"]: n for n in (get_json(cluster, "nodes") or {}).get("items", [])}
    for pod in pods["items"]:
        node = nodes[pod["spec"]["nodeName"]]
        assert node["status"]["allocatable"].get("nvidia.com/gpu"), (
            f"pod on non-GPU node {node['metadata']['name']}"
        )
        assert pod["status"]["phase"] == "Running"
        assert (condition(pod, "Ready") or {}).get("status") == "True"

    # one pod may always be evicted: no disruption budget that could protect nothing
    assert get_json(cluster, "poddisruptionbudget", "bge-base-reranker", "-n", ns) is None

    data = published(cluster, "bge-base-ranker", ns)
    assert data is not None
    assert data["ready"] == "true"
    assert data["endpoint"] == f"http://bge-base-reranker.{ns}.svc.cluster.local:8000"
    fn = json.loads(data["milvus-function.json"])
    assert fn["params"]["provider"] == "vllm" and "maxBatch" not in fn["params"]

    table = cluster.kubectl("get", "rrp", "-n", ns, "-o", "wide").stdout
    header, row = table.splitlines()[:2]
    for column in ("READY", "MODEL", "REPLICAS", "ENDPOINT", "AGE"):
        assert column in header
    assert "True" in row and SERVED in row and data["endpoint"] in row

    ready = condition(obj, "Ready")
    assert ready is not None and ready["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["readyReplicas"] == 1

    text = operator.metrics()
    labels = f'namespace="{ns}",pipeline="bge-base"'
    assert f"rerank_operator_pipeline_ready{{{labels}}} 1.0" in text
    count = next(
        line
        for line in text.splitlines()
        if line.startswith(f"rerank_operator_probe_latency_seconds_count{{{labels}}}")
    )
    assert float(count.split()[-1]) >= 1
    assert 'rerank_operator_reconciles_total{result="ok"}' in text
    assert 'rerank_operator_pipelines{ready="true"}' in text


def test_too_few_gpus_explains_pending(cluster: ClusterClient, operator: OperatorProcess) -> None:
    ns = NS["gpus"]
    cluster.apply(pipeline_manifest("greedy", ns, resources={"gpus": 16}))  # more than any node has

    def explained() -> dict[str, Any] | None:
        c = condition(rrp(cluster, "greedy", ns), "Ready")
        return c if c and c["status"] == "False" and "Insufficient nvidia.com/gpu" in c["message"] else None

    ready = wait_until(
        explained, timeout=READY_TIMEOUT, what="Ready message naming the GPU shortage", operator=operator
    )
    assert ready["reason"] == "PodsPending", ready
    pods = (get_json(cluster, "pods", "-n", ns) or {}).get("items", [])
    assert pods and all(p["status"]["phase"] == "Pending" for p in pods)
    data = published(cluster, "greedy-ranker", ns)
    assert data is not None and data["ready"] == "false"


def test_spec_edits_roll_children_and_generation(cluster: ClusterClient, operator: OperatorProcess) -> None:
    ns = NS["edit"]
    cluster.apply(pipeline_manifest("edit", ns))
    first = wait_ready(cluster, operator, "edit", ns)
    assert first["metadata"]["generation"] == 1

    cluster.kubectl(
        "patch", "rrp", "edit", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"replicas": 2}})
    )

    def scaled() -> dict[str, Any] | None:
        dep = get_json(cluster, "deployment", "edit-reranker", "-n", ns)
        obj = rrp(cluster, "edit", ns)
        ok = dep and dep["spec"]["replicas"] == 2 and obj and obj["status"].get("observedGeneration") == 2
        return obj if ok and obj["status"].get("readyReplicas") == 2 else None

    wait_until(scaled, timeout=READY_TIMEOUT, what="replicas 2 and observedGeneration 2", operator=operator)

    # two pods: a budget now, and the real disruption controller finds them through its selector
    def budget_counts_the_pods() -> dict[str, Any] | None:
        pdb = get_json(cluster, "poddisruptionbudget", "edit-reranker", "-n", ns) or {}
        st = pdb.get("status") or {}
        return pdb if st.get("expectedPods") == 2 and st.get("disruptionsAllowed") == 1 else None

    pdb = wait_until(budget_counts_the_pods, timeout=30, what="PodDisruptionBudget status", operator=operator)
    assert [o["uid"] for o in pdb["metadata"]["ownerReferences"]] == [first["metadata"]["uid"]]

    new_model = {"spec": {"model": {"name": "BAAI/bge-reranker-v2-m3", "servedName": SERVED}}}
    cluster.kubectl("patch", "rrp", "edit", "-n", ns, "--type=merge", "-p", json.dumps(new_model))

    def rolled() -> dict[str, Any] | None:
        obj = rrp(cluster, "edit", ns)
        dep = get_json(cluster, "deployment", "edit-reranker", "-n", ns)
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"] if dep else []
        data = published(cluster, "edit-ranker", ns) or {}
        ready = condition(obj, "Ready")
        if (
            args
            and args[0] == "BAAI/bge-reranker-v2-m3"
            and data.get("generation") == "3"
            and ready
            and ready["status"] == "True"
            # the ConfigMap is written before status in the same pass: wait for both
            and ready.get("observedGeneration") == 3
        ):
            return obj
        return None

    obj = wait_until(
        rolled, timeout=READY_TIMEOUT, what="model edit rolled out and re-published", operator=operator
    )
    assert obj["status"]["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in obj["status"]["conditions"])


def test_lifecycle_drift_gc_and_cross_namespace_cleanup(
    cluster: ClusterClient, operator: OperatorProcess
) -> None:
    ns, extra = NS["life"], NS["extra"]
    cluster.apply(grant_manifest(extra, ns))  # the other namespace consents to the copy
    cluster.apply(pipeline_manifest("life", ns, publish={"namespaces": [extra]}))
    wait_ready(cluster, operator, "life", ns)
    copy = published(cluster, "life-ranker", extra)
    assert copy is not None and copy["ready"] == "true"

    svc = get_json(cluster, "service", "life-reranker", "-n", ns)
    assert svc is not None
    cluster.kubectl("delete", "service", "life-reranker", "-n", ns)

    def restored() -> bool:
        again = get_json(cluster, "service", "life-reranker", "-n", ns)
        return bool(again and again["metadata"]["uid"] != svc["metadata"]["uid"])

    wait_until(restored, timeout=30, what="deleted Service restored", operator=operator)

    cluster.kubectl(
        "patch",
        "configmap",
        "life-ranker",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"data":{"endpoint":"http://evil:1"}}',
    )
    wait_until(
        lambda: (
            (published(cluster, "life-ranker", ns) or {})
            .get("endpoint", "")
            .startswith("http://life-reranker.")
        ),
        timeout=30,
        what="hand-edited ConfigMap restored",
        operator=operator,
    )

    cluster.kubectl("delete", "rrp", "life", "-n", ns, "--timeout=60s")

    def gone() -> bool:
        left = [
            get_json(cluster, "deployment", "life-reranker", "-n", ns),
            get_json(cluster, "service", "life-reranker", "-n", ns),
            get_json(cluster, "configmap", "life-ranker", "-n", ns),
            get_json(cluster, "configmap", "life-ranker", "-n", extra),
        ]
        return all(x is None for x in left)

    wait_until(
        gone,
        timeout=60,
        what="children garbage-collected and the cross-namespace copy removed",
        operator=operator,
    )


@pytest.mark.parametrize(
    ("spec_patch", "expected"),
    [
        ({"replicas": -1}, "spec.replicas"),
        ({"bogus": True}, "bogus"),
        ({"model": {"name": "BAAI/bge-reranker-base", "truncatePromptTokens": -2}}, "truncatePromptTokens"),
        (
            {"modelCache": {"pvc": {"size": "10Gi"}, "existingClaim": "shared"}},
            "set at most one of modelCache.pvc",
        ),
        ({"model": {"name": "Qwen/Qwen3-Reranker-0.6B"}}, "chatTemplate"),
        ({"probe": {"query": "q"}}, "probe.query and probe.documents must be set together"),
        ({"engine": {"env": [{"name": "HF_TOKEN", "value": "x"}]}}, "managed by the operator"),
        ({"publish": {"endpoint": "http://reranker.example.com/v1"}}, "spec.publish.endpoint"),
        ({"publish": {"endpoint": "http://169.254.169.254"}}, "is for Milvus outside the cluster"),
        ({"publish": {"endpoint": "http://metadata.google.internal"}}, "cloud-metadata address"),
        ({"publish": {"endpoint": "http://milvus.search.svc:19530"}}, "is for Milvus outside the cluster"),
        ({"rollout": {"strategy": "Recreate"}}, "spec.rollout.strategy"),
    ],
)
def test_apiserver_rejects_invalid_objects(
    cluster: ClusterClient, spec_patch: dict[str, Any], expected: str
) -> None:
    manifest = pipeline_manifest("invalid", "default")
    manifest["spec"].update(spec_patch)
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(manifest), check=False)
    assert proc.returncode != 0, f"accepted: {spec_patch}"
    assert expected in proc.stderr, proc.stderr


def test_status_survives_pruning_and_restart_converges(
    cluster: ClusterClient, operator: OperatorProcess
) -> None:
    ns = NS["status"]
    cluster.apply(pipeline_manifest("keep", ns, publish={"credential": "reranker"}))
    obj = wait_ready(cluster, operator, "keep", ns)
    status = obj["status"]
    # every field the operator writes is declared in the CRD, so the apiserver kept it
    for key in (
        "observedGeneration",
        "conditions",
        "readyReplicas",
        "endpoint",
        "servedModel",
        "lastProbe",
        "published",
    ):
        assert key in status, f"status.{key} pruned"
    assert status["lastProbe"]["ok"] is True and status["lastProbe"]["latencyMs"] >= 0
    assert {"p50Ms", "p95Ms", "samples"} <= set(status["latency"])
    assert json.loads(status["published"]["functionJson"])["params"]["credential"] == "reranker"
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "Progressing", "Degraded", "Stalled"}

    # written only when something changed: with probing slowed down, resyncs (every 2 s) re-apply
    # children and recompute status, but neither the pipeline nor its Deployment changes
    cluster.kubectl(
        "patch", "rrp", "keep", "-n", ns, "--type=merge", "-p", '{"spec":{"probe":{"intervalSeconds":3600}}}'
    )

    def settled() -> dict[str, Any] | None:
        cur = rrp(cluster, "keep", ns)
        ok = cur and cur["status"].get("observedGeneration") == cur["metadata"]["generation"] == 2
        ready = condition(cur, "Ready")
        return cur if ok and ready and ready["status"] == "True" else None

    before = wait_until(
        settled, timeout=READY_TIMEOUT, what="settled after probe interval change", operator=operator
    )
    dep_before = get_json(cluster, "deployment", "keep-reranker", "-n", ns)
    time.sleep(7)  # observe three resync periods; this is an invariant check, not a timing goal
    after = rrp(cluster, "keep", ns)
    dep_after = get_json(cluster, "deployment", "keep-reranker", "-n", ns)
    assert after is not None and dep_before is not None and dep_after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert dep_after["metadata"]["resourceVersion"] == dep_before["metadata"]["resourceVersion"]

    # restart mid-reconcile: kill the operator right after a new pipeline is applied
    rns = NS["restart"]
    operator.kill()
    cluster.apply(pipeline_manifest("restart", rns))
    operator.start()
    operator.kill()  # again, while it is (likely) applying children
    operator.start()
    wait_ready(cluster, operator, "restart", rns)
    selector = "app.kubernetes.io/instance=restart"
    for kind in ("deployments", "services", "configmaps", "replicasets"):
        items = (get_json(cluster, kind, "-n", rns, "-l", selector) or {}).get("items", [])
        assert len(items) == 1, (kind, names_of(items))  # configmaps: only restart-ranker (no template)
    assert not (get_json(cluster, "poddisruptionbudgets", "-n", rns, "-l", selector) or {}).get("items")
    pods = (get_json(cluster, "pods", "-n", rns, "-l", selector) or {}).get("items", [])
    assert len([p for p in pods if not p["metadata"].get("deletionTimestamp")]) == 1


@pytest.mark.milvus
def test_published_config_drives_milvus_lite_search(
    cluster: ClusterClient, operator: OperatorProcess, standin: StandinServer, tmp_path: Path
) -> None:
    """The ConfigMap the operator published on the real apiserver, read through the API by
    ``load_ranker((namespace, name))``, reranks a real Milvus Lite search via the stand-in.

    Milvus Lite runs here, outside the cluster, so it reaches the reranker the way a developer would
    through ``kubectl port-forward``: ``endpoint=`` points at the loopback stand-in.
    """
    from kubernetes import config as kube_config
    from pymilvus import DataType, MilvusClient

    from rerank_operator.client import load_ranker, read_published
    from rerank_operator.standin.scoring import relevance

    ns = NS["lite"]
    cluster.apply(pipeline_manifest("lite", ns))
    wait_ready(cluster, operator, "lite", ns)
    api = kube_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    published_cfg = read_published((ns, "lite-ranker"), kube_client=api)
    assert published_cfg.ready
    assert published_cfg.endpoint == f"http://lite-reranker.{ns}.svc.cluster.local:8000"

    docs = [
        "Bananas are rich in potassium.",
        "The Eiffel Tower is in Paris, the capital of France.",
        "Paris is the capital and largest city of France.",
        "Binary search trees keep keys sorted.",
    ]
    query = "What is the capital of France?"
    client = MilvusClient(str(tmp_path / "milvus.db"))
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=4)
        schema.add_field("document", DataType.VARCHAR, max_length=512)
        index = client.prepare_index_params()
        index.add_index("embedding", index_type="AUTOINDEX", metric_type="COSINE")
        client.create_collection("docs", schema=schema, index_params=index)
        # vectors put the documents in index order for the query vector, unlike their relevance
        vectors = [[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0], [0.8, 0.2, 0.0, 0.0], [0.7, 0.3, 0.0, 0.0]]
        client.insert(
            "docs",
            [
                {"id": i, "embedding": v, "document": d}
                for i, (v, d) in enumerate(zip(vectors, docs, strict=True))
            ],
        )
        ranker = load_ranker(
            (ns, "lite-ranker"), [query], target="milvus-lite", kube_client=api, endpoint=standin.url
        )
        hits = client.search(
            "docs",
            data=[[1.0, 0.0, 0.0, 0.0]],
            anns_field="embedding",
            limit=4,
            output_fields=["document"],
            ranker=ranker,
        )[0]
    finally:
        client.close()
    got = [h["entity"]["document"] for h in hits]
    expected = sorted(docs, key=lambda d: (-relevance(query, d), docs.index(d)))
    assert got == expected
    assert got != docs  # the reranker, not the vector order, decided
