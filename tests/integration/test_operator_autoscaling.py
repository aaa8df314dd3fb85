"""Autoscaled pipelines, in-process against kmock: the HPA child, status following the live count,
the autoscaler's own reason in Degraded, and spec.replicas coming back when autoscaling is removed.

kmock has no scale subresource, no controllers and no field co-ownership, so the test plays the
Deployment controller and the HPA (a write of ``spec.replicas`` as the HPA's scale update makes, and
the HPA's status). The handover of ``spec.replicas`` itself is server-side apply semantics, proven on
the real control plane in ``tests/e2e/test_autoscaling_e2e.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kmock_support import DEPLOYMENTS, HPAS, Harness, consistently, eventually, passes, pipeline_spec

from rerank_operator import API_VERSION, KIND

pytestmark = pytest.mark.timeout(60)

AUTOSCALING = {"minReplicas": 1, "maxReplicas": 3}
NO_METRICS = (
    "the HPA was unable to compute the replica count: unable to get metric vllm:num_requests_waiting: "
    "unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered"
)


def hpa(h: Harness, name: str = "rr") -> dict[str, Any] | None:
    return h.get(HPAS, f"{name}-reranker")


async def play_hpa(h: Harness, *conditions: dict[str, str], current: int, desired: int) -> None:
    """What the HPA controller writes into its status."""
    await h.patch(
        HPAS,
        "rr-reranker",
        {"status": {"currentReplicas": current, "desiredReplicas": desired, "conditions": list(conditions)}},
        subresource="status",
    )


async def scale(h: Harness, replicas: int) -> None:
    """The HPA's scale update (kmock has no scale subresource: the same field, written directly)."""
    await h.patch(DEPLOYMENTS, "rr-reranker", {"spec": {"replicas": replicas}})


def deployment_applies(h: Harness) -> list[dict[str, Any]]:
    out = []
    for req in h.requests("PATCH", DEPLOYMENTS, "rr-reranker"):
        if "apply-patch" in (req.headers or {}).get("Content-Type", ""):
            out.append(req.data if isinstance(req.data, dict) else json.loads(req.data))
    return out


async def test_autoscaled_pipeline_leaves_the_count_to_its_hpa(start_operator: Any) -> None:
    h = await start_operator()
    await h.create_pipeline("rr", pipeline_spec(replicas=2, autoscaling=AUTOSCALING))
    await h.wait_deployment("rr")
    created = await eventually(lambda: hpa(h), within=10, message="the HPA")
    assert created["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "rr-reranker",
    }
    assert (created["spec"]["minReplicas"], created["spec"]["maxReplicas"]) == (1, 3)
    [owner] = created["metadata"]["ownerReferences"]
    assert (owner["apiVersion"], owner["kind"], owner["uid"]) == (API_VERSION, KIND, h.uids["rr"])
    assert "replicas" not in h.must(DEPLOYMENTS, "rr-reranker")["spec"]  # not spec.replicas (2)

    # the HPA enforces minReplicas... and then finds no metrics API
    await scale(h, 1)
    await h.play_deployment_controller("rr")
    await h.wait_ready("rr")
    before = {e["metadata"]["name"] for e in h.events("rr")}
    await play_hpa(
        h,
        {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale", "message": "ok"},
        {"type": "ScalingActive", "status": "False", "reason": "FailedGetPodsMetric", "message": NO_METRICS},
        current=1,
        desired=1,
    )

    def degraded_with_the_hpas_reason() -> None:
        c = h.condition("rr", "Degraded")
        assert c["status"] == "True" and c["reason"] == "FailedGetPodsMetric", c
        assert "custom.metrics.k8s.io" in c["message"]
        assert h.condition("rr", "Ready")["status"] == "True"  # it serves, at a fixed size
        autoscaling = h.status("rr")["autoscaling"]
        assert (
            autoscaling["kind"] == "HorizontalPodAutoscaler"
            and autoscaling["reason"] == "FailedGetPodsMetric"
        )

    await passes(degraded_with_the_hpas_reason, within=10, message="Degraded=FailedGetPodsMetric")

    # the metric works again and the HPA scales up to 3: status follows, Ready never drops
    await play_hpa(
        h,
        {"type": "AbleToScale", "status": "True", "reason": "SucceededRescale", "message": "ok"},
        {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "ok"},
        current=1,
        desired=3,
    )
    await scale(h, 3)
    await h.play_deployment_controller("rr", ready=1, updated=3)  # two new pods loading their model

    def scaling() -> None:
        status = h.status("rr")
        assert status["replicas"] == 3 and status["readyReplicas"] == 1, status
        assert status["autoscaling"]["desiredReplicas"] == 3
        assert h.condition("rr", "Degraded")["status"] == "False"
        ready = h.condition("rr", "Ready")
        assert ready["status"] == "True" and "1/3 pods ready" in ready["message"], ready

    await passes(scaling, within=10, message="status follows the scale-up")

    def steady() -> None:
        assert h.must(DEPLOYMENTS, "rr-reranker")["spec"]["replicas"] == 3  # not reset by any pass
        assert h.condition("rr", "Ready")["status"] == "True"
        assert h.condition("rr", "Progressing")["status"] == "False"

    await consistently(steady, duration=3)  # several canary passes
    # a hand edit of a field the operator sets: restored by an apply that leaves the count alone
    live = h.must(DEPLOYMENTS, "rr-reranker")
    await h.patch(DEPLOYMENTS, "rr-reranker", {"spec": {"progressDeadlineSeconds": 7}})
    await passes(
        lambda: (
            h.must(DEPLOYMENTS, "rr-reranker")["spec"]["progressDeadlineSeconds"]
            == live["spec"]["progressDeadlineSeconds"]
        ),
        within=10,
        message="the hand edit is restored",
    )
    await consistently(steady, duration=2)
    assert deployment_applies(h), "the operator applied its Deployment"
    for body in deployment_applies(h):
        assert "replicas" not in body.get("spec", {}), body

    await h.play_deployment_controller("rr")
    await passes(lambda: h.condition("rr", "Ready")["message"].find("pods ready") == -1, within=10)
    # a scale (and an autoscaler that cannot read its metric) is no Ready transition: no Warning
    new = [e for e in h.events("rr") if e["metadata"]["name"] not in before]
    warnings = [(e["reason"], e["message"]) for e in new if e["type"] == "Warning"]
    assert not warnings, warnings


async def test_removing_autoscaling_restores_spec_replicas_and_deletes_the_hpa(start_operator: Any) -> None:
    h = await start_operator()
    await h.create_pipeline("rr", pipeline_spec(replicas=2, autoscaling=AUTOSCALING))
    await h.wait_deployment("rr")
    await eventually(lambda: hpa(h), within=10, message="the HPA")
    await scale(h, 3)
    await h.play_deployment_controller("rr")
    await h.wait_ready("rr")
    await eventually(lambda: h.status("rr").get("autoscaling"), within=10, message="status.autoscaling")

    await h.update_spec("rr", {"autoscaling": None})

    def handed_back() -> None:
        assert h.must(DEPLOYMENTS, "rr-reranker")["spec"]["replicas"] == 2
        assert hpa(h) is None
        status = h.status("rr")
        assert "autoscaling" not in status, status
        assert status["replicas"] == 2

    await passes(handed_back, within=10, message="spec.replicas applies again, the HPA is gone")


async def test_an_hpa_that_is_not_ours_is_left_alone(start_operator: Any) -> None:
    """A same-named HPA someone else made (no owner reference to this pipeline) is never deleted."""
    h = await start_operator()
    await h.converge("rr", pipeline_spec())
    theirs = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "rr-reranker", "labels": {"team": "search"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "elsewhere"},
            "maxReplicas": 2,
        },
    }
    await h.create(HPAS, theirs)
    canaries = len(h.canaries())
    await h.restart_operator()  # a new process looks for an autoscaler left behind, once (in its watches)
    await eventually(lambda: len(h.canaries()) > canaries, within=10, message="a pass of the new process")

    def still_there() -> None:
        assert hpa(h) is not None, "someone else's HPA was deleted"

    await consistently(still_there, duration=2)
    assert not h.requests("DELETE", HPAS, "rr-reranker")
