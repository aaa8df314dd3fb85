"""The RerankPipeline status models: shapes, defaults, round trips and validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rerank_operator.models import (
    AutoscalingStatus,
    Condition,
    LatencyStatus,
    PodMonitorStatus,
    ProbeResultStatus,
    PublishedStatus,
    RerankPipelineStatus,
)
from rerank_operator.models.status import RetiringRevision, RevisionsStatus

FULL_STATUS: dict[str, Any] = {
    "observedGeneration": 4,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Healthy",
            "message": "canary ranked the expected document first",
            "lastTransitionTime": "2025-06-01T12:00:00Z",
            "observedGeneration": 4,
        },
        {
            "type": "Progressing",
            "status": "False",
            "reason": "RolloutComplete",
            "message": "",
            "lastTransitionTime": "2025-06-01T11:59:00Z",
            "observedGeneration": 4,
        },
    ],
    "replicas": 2,
    "readyReplicas": 2,
    "endpoint": "http://demo-reranker.search.svc.cluster.local:8000",
    "servedModel": "BAAI/bge-reranker-base",
    "lastProbe": {
        "time": "2025-06-01T12:00:00Z",
        "ok": True,
        "reason": "Healthy",
        "message": "top document 1",
        "latencyMs": 12.5,
    },
    "latency": {"p50Ms": 10.0, "p95Ms": 20.5, "samples": 30},
    "consecutiveFailures": 0,
    "consecutiveSuccesses": 12,
    "published": {
        "configMapName": "demo-ranker",
        "namespaces": ["search", "apps"],
        "ready": True,
        "endpoint": "http://demo-reranker.search.svc.cluster.local:8000",
        "model": "BAAI/bge-reranker-base",
        "generation": 4,
        "functionJson": '{"name": "demo_rerank"}\n',
        "liteFunctionJson": '{"name": "demo_rerank"}\n',
        "time": "2025-06-01T12:00:00Z",
    },
    "autoscaling": {
        "provider": "hpa",
        "kind": "HorizontalPodAutoscaler",
        "name": "demo-reranker",
        "metric": "vllm:num_requests_waiting",
        "minReplicas": 1,
        "maxReplicas": 4,
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "reason": "FailedGetPodsMetric",
        "message": "the HPA was unable to compute the replica count",
    },
    "podMonitor": {"name": "demo-reranker", "state": "NotInstalled", "message": "no PodMonitor API"},
    "revisions": {
        "active": "3f9c2a71",
        "activeDeployment": "demo-3f9c2a71",
        "candidate": "b04e8d15",
        "candidateDeployment": "demo-b04e8d15",
        "reason": "PodsPending",
        "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu",
        "retiring": [
            {"revision": "77d1e0aa", "deployment": "demo-77d1e0aa", "until": "2025-06-01T12:03:00Z"},
        ],
    },
}


def test_empty_status_defaults() -> None:
    status = RerankPipelineStatus()
    assert status.conditions == []
    assert status.observed_generation is None
    assert status.last_probe is None
    assert status.published is None
    assert status.revisions is None
    assert status.to_api() == {"conditions": []}


def test_full_status_round_trips() -> None:
    status = RerankPipelineStatus.model_validate(FULL_STATUS)
    assert status.to_api() == FULL_STATUS
    assert RerankPipelineStatus.model_validate(status.to_api()) == status
    assert status.ready_replicas == 2
    assert status.published is not None
    assert status.published.namespaces == ["search", "apps"]
    assert status.revisions is not None
    assert status.revisions.active_deployment == "demo-3f9c2a71"
    assert status.revisions.candidate_deployment == "demo-b04e8d15"
    assert [r.deployment for r in status.revisions.retiring] == ["demo-77d1e0aa"]


def test_full_status_sets_every_field() -> None:
    """A status field added to the models must be added here (and so to the CRD check)."""
    for model, data in (
        (RerankPipelineStatus, FULL_STATUS),
        (Condition, FULL_STATUS["conditions"][0]),
        (ProbeResultStatus, FULL_STATUS["lastProbe"]),
        (LatencyStatus, FULL_STATUS["latency"]),
        (PublishedStatus, FULL_STATUS["published"]),
        (AutoscalingStatus, FULL_STATUS["autoscaling"]),
        (PodMonitorStatus, FULL_STATUS["podMonitor"]),
        (RevisionsStatus, FULL_STATUS["revisions"]),
        (RetiringRevision, FULL_STATUS["revisions"]["retiring"][0]),
    ):
        aliases = {info.alias or name for name, info in model.model_fields.items()}
        assert aliases == set(data), model.__name__


def test_condition_defaults() -> None:
    condition = Condition.model_validate(
        {"type": "Ready", "status": "Unknown", "reason": "AwaitingFirstProbe", "lastTransitionTime": "t"}
    )
    assert condition.message == ""
    assert condition.observed_generation == 0
    assert condition.to_api() == {
        "type": "Ready",
        "status": "Unknown",
        "reason": "AwaitingFirstProbe",
        "message": "",
        "lastTransitionTime": "t",
        "observedGeneration": 0,
    }


@pytest.mark.parametrize("missing", ["type", "status", "reason", "lastTransitionTime"])
def test_condition_required_fields(missing: str) -> None:
    data = {"type": "Ready", "status": "True", "reason": "Healthy", "lastTransitionTime": "t"}
    del data[missing]
    with pytest.raises(ValidationError) as info:
        Condition.model_validate(data)
    assert [e["loc"] for e in info.value.errors()] == [(missing,)]


@pytest.mark.parametrize(
    ("model", "data", "loc"),
    [
        (
            Condition,
            {"type": "Ready", "status": "true", "reason": "r", "lastTransitionTime": "t"},
            ("status",),
        ),
        (
            Condition,
            {
                "type": "Ready",
                "status": "True",
                "reason": "r",
                "lastTransitionTime": "t",
                "observedGeneration": -1,
            },
            ("observedGeneration",),
        ),
        (LatencyStatus, {"samples": -1}, ("samples",)),
        (ProbeResultStatus, {"time": "t", "ok": True, "reason": "r", "message": "x" * 4097}, ("message",)),
        (PublishedStatus, {}, ("configMapName",)),
        (RevisionsStatus, {"message": "x" * 4097}, ("message",)),
        (RevisionsStatus, {"retiring": [{"revision": "r", "deployment": "d"}]}, ("retiring", 0, "until")),
        (RerankPipelineStatus, {"revisions": {"active": "r", "bogus": 1}}, ("revisions", "bogus")),
        (RerankPipelineStatus, {"bogus": 1}, ("bogus",)),
        (RerankPipelineStatus, {"ready_replicas": 1}, ("ready_replicas",)),
        (
            RerankPipelineStatus,
            {"lastProbe": {"time": "t", "ok": True, "reason": "r", "extra": 1}},
            ("lastProbe", "extra"),
        ),
    ],
)
def test_status_validation(model: Any, data: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert [e["loc"] for e in info.value.errors()] == [loc]


def test_published_status_defaults() -> None:
    published = PublishedStatus.model_validate({"configMapName": "demo-ranker"})
    assert published.ready is False
    assert published.namespaces == []
    assert published.to_api() == {"configMapName": "demo-ranker", "namespaces": [], "ready": False}


def test_revisions_status_defaults() -> None:
    """Before the first switch nothing is active; only the candidate (and no drain) is reported."""
    revisions = RevisionsStatus.model_validate(
        {"candidate": "b04e8d15", "candidateDeployment": "demo-b04e8d15"}
    )
    assert revisions.active is None
    assert revisions.active_deployment is None
    assert revisions.reason is None
    assert revisions.retiring == []
    assert revisions.to_api() == {
        "candidate": "b04e8d15",
        "candidateDeployment": "demo-b04e8d15",
        "retiring": [],
    }
