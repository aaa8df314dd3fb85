"""When a child must be written: the applied-hash annotation plus a value comparison."""

from __future__ import annotations

from typing import Any

from rerank_operator.reconcile.drift import (
    APPLIED_HASH_ANNOTATION,
    applied_hash,
    contains,
    manifest_hash,
    needs_write,
    with_hash,
)


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "rr-reranker", "namespace": "ml", "labels": {"a": "b"}},
        "spec": {"replicas": 1, **spec},
    }


def stored(sent: dict[str, Any], **extra_spec: Any) -> dict[str, Any]:
    """What the apiserver keeps of ``sent``: plus defaults and bookkeeping."""
    out = {**sent, "metadata": {**sent["metadata"], "uid": "u", "resourceVersion": "7"}}
    out["spec"] = {**sent["spec"], "revisionHistoryLimit": 10, **extra_spec}
    out["status"] = {"replicas": 1}
    return out


def test_the_hash_ignores_its_own_annotation_and_key_order() -> None:
    m = manifest()
    assert manifest_hash(with_hash(m)) == manifest_hash(m)
    reordered = {
        "spec": m["spec"],
        "metadata": m["metadata"],
        "kind": m["kind"],
        "apiVersion": m["apiVersion"],
    }
    assert manifest_hash(reordered) == manifest_hash(m)
    assert manifest_hash(manifest(replicas=2)) != manifest_hash(m)
    assert applied_hash(with_hash(m)) == manifest_hash(m)
    assert "annotations" not in m["metadata"]  # with_hash does not change its input


def test_an_object_as_applied_needs_no_write() -> None:
    sent = with_hash(manifest())
    assert not needs_write(sent, stored(sent))


def test_missing_object_changed_manifest_and_hand_edit_need_a_write() -> None:
    sent = with_hash(manifest())
    assert needs_write(sent, None)
    assert needs_write(with_hash(manifest(replicas=3)), stored(sent))  # the spec changed
    edited = stored(sent)
    edited["spec"]["replicas"] = 5  # kubectl edit of a value the operator sets
    assert needs_write(sent, edited)
    assert not needs_write(sent, edited, hash_only=True)  # judged by the annotation alone
    unhashed = stored(manifest())
    assert needs_write(sent, unhashed)  # applied by an older operator version, or the annotation removed


def test_contains_follows_apiserver_storage() -> None:
    assert contains({"a": 1, "extra": 2}, {"a": 1})
    assert contains({"cpu": "1", "memory": "1Gi"}, {"cpu": "1000m", "memory": "1024Mi"})
    assert not contains({"cpu": "2"}, {"cpu": "1000m"})
    assert contains({}, {"emptyDir": {}, "items": [], "x": None})  # empty values are dropped
    assert contains([{"name": "a", "x": 1}], [{"name": "a"}])
    assert not contains([{"name": "a"}, {"name": "b"}], [{"name": "a"}])  # an item added by hand
    assert not contains({"flag": "true"}, {"flag": True})
    assert not contains({"port": 8000}, {"port": 8001})
    assert not contains("http", 8000)


def test_an_added_foreign_label_is_not_drift() -> None:
    sent = with_hash(manifest())
    live = stored(sent)
    live["metadata"]["labels"] = {**live["metadata"]["labels"], "argocd.argoproj.io/instance": "x"}
    assert not needs_write(sent, live)
    assert APPLIED_HASH_ANNOTATION in live["metadata"]["annotations"]
