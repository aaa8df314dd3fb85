"""What a watched change does: the object kept under the keys passes look it up by, and the pipeline
it belongs to woken once (never by the echo of its own write). The informers themselves are tested
against real servers in ``tests/integration/test_informer.py``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rerank_operator.kube import KubeApi
from rerank_operator.kube.credentials import Credentials
from rerank_operator.reconcile.engine import PipelineState
from rerank_operator.reconcile.runner import Key, Runner
from rerank_operator.reconcile.schedule import Trigger
from rerank_operator.reconcile.slots import PassSlots
from rerank_operator.reconcile.view import Kept, KeptIndex, pipeline_key
from rerank_operator.reconcile.watches import CHILD_KINDS, GRANT_KIND, OWNED_SELECTOR, Watches, keys_of
from rerank_operator.render.naming import PIPELINE_LABEL

NS = "ml"


def child(name: str, pipeline: str, version: int, **labels: str) -> dict[str, Any]:
    meta = {
        "name": name,
        "namespace": NS,
        "resourceVersion": str(version),
        "labels": {"app.kubernetes.io/managed-by": "rerank-operator", PIPELINE_LABEL: pipeline, **labels},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {"replicas": 1}}


def pipeline(name: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1}
    return {"apiVersion": "rerank.dev/v1alpha1", "kind": "RerankPipeline", "metadata": meta}


class Counting:
    def __init__(self) -> None:
        self.passes: list[Key] = []

    async def __call__(self, key: Key, state: PipelineState, body: dict[str, Any], trigger: Trigger) -> None:
        self.passes.append(key)
        state.probe_interval_seconds = 3600
        state.last_probe_at = time.monotonic()


async def settled(passes: Counting, count: int) -> None:
    deadline = time.monotonic() + 5
    while len(passes.passes) < count:
        assert time.monotonic() < deadline, f"{len(passes.passes)} passes, not {count}"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # several coalescing windows: nothing more comes


def make() -> tuple[Watches, Runner, Counting]:
    passes = Counting()
    runner = Runner(passes, slots=PassSlots(4), resync_seconds=600, coalesce_seconds=0.01)
    # no informer runs here: ``changed`` is what they call
    return Watches(KubeApi(Credentials(server="http://127.0.0.1:9")), runner), runner, passes


def test_every_kind_is_watched_by_the_operators_label_and_grants_without() -> None:
    watches, _, _ = make()
    selectors = {i.kind: i.label_selector for i in watches.informers}
    assert selectors == {**dict.fromkeys(CHILD_KINDS, OWNED_SELECTOR), GRANT_KIND: None}
    scoped, _, _ = make()
    scoped = Watches(scoped.informers[0].kube, scoped.runner, namespaces=("a", "b"))
    assert {(i.kind, i.namespace) for i in scoped.informers} == {
        (k, ns) for k in (*CHILD_KINDS, GRANT_KIND) for ns in ("a", "b")
    }


def test_the_index_moves_an_object_when_its_keys_change() -> None:
    index = KeptIndex()
    first = Kept.of("Pod", child("p1", "rr", 1))
    index.put((NS, "p1"), [(NS, "rr")], first)
    assert list(index.get((NS, "rr")) or ()) == [first] and index.find((NS, "p1")) is first
    moved = Kept.of("Pod", child("p1", "other", 2))
    index.put((NS, "p1"), [(NS, "other")], moved)
    assert index.get((NS, "rr")) is None and list(index.get((NS, "other")) or ()) == [moved]
    index.remove((NS, "p1"))
    assert index.get((NS, "other")) is None and index.find((NS, "p1")) is None and len(index) == 0


def test_a_pipelines_deployments_are_also_kept_together() -> None:
    keys = keys_of("Deployment", child("rr-reranker-abc", "rr", 1))
    assert keys == [(NS, "rr-reranker-abc"), pipeline_key(NS, "rr")]
    assert keys_of("Pod", child("pod", "rr", 1)) == [(NS, "rr")]


async def test_a_change_wakes_its_pipeline_and_the_echo_of_its_own_write_does_not() -> None:
    watches, runner, passes = make()
    runner.observe(pipeline("rr"))
    runner.observe(pipeline("other"))
    await settled(passes, 2)

    watches.changed("Deployment", "MODIFIED", child("rr-reranker", "rr", 7))  # someone's edit
    await settled(passes, 3)
    assert passes.passes[-1] == (NS, "rr")
    assert [k.name for k in watches.indexes["Deployment"].get((NS, "rr-reranker")) or ()] == ["rr-reranker"]

    state = runner.state((NS, "rr"))
    assert state is not None
    state.memory.overlay[("Deployment", NS, "rr-reranker")] = (8, child("rr-reranker", "rr", 8))  # our write
    watches.changed("Deployment", "MODIFIED", child("rr-reranker", "rr", 8))  # ... and its echo
    await asyncio.sleep(0.1)
    assert len(passes.passes) == 3
    assert ("Deployment", NS, "rr-reranker") not in state.memory.overlay  # the index has it now

    # gone while the watch was down: the relist knows no labels, the kept copy does
    watches.changed("Deployment", "DELETED", {"metadata": {"namespace": NS, "name": "rr-reranker"}})
    await settled(passes, 4)
    assert passes.passes[-1] == (NS, "rr") and watches.indexes["Deployment"].get((NS, "rr-reranker")) is None
    await runner.aclose()


async def test_consent_wakes_the_pipelines_that_publish_into_its_namespace() -> None:
    watches, runner, passes = make()
    runner.observe(pipeline("rr"))
    runner.observe(pipeline("other"))
    await settled(passes, 2)
    state = runner.state((NS, "rr"))
    assert state is not None
    state.publish_targets = frozenset({"apps"})
    grant = {"metadata": {"namespace": "apps", "name": "for-rr", "resourceVersion": "3"}, "spec": {}}
    watches.changed(GRANT_KIND, "ADDED", grant)
    await settled(passes, 3)
    assert passes.passes[-1] == (NS, "rr")
    assert [k.name for k in watches.indexes[GRANT_KIND].get("apps") or ()] == ["for-rr"]
    await runner.aclose()
