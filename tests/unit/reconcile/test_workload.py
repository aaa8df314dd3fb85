from typing import Any

from rerank_operator.reconcile.workload import observe_workload


def deployment(
    ready: int, updated: int, replicas: int, observed: int = 1, generation: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "replicas": replicas,
            "observedGeneration": observed,
        },
    }


def pending_pod(message: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p-1"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
            ],
        },
    }


def test_missing_deployment() -> None:
    w = observe_workload(None, [], 1)
    assert not w.rolled_out and not w.serving
    assert w.pending_message == "Deployment not found"


def test_rolled_out() -> None:
    w = observe_workload(deployment(2, 2, 2), [], 2)
    assert w.rolled_out and w.serving and w.ready == 2


def test_stale_observed_generation_is_not_rolled_out() -> None:
    assert not observe_workload(deployment(1, 1, 1, observed=1, generation=2), [], 1).rolled_out


def test_surge_pod_still_present_is_not_rolled_out() -> None:
    assert not observe_workload(deployment(1, 1, 2), [], 1).rolled_out


def test_lost_pod_of_the_current_template_is_not_a_rollout() -> None:
    w = observe_workload(deployment(1, 2, 2), [], 2)
    assert w.pods_current and not w.rolled_out and w.serving


def test_pods_current_needs_every_replica_updated_and_no_old_pod() -> None:
    assert not observe_workload(deployment(1, 1, 2), [], 2).pods_current  # one still on the old template
    assert not observe_workload(deployment(2, 2, 3), [], 2).pods_current  # an old pod still running
    assert not observe_workload(deployment(2, 2, 2, observed=1, generation=2), [], 2).pods_current
    assert observe_workload(deployment(0, 2, 2), [], 2).pods_current  # current, none ready yet


def test_gpu_shortage_message_from_scheduler() -> None:
    msg = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    w = observe_workload(deployment(0, 1, 1), [pending_pod(msg)], 1)
    assert w.pending_message is not None and "Insufficient nvidia.com/gpu" in w.pending_message
    assert "p-1" in w.pending_message


def test_terminating_pending_pod_ignored() -> None:
    pod = pending_pod("x")
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert observe_workload(deployment(0, 1, 1), [pod], 1).pending_message is None


def test_container_failure_surfaces() -> None:
    pod = {
        "metadata": {"name": "p-2"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {
                    "name": "vllm",
                    "state": {
                        "waiting": {"reason": "CreateContainerConfigError", "message": "secret x not found"}
                    },
                }
            ],
        },
    }
    w = observe_workload(deployment(0, 1, 1), [pod], 1)
    assert w.failure_message is not None and "secret x not found" in w.failure_message


def test_progress_deadline_exceeded_is_reported() -> None:
    dep = deployment(0, 1, 1)
    dep["status"]["conditions"] = [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "x-reranker-7d9" has timed out progressing.',
        },
    ]
    w = observe_workload(dep, [], 1)
    assert w.stuck_message == 'ReplicaSet "x-reranker-7d9" has timed out progressing.'


def test_progressing_deployment_is_not_stuck() -> None:
    dep = deployment(0, 1, 1)
    dep["status"]["conditions"] = [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]
    assert observe_workload(dep, [], 1).stuck_message is None


def test_deadline_of_an_older_generation_is_ignored() -> None:
    """A fixed spec is judged afresh: the old rollout's deadline must not stall the new one."""
    dep = deployment(0, 1, 1, observed=1, generation=2)
    dep["status"]["conditions"] = [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "old"}
    ]
    assert observe_workload(dep, [], 1).stuck_message is None


def test_template_and_status_currency() -> None:
    """What tells a scale (all pods on the current template, the count moving) from a rollout."""
    scaling_up = observe_workload(deployment(2, 2, 2), [], 4)
    assert scaling_up.template_current and scaling_up.status_current
    assert not scaling_up.pods_current and not scaling_up.rolled_out
    rolling = observe_workload(deployment(2, 1, 3), [], 2)  # one new pod, two old ones
    assert not rolling.template_current and not rolling.pods_current
    just_scaled = observe_workload(deployment(2, 2, 2, observed=3, generation=4), [], 4)
    assert not just_scaled.status_current and just_scaled.template_current  # as of the last status
    assert not just_scaled.pods_current
    assert not observe_workload(None, [], 1).template_current


# ------------------------------------------------------------------------------ ahead of the status
def templated(status: dict[str, Any], generation: int = 1, config: str = "h2") -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "spec": {"template": {"metadata": {"annotations": {"rerank.dev/config-hash": config}}}},
        "status": status,
    }


def pod(name: str, config: str = "h2", *, ready: bool = True, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "annotations": {"rerank.dev/config-hash": config}}
    if terminating:
        meta["deletionTimestamp"] = "2026-12-03T07:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_ready_pods_of_the_current_config_count_before_the_deployment_status_does() -> None:
    # a new Deployment: the controllers have not reported yet, the pod is already Ready
    w = observe_workload(templated({}), [pod("a")], 1)
    assert w.rolled_out and w.serving and w.ready == 1


def test_pods_that_are_not_all_there_ready_and_current_wait_for_the_status() -> None:
    status = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1}
    cases = [
        [pod("a", ready=False)],  # not ready yet
        [pod("a", config="h1")],  # the old configuration
        [pod("a"), pod("b", config="h1")],  # a surge: the old pod is still there
        [pod("a"), pod("b")],  # more pods than desired
        [],
    ]
    for pods in cases:
        assert not observe_workload(templated(status, generation=2), pods, 1).rolled_out, pods
    # a terminating old pod is on its way out: the rollout is done
    assert observe_workload(
        templated(status, generation=2), [pod("a"), pod("b", "h1", terminating=True)], 1
    ).rolled_out


def test_a_spec_the_controller_has_not_seen_is_not_judged_by_pods() -> None:
    stale = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1}
    assert not observe_workload(templated(stale, generation=2), [pod("a")], 1).rolled_out
    assert not observe_workload(templated({}), [pod("a")], 0).serving  # scaled to zero


def test_a_lagging_ready_count_does_not_take_back_what_the_pods_showed() -> None:
    # the controller has counted the pod as updated but not yet as ready: the pod says it is
    lagging = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0}
    w = observe_workload(templated(lagging), [pod("a")], 1)
    assert w.rolled_out and w.ready == 1
