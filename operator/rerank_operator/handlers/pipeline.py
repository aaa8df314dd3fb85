"""kopf handlers for RerankPipeline: thin, everything real happens in ``reconcile.engine``.

* create/update/resume: reconcile at once, so ``Ready=False`` is there from the first second;
* a per-pipeline daemon: re-applies children every resync period (drift correction) and runs the
  canary every ``probe.intervalSeconds``;
* delete: removes ConfigMaps published into other namespaces (ownerReferences cannot reach them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from rerank_operator import FINALIZER, GROUP, PLURAL, VERSION
from rerank_operator.kube import ApiError, KubeApi, load_api_client
from rerank_operator.reconcile.engine import PipelineState, Reconciler, ReconcilerConfig
from rerank_operator.settings import cluster_domain, resync_seconds

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # how often the daemon checks whether a resync or probe is due
MAX_BACKOFF_SECONDS = 60.0  # cap of the retry delay after failed passes
UNSETTLED_RESYNC_SECONDS = 5.0  # resync period while a pipeline is rolling out or failing


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our own finalizer and annotation prefix from day one: changing them later would make
    # every existing object look unhandled.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own Events carry the story; kopf adds only problems
    settings.watching.inactivity_timeout = 600  # re-establish silently stalled watches
    settings.watching.server_timeout = 300
    settings.scanning.disabled = True  # no cluster-wide CRD/namespace watching, hence no RBAC for it
    if "reconciler" not in memo:
        memo["reconciler"] = Reconciler(
            KubeApi(load_api_client()),
            ReconcilerConfig(cluster_domain=cluster_domain(), resync_seconds=resync_seconds()),
        )


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


@kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile-resume")
@kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile-create")
@kopf.on.update(GROUP, VERSION, PLURAL, id="reconcile-update")
async def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    try:
        await _reconciler(memo).reconcile(body, _state(memo), probe=False)
    except ApiError as exc:
        raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=5) from exc


# cancellation_backoff: on deletion/exit kopf first raises `stopped` and waits; the loop notices
# within one tick and returns by itself, so daemons end cleanly instead of being cancelled.
@kopf.daemon(
    GROUP, VERSION, PLURAL, id="monitor", cancellation_backoff=2 * TICK_SECONDS, cancellation_timeout=10
)
async def monitor(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Level-based loop: resync children and probe on schedule until the object goes away."""
    reconciler = _reconciler(memo)
    state = _state(memo)
    last_resync = float("-inf")
    last_generation: int | None = None
    retry_at = float("-inf")
    backoff = TICK_SECONDS
    while not stopped:
        now = time.monotonic()
        generation = body.get("metadata", {}).get("generation")
        period = (
            reconciler.config.resync_seconds
            if state.settled
            else min(UNSETTLED_RESYNC_SECONDS, reconciler.config.resync_seconds)
        )
        resync_due = now - last_resync >= period or generation != last_generation
        if (resync_due or state.probe_due(now)) and now >= retry_at:
            try:
                await reconciler.reconcile(body, state, probe=True)
                last_resync, last_generation = now, generation
                backoff = TICK_SECONDS
            except Exception as exc:  # never let one bad pass kill the daemon; back off instead of flooding
                name = body.get("metadata", {}).get("name")
                if isinstance(exc, ApiError):
                    log.warning("reconcile of %s failed, retrying in %.0fs: %s", name, backoff, exc)
                else:
                    log.exception("unexpected error reconciling %s, retrying in %.0fs", name, backoff)
                retry_at = now + backoff
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        # A plain sleep, not ``stopped.wait()``: kopf cancels async daemons on deletion and exit, and
        # a cancellation racing the time limit of ``stopped.wait()`` escapes as TimeoutError (which
        # then fails kopf.operator() at shutdown). Cancellation of a sleep is clean.
        await asyncio.sleep(TICK_SECONDS)


@kopf.on.delete(GROUP, VERSION, PLURAL, id="cleanup")
async def cleanup(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    try:
        await _reconciler(memo).cleanup(body)
    except ApiError as exc:
        raise kopf.TemporaryError(f"cleanup of published ConfigMaps failed: {exc}", delay=5) from exc
