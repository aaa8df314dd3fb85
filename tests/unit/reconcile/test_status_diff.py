"""Per-canary detail versus state in status."""

from __future__ import annotations

import copy
from typing import Any

from rerank_operator.reconcile.status_diff import essential


def status(**probe: Any) -> dict[str, Any]:
    last = {"time": "t1", "ok": True, "reason": "Healthy", "message": "top doc 0 in 12 ms", "latencyMs": 12.0}
    last.update(probe)
    return {
        "observedGeneration": 1,
        "readyReplicas": 1,
        "lastProbe": last,
        "latency": {"p50Ms": 12.0, "samples": 3},
        "consecutiveSuccesses": 3,
        "consecutiveFailures": 0,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Healthy", "message": "canary rerank passed"},
            {"type": "Probed", "status": "True", "reason": "Healthy", "message": last["message"]},
        ],
    }


def test_another_canary_round_changes_only_detail() -> None:
    before = status()
    after = status(time="t2", latencyMs=15.0, message="top doc 0 in 15 ms")
    after["consecutiveSuccesses"] = 4
    after["latency"] = {"p50Ms": 13.0, "samples": 4}
    after["conditions"][1]["message"] = "top doc 0 in 15 ms"
    assert before != after
    assert essential(before) == essential(after)


def test_a_verdict_or_state_change_is_essential() -> None:
    before = status()
    failed = status(ok=False, reason="Timeout", message="no answer in 5 s")
    assert essential(failed) != essential(before)
    fewer = copy.deepcopy(before)
    fewer["readyReplicas"] = 0
    assert essential(fewer) != essential(before)
    condition = copy.deepcopy(before)
    condition["conditions"][0]["message"] = "canary rerank passed; 1/2 pods ready"
    assert essential(condition) != essential(before)


def test_essential_leaves_its_input_alone() -> None:
    before = status()
    snapshot = copy.deepcopy(before)
    essential(before)
    assert before == snapshot
