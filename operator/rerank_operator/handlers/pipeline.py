"""kopf handlers for RerankPipeline: thin, everything real happens in ``reconcile``.

* every watch event of a pipeline goes to the runner (``reconcile.runner``), which keeps the pipeline
  and runs its passes: when it appears, when a watch event wakes it (a new generation here, its
  children through ``reconcile.watches``), when its canary is due, and at a long jittered resync.
  There are no create/update handlers and no daemons: kopf's change handlers would add an annotation
  write per spec change, and a daemon would hold tasks and a live copy of the body for every pipeline;
* startup: the API facade, the runner, and the informers of the children (``reconcile.watches``, not
  kopf's indexes: kopf's per-event machinery cost a quarter of the operator's CPU at N=1000);
* delete: stops the pipeline's passes, then removes ConfigMaps published into other namespaces
  (ownerReferences cannot reach them).

Every handler here is ``async``: kopf runs a plain function in a worker thread, one thread hop per
watch event, and the runner is the event loop's alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import kopf

from rerank_operator import FINALIZER, GROUP, PLURAL, VERSION
from rerank_operator.kube import ApiError, KubeApi, load_api_client
from rerank_operator.probe.verdict import Reason
from rerank_operator.reconcile.engine import MISSING_SECRET, PipelineState, Reconciler, ReconcilerConfig
from rerank_operator.reconcile.runner import Key, Runner
from rerank_operator.reconcile.schedule import Trigger
from rerank_operator.reconcile.view import CachedReads, Index
from rerank_operator.reconcile.watches import Watches, watched_indexes
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
    """No diff-base: the operator has no create/update handlers (the runner compares generations), and
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
    if "runner" not in memo:  # created before any handler copies the memo
        reconciler = _reconciler(memo)
        namespaces = tuple(memo.get("watched_namespaces") or ())
        ready = asyncio.Event()  # no pass before every watched kind is listed
        indexes = watched_indexes()
        runner = _runner(reconciler, indexes, _covers(namespaces), ready)
        watches = Watches(reconciler.kube, runner, namespaces=namespaces, indexes=indexes, ready=ready)
        watches.start()
        memo["runner"], memo["watches"] = runner, watches


def _runner(
    reconciler: Reconciler,
    indexes: Mapping[str, Index],
    covers: Callable[[str], bool],
    ready: asyncio.Event,
) -> Runner:
    async def run(key: Key, state: PipelineState, body: dict[str, Any], trigger: Trigger) -> None:
        last_reason = (state.last_probe or {}).get("reason")
        reads = CachedReads(
            indexes,
            reconciler.kube,
            state.memory,
            covers=covers,
            refresh=trigger.refreshes or last_reason in REREAD_SECRET_AFTER,
        )
        await reconciler.run_pass(body, state, reads)

    return Runner(run, slots=reconciler.slots, resync_seconds=reconciler.config.resync_seconds, ready=ready)


def runner(memo: kopf.Memo) -> Runner:
    """The operator-wide runner of every pipeline's passes (one object shared by every handler: kopf
    gives each object a shallow copy of the operator's memo, made after startup)."""
    found = memo["runner"]
    assert isinstance(found, Runner)
    return found


@kopf.on.login(id="credentials")
async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's watches use the API facade's own credentials (``kube.credentials``): one identity, read
    one way, and no client library loaded for kopf to find them. kopf logs in again when the
    apiserver refuses its token; a rotated token file or an exec plugin then gives a fresh one."""
    creds = _reconciler(memo).kube.credentials
    if creds.renews:
        creds.forget_token()
    token = await asyncio.to_thread(creds.bearer_token) if creds.must_ask else creds.bearer_token()
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_path,
        ca_data=creds.ca_data,
        insecure=creds.insecure,
        certificate_path=creds.certificate_path,
        certificate_data=creds.certificate_data,
        private_key_path=creds.private_key_path,
        private_key_data=creds.private_key_data,
        token=token,
        default_namespace=creds.namespace,
        expiration=creds.expires_at(),
    )


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    """Stop every pass, then release the canary's HTTP client, when the operator exits."""
    watches = memo.get("watches")
    if isinstance(watches, Watches):
        await watches.stop()
    passes = memo.get("runner")
    if isinstance(passes, Runner):
        await passes.aclose()
    reconciler = memo.get("reconciler")
    if isinstance(reconciler, Reconciler):
        await reconciler.aclose()


def _reconciler(memo: kopf.Memo) -> Reconciler:
    reconciler = memo["reconciler"]
    assert isinstance(reconciler, Reconciler)
    return reconciler


def _covers(namespaces: tuple[str, ...]) -> Callable[[str], bool]:
    """Which namespaces the watches see: those ``run --namespace`` names, or all of them."""
    if not namespaces:
        return lambda _ns: True
    watched = frozenset(namespaces)
    return lambda ns: ns in watched


@kopf.on.event(GROUP, VERSION, PLURAL, id="pipeline-changed")
async def pipeline_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Every pipeline the watch shows is the runner's: it passes new ones and new generations, stops
    on deletion, and forgets deleted ones. Status and metadata changes (most of them the operator's
    own writes) only refresh what it keeps."""
    if event.get("type") == "DELETED":
        runner(memo).gone(body)
    else:
        runner(memo).observe(body)


@kopf.on.delete(GROUP, VERSION, PLURAL, id="cleanup")
async def cleanup(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await runner(memo).stop(body)  # no pass may publish again behind the cleanup
    try:
        await _reconciler(memo).cleanup(body)
    except ApiError as exc:
        raise kopf.TemporaryError(f"cleanup of published ConfigMaps failed: {exc}", delay=5) from exc
