"""The runner: which passes run, when, and what an idle pipeline holds (a timer, no task).

The pass here is a plain coroutine that records what it was given; the runner never sees Kubernetes.
Waits are bounded; the only real delays are the runner's own coalescing window (shortened) and, in
one test, its first retry backoff (one second).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from rerank_operator.reconcile.engine import PipelineState
from rerank_operator.reconcile.runner import Key, Runner, kept_text
from rerank_operator.reconcile.schedule import MIN_BACKOFF_SECONDS, Trigger
from rerank_operator.reconcile.slots import PassSlots

KEY = ("ml", "rr")
COALESCE = 0.02


def body(generation: int = 1, *, uid: str = "uid-1", deleting: bool = False, **status: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": KEY[1], "namespace": KEY[0], "uid": uid, "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    return {"apiVersion": "rerank.dev/v1alpha1", "kind": "RerankPipeline", "metadata": meta, "status": status}


@dataclass
class Passes:
    """Records every pass; each can be held open (``gate``) or made to fail."""

    calls: list[tuple[Key, Trigger, dict[str, Any]]] = field(default_factory=list)
    states: list[PipelineState] = field(default_factory=list)
    gate: asyncio.Event | None = None
    fail: bool = False
    interval: float = 3600.0
    running: int = 0

    async def __call__(self, key: Key, state: PipelineState, got: dict[str, Any], trigger: Trigger) -> None:
        self.calls.append((key, trigger, got))
        self.states.append(state)
        self.running += 1
        try:
            state.probe_interval_seconds = self.interval
            state.last_probe_at = time.monotonic()
            if self.gate is not None:
                await self.gate.wait()
            if self.fail:
                raise RuntimeError("boom")
        finally:
            self.running -= 1


def make(passes: Passes, limit: int = 4) -> Runner:
    return Runner(passes, slots=PassSlots(limit), resync_seconds=600, coalesce_seconds=COALESCE)


async def until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Longer than the coalescing window, several times over."""
    await asyncio.sleep(COALESCE * 5)


async def test_a_new_pipeline_is_passed_at_once_then_only_when_due() -> None:
    passes = Passes(interval=0.1)
    runner = make(passes)
    runner.observe(body())
    await until(lambda: len(passes.calls) == 1)
    assert passes.calls[0][:2] == (KEY, Trigger.CHANGE)
    await until(lambda: len(passes.calls) == 2)  # its canary interval, not a tick
    assert passes.calls[1][1] is Trigger.PROBE  # a canary-only pass trusts what it remembers
    await runner.aclose()


async def test_status_and_metadata_changes_wake_nothing_a_new_generation_does() -> None:
    passes = Passes()
    runner = make(passes)
    runner.observe(body())
    await until(lambda: len(passes.calls) == 1)
    runner.observe(body(1, conditions=[{"type": "Ready", "status": "True"}]))  # our own status write
    await settle()
    assert len(passes.calls) == 1
    runner.observe(body(2))
    await until(lambda: len(passes.calls) == 2)
    assert passes.calls[1][2]["metadata"]["generation"] == 2
    await runner.aclose()


async def test_a_burst_of_changes_is_one_pass() -> None:
    passes = Passes()
    runner = make(passes)
    runner.observe(body())
    await until(lambda: len(passes.calls) == 1)
    for _ in range(10):
        assert runner.wake(KEY)
    await settle()
    assert len(passes.calls) == 2 and passes.calls[1][1] is Trigger.CHANGE
    assert not runner.wake(("ml", "unknown"))
    await runner.aclose()


async def test_a_change_during_a_pass_brings_exactly_one_more_pass() -> None:
    passes = Passes(gate=asyncio.Event())
    runner = make(passes)
    runner.observe(body())
    await until(lambda: passes.running == 1)
    runner.wake(KEY)
    runner.wake(KEY)
    runner.observe(body(2))
    await settle()
    assert len(passes.calls) == 1  # never two passes of one pipeline at once
    passes.gate.set()
    await until(lambda: len(passes.calls) == 2)
    await settle()
    assert len(passes.calls) == 2 and passes.calls[1][2]["metadata"]["generation"] == 2
    await runner.aclose()


async def test_a_change_while_waiting_for_a_slot_is_seen_by_that_pass() -> None:
    """The pass reads everything only once it has its slot, so it needs no second pass."""
    passes = Passes(gate=asyncio.Event())
    runner = make(passes, limit=1)
    other = body(uid="uid-2")
    other["metadata"]["name"] = "other"
    runner.observe(other)
    await until(lambda: passes.running == 1)  # holds the only slot
    runner.observe(body())
    await settle()  # its pass is started, waiting for the slot
    runner.observe(body(2))
    runner.wake(KEY)
    passes.gate.set()
    await until(lambda: len(passes.calls) == 2)
    await settle()
    ours = [c for c in passes.calls if c[0] == KEY]
    assert len(ours) == 1 and ours[0][2]["metadata"]["generation"] == 2
    await runner.aclose()


async def test_a_failing_pass_is_retried_with_backoff_and_never_stops_the_pipeline() -> None:
    passes = Passes(fail=True)
    runner = make(passes)
    runner.observe(body())
    await until(lambda: len(passes.calls) == 1)
    failed_at = time.monotonic()
    passes.fail = False
    await until(lambda: len(passes.calls) == 2, within=MIN_BACKOFF_SECONDS + 5)
    assert time.monotonic() - failed_at >= MIN_BACKOFF_SECONDS * 0.9
    assert passes.calls[1][1] is Trigger.RETRY  # a retry reads unwatched objects again
    await runner.aclose()


async def test_stop_waits_for_the_running_pass_and_no_pass_follows() -> None:
    passes = Passes(gate=asyncio.Event(), interval=0.05)
    runner = make(passes)
    runner.observe(body())
    await until(lambda: passes.running == 1)
    stopping = asyncio.create_task(runner.stop(body(deleting=True)))
    await settle()
    assert not stopping.done()  # the delete handler's cleanup waits for the pass
    runner.wake(KEY)
    passes.gate.set()
    await asyncio.wait_for(stopping, 5)
    await asyncio.sleep(0.2)  # several canary intervals
    assert len(passes.calls) == 1
    runner.gone(body(deleting=True))
    assert runner.state(KEY) is None and len(runner) == 0


async def test_a_deletion_seen_first_in_a_watch_event_stops_the_passes() -> None:
    passes = Passes(interval=0.05)
    runner = make(passes)
    runner.observe(body())
    await until(lambda: len(passes.calls) == 1)
    runner.observe(body(deleting=True))
    assert not runner.wake(KEY)
    await asyncio.sleep(0.2)
    assert len(passes.calls) == 1
    runner.observe(body(deleting=True, uid="uid-2"))  # a new object going away at once: never passed
    assert runner.state(KEY) is None


async def test_a_pipeline_created_again_under_its_name_starts_afresh() -> None:
    passes = Passes()
    runner = make(passes)
    runner.observe(body())
    await until(lambda: len(passes.calls) == 1)
    first = runner.state(KEY)
    assert first is not None
    first.apply_errors = True
    runner.observe(body(uid="uid-2"))  # its ADDED event came before the old one's DELETED
    await until(lambda: len(passes.calls) == 2)
    assert passes.states[1] is not first and not passes.states[1].apply_errors
    runner.gone(body(uid="uid-1"))  # the old one's DELETED: not the running one's
    assert runner.state(KEY) is passes.states[1]
    await runner.aclose()


async def test_an_idle_pipeline_holds_no_task() -> None:
    """A thousand idle pipelines are a thousand timers in the loop's heap, not a thousand tasks."""
    passes = Passes()
    runner = make(passes, limit=8)
    before = len(asyncio.all_tasks())
    for n in range(300):
        pipeline = body(uid=f"uid-{n}")
        pipeline["metadata"]["name"] = f"p{n}"
        runner.observe(pipeline)
    await until(lambda: len(passes.calls) == 300)
    await until(lambda: passes.running == 0)
    await settle()
    assert len(asyncio.all_tasks()) == before
    assert len(runner) == 300 and len(passes.calls) == 300  # and no second pass of any
    await runner.aclose()


async def test_aclose_cancels_a_pass_that_does_not_end() -> None:
    passes = Passes(gate=asyncio.Event())  # never set
    runner = make(passes)
    runner.observe(body())
    await until(lambda: passes.running == 1)
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("rerank_operator.reconcile.runner.STOP_GRACE_SECONDS", 0.05)
        await asyncio.wait_for(runner.aclose(), 5)
    assert passes.running == 0 and time.monotonic() - started < 5


def test_what_is_kept_of_a_pipeline_leaves_out_only_what_no_pass_reads() -> None:
    full = body(conditions=[{"type": "Ready", "status": "True"}])
    full["spec"] = {"model": {"name": "BAAI/bge-reranker-base"}}
    full["metadata"]["labels"] = {"team": "search"}
    full["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    full["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(full["spec"]),
        "team.example/owner": "search",
    }
    kept = json.loads(kept_text(full))
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"team.example/owner": "search"}
    del full["metadata"]["managedFields"]
    full["metadata"]["annotations"] = {"team.example/owner": "search"}
    assert kept == full
    only_kubectl = body()
    only_kubectl["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    assert "annotations" not in json.loads(kept_text(only_kubectl))["metadata"]


_CALLERS_CONTEXT: contextvars.ContextVar[object] = contextvars.ContextVar("callers_context")


class _Big:
    """Stands for what a kopf handler's context holds: the watch event's cause and raw body."""


async def test_timers_and_passes_keep_nothing_of_the_callers_context() -> None:
    passes = Passes(interval=0.05)
    runner = make(passes)

    async def handler() -> weakref.ref[_Big]:
        held = _Big()
        _CALLERS_CONTEXT.set(held)
        runner.observe(body())  # as the watch handler calls it, in its own context
        return weakref.ref(held)

    ref = await asyncio.create_task(handler())
    await until(lambda: len(passes.calls) >= 2)  # a pass, and a timer set by it for the next
    gc.collect()
    assert ref() is None
    await runner.aclose()
