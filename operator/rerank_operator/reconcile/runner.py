"""Every pipeline's passes, run by one scheduler: a timer for what is due next, a task only while a
pass runs (no Kubernetes, no kopf).

A kopf daemon per pipeline held, for the pipeline's whole life, three tasks with their frames, kopf's
call context, and kopf's live copy of the whole pipeline (managedFields included): about 50 KB per
pipeline, measured at N=1000, for a loop that sleeps nearly all the time. Here an idle pipeline is
its :class:`PipelineState`, the compact text of its body (:func:`kept_text`), and one handle in the
event loop's own timer heap, due when its canary, resync, retry or drain is. A watch event that
concerns it moves that timer to "now" (plus ``COALESCE_SECONDS``, so a burst is one pass).

What a daemon guaranteed still holds:

* one pass of a pipeline at a time; a change seen while a pass runs brings one more pass after it;
* a pass waits for its slot (``reconcile.slots``) before it decodes or reads anything, and a change
  that arrives while it waits is one it will see (no second pass for it);
* a failing pass is retried with backoff (``reconcile.schedule.Schedule``), never fatal;
* on deletion, passes stop before the delete handler cleans up (:meth:`Runner.stop`).

Timers and pass tasks start in an empty ``contextvars.Context``, not in a copy of the caller's: the
caller is a kopf handler, whose context holds the watch event's cause and so the whole raw body of
the event. Copied into a timer, and from its pass into the next timer, that body would stay in
memory for the pipeline's whole life (measured: about a thousand raw pipeline bodies at N=1000).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from rerank_operator.kube import ApiError
from rerank_operator.reconcile.engine import PipelineState
from rerank_operator.reconcile.schedule import COALESCE_SECONDS, Schedule, Trigger
from rerank_operator.reconcile.slots import PassSlots
from rerank_operator.reconcile.view import jsonable

log = logging.getLogger(__name__)

Key = tuple[str, str]  # namespace, name
# one pass: the pipeline's key, its state, its body as last seen (a private copy), and why it runs
PassFn = Callable[[Key, PipelineState, dict[str, Any], Trigger], Awaitable[None]]

# metadata a pass never reads, and the largest part of a pipeline's body: every writer's field trees,
# and kubectl's copy of the whole applied manifest
_UNREAD_METADATA = ("managedFields",)
_UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
STOP_GRACE_SECONDS = 5.0  # a pass running when its pipeline is deleted may finish within this...
STOP_TIMEOUT_SECONDS = 10.0  # ...else it is cancelled, and given this long to unwind


def kept_text(body: Mapping[str, Any]) -> str:
    """What is kept of a pipeline between passes: its body as compact JSON, without what no pass reads.
    Decoded afresh for each pass, which so gets a private copy."""
    out = {str(k): v for k, v in body.items() if k != "metadata"}
    meta = {str(k): v for k, v in (body.get("metadata") or {}).items() if k not in _UNREAD_METADATA}
    annotations = meta.get("annotations")
    if annotations:
        kept = {str(k): v for k, v in annotations.items() if k not in _UNREAD_ANNOTATIONS}
        if kept:
            meta["annotations"] = kept
        else:
            del meta["annotations"]
    out["metadata"] = meta
    return json.dumps(out, separators=(",", ":"), default=jsonable)


def _identity(body: Mapping[str, Any]) -> tuple[Key, str, int | None, bool]:
    meta = body.get("metadata") or {}
    generation = meta.get("generation")
    return (
        (str(meta.get("namespace") or ""), str(meta.get("name") or "")),
        str(meta.get("uid") or ""),
        generation if isinstance(generation, int) else None,
        bool(meta.get("deletionTimestamp")),
    )


@dataclass(eq=False, slots=True)
class _Pipeline:
    uid: str
    state: PipelineState
    text: str
    generation: int | None
    schedule: Schedule
    timer: asyncio.TimerHandle | None = None
    due_at: float = 0.0  # when the timer fires (monotonic)
    due_trigger: Trigger = Trigger.CHANGE  # why the timer is set, unless a change came first
    task: asyncio.Task[None] | None = None
    woken: bool = True  # a change not yet seen by a pass (a new pipeline is one)
    pass_generation: int | None = None  # what the last pass read
    stopped: bool = False


class Runner:
    """The passes of every pipeline the operator sees. Fed by the watches (:meth:`observe`,
    :meth:`gone`, :meth:`wake`); all methods run on the event loop."""

    def __init__(
        self,
        run: PassFn,
        *,
        slots: PassSlots,
        resync_seconds: float,
        coalesce_seconds: float = COALESCE_SECONDS,
        ready: asyncio.Event | None = None,
    ):
        self._run = run
        self._ready = ready
        self._slots = slots
        self._resync_seconds = resync_seconds
        self._coalesce = coalesce_seconds
        self._pipelines: dict[Key, _Pipeline] = {}

    # ------------------------------------------------------------------------------ what the watches say
    def observe(self, body: Mapping[str, Any]) -> None:
        """A pipeline as its watch (or the initial listing) shows it: remembered, and passed again when
        it is new or has a new generation. Status and metadata changes (mostly the operator's own
        writes) wake nothing; a deletion stops its passes."""
        key, uid, generation, deleting = _identity(body)
        entry = self._pipelines.get(key)
        if entry is not None and entry.uid != uid:  # deleted and created again under the same name
            self._halt(entry)
            del self._pipelines[key]
            entry = None
        if entry is None:
            if deleting:
                return  # going away before it ever had a pass: nothing to run
            entry = _Pipeline(
                uid=uid,
                state=PipelineState(),
                text=kept_text(body),
                generation=generation,
                schedule=Schedule.starting(time.monotonic(), self._resync_seconds),
            )
            self._pipelines[key] = entry
            self._due(key, entry, time.monotonic(), Trigger.CHANGE)
            return
        entry.text = kept_text(body)
        entry.generation = generation
        if deleting:
            self._halt(entry)
        elif generation != entry.pass_generation:
            self.wake(key)

    def gone(self, body: Mapping[str, Any]) -> None:
        """The pipeline is deleted from the API: forget it (a pass still running is cancelled)."""
        key, uid, _, _ = _identity(body)
        entry = self._pipelines.get(key)
        if entry is not None and entry.uid == uid:
            self._halt(entry, cancel=True)
            del self._pipelines[key]

    def wake(self, key: Key) -> bool:
        """Something of the pipeline changed: pass it again soon (after the running pass, if any).
        False when no such pipeline runs here."""
        entry = self._pipelines.get(key)
        if entry is None or entry.stopped:
            return False
        entry.woken = True
        if entry.task is None:
            self._due(key, entry, time.monotonic() + self._coalesce, Trigger.CHANGE)
        return True

    def state(self, key: Key) -> PipelineState | None:
        entry = self._pipelines.get(key)
        return entry.state if entry is not None else None

    def states(self) -> Iterator[tuple[Key, PipelineState]]:
        for key, entry in list(self._pipelines.items()):
            yield key, entry.state

    def __len__(self) -> int:
        return len(self._pipelines)

    # ------------------------------------------------------------------------------ stopping
    async def stop(self, body: Mapping[str, Any]) -> None:
        """No more passes of this pipeline, and none running when this returns (the delete handler's
        cleanup must not race a pass that publishes)."""
        key, uid, _, _ = _identity(body)
        entry = self._pipelines.get(key)
        if entry is None or entry.uid != uid:
            return
        self._halt(entry)
        await _finish(entry.task)

    async def aclose(self) -> None:
        """The operator exits: stop every pipeline's passes."""
        entries = list(self._pipelines.values())
        for entry in entries:
            self._halt(entry)
        await asyncio.gather(*(_finish(e.task) for e in entries))

    def _halt(self, entry: _Pipeline, *, cancel: bool = False) -> None:
        entry.stopped = True
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        if cancel and entry.task is not None:
            entry.task.cancel()

    # ------------------------------------------------------------------------------ timers and passes
    def _due(self, key: Key, entry: _Pipeline, when: float, trigger: Trigger) -> None:
        """Set the pipeline's one timer to ``when`` (monotonic), unless it is set sooner already."""
        if entry.stopped:
            return
        if entry.timer is not None:
            if entry.due_at <= when:
                return
            entry.timer.cancel()
        entry.due_at, entry.due_trigger = when, trigger
        delay = max(0.0, when - time.monotonic())
        entry.timer = asyncio.get_running_loop().call_later(
            delay, self._fire, key, entry, context=contextvars.Context()
        )

    def _fire(self, key: Key, entry: _Pipeline) -> None:
        entry.timer = None
        if entry.stopped or self._pipelines.get(key) is not entry:
            return
        if entry.woken:
            trigger = Trigger.CHANGE if entry.schedule.retry_at is None else Trigger.RETRY
        else:
            trigger = entry.due_trigger
        entry.task = asyncio.create_task(
            self._pass(key, entry, trigger), name=f"pass {key[0]}/{key[1]}", context=contextvars.Context()
        )

    async def _pass(self, key: Key, entry: _Pipeline, trigger: Trigger) -> None:
        started = time.monotonic()
        try:
            if self._ready is not None:
                await self._ready.wait()  # what the passes read is all listed (``reconcile.watches``)
            async with self._slots.held():
                # from here the pass reads everything afresh: a change before this point is seen
                entry.woken = False
                body: dict[str, Any] = json.loads(entry.text)
                entry.pass_generation = entry.generation
                started = time.monotonic()
                await self._run(key, entry.state, body, trigger)
            entry.schedule.passed(time.monotonic(), trigger)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad pass never stops the pipeline; back off instead of flooding
            delay = entry.schedule.failed(time.monotonic())
            _log_failure(key, delay, exc)
        finally:
            entry.task = None
        self._next(key, entry, started)

    def _next(self, key: Key, entry: _Pipeline, last_pass: float) -> None:
        if entry.woken:
            self._due(key, entry, time.monotonic() + self._coalesce, Trigger.CHANGE)
            return
        state = entry.state
        due, trigger = entry.schedule.next_due(
            last_pass=last_pass,
            last_probe=state.last_probe_at,
            probe_interval=state.probe_interval_seconds,
            apply_errors=state.apply_errors,
            drain_due=state.drain_due,
        )
        self._due(key, entry, due, trigger)


async def _finish(task: asyncio.Task[None] | None) -> None:
    """Let a running pass end by itself, then cancel it if it takes too long."""
    if task is None or task.done():
        return
    done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
    if done:
        return
    task.cancel()
    await asyncio.wait({task}, timeout=STOP_TIMEOUT_SECONDS)


def _log_failure(key: Key, delay: float, exc: Exception) -> None:
    """An API error is expected now and then (logged as a line); anything else is a bug (a trace)."""
    if isinstance(exc, ApiError):
        log.warning("reconcile of %s/%s failed, retrying in %.0fs: %s", key[0], key[1], delay, exc)
    else:
        log.error(
            "unexpected error reconciling %s/%s, retrying in %.0fs", key[0], key[1], delay, exc_info=exc
        )
