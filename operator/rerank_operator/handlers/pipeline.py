"""kopf handlers for RerankPipeline: thin, everything real happens in ``reconcile``.

* a per-pipeline daemon runs the passes: at start, when a watch event wakes it (``handlers.children``,
  and the pipeline's own new generations), when the canary is due, and at a long jittered resync
  (``reconcile.schedule``). There are no create/update handlers: the daemon starts with the object,
  and kopf's change handlers would add an annotation write per spec change;
* delete: removes ConfigMaps published into other namespaces (ownerReferences cannot reach them).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from rerank_operator import FINALIZER, GROUP, PLURAL, VERSION
from rerank_operator.handlers.children import (
    INDEX_NAMES,
    OWNED_SELECTOR,
    RESOURCES,
    wakeups,
)
from rerank_operator.kube import ApiError, KubeApi, load_api_client
from rerank_operator.probe.verdict import Reason
from rerank_operator.reconcile.engine import MISSING_SECRET, PipelineState, Reconciler, ReconcilerConfig
from rerank_operator.reconcile.schedule import (
    COALESCE_SECONDS,
    Schedule,
    Trigger,
    wait_for_wakeup,
)
from rerank_operator.reconcile.view import CachedReads, Index
from rerank_operator.settings import (
    cluster_domain,
    max_concurrent_passes,
    resync_seconds,
    status_heartbeat_seconds,
)

log = logging.getLogger(__name__)

# a canary refused for its key: read the Secret again before the next one, not only at a resync
REREAD_SECRET_AFTER = frozenset({str(Reason.UNAUTHORIZED), MISSING_SECRET})


class NoDiffBase(kopf.DiffBaseStorage):
    """No diff-base: the operator has no create/update handlers (the daemon compares generations), and
    kopf's default would annotate every pipeline with its last spec on creation and on every change,
    one more write each time, for nothing. Annotations left by earlier versions are simply unused."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        """Nothing to compare, so nothing to build: kopf's default deep-copies the whole body (status
        and managedFields included) on every event of every pipeline, only to throw the copy away."""
        return kopf.BodyEssence()

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our own finalizer and annotation prefix from day one: changing them later would make
    # every existing object look unhandled.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.level = logging.WARNING  # our own Events carry the story; kopf adds only problems
    settings.watching.inactivity_timeout = 600  # re-establish silently stalled watches
    settings.watching.server_timeout = 300
    settings.scanning.disabled = True  # no cluster-wide CRD/namespace watching, hence no RBAC for it
    for api_version, plural in RESOURCES.values():  # only what the operator owns, selected by the apiserver
        settings.watching.label_selectors[api_version, plural] = OWNED_SELECTOR
    if "reconciler" not in memo:
        memo["reconciler"] = Reconciler(
            KubeApi(load_api_client()),
            ReconcilerConfig(
                cluster_domain=cluster_domain(),
                resync_seconds=resync_seconds(),
                status_heartbeat_seconds=status_heartbeat_seconds(),
                max_concurrent_passes=max_concurrent_passes(),
            ),
        )
    wakeups(memo)  # created before any handler copies the memo


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Release the canary's HTTP client when the operator exits."""
    reconciler = memo.get("reconciler")
    if isinstance(reconciler, Reconciler):
        await reconciler.aclose()


def _state(memo: kopf.Memo) -> PipelineState:
    state = memo.get("state")
    if state is None:
        state = PipelineState()
        memo["state"] = state
    assert isinstance(state, PipelineState)
    return state


def _reconciler(memo: kopf.Memo) -> Reconciler:
    reconciler = memo["reconciler"]
    assert isinstance(reconciler, Reconciler)
    return reconciler


def _covers(memo: kopf.Memo) -> Callable[[str], bool]:
    """Which namespaces the watches see: ``run --namespace`` patterns, or all of them."""
    patterns = tuple(memo.get("watched_namespaces") or ())
    if not patterns:
        return lambda _ns: True
    return lambda ns: any(fnmatch.fnmatchcase(ns, p) for p in patterns)


@kopf.on.event(GROUP, VERSION, PLURAL, id="pipeline-changed")
def pipeline_changed(body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    """A new generation (spec change) or a deletion wakes the daemon; status and metadata changes
    (most of them the operator's own writes) do not."""
    meta = body.get("metadata", {})
    key = (namespace or "", name)
    state = wakeups(memo).state(key)
    if state is None:
        return
    if meta.get("deletionTimestamp") or meta.get("generation") != state.seen_generation:
        wakeups(memo).wake(key)


# cancellation_backoff: on deletion/exit kopf first raises `stopped`, which wakes the loop; it returns
# after the pass it is in, and is cancelled only if that pass takes longer.
@kopf.daemon(GROUP, VERSION, PLURAL, id="monitor", cancellation_backoff=5.0, cancellation_timeout=10)
async def monitor(
    stopped: kopf.DaemonStopped,
    body: kopf.Body,
    memo: kopf.Memo,
    namespace: str | None,
    name: str,
    **kwargs: Any,
) -> None:
    """Level-based loop: one pass per wake-up or due time, until the object goes away."""
    reconciler = _reconciler(memo)
    state = _state(memo)
    indexes: Mapping[str, Index] = {kind: kwargs[index] for kind, index in INDEX_NAMES.items()}
    covers = _covers(memo)
    key = (namespace or "", name)
    registry = wakeups(memo)
    wake = registry.register(key, state)
    schedule = Schedule.starting(time.monotonic(), reconciler.config.resync_seconds)
    trigger = Trigger.CHANGE
    # kopf raises `stopped` on deletion and exit: wake at once and return by ourselves (no cancellation)
    stopping = asyncio.create_task(_wake_when_stopped(stopped, wake))
    try:
        while not stopped:
            wake.clear()
            state.seen_generation = body.get("metadata", {}).get("generation")
            last_reason = (state.last_probe or {}).get("reason")
            reads = CachedReads(
                indexes,
                reconciler.kube,
                state.memory,
                covers=covers,
                refresh=trigger.refreshes or last_reason in REREAD_SECRET_AFTER,
            )
            started = time.monotonic()
            try:
                await reconciler.reconcile(body, state, reads=reads)
                schedule.passed(time.monotonic(), trigger)
            except Exception as exc:  # never let one bad pass kill the daemon; back off instead of flooding
                delay = schedule.failed(time.monotonic())
                if isinstance(exc, ApiError):
                    log.warning(
                        "reconcile of %s/%s failed, retrying in %.0fs: %s", namespace, name, delay, exc
                    )
                else:
                    log.exception(
                        "unexpected error reconciling %s/%s, retrying in %.0fs", namespace, name, delay
                    )
            due, due_trigger = schedule.next_due(
                last_pass=started,
                last_probe=state.last_probe_at,
                probe_interval=state.probe_interval_seconds,
                apply_errors=state.apply_errors,
                drain_due=state.drain_due,
            )
            if await wait_for_wakeup(wake, due - time.monotonic()):
                if stopped:
                    break
                await asyncio.sleep(COALESCE_SECONDS)  # one pass for a burst of events
                trigger = Trigger.CHANGE if schedule.retry_at is None else Trigger.RETRY
            else:
                trigger = due_trigger
    finally:
        stopping.cancel()
        registry.unregister(key, wake)


async def _wake_when_stopped(stopped: kopf.DaemonStopped, wake: asyncio.Event) -> None:
    await stopped.wait()
    wake.set()


@kopf.on.delete(GROUP, VERSION, PLURAL, id="cleanup")
async def cleanup(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    try:
        await _reconciler(memo).cleanup(body)
    except ApiError as exc:
        raise kopf.TemporaryError(f"cleanup of published ConfigMaps failed: {exc}", delay=5) from exc
