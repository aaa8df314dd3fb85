"""The watch-fed view: index reads, the overlay of the operator's own writes, pods by pipeline."""

from __future__ import annotations

from typing import Any

from rerank_operator import FIELD_MANAGER
from rerank_operator.kube import KubeApi
from rerank_operator.kube.credentials import Credentials
from rerank_operator.kube.managed_fields import fold_managed_fields, unpacked
from rerank_operator.reconcile.ownership import describe_holder
from rerank_operator.reconcile.replicas import HANDOVER_MANAGER, owns_replicas
from rerank_operator.reconcile.view import CachedReads, Kept, ReadMemory, index_key, owning_pipeline, slim


def obj(name: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ml", "resourceVersion": str(version)}, **extra}


def kept(body: dict[str, Any], kind: str = "Service") -> Kept:
    return Kept.of(kind, body)


def reads(indexes: dict[str, dict[Any, list[Kept]]], memory: ReadMemory) -> CachedReads:
    # a client for no server: every read below must come from memory (a request would fail the test)
    unreachable = KubeApi(Credentials(server="http://127.0.0.1:9"))
    return CachedReads(indexes, unreachable, memory, refresh=False)


async def test_reads_come_from_the_index() -> None:
    view = reads({"Service": {("ml", "rr"): [kept(obj("rr", 5))]}}, ReadMemory())
    assert (await view.get("Service", "ml", "rr"))["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    assert await view.get("Service", "ml", "other") is None


async def test_the_index_keeps_text_and_every_read_is_a_private_copy() -> None:
    """An object is kept as its slimmed JSON text (what a pass reads, no more), with its name and
    version outside for the lookups that need no decode; a pass that changes what it read changes
    nothing the next pass reads."""
    body = obj("rr", 5, spec={"ports": [{"port": 8000}]})
    body["metadata"]["managedFields"] = [{"manager": "m", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]
    entry = kept(body)
    assert (entry.name, entry.version) == ("rr", 5)
    assert entry.body() == slim("Service", body)
    view = reads({"Service": {("ml", "rr"): [entry]}}, ReadMemory())
    first = await view.get("Service", "ml", "rr")
    assert first is not None
    first["spec"]["ports"].append({"port": 1})
    assert (await view.get("Service", "ml", "rr")) == slim("Service", body)
    pod = kept({"metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"nodeName": "n"}}, "Pod")
    assert pod.body() == {"metadata": {"name": "p", "labels": {"a": "b"}}, "status": {}}
    assert Kept.of("Pod", {}).version is None


async def test_an_own_write_wins_until_the_watch_catches_up() -> None:
    index: dict[Any, list[Kept]] = {("ml", "rr"): [kept(obj("rr", 5))]}
    memory = ReadMemory()
    view = reads({"ConfigMap": index}, memory)
    view.wrote("ConfigMap", "ml", "rr", obj("rr", 9, data={"ready": "true"}))
    assert (await view.get("ConfigMap", "ml", "rr"))["data"] == {"ready": "true"}  # type: ignore[index]
    index[("ml", "rr")] = [kept(obj("rr", 9, data={"ready": "true"}))]  # the watch event arrives
    assert (await view.get("ConfigMap", "ml", "rr"))["metadata"]["resourceVersion"] == "9"  # type: ignore[index]
    assert memory.overlay == {}
    index[("ml", "rr")] = [kept(obj("rr", 12, data={"ready": "edited"}))]  # a later hand edit is seen
    assert (await view.get("ConfigMap", "ml", "rr"))["data"] == {"ready": "edited"}  # type: ignore[index]


async def test_an_own_create_is_seen_before_its_watch_event() -> None:
    memory = ReadMemory()
    view = reads({"Service": {}}, memory)
    view.wrote("Service", "ml", "rr", obj("rr", 3))
    assert await view.get("Service", "ml", "rr") is not None  # no second create


async def test_an_own_delete_hides_the_object_and_a_deletion_event_clears_the_overlay() -> None:
    index: dict[Any, list[Kept]] = {("ml", "rr"): [kept(obj("rr", 5))]}
    memory = ReadMemory()
    view = reads({"ConfigMap": index}, memory)
    view.wrote("ConfigMap", "ml", "rr", None)
    assert await view.get("ConfigMap", "ml", "rr") is None
    del index[("ml", "rr")]
    memory.deleted(("ConfigMap", "ml", "rr"), 6)
    assert memory.overlay == {}
    # a write that the watch later saw deleted is history
    view.wrote("ConfigMap", "ml", "rr", obj("rr", 7))
    memory.deleted(("ConfigMap", "ml", "rr"), 8)
    assert await view.get("ConfigMap", "ml", "rr") is None


async def test_a_watch_event_at_or_after_an_own_write_drops_its_copy() -> None:
    """An idle pipeline reads its children again only at its resync: the watch event settles the copy."""
    key = ("Deployment", "ml", "rr")
    index: dict[Any, list[Kept]] = {("ml", "rr"): [kept(obj("rr", 4))]}
    memory = ReadMemory()
    view = reads({"Deployment": index}, memory)
    view.wrote(*key, obj("rr", 5))
    assert not memory.seen(key, 4)  # an older event: our write is still newer than the index
    assert key in memory.overlay
    assert (await view.get(*key) or {})["metadata"]["resourceVersion"] == "5"
    index[("ml", "rr")] = [kept(obj("rr", 5))]
    assert memory.seen(key, 5)  # exactly our write coming back: nothing to wake the pipeline for
    assert memory.overlay == {}
    assert (await view.get(*key) or {})["metadata"]["resourceVersion"] == "5"  # now from the index
    view.wrote(*key, obj("rr", 6))
    assert not memory.seen(key, 7)  # someone wrote after us: that is news
    assert memory.overlay == {}
    view.wrote(*key, None)  # our delete waits for the DELETED event, whatever else arrives
    assert not memory.seen(key, 9)
    assert await view.get(*key) is None


async def test_pods_are_the_pipelines_that_match_the_selector() -> None:
    ours = obj("rr-1", 1, metadata_labels=None)
    ours["metadata"]["labels"] = {"app.kubernetes.io/instance": "rr", "rerank.dev/pipeline": "rr"}
    stray = obj("rr-2", 1)
    stray["metadata"]["labels"] = {"app.kubernetes.io/instance": "other", "rerank.dev/pipeline": "rr"}
    view = reads({"Pod": {("ml", "rr"): [kept(ours, "Pod"), kept(stray, "Pod")]}}, ReadMemory())
    pods = await view.pods("ml", "rr", {"app.kubernetes.io/instance": "rr"})
    assert [p["metadata"]["name"] for p in pods] == ["rr-1"]
    assert await view.pods("ml", "nobody", {}) == []


def test_index_keys_and_owners() -> None:
    labels = {"rerank.dev/pipeline": "rr"}
    assert index_key("Pod", "ml", "rr-abc", labels) == ("ml", "rr")
    assert index_key("RerankPublishGrant", "apps", "g", {}) == "apps"
    assert index_key("Deployment", "ml", "rr-reranker", labels) == ("ml", "rr-reranker")
    assert owning_pipeline("ml", labels) == ("ml", "rr")
    assert owning_pipeline("apps", {**labels, "rerank.dev/pipeline-namespace": "ml"}) == ("ml", "rr")
    assert owning_pipeline("ml", {}) is None


def test_slim_pods_keep_only_what_a_pass_reads() -> None:
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "ml",
            "uid": "u",
            "resourceVersion": "7",
            "labels": {"rerank.dev/revision": "abc"},
            "annotations": {"rerank.dev/config-hash": "h"},
            "deletionTimestamp": "t",
            "managedFields": [{"manager": "kubelet"}],
            "ownerReferences": [{"kind": "ReplicaSet"}],
        },
        "spec": {"containers": [{"name": "vllm", "args": ["--model", "m"]}], "nodeName": "n"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "vllm", "ready": False, "state": waiting, "imageID": "sha256:x"}],
            "podIP": "10.0.0.1",
        },
    }
    kept = slim("Pod", pod)
    assert kept == {
        "metadata": {
            k: v for k, v in pod["metadata"].items() if k not in ("managedFields", "ownerReferences")
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "vllm", "ready": False, "state": waiting}],
        },
    }
    assert slim("Pod", {}) == {"metadata": {}, "status": {}}
    assert slim("Deployment", pod)["metadata"]["managedFields"] == [{"manager": "kubelet"}]
    assert slim("Deployment", pod)["spec"] == pod["spec"]  # the drift check compares the whole spec
    assert "managedFields" in pod["metadata"]  # the watched body itself is left alone


def test_slim_packs_the_field_trees_and_every_reader_gets_the_same_answers() -> None:
    """Each managedFields tree is kept as one JSON string; ownership, the replica handover and the fold
    answer from the kept copy exactly as from the object the apiserver sent."""
    spec_tree = {
        "f:replicas": {},
        "f:template": {"f:spec": {"f:containers": {'k:{"name":"vllm"}': {".": {}}}}},
    }
    entries = [
        {
            "manager": FIELD_MANAGER,
            "operation": "Update",
            "apiVersion": "apps/v1",
            "time": "2026-12-04T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": spec_tree},
        },
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "subresource": "status",
            "fieldsV1": {"f:status": {"f:replicas": {}}},
        },
        {"manager": HANDOVER_MANAGER, "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "kubectl-edit", "operation": "Update"},
    ]
    deployment = {
        "metadata": {"name": "rr", "namespace": "ml", "managedFields": entries, "labels": {"app": "a"}},
        "spec": {"replicas": 2, "paused": False},
        "status": {"replicas": 2},
    }
    kept = slim("Deployment", deployment)
    assert kept["spec"] == deployment["spec"] and kept["status"] == deployment["status"]
    assert kept["metadata"]["labels"] == {"app": "a"}
    kept_entries = kept["metadata"]["managedFields"]
    assert [type(e.get("fieldsV1")) for e in kept_entries] == [str, str, str, type(None)]
    assert [unpacked(e) for e in kept_entries] == entries
    for manager in (FIELD_MANAGER, HANDOVER_MANAGER, "kubectl-edit", "kube-controller-manager"):
        assert owns_replicas(kept, manager) == owns_replicas(deployment, manager)
    assert owns_replicas(kept) and not owns_replicas(kept, "kubectl-edit")
    assert describe_holder(kept) == describe_holder(deployment)
    assert fold_managed_fields([unpacked(e) for e in kept_entries]) == fold_managed_fields(entries)
    assert entries[0]["fieldsV1"]["f:spec"] is spec_tree  # the watched body itself is left alone
    assert slim("Service", {"spec": {"type": "ClusterIP"}}) == {"spec": {"type": "ClusterIP"}}


async def test_a_pipelines_deployments_come_from_its_index_key_and_its_own_writes() -> None:
    from rerank_operator.reconcile.view import pipeline_key

    labelled = {"rerank.dev/pipeline": "rr"}
    a = obj("rr-aaaa", 5)
    a["metadata"]["labels"] = labelled
    index: dict[Any, list[Kept]] = {("ml", "rr-aaaa"): [kept(a)], pipeline_key("ml", "rr"): [kept(a)]}
    memory = ReadMemory()
    view = reads({"Deployment": index}, memory)
    assert [d["metadata"]["name"] for d in await view.deployments("ml", "rr")] == ["rr-aaaa"]
    # a candidate just created (its watch event not in yet) and the old one just deleted
    b = obj("rr-bbbb", 7)
    b["metadata"]["labels"] = labelled
    view.wrote("Deployment", "ml", "rr-bbbb", b)
    view.wrote("Deployment", "ml", "rr-aaaa", None)
    assert [d["metadata"]["name"] for d in await view.deployments("ml", "rr")] == ["rr-bbbb"]
    assert await view.deployments("ml", "other") == []
