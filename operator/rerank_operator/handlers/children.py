"""kopf glue for what the operator owns: watch it, keep it in memory, wake its pipeline on a change.

Each kind below is watched with the operator's ``managed-by`` label as a server-side selector (set in
``handlers.pipeline.configure``; the handlers filter by it too, for API emulators that ignore
selectors on watches). Two things happen per watch event:

* an index keeps the object, slimmed and as text (``reconcile.view.Kept``, read by ``reconcile.view``).
  kopf lists every index before any other handler runs, so the first pass after a restart
  already sees every child, and writes nothing that is in place;
* the pipeline the object belongs to (its labels say) is woken: a pod turning ready, a hand edit or a
  deleted child is handled at once, not at the next resync.

The handlers are ``async`` (kopf would run plain functions in a worker thread, a thread hop per
event), and cheap: they run on the event loop, as the runner they wake must.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import kopf

from rerank_operator import GROUP, VERSION
from rerank_operator.reconcile.runner import Runner
from rerank_operator.reconcile.view import Kept, index_key, owning_pipeline, pipeline_key, resource_version
from rerank_operator.render.naming import MANAGED_BY, PIPELINE_LABEL, PIPELINE_NAMESPACE_LABEL

OWNED = {"app.kubernetes.io/managed-by": MANAGED_BY}
OWNED_SELECTOR = ",".join(f"{k}={v}" for k, v in OWNED.items())

# kind -> the resource as kopf's decorators take it, and the name its index is injected under
RESOURCES: dict[str, tuple[str, str]] = {
    "Deployment": ("apps/v1", "deployments"),
    "Service": ("v1", "services"),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets"),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
    "ConfigMap": ("v1", "configmaps"),
    "Pod": ("v1", "pods"),
    # its status says whether it can scale (Degraded); KEDA's own HPA is not ours and is read by name
    "HorizontalPodAutoscaler": ("autoscaling/v2", "horizontalpodautoscalers"),
}
GRANTS = (f"{GROUP}/{VERSION}", "rerankpublishgrants")
INDEX_NAMES: dict[str, str] = {
    **{kind: f"{plural}_index" for kind, (_, plural) in RESOURCES.items()},
    "RerankPublishGrant": "rerankpublishgrants_index",
}


WAKE_HANDLERS = (
    *(f"{plural}-changed" for _, plural in RESOURCES.values()),
    "rerankpublishgrants-changed",
    "pipeline-changed",
)


class QuietWakeups(logging.Filter):
    """kopf logs every successful handler at INFO; for the wake-up handlers that is a line per watch
    event of every pod and child (noise that hides what matters). Their failures are still logged."""

    _done = re.compile(r"^Handler '(?P<id>[^']+)' succeeded\.$")

    def filter(self, record: logging.LogRecord) -> bool:
        match = self._done.match(record.getMessage())
        return match is None or match["id"] not in WAKE_HANDLERS


logging.getLogger("kopf.objects").addFilter(QuietWakeups())


def runner(memo: kopf.Memo) -> Runner:
    """The operator-wide runner of every pipeline's passes (one object shared by every handler: kopf
    gives each object a shallow copy of the operator's memo; ``handlers.pipeline`` makes it at startup)."""
    found = memo["runner"]
    assert isinstance(found, Runner)
    return found


def _register(kind: str, api_version: str, plural: str) -> None:
    async def index(
        namespace: str | None, name: str, labels: kopf.Labels, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        kept = Kept.of(kind, body)
        keys = {index_key(kind, namespace or "", name, labels): kept}
        pipeline = labels.get(PIPELINE_LABEL)
        if kind == "Deployment" and pipeline and PIPELINE_NAMESPACE_LABEL not in labels:
            keys[pipeline_key(namespace or "", pipeline)] = kept  # all of one pipeline's (revisions)
        return keys

    async def changed(
        event: kopf.RawEvent, namespace: str | None, name: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any
    ) -> None:
        owner = owning_pipeline(namespace or "", labels)
        if owner is None:
            return
        passes = runner(memo)
        state = passes.state(owner)
        if state is not None:
            key = (kind, namespace or "", name)
            version = resource_version(event.get("object"))
            if event.get("type") == "DELETED":
                state.memory.deleted(key, version)
            elif state.memory.seen(key, version):
                return  # the echo of the operator's own write: its pass knew the answer already
        passes.wake(owner)

    index.__name__ = index.__qualname__ = INDEX_NAMES[kind]
    kopf.index(api_version, plural, id=INDEX_NAMES[kind], labels=OWNED)(index)
    kopf.on.event(api_version, plural, id=f"{plural}-changed", labels=OWNED)(changed)


for _kind, (_api_version, _plural) in RESOURCES.items():
    _register(_kind, _api_version, _plural)


@kopf.index(*GRANTS, id=INDEX_NAMES["RerankPublishGrant"])
async def rerankpublishgrants_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Any, Any]:
    return {index_key("RerankPublishGrant", namespace or "", name, {}): Kept.of("RerankPublishGrant", body)}


@kopf.on.event(*GRANTS, id="rerankpublishgrants-changed")
async def grant_changed(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Consent given or withdrawn: wake the pipelines that publish into this namespace."""
    passes = runner(memo)
    for key, state in passes.states():
        if namespace in state.publish_targets:
            passes.wake(key)
