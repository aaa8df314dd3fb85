from dataclasses import replace
from typing import Any

import pytest
from status_support import observation

from rerank_operator.reconcile.autoscaler import AutoscalerState
from rerank_operator.reconcile.conditions import Desired
from rerank_operator.reconcile.decide import (
    Observation,
    desired_conditions,
    invalid_conditions,
    invalid_status,
    status_fields,
    valid_status,
)
from rerank_operator.reconcile.workload import WorkloadState


def obs(**kw: Any) -> Observation:
    """A verified pipeline at generation 2 (``status_support.observation``); ``kw`` replace fields."""
    return replace(observation(2, config_map_name="x-ranker", namespaces=["ns"]), **kw)


def by_type(conds: list[Desired]) -> dict[str, Desired]:
    return {c.type: c for c in conds}


def test_verified_is_ready() -> None:
    c = by_type(desired_conditions(obs()))
    assert c["Ready"].status == "True" and c["Ready"].reason == "Healthy"
    assert "ns/x-ranker" in c["Ready"].message
    assert c["Progressing"].status == "False" and c["Reconciling"].status == "False"
    assert c["Degraded"].status == "False" and c["Stalled"].status == "False"
    assert c["Probed"].status == "True" and c["Published"].status == "True"


def test_new_generation_not_yet_verified() -> None:
    c = by_type(desired_conditions(obs(generation=3)))
    assert c["Ready"].status == "False" and c["Ready"].reason == "AwaitingFirstProbe"
    assert c["Progressing"].status == "True" and c["Reconciling"].status == "True"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"workload": WorkloadState(0, 0, 0, True)}, "ScaledToZero"),
        ({"apply_errors": ["Deployment x rejected: bad"]}, "ApplyRejected"),
        (
            {
                "workload": WorkloadState(
                    1, 0, 1, False, pending_message="0/3 nodes: Insufficient nvidia.com/gpu"
                )
            },
            "PodsPending",
        ),
        ({"workload": WorkloadState(1, 0, 1, False, failure_message="ImagePullBackOff")}, "ContainerFailing"),
        ({"workload": WorkloadState(2, 1, 2, False)}, "RollingOut"),
        (
            {
                "healthy": False,
                "last_probe": {"ok": False, "reason": "WrongTopDocument", "message": "doc 2 first"},
            },
            "WrongTopDocument",
        ),
        ({"published": None, "last_probe": None}, "AwaitingFirstProbe"),
    ],
)
def test_not_ready_reasons(changes: dict[str, Any], reason: str) -> None:
    c = by_type(desired_conditions(obs(**changes)))
    assert c["Ready"].status == "False"
    assert c["Ready"].reason == reason


def test_pending_message_reaches_ready_condition() -> None:
    pending = WorkloadState(
        1, 0, 1, False, pending_message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )
    c = by_type(desired_conditions(obs(workload=pending)))
    assert "Insufficient nvidia.com/gpu" in c["Ready"].message


def test_apply_rejected_is_stalled() -> None:
    c = by_type(desired_conditions(obs(apply_errors=["PVC x rejected: immutable"])))
    assert c["Stalled"].status == "True" and "immutable" in c["Stalled"].message
    assert c["Progressing"].status == "False"


def test_failing_after_publish_is_degraded_and_keeps_published() -> None:
    failing = {"ok": False, "reason": "HTTPStatus", "message": "HTTPStatus 500: boom"}
    c = by_type(desired_conditions(obs(healthy=False, last_probe=failing, published_ready=False)))
    assert c["Degraded"].status == "True"
    assert c["Published"].status == "True" and "last good config kept" in c["Published"].message
    assert c["Probed"].status == "False" and c["Probed"].reason == "HTTPStatus"


SHORT = WorkloadState(desired=2, ready=1, updated=2, pods_current=True)


def test_replica_lost_after_verification_stays_ready_and_is_degraded() -> None:
    o = obs(workload=SHORT)
    assert o.replicas_lost and o.serving and not o.verified
    c = by_type(desired_conditions(o))
    assert c["Ready"].status == "True" and "1/2 pods ready" in c["Ready"].message
    assert c["Degraded"].status == "True" and c["Degraded"].reason == "ReplicasUnavailable"
    assert c["Progressing"].status == "False" and c["Reconciling"].status == "False"


def test_replica_lost_degraded_message_says_why_the_replacement_waits() -> None:
    pending = replace(SHORT, pending_message="pod p-2 Unschedulable: 0/3 nodes: Insufficient nvidia.com/gpu")
    c = by_type(desired_conditions(obs(workload=pending)))
    assert c["Ready"].status == "True"
    assert "Insufficient nvidia.com/gpu" in c["Degraded"].message


def test_all_replicas_lost_is_not_ready_and_not_called_a_rollout() -> None:
    gone = replace(SHORT, ready=0)
    c = by_type(desired_conditions(obs(workload=gone)))
    assert c["Ready"].status == "False" and c["Ready"].reason == "ReplicasUnavailable"
    assert c["Degraded"].status == "True" and c["Degraded"].reason == "ReplicasUnavailable"
    # once the canary has failed often enough, that is the headline; lost replicas stay in the message
    c = by_type(desired_conditions(obs(workload=gone, healthy=False)))
    assert c["Degraded"].reason == "CanaryFailing" and "0/2 pods ready" in c["Degraded"].message


def test_fewer_ready_pods_of_an_unverified_generation_is_a_rollout() -> None:
    # generation 3 never passed its canary: pods still loading the model are progress, not loss
    c = by_type(desired_conditions(obs(generation=3, workload=SHORT)))
    assert c["Ready"].status == "False" and c["Ready"].reason == "RollingOut"
    assert c["Degraded"].status == "False"


def test_publish_error_names_degraded_when_the_reranker_is_healthy() -> None:
    c = by_type(desired_conditions(obs(publish_errors=["cannot publish to namespace apps: forbidden"])))
    assert c["Ready"].status == "True"
    assert c["Degraded"].status == "True" and c["Degraded"].reason == "PublishFailed"


STUCK = WorkloadState(
    desired=1,
    ready=0,
    updated=1,
    pods_current=True,
    stuck_message='ReplicaSet "x" has timed out progressing.',
)


def test_rollout_past_its_deadline_is_stalled() -> None:
    c = by_type(desired_conditions(obs(generation=3, workload=STUCK)))
    assert c["Stalled"].status == "True" and c["Stalled"].reason == "ProgressDeadlineExceeded"
    assert "timed out progressing" in c["Stalled"].message
    assert c["Ready"].status == "False" and c["Ready"].reason == "ProgressDeadlineExceeded"
    assert c["Progressing"].status == "False" and c["Progressing"].reason == "Stalled"


def test_stalled_rollout_names_the_schedulers_reason() -> None:
    pending = replace(STUCK, pending_message="pod p-1 Unschedulable: 0/3 nodes: Insufficient nvidia.com/gpu")
    c = by_type(desired_conditions(obs(generation=3, workload=pending)))
    assert c["Ready"].reason == "PodsPending"  # the most specific reason stays the headline
    assert "Insufficient nvidia.com/gpu" in c["Stalled"].message


def test_deadline_is_moot_once_rolled_out_or_scaled_to_zero() -> None:
    done = replace(STUCK, ready=1)  # the controller clears the condition soon; the pods decide
    assert by_type(desired_conditions(obs(workload=done)))["Stalled"].status == "False"
    assert by_type(desired_conditions(obs(workload=replace(STUCK, desired=0))))["Stalled"].status == "False"


def test_serving_pipeline_is_never_stalled_by_a_deadline() -> None:
    # Replace strategy, 2 replicas, a template change within the same generation: one new pod serves,
    # the other never got ready and the Deployment controller gave up
    short_and_stuck = replace(SHORT, stuck_message='ReplicaSet "x" has timed out progressing.')
    c = by_type(desired_conditions(obs(workload=short_and_stuck)))
    assert c["Ready"].status == "True"
    assert c["Stalled"].status == "False"
    assert c["Degraded"].reason == "ReplicasUnavailable" and "timed out progressing" in c["Degraded"].message


def test_failing_canary_on_the_pods_left_is_the_headline() -> None:
    failing = {"ok": False, "reason": "WrongTopDocument", "message": "doc 2 first"}
    c = by_type(desired_conditions(obs(workload=SHORT, healthy=False, last_probe=failing)))
    assert c["Ready"].status == "False" and c["Ready"].reason == "WrongTopDocument"
    assert c["Degraded"].reason == "CanaryFailing" and "1/2 pods ready" in c["Degraded"].message


def test_while_the_endpoint_changes_degraded_follows_the_published_one() -> None:
    failing = {"ok": False, "reason": "ConnectionRefused", "message": "new address refused"}
    moving = obs(generation=3, healthy=False, last_probe=failing, published_healthy=True)
    c = by_type(desired_conditions(moving))
    assert c["Ready"].status == "False" and c["Ready"].reason == "ConnectionRefused"
    assert c["Degraded"].status == "False"  # what apps use still passes
    c = by_type(desired_conditions(replace(moving, published_healthy=False)))
    assert c["Degraded"].status == "True" and c["Degraded"].reason == "CanaryFailing"


def test_not_probed_yet() -> None:
    c = by_type(desired_conditions(obs(last_probe=None, published=None, healthy=False)))
    assert c["Probed"].status == "Unknown"
    assert c["Published"].status == "False"


def test_invalid_conditions() -> None:
    c = by_type(invalid_conditions(["spec.replicas: must be >= 0"]))
    assert c["Ready"].reason == "InvalidSpec" and "spec.replicas" in c["Ready"].message
    assert c["Stalled"].status == "True"


def test_status_fields_record_where_published_even_before_first_success() -> None:
    fields = status_fields(obs(published=None, published_ready=False))
    assert fields["published"] == {"configMapName": "x-ranker", "namespaces": ["ns"], "ready": False}
    full = status_fields(obs())["published"]
    assert full["generation"] == 2 and full["functionJson"] == "{}" and full["ready"] is True
    assert status_fields(obs())["readyReplicas"] == 1


def test_invalid_status_keeps_what_only_a_valid_pass_judges() -> None:
    before = valid_status(obs(), None, now="t0")
    after = invalid_status(before, 3, ["spec.replicas: must be >= 0"], now="t1")
    assert after["observedGeneration"] == 3
    assert after["published"] == before["published"]  # the working config is not forgotten
    by = {c["type"]: c for c in after["conditions"]}
    assert by["Ready"]["reason"] == "InvalidSpec"
    assert by["Ready"]["lastTransitionTime"] == "t1"  # True -> False
    assert by["Published"] == {c["type"]: c for c in before["conditions"]}["Published"]
    assert by["Stalled"]["status"] == "True"


def test_valid_status_carries_transition_times_over() -> None:
    first = valid_status(obs(), None, now="t0")
    again = valid_status(obs(), first, now="t1")
    assert again == first


# ------------------------------------------------------------------------------ autoscaled pipelines
def scaler(**kw: Any) -> AutoscalerState:
    base = AutoscalerState(
        provider="hpa",
        kind="HorizontalPodAutoscaler",
        name="x-reranker",
        metric="vllm:num_requests_waiting",
        min_replicas=1,
        max_replicas=4,
        current_replicas=2,
        desired_replicas=2,
    )
    return replace(base, **kw)


def scaled(workload: WorkloadState, **kw: Any) -> Observation:
    return obs(workload=workload, autoscaler=scaler(), **kw)


def test_autoscaled_and_settled_is_ready() -> None:
    o = scaled(WorkloadState(2, 2, 2, True))
    c = by_type(desired_conditions(o))
    assert c["Ready"].status == "True" and c["Ready"].reason == "Healthy"
    assert c["Degraded"].status == "False"
    fields = status_fields(o)
    assert fields["replicas"] == 2
    assert fields["autoscaling"]["desiredReplicas"] == 2
    assert fields["autoscaling"]["kind"] == "HorizontalPodAutoscaler"


@pytest.mark.parametrize(
    "workload",
    [
        WorkloadState(4, 2, 2, False),  # scaled up 2 -> 4: the ReplicaSet has not made the pods yet
        WorkloadState(4, 2, 4, False),  # the new pods exist and load their model
        WorkloadState(2, 2, 4, False),  # scaled down 4 -> 2: two pods still terminating
        WorkloadState(4, 2, 2, False, status_current=False),  # the Deployment controller has not seen it
    ],
    ids=["scale-up-requested", "scale-up-loading", "scale-down", "status-a-moment-old"],
)
def test_a_scale_is_not_a_rollout(workload: WorkloadState) -> None:
    """Ready, Progressing and Degraded stay as they were while an autoscaler changes the count: the
    verified pods keep serving and Argo CD / Flux see nothing to wait for."""
    c = by_type(desired_conditions(scaled(workload)))
    assert c["Ready"].status == "True", c["Ready"]
    assert f"{workload.ready}/{workload.desired} pods ready" in c["Ready"].message
    assert c["Progressing"].status == "False" and c["Reconciling"].status == "False"
    assert c["Degraded"].status == "False", c["Degraded"]
    assert c["Stalled"].status == "False"


def test_the_same_shortfall_without_an_autoscaler_is_lost_capacity() -> None:
    c = by_type(desired_conditions(obs(workload=WorkloadState(4, 2, 4, True))))
    assert c["Ready"].status == "True"
    assert c["Degraded"].status == "True" and c["Degraded"].reason == "ReplicasUnavailable"


def test_scale_up_without_free_gpus_is_degraded_with_the_schedulers_message() -> None:
    pending = "pod x-reranker-abc Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu"
    c = by_type(desired_conditions(scaled(WorkloadState(4, 2, 4, False, pending_message=pending))))
    assert c["Ready"].status == "True"  # two pods still serve
    assert c["Degraded"].status == "True" and c["Degraded"].reason == "ReplicasUnavailable"
    assert "2/4 pods ready" in c["Degraded"].message
    assert "Insufficient nvidia.com/gpu" in c["Degraded"].message


def test_autoscaler_problem_is_degraded_with_its_own_reason() -> None:
    message = "the HPA was unable to compute the replica count: no custom metrics API registered"
    o = obs(
        workload=WorkloadState(1, 1, 1, True), autoscaler=scaler(problem=("FailedGetPodsMetric", message))
    )
    c = by_type(desired_conditions(o))
    assert c["Ready"].status == "True"  # it serves, at a fixed size
    assert c["Degraded"].status == "True" and c["Degraded"].reason == "FailedGetPodsMetric"
    assert "HorizontalPodAutoscaler x-reranker cannot scale" in c["Degraded"].message
    assert message in c["Degraded"].message
    assert status_fields(o)["autoscaling"]["reason"] == "FailedGetPodsMetric"


def test_a_rollout_of_an_autoscaled_pipeline_is_still_a_rollout() -> None:
    """A new generation (or old-template pods left) is verified as before, at the live count."""
    c = by_type(desired_conditions(scaled(WorkloadState(3, 1, 1, False, template_current=False))))
    assert c["Ready"].status == "False" and c["Ready"].reason == "RollingOut"
    c = by_type(desired_conditions(scaled(WorkloadState(3, 3, 3, True), generation=3)))
    assert c["Ready"].status == "False" and c["Ready"].reason == "AwaitingFirstProbe"


def test_autoscaled_with_no_pod_ready_is_not_serving() -> None:
    c = by_type(desired_conditions(scaled(WorkloadState(2, 0, 2, False))))
    assert c["Ready"].status == "False" and c["Ready"].reason == "ReplicasUnavailable"


def test_autoscaled_deployment_scaled_to_zero_by_hand() -> None:
    c = by_type(desired_conditions(scaled(WorkloadState(0, 0, 0, True))))
    assert c["Ready"].status == "False" and c["Ready"].reason == "ScaledToZero"
    assert "the Deployment is scaled to 0" in c["Ready"].message
    assert "spec.replicas" not in c["Ready"].message


def test_pod_monitor_status_is_written() -> None:
    monitor = {"name": "x-reranker", "state": "NotInstalled", "message": "no PodMonitor API"}
    assert status_fields(obs(pod_monitor=monitor))["podMonitor"] == monitor
    assert "podMonitor" not in status_fields(obs())
    assert "autoscaling" not in status_fields(obs())
