import pytest

from rerank_operator.reconcile.tracker import WINDOW, ProbeTracker


def record(t: ProbeTracker, ok: bool, latency: float | None = 10.0, *, s: int = 1, f: int = 3) -> None:
    t.record(ok, "Healthy" if ok else "Timeout", latency, success_threshold=s, failure_threshold=f)


def test_success_threshold_gates_healthy() -> None:
    t = ProbeTracker()
    record(t, True, s=2)
    assert not t.healthy and t.successes == 1
    record(t, True, s=2)
    assert t.healthy


def test_failure_threshold_is_hysteresis() -> None:
    t = ProbeTracker(healthy=True)
    record(t, False, f=3)
    record(t, False, f=3)
    assert t.healthy, "two failures below the threshold must not flip"
    record(t, True)
    assert t.failures == 0
    for _ in range(3):
        record(t, False, f=3)
    assert not t.healthy
    assert t.last_reason == "Timeout"


def test_percentiles_nearest_rank() -> None:
    t = ProbeTracker()
    assert t.percentiles() is None
    for ms in range(1, 101):
        record(t, True, float(ms))
    p = t.percentiles()
    assert p is not None
    assert p["samples"] == WINDOW
    assert p["p50Ms"] == pytest.approx(76.0, abs=1)  # window holds the last 50: 51..100
    assert p["p95Ms"] == pytest.approx(98.0, abs=1)


def test_failed_probe_latency_not_in_window() -> None:
    t = ProbeTracker()
    record(t, False, 5000.0)
    assert t.percentiles() is None


def test_resume_from_status() -> None:
    t = ProbeTracker.from_status(
        {
            "published": {"ready": True},
            "consecutiveSuccesses": 4,
            "consecutiveFailures": 0,
            "lastProbe": {"reason": "Healthy"},
        }
    )
    assert t.healthy and t.successes == 4 and t.last_reason == "Healthy"
    assert not ProbeTracker.from_status({}).healthy


def test_percentiles_survive_a_restart_until_new_samples_arrive() -> None:
    before = {"p50Ms": 12.5, "p95Ms": 40.0, "samples": 50}
    t = ProbeTracker.from_status({"latency": before, "consecutiveSuccesses": 7, "published": {"ready": True}})
    assert t.percentiles() == before and t.healthy and t.successes == 7
    record(t, True, 3.0)
    assert t.percentiles() == {"p50Ms": 3.0, "p95Ms": 3.0, "samples": 1}  # only this process's samples
    assert ProbeTracker.from_status({}).percentiles() is None
