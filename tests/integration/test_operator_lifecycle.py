"""The real operator (kopf + reconcile engine), in-process, against kmock's Kubernetes emulator.

Lifecycle: children on create, spec updates, drift correction, deletion, invalid specs, GPU shortage.
The test plays the Deployment controller (kmock runs no controllers); ``kmock_support.Emulator`` adds
the apiserver's bookkeeping (resourceVersion, generation, status subresource, selectors, apply).
"""

from __future__ import annotations

from typing import Any

import pytest
from kmock_support import (
    CONFIGMAPS,
    DEPLOYMENTS,
    MODEL,
    PDBS,
    PIPELINES,
    PODS,
    PVCS,
    SERVICES,
    Harness,
    consistently,
    endpoint_of,
    eventually,
    passes,
    pipeline_spec,
)

from rerank_operator import API_VERSION, FINALIZER, KIND

pytestmark = pytest.mark.timeout(60)

FIRST_PASS_REASONS = {"AwaitingFirstProbe", "RollingOut", "NoReadyReplicas", "PodsPending"}


def container(h: Harness, name: str) -> dict[str, Any]:
    dep = h.must(DEPLOYMENTS, f"{name}-reranker")
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


# ------------------------------------------------------------------------------------ 1. create
async def test_create_makes_owned_children_and_reports_not_ready_from_the_first_pass(
    start_operator: Any,
) -> None:
    h = await start_operator()
    # two replicas: every kind of child, the disruption budget included
    await h.create_pipeline("rr", pipeline_spec(replicas=2, modelCache={"pvc": {"size": "20Gi"}}))
    uid = h.uids["rr"]

    children = [
        (DEPLOYMENTS, "rr-reranker", "server"),
        (SERVICES, "rr-reranker", "server"),
        (PDBS, "rr-reranker", "server"),
        (PVCS, "rr-model-cache", "model-cache"),
        (CONFIGMAPS, "rr-ranker", "ranker-config"),
    ]
    for resource, name, _ in children:
        await eventually(lambda r=resource, n=name: h.get(r, n), within=10, message=f"{resource} {name}")

    for resource, name, component in children:
        meta = h.must(resource, name)["metadata"]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": "rr",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], (resource, meta)
        labels = meta["labels"]
        assert labels["app.kubernetes.io/name"] == "vllm-reranker"
        assert labels["app.kubernetes.io/instance"] == "rr"
        assert labels["app.kubernetes.io/component"] == component
        assert labels["app.kubernetes.io/managed-by"] == "rerank-operator"

    dep = h.must(DEPLOYMENTS, "rr-reranker")
    selector = dep["spec"]["selector"]["matchLabels"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert h.must(SERVICES, "rr-reranker")["spec"]["selector"] == selector
    assert MODEL in container(h, "rr")["args"]

    await eventually(lambda: h.status("rr").get("conditions"), within=10, message="a status")
    # the very first status write already says Ready=False (kstatus/Argo CD see "in progress")
    history = h.kmock.objects[PIPELINES, "ml", "rr"].history
    status = next(v.raw["status"] for v in history if v is not None and v.raw.get("status"))
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    ready = conditions["Ready"]
    assert ready["status"] == "False"
    assert ready["reason"] in FIRST_PASS_REASONS
    for cond in conditions.values():
        assert cond["lastTransitionTime"].endswith("Z")
        assert cond["observedGeneration"] == 1
    assert conditions["Published"]["status"] == "False"
    assert status["endpoint"] == endpoint_of("rr")

    data = h.published("rr")
    assert data["ready"] == "false"
    assert data["reason"]
    assert data["endpoint"] == endpoint_of("rr")

    # kopf's finalizer, under our own name, guards the cleanup of cross-namespace copies
    await eventually(lambda: FINALIZER in h.must(PIPELINES, "rr")["metadata"].get("finalizers", []), within=5)


# ------------------------------------------------------------------------------------ 4. update
async def test_spec_update_rolls_the_deployment_and_publishes_only_the_verified_generation(
    start_operator: Any,
) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec())
    good = h.published("rr")
    assert good["generation"] == "1"

    new_model = "BAAI/bge-reranker-large"
    generation = await h.update_spec("rr", {"replicas": 2, "model": {"name": new_model}})
    assert generation == 2

    def rolled() -> None:
        dep = h.must(DEPLOYMENTS, "rr-reranker")
        assert dep["spec"]["replicas"] == 2
        args = container(h, "rr")["args"]
        assert new_model in args and MODEL not in args, args
        status = h.status("rr")
        assert status["observedGeneration"] == 2
        ready = h.condition("rr", "Ready")
        assert ready["observedGeneration"] == 2
        assert ready["status"] == "False", ready  # 1/2 pods of the new template: not verified yet

    await passes(rolled, within=10, message="deployment follows the spec")

    # the new generation is not proven yet: apps keep reading the last good config
    kept = h.published("rr")
    for key in ("endpoint", "model", "generation", "milvus-function.json", "milvus-lite-function.json"):
        assert kept[key] == good[key], key

    # the apiserver bumped the Deployment's generation for the new template; the controller has not
    # caught up, so the rollout is visibly unfinished
    dep = h.must(DEPLOYMENTS, "rr-reranker")
    assert dep["metadata"]["generation"] == 2
    assert dep["status"]["observedGeneration"] == 1

    # the Deployment controller's part: the new pods (serving the new model) become ready
    h.standin.served_model = new_model
    await h.play_deployment_controller("rr")

    def published_new() -> None:
        data = h.published("rr")
        assert data["generation"] == "2", data
        assert data["model"] == new_model
        assert data["ready"] == "true"
        ready = h.condition("rr", "Ready")
        assert ready["status"] == "True" and ready["observedGeneration"] == 2

    await passes(published_new, within=10, message="generation 2 verified and published")

    def told() -> None:  # in the Ready Event when the pipeline turns Ready in the same pass
        events = h.events("rr")
        assert any(
            e["reason"] in ("Published", "Ready")
            and "ranker config rr-ranker for generation 2" in e["message"]
            for e in events
        ), [(e["reason"], e["message"]) for e in events]

    await passes(told, within=5, message="an Event tells the publication")


async def test_rollout_past_its_deadline_stalls_and_keeps_the_working_config(start_operator: Any) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec())
    good = h.published("rr")
    await h.update_spec("rr", {"model": {"name": MODEL, "maxModelLen": 256}})
    await eventually(lambda: h.must(DEPLOYMENTS, "rr-reranker")["metadata"]["generation"] == 2, within=10)

    # what the Deployment controller reports when the new pod never became ready within
    # progressDeadlineSeconds; the old pod still serves (Surge)
    deadline = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "rr-reranker-6b7" has timed out progressing.',
    }
    status = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1}
    await h.patch(
        DEPLOYMENTS, "rr-reranker", {"status": {**status, "conditions": [deadline]}}, subresource="status"
    )

    def stalled() -> None:
        c = h.condition("rr", "Stalled")
        assert c["status"] == "True" and c["reason"] == "ProgressDeadlineExceeded", c
        assert "timed out progressing" in c["message"]
        ready = h.condition("rr", "Ready")
        assert ready["status"] == "False" and ready["reason"] == "ProgressDeadlineExceeded"

    await passes(stalled, within=10, message="Stalled=ProgressDeadlineExceeded")
    assert h.published("rr") == good  # apps keep the verified generation 1
    await eventually(
        lambda: any(
            e["type"] == "Warning" and e["reason"] == "ProgressDeadlineExceeded" for e in h.events("rr")
        ),
        within=5,
        message="a Warning Event for the stalled rollout",
    )

    # the pod finally comes up: the controller reports progress again and generation 2 is verified
    done = {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}
    await h.patch(DEPLOYMENTS, "rr-reranker", {"status": {"conditions": [done]}}, subresource="status")
    await h.play_deployment_controller("rr")
    await eventually(lambda: h.published("rr")["generation"] == "2", within=10, message="generation 2")

    def recovered() -> None:  # status is written right after the ConfigMap
        assert h.condition("rr", "Stalled")["status"] == "False"
        assert h.condition("rr", "Ready")["status"] == "True"

    await passes(recovered, within=5, message="Stalled cleared, Ready again")


# ------------------------------------------------------------------------------------ 5. drift
async def test_drift_in_children_is_corrected_from_the_watch_without_a_resync(start_operator: Any) -> None:
    h = await start_operator()  # resync every 10 minutes: only watch events can explain what follows
    await h.converge("rr", pipeline_spec(probe={"intervalSeconds": 3600, "failureThreshold": 2}))
    good = h.published("rr")
    service = h.must(SERVICES, "rr-reranker")

    # a deleted Service comes back
    await h.delete(SERVICES, "rr-reranker")
    restored = await eventually(lambda: h.get(SERVICES, "rr-reranker"), within=5, message="Service back")
    versions = list(h.kmock.objects[SERVICES, "ml", "rr-reranker"].history)
    assert None in versions and versions[-1] is not None  # deleted, then created again
    assert restored["spec"] == service["spec"]
    assert restored["metadata"]["ownerReferences"] == service["metadata"]["ownerReferences"]

    # a hand-edited published ConfigMap is put back
    edited = await h.patch(
        CONFIGMAPS, "rr-ranker", {"data": {"endpoint": "http://hijacked.example:1", "ready": "false"}}
    )
    assert edited["data"]["endpoint"] == "http://hijacked.example:1"

    def configmap_restored() -> None:
        data = h.published("rr")
        assert data["endpoint"] == good["endpoint"]
        assert data["ready"] == "true"
        assert data["milvus-function.json"] == good["milvus-function.json"]

    await passes(configmap_restored, within=5, message="ConfigMap restored")

    # a hand-scaled Deployment is scaled back
    scaled = await h.patch(DEPLOYMENTS, "rr-reranker", {"spec": {"replicas": 5}})
    assert scaled["spec"]["replicas"] == 5
    await eventually(
        lambda: h.must(DEPLOYMENTS, "rr-reranker")["spec"]["replicas"] == 1,
        within=5,
        message="replicas restored",
    )


async def test_a_pod_turning_ready_is_reflected_without_a_resync_or_a_canary_interval(
    start_operator: Any,
) -> None:
    h = await start_operator()
    await h.create_pipeline("rr", pipeline_spec(probe={"intervalSeconds": 3600, "failureThreshold": 2}))
    await eventually(
        lambda: h.status("rr").get("lastProbe", {}).get("reason") == "NoReadyReplicas",
        within=10,
        message="first canary: NoReadyReplicas",
    )
    canaries = len(h.canaries())
    await h.play_deployment_controller("rr")  # the pod turns ready: watch events, nothing due
    await h.wait_ready("rr", within=5)
    assert len(h.canaries()) == canaries + 1, "one canary, at once, for the pod that turned ready"


# ------------------------------------------------------------------------------------ 6. delete
async def test_delete_withdraws_cross_namespace_copies_and_releases_the_finalizer(
    start_operator: Any,
) -> None:
    h = await start_operator()
    for ns in ("apps", "search"):
        await h.grant(ns, "ml")
    await h.create_pipeline("rr", pipeline_spec(publish={"namespaces": ["apps", "search"]}))
    for ns in ("ml", "apps", "search"):
        await eventually(lambda n=ns: h.get(CONFIGMAPS, "rr-ranker", n), within=10, message=f"copy in {ns}")
    for ns in ("apps", "search"):
        meta = h.must(CONFIGMAPS, "rr-ranker", ns)["metadata"]
        assert "ownerReferences" not in meta  # cannot point across namespaces: GC would never reach them
        assert meta["labels"]["rerank.dev/pipeline-namespace"] == "ml"
        assert meta["annotations"]["rerank.dev/owner-uid"] == h.uids["rr"]  # what proves it is ours
    # an unrelated ConfigMap of the same name elsewhere is not ours and must survive
    await h.create(CONFIGMAPS, {"metadata": {"name": "rr-ranker"}, "data": {"x": "y"}}, namespace="unrelated")

    await eventually(
        lambda: FINALIZER in h.must(PIPELINES, "rr")["metadata"].get("finalizers", []),
        within=10,
        message="finalizer added",
    )
    await h.delete(PIPELINES, "rr")

    def gone() -> None:
        assert h.get(PIPELINES, "rr") is None  # kmock drops it only once no finalizer is left
        assert h.get(CONFIGMAPS, "rr-ranker", "apps") is None
        assert h.get(CONFIGMAPS, "rr-ranker", "search") is None

    await passes(gone, within=15, message="pipeline and cross-namespace copies deleted")
    history = [v for v in h.kmock.objects[PIPELINES, "ml", "rr"].history if v is not None]
    assert any(v["metadata"].get("deletionTimestamp") for v in history)
    assert FINALIZER not in history[-1]["metadata"].get("finalizers", [])
    # nothing re-creates them afterwards (daemon stopped, no late apply)
    await consistently(gone, duration=1.5)
    assert h.get(CONFIGMAPS, "rr-ranker", "unrelated") is not None
    assert h.operator.alive


# ------------------------------------------------------------------------------------ 7. invalid
async def test_invalid_specs_stall_without_children_and_the_operator_keeps_working(
    start_operator: Any,
) -> None:
    h = await start_operator()
    # objects that bypassed admission (no CEL/OpenAPI validation in kmock)
    await h.create_pipeline("bad", pipeline_spec(replicas=-1))
    await h.create_pipeline("bad-model", pipeline_spec(model={"name": "Qwen/Qwen3-Reranker-0.6B"}))
    await h.create_pipeline("other", pipeline_spec())

    def stalled(name: str, field_name: str) -> None:
        conditions = {c["type"]: c for c in h.status(name)["conditions"]}
        assert conditions["Stalled"]["status"] == "True", conditions
        assert conditions["Stalled"]["reason"] == "InvalidSpec"
        assert conditions["Ready"]["status"] == "False"
        assert conditions["Ready"]["reason"] == "InvalidSpec"
        assert field_name in conditions["Ready"]["message"], conditions["Ready"]
        assert h.status(name)["observedGeneration"] == 1

    await passes(lambda: stalled("bad", "spec.replicas"), within=10, message="bad stalled")
    await passes(lambda: stalled("bad-model", "chatTemplate"), within=10, message="bad-model stalled")

    # the valid pipeline in the same run is reconciled all the way
    await h.wait_deployment("other")
    await h.play_deployment_controller("other")
    await h.wait_ready("other")

    for resource in (DEPLOYMENTS, SERVICES):
        assert h.names(resource) == ["other-reranker"], (resource, h.names(resource))
    assert h.names(CONFIGMAPS) == ["other-ranker"]
    assert h.names(PVCS) == []
    assert h.operator.alive


# ------------------------------------------------------------------------------------ 8. GPU shortage
async def test_unschedulable_pods_surface_the_schedulers_reason(start_operator: Any) -> None:
    h = await start_operator()
    await h.create_pipeline("gpu", pipeline_spec())
    template_labels = (await h.wait_deployment("gpu"))["spec"]["template"]["metadata"]["labels"]
    scheduler_says = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    # another app's pod in the namespace, also unschedulable: not ours (the operator lists by selector)
    foreign_says = "0/3 nodes are available: 3 Insufficient memory."
    for pod_name, labels, message in (
        ("someone-else-5c9d8f-abcde", {"app": "someone-else"}, foreign_says),  # listed first
        ("gpu-reranker-6d4f9c7b8-x2x9q", template_labels, scheduler_says),
    ):
        await h.create(
            PODS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod_name, "labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.example/app:1"}]},
            },
        )
        # the scheduler's verdict lands in the status subresource
        await h.patch(
            PODS,
            pod_name,
            {
                "status": {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                        }
                    ],
                }
            },
            subresource="status",
        )
    # the controller reports the Deployment as not available
    await h.play_deployment_controller("gpu", ready=0)

    def pending() -> dict[str, Any]:
        ready = h.condition("gpu", "Ready")
        assert ready["status"] == "False"
        assert "Insufficient nvidia.com/gpu" in ready["message"], ready
        return ready

    ready = await eventually(pending, within=10, message="Ready names the GPU shortage")
    assert ready["reason"] == "PodsPending"
    assert "gpu-reranker-6d4f9c7b8-x2x9q" in ready["message"]
    assert "Insufficient memory" not in ready["message"]
    assert h.published("gpu")["ready"] == "false"
    await eventually(
        lambda: any(
            e["type"] == "Warning" and "Insufficient nvidia.com/gpu" in e["message"] for e in h.events("gpu")
        ),
        within=5,
        message="a Warning Event tells the story",
    )
