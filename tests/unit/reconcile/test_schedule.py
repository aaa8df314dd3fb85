"""When the next pass is due."""

from __future__ import annotations

import random

from rerank_operator.reconcile.schedule import (
    APPLY_ERROR_RETRY_SECONDS,
    MAX_BACKOFF_SECONDS,
    RESYNC_JITTER,
    Schedule,
    Trigger,
    jittered,
)


def test_resync_periods_are_jittered_within_bounds() -> None:
    rng = random.Random(7)
    periods = [jittered(600, rng) for _ in range(200)]
    assert all(600 * (1 - RESYNC_JITTER) <= p <= 600 * (1 + RESYNC_JITTER) for p in periods)
    assert len({round(p) for p in periods}) > 20  # spread, not in step


def test_the_canary_is_due_first_on_an_idle_pipeline() -> None:
    s = Schedule(resync_seconds=600, next_resync=1600)
    due, trigger = s.next_due(last_pass=1000, last_probe=990, probe_interval=30, apply_errors=False)
    assert (due, trigger) == (1020, Trigger.PROBE)
    assert not trigger.refreshes and Trigger.CHANGE.refreshes and Trigger.RESYNC.refreshes


def test_a_pipeline_never_probed_is_not_due_at_once_again_and_again() -> None:
    s = Schedule(resync_seconds=600, next_resync=1600)
    due, _ = s.next_due(last_pass=1000, last_probe=None, probe_interval=30, apply_errors=False)
    assert due == 1030


def test_resync_retry_and_rejected_children() -> None:
    s = Schedule(resync_seconds=600, next_resync=1010)
    assert (
        s.next_due(last_pass=1000, last_probe=1000, probe_interval=30, apply_errors=False)[1]
        is Trigger.RESYNC
    )
    s.passed(1011, Trigger.RESYNC)
    assert 1011 + 540 <= s.next_resync <= 1011 + 660
    delays = [s.failed(1100) for _ in range(10)]
    assert delays[:3] == [1, 2, 4] and max(delays) == MAX_BACKOFF_SECONDS
    assert s.next_due(last_pass=1100, last_probe=1090, probe_interval=3600, apply_errors=False) == (
        1100 + MAX_BACKOFF_SECONDS,
        Trigger.RETRY,
    )
    s.passed(1200, Trigger.RETRY)
    assert s.retry_at is None and s.backoff == 1
    due = s.next_due(last_pass=1200, last_probe=1200, probe_interval=3600, apply_errors=True)
    assert due == (1200 + APPLY_ERROR_RETRY_SECONDS, Trigger.RETRY)
