"""Flux/kstatus read the operator's status the way we mean it.

``kstatus`` below is a tiny pure re-implementation of the rules (see shared facts, "GitOps health"):
deletionTimestamp -> Terminating; observedGeneration != generation -> InProgress; Reconciling=True ->
InProgress; Stalled=True -> Failed; else the Ready condition decides. It is checked against statuses
composed exactly as ``reconcile.engine`` composes them from ``reconcile.decide``.
"""

from __future__ import annotations

from typing import Any

import pytest
from status_support import NOW, invalid_status, observation, snapshot, valid_status

from rerank_operator.reconcile.workload import WorkloadState

LATER = "2026-01-01T00:05:00Z"


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def kstatus(obj: dict[str, Any]) -> str:
    """Current | InProgress | Failed | Terminating, as Flux's kstatus-based health checks decide."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status")
    if not status:
        return "InProgress"  # nothing observed yet
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return "InProgress"
    reconciling = _condition(obj, "Reconciling")
    if reconciling is not None and reconciling["status"] == "True":
        return "InProgress"
    stalled = _condition(obj, "Stalled")
    if stalled is not None and stalled["status"] == "True":
        return "Failed"
    ready = _condition(obj, "Ready")
    if ready is None:
        return "Current"  # a resource without a Ready condition is Current once observed
    return "Current" if ready["status"] == "True" else "InProgress"


# ----------------------------------------------------------------------- the rules themselves


def _obj(generation: int = 1, status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "p", "generation": generation, **meta}}
    if status is not None:
        obj["status"] = status
    return obj


def _c(type_: str, status: str) -> dict[str, str]:
    return {"type": type_, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_obj(), "InProgress"),
        (_obj(status={"observedGeneration": 1, "conditions": [_c("Ready", "True")]}), "Current"),
        (_obj(2, {"observedGeneration": 1, "conditions": [_c("Ready", "True")]}), "InProgress"),
        (_obj(status={"observedGeneration": 1, "conditions": [_c("Reconciling", "True")]}), "InProgress"),
        (_obj(status={"observedGeneration": 1, "conditions": [_c("Stalled", "True")]}), "Failed"),
        (
            _obj(status={"conditions": [_c("Ready", "True")]}, deletionTimestamp=NOW),
            "Terminating",
        ),
    ],
)
def test_rules(obj: dict[str, Any], expected: str) -> None:
    assert kstatus(obj) == expected


# ------------------------------------------------------- statuses the operator really writes


def obj_with(status: dict[str, Any], generation: int) -> dict[str, Any]:
    return _obj(generation, status)


FIRST_PASS = observation(published=None, published_ready=False, last_probe=None, healthy=False)


def test_first_pass_is_in_progress() -> None:
    assert kstatus(obj_with(valid_status(FIRST_PASS), 1)) == "InProgress"


def test_rolling_out_is_in_progress() -> None:
    rolling = observation(workload=WorkloadState(desired=2, ready=1, updated=2, pods_current=False))
    status = valid_status(rolling)
    assert _condition({"status": status}, "Ready")["reason"] == "RollingOut"  # type: ignore[index]
    assert kstatus(obj_with(status, 1)) == "InProgress"


def test_pods_pending_is_in_progress() -> None:
    pending = observation(
        workload=WorkloadState(1, 0, 1, False, pending_message="0/3 nodes: Insufficient nvidia.com/gpu"),
        published=None,
        published_ready=False,
    )
    assert kstatus(obj_with(valid_status(pending), 1)) == "InProgress"


def test_verified_is_current() -> None:
    status = valid_status(observation())
    assert kstatus(obj_with(status, 1)) == "Current"


def test_verified_after_a_rollout_is_current() -> None:
    """Conditions carried over from earlier passes (lastTransitionTime logic) still read Current."""
    status = valid_status(FIRST_PASS)
    status = valid_status(observation(workload=WorkloadState(1, 0, 1, False)), status)
    status = valid_status(observation(), status, now=LATER)
    assert kstatus(obj_with(status, 1)) == "Current"


def test_replica_lost_after_verification_is_current_while_serving() -> None:
    """kstatus has no Degraded: a pipeline still serving on fewer pods is Current (Argo CD shows Degraded)."""
    short = observation(workload=WorkloadState(2, 1, 2, True))
    assert kstatus(obj_with(valid_status(short), 1)) == "Current"
    gone = observation(workload=WorkloadState(2, 0, 2, True))
    assert kstatus(obj_with(valid_status(gone), 1)) == "InProgress"


def test_rollout_past_its_deadline_is_failed() -> None:
    """Generation 2 never got a ready pod; generation 1 is what stays published."""
    stuck = observation(
        2, published=snapshot(1), workload=WorkloadState(1, 0, 1, True, stuck_message="timed out progressing")
    )
    assert kstatus(obj_with(valid_status(stuck), 2)) == "Failed"


def test_invalid_spec_is_failed() -> None:
    status = invalid_status(1, ["spec.model.name: Field required"])
    assert kstatus(obj_with(status, 1)) == "Failed"


def test_invalid_update_of_a_working_pipeline_is_failed() -> None:
    status = valid_status(observation())
    status = invalid_status(2, ["spec.replicas: must be >= 0"], status)
    assert kstatus(obj_with(status, 2)) == "Failed"


def test_rejected_child_is_failed() -> None:
    status = valid_status(observation(apply_errors=["Deployment bge-base-reranker rejected: invalid"]))
    assert kstatus(obj_with(status, 1)) == "Failed"


def test_stale_generation_is_in_progress() -> None:
    """The user changed the spec (generation 2); the operator has not written for it yet."""
    status = valid_status(observation(generation=1))
    assert kstatus(obj_with(status, 1)) == "Current"
    assert kstatus(obj_with(status, 2)) == "InProgress"


def test_new_generation_awaiting_canary_is_in_progress() -> None:
    """Observed generation 2, but the published config is still generation 1's: not verified yet."""
    status = valid_status(observation(generation=1))
    status = valid_status(observation(generation=2, published=snapshot(1)), status)
    assert kstatus(obj_with(status, 2)) == "InProgress"


def test_deleting_is_terminating() -> None:
    obj = obj_with(valid_status(observation()), 1)
    obj["metadata"]["deletionTimestamp"] = NOW
    assert kstatus(obj) == "Terminating"


def test_every_condition_carries_kstatus_fields() -> None:
    for status in (valid_status(FIRST_PASS), valid_status(observation()), invalid_status(1, ["x"])):
        for c in status["conditions"]:
            assert set(c) >= {
                "type",
                "status",
                "reason",
                "message",
                "lastTransitionTime",
                "observedGeneration",
            }
            assert c["status"] in {"True", "False", "Unknown"}
        reconciling = _condition({"status": status}, "Reconciling")
        progressing = _condition({"status": status}, "Progressing")
        assert reconciling is not None and progressing is not None
        assert reconciling["status"] == progressing["status"]  # Reconciling mirrors Progressing
