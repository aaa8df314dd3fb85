"""What the operator watches of its own, and what each change does: keep it, and wake its pipeline.

Every kind below is listed and watched (``kube.informer``) with the operator's ``managed-by`` label as
the selector, in all namespaces or in each one ``run --namespace`` names. Per watch event:

* the object is kept, slimmed and as text (``reconcile.view.Kept``), under the keys a pass looks it up
  by (``reconcile.view``): the first pass after a restart waits until every kind is listed, so it
  already sees every child, and writes nothing that is in place;
* the pipeline the object belongs to (its labels say) is woken: a pod turning ready, a hand edit or a
  deleted child is handled within one watch event, not at the next resync. The echo of the
  operator's own write wakes nothing: the pass that wrote it had the apiserver's answer already.

RerankPublishGrants (consent to publish into a namespace) are watched too, without a selector: a
grant given or withdrawn wakes the pipelines that publish into its namespace.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Sequence
from typing import Any

from rerank_operator.kube import KubeApi
from rerank_operator.kube.informer import Informer
from rerank_operator.reconcile.runner import Runner
from rerank_operator.reconcile.view import (
    Kept,
    KeptIndex,
    index_key,
    owning_pipeline,
    pipeline_key,
    resource_version,
)
from rerank_operator.render.naming import MANAGED_BY, PIPELINE_LABEL, PIPELINE_NAMESPACE_LABEL

OWNED = {"app.kubernetes.io/managed-by": MANAGED_BY}
OWNED_SELECTOR = ",".join(f"{k}={v}" for k, v in OWNED.items())

# the children's kinds (selected by OWNED), then consent
CHILD_KINDS = (
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "PersistentVolumeClaim",
    "ConfigMap",
    "Pod",
    # its status says whether it can scale (Degraded); KEDA's own HPA is not ours and is read by name
    "HorizontalPodAutoscaler",
)
GRANT_KIND = "RerankPublishGrant"


def keys_of(kind: str, obj: dict[str, Any]) -> list[Any]:
    """Where a pass looks an object up (``reconcile.view.index_key``); a pipeline's Deployments also
    all together (BlueGreen runs one per revision)."""
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    labels = meta.get("labels") or {}
    keys = [index_key(kind, namespace, name, labels)]
    pipeline = labels.get(PIPELINE_LABEL)
    if kind == "Deployment" and pipeline and PIPELINE_NAMESPACE_LABEL not in labels:
        keys.append(pipeline_key(namespace, pipeline))
    return keys


def watched_indexes() -> dict[str, KeptIndex]:
    """An empty index per watched kind: what :class:`Watches` fills and the passes read."""
    return {kind: KeptIndex() for kind in (*CHILD_KINDS, GRANT_KIND)}


class Watches:
    """The informers of every watched kind, the indexes they fill, and the wake-ups they send."""

    def __init__(
        self,
        kube: KubeApi,
        runner: Runner,
        *,
        namespaces: Sequence[str] = (),
        indexes: dict[str, KeptIndex] | None = None,
        ready: asyncio.Event | None = None,
    ):
        self.runner = runner
        self.indexes = indexes if indexes is not None else watched_indexes()
        scopes: Sequence[str | None] = tuple(namespaces) or (None,)
        self.informers = [
            Informer(
                kube,
                kind,
                functools.partial(self.changed, kind),
                namespace=namespace,
                label_selector=None if kind == GRANT_KIND else OWNED_SELECTOR,
            )
            for kind in (*CHILD_KINDS, GRANT_KIND)
            for namespace in scopes
        ]
        self._tasks: list[asyncio.Task[None]] = []
        # every kind listed once: passes may read the indexes (the runner waits for it)
        self.ready = ready if ready is not None else asyncio.Event()

    def start(self) -> None:
        """Run every informer, each in a task of its own (in an empty context: nothing of the caller's)."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(i.run(), name=f"watch {i.where}", context=contextvars.Context())
            for i in self.informers
        ]
        self._tasks.append(loop.create_task(self._synced(), name="watches listed"))

    async def _synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self.informers))
        self.ready.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def changed(self, kind: str, change: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        index = self.indexes[kind]
        if change == "DELETED":
            if "labels" not in meta:  # found gone by a relist: its labels are in what was kept of it
                kept = index.find((namespace, name))
                labels = ((kept.body() if kept else {}).get("metadata") or {}).get("labels") or {}
                meta = {**meta, "labels": labels}
            index.remove((namespace, name))
        else:
            index.put((namespace, name), keys_of(kind, obj), Kept.of(kind, obj))
        if kind == GRANT_KIND:
            for key, publishing in self.runner.states():
                if namespace in publishing.publish_targets:
                    self.runner.wake(key)
            return
        owner = owning_pipeline(namespace, meta.get("labels") or {})
        if owner is None:
            return
        state = self.runner.state(owner)
        if state is not None:
            version = resource_version(obj)
            if change == "DELETED":
                state.memory.deleted((kind, namespace, name), version)
            elif state.memory.seen((kind, namespace, name), version):
                return  # the echo of the operator's own write
        self.runner.wake(owner)
