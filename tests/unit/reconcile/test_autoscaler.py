"""What the HPA / ScaledObject report, the PodMonitor's status, and which children the spec dropped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.reconcile.autoscaler import (
    NOT_INSTALLED,
    hpa_problem,
    keda_hpa_name,
    observe_autoscaler,
    pod_monitor_status,
    scaled_object_problem,
    stale_children,
)

MakePipeline = Callable[..., RerankPipeline]
HPA = {"minReplicas": 1, "maxReplicas": 4}
KEDA = {**HPA, "provider": "keda", "keda": {"serverAddress": "http://prom:9090"}}
NO_METRICS_MESSAGE = (
    "the HPA was unable to compute the replica count: unable to get metric vllm:num_requests_waiting: "
    "unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered"
)


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def hpa_status(current: int, desired: int, *conditions: dict[str, str]) -> dict[str, Any]:
    return {
        "status": {"currentReplicas": current, "desiredReplicas": desired, "conditions": list(conditions)}
    }


WORKING = hpa_status(
    2,
    3,
    cond("AbleToScale", "True", "SucceededRescale"),
    cond("ScalingActive", "True", "ValidMetricFound"),
    cond("ScalingLimited", "False", "DesiredWithinRange"),
)
NO_METRICS = hpa_status(
    2,
    0,
    cond("AbleToScale", "True", "SucceededGetScale"),
    cond("ScalingActive", "False", "FailedGetPodsMetric", NO_METRICS_MESSAGE),
)


def test_no_state_without_autoscaling(make_pipeline: MakePipeline) -> None:
    assert observe_autoscaler(make_pipeline(), WORKING) is None


def test_working_hpa(make_pipeline: MakePipeline) -> None:
    state = observe_autoscaler(make_pipeline(autoscaling=HPA), WORKING)
    assert state is not None
    assert (state.kind, state.name, state.provider) == ("HorizontalPodAutoscaler", "demo-reranker", "hpa")
    assert (state.current_replicas, state.desired_replicas) == (2, 3)
    assert state.problem is None
    assert state.to_status() == {
        "provider": "hpa",
        "kind": "HorizontalPodAutoscaler",
        "name": "demo-reranker",
        "metric": "vllm:num_requests_waiting",
        "minReplicas": 1,
        "maxReplicas": 4,
        "currentReplicas": 2,
        "desiredReplicas": 3,
    }


def test_hpa_that_cannot_read_its_metric(make_pipeline: MakePipeline) -> None:
    state = observe_autoscaler(make_pipeline(autoscaling=HPA), NO_METRICS)
    assert state is not None
    assert state.problem == ("FailedGetPodsMetric", NO_METRICS_MESSAGE)
    assert state.current_replicas == 2
    assert state.desired_replicas is None  # the HPA computed none (it reports 0): not shown
    status = state.to_status()
    assert status["reason"] == "FailedGetPodsMetric"
    assert "custom.metrics.k8s.io" in status["message"]


def test_hpa_problems_in_order() -> None:
    both = hpa_status(
        1,
        1,
        cond("ScalingActive", "False", "FailedGetPodsMetric", "m"),
        cond("AbleToScale", "False", "FailedGetScale", "no scale"),
    )
    assert hpa_problem(both) == ("FailedGetScale", "no scale")
    assert hpa_problem(WORKING) is None
    assert hpa_problem({}) is None
    assert hpa_problem(None) is None
    limited = hpa_status(4, 4, cond("ScalingLimited", "True", "TooManyReplicas", "at max"))
    assert hpa_problem(limited) is None  # at maxReplicas is the autoscaler working as configured


def test_fresh_hpa_has_no_status_yet(make_pipeline: MakePipeline) -> None:
    state = observe_autoscaler(make_pipeline(autoscaling=HPA), {"spec": {}})
    assert state is not None
    assert state.current_replicas is None and state.desired_replicas is None and state.problem is None


def test_keda_reads_the_hpa_it_manages(make_pipeline: MakePipeline) -> None:
    scaled_object = {
        "status": {
            "hpaName": "keda-hpa-demo-reranker",
            "conditions": [cond("Ready", "True", "ScaledObjectReady")],
        }
    }
    assert keda_hpa_name(scaled_object) == "keda-hpa-demo-reranker"
    assert keda_hpa_name({}) is None
    state = observe_autoscaler(make_pipeline(autoscaling=KEDA), scaled_object, keda_hpa=WORKING)
    assert state is not None
    assert (state.kind, state.provider) == ("ScaledObject", "keda")
    assert state.desired_replicas == 3
    assert state.problem is None


@pytest.mark.parametrize(
    ("conditions", "problem"),
    [
        (
            [cond("Ready", "False", "ScaledObjectCheckFailed", "bad trigger")],
            ("ScaledObjectCheckFailed", "bad trigger"),
        ),
        (
            [
                cond("Ready", "True", "ScaledObjectReady"),
                cond("Fallback", "True", "FallbackExists", "no metric"),
            ],
            ("FallbackExists", "no metric"),
        ),
        ([cond("Ready", "True", "ScaledObjectReady"), cond("Fallback", "False", "NoFallbackFound")], None),
    ],
)
def test_keda_problems(conditions: list[dict[str, str]], problem: tuple[str, str] | None) -> None:
    assert scaled_object_problem({"status": {"conditions": conditions}}) == problem


def test_keda_problem_wins_over_its_hpa(make_pipeline: MakePipeline) -> None:
    scaled_object = {"status": {"conditions": [cond("Ready", "False", "ScaledObjectCheckFailed", "x")]}}
    state = observe_autoscaler(make_pipeline(autoscaling=KEDA), scaled_object, keda_hpa=NO_METRICS)
    assert state is not None and state.problem is not None
    assert state.problem[0] == "ScaledObjectCheckFailed"


def test_keda_not_installed(make_pipeline: MakePipeline) -> None:
    state = observe_autoscaler(make_pipeline(autoscaling=KEDA), None, not_installed=True)
    assert state is not None and state.problem is not None
    reason, message = state.problem
    assert reason == NOT_INSTALLED
    assert "KEDA is not installed" in message and "scaledobjects" in message and "keda.sh/v1alpha1" in message


def test_pod_monitor_status(make_pipeline: MakePipeline) -> None:
    assert pod_monitor_status(make_pipeline(), not_installed=True) is None  # not asked for: nothing to say
    pipeline = make_pipeline(monitoring={"podMonitor": {"enabled": True}})
    assert pod_monitor_status(pipeline, not_installed=False) == {
        "name": "demo-reranker",
        "state": "Applied",
        "message": "",
    }
    missing = pod_monitor_status(pipeline, not_installed=True)
    assert missing is not None and missing["state"] == "NotInstalled"
    assert "monitoring.coreos.com/v1" in missing["message"]
    rejected = pod_monitor_status(pipeline, not_installed=False, rejected="denied")
    assert rejected == {"name": "demo-reranker", "state": "Rejected", "message": "denied"}


HPA_STATUS = {"autoscaling": {"kind": "HorizontalPodAutoscaler", "name": "demo-reranker"}}
KEDA_STATUS = {"autoscaling": {"kind": "ScaledObject", "name": "demo-reranker"}}
MONITOR_STATUS = {"podMonitor": {"name": "demo-reranker", "state": "Applied"}}


@pytest.mark.parametrize(
    ("spec", "status", "stale"),
    [
        ({}, HPA_STATUS, [("HorizontalPodAutoscaler", "demo-reranker")]),  # autoscaling removed
        ({"autoscaling": KEDA}, HPA_STATUS, [("HorizontalPodAutoscaler", "demo-reranker")]),  # hpa -> keda
        ({"autoscaling": HPA}, KEDA_STATUS, [("ScaledObject", "demo-reranker")]),  # keda -> hpa
        ({"autoscaling": HPA}, HPA_STATUS, []),
        ({}, {}, []),
        ({}, None, []),
        ({}, MONITOR_STATUS, [("PodMonitor", "demo-reranker")]),
        ({"monitoring": {"podMonitor": {"enabled": True}}}, MONITOR_STATUS, []),
        ({}, {"podMonitor": {"name": "demo-reranker", "state": "NotInstalled"}}, []),  # never created
        ({}, {"autoscaling": {"kind": "Deployment", "name": "demo-reranker"}}, []),  # only autoscaler kinds
    ],
)
def test_stale_children(
    make_pipeline: MakePipeline, spec: dict[str, Any], status: dict[str, Any] | None, stale: list[Any]
) -> None:
    assert stale_children(make_pipeline(**spec), status) == stale
