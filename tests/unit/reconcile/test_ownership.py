"""Ownership is proven by the pipeline's UID (ownerReference or annotation), never by names or labels."""

from __future__ import annotations

from typing import Any

import pytest

from rerank_operator import FIELD_MANAGER
from rerank_operator.reconcile.ownership import OWNER_UID_ANNOTATION, claim, describe_holder

UID = "0f8e7d6c-uid-of-the-pipeline"
OURS_LABELS = {
    "app.kubernetes.io/managed-by": "rerank-operator",
    "rerank.dev/pipeline": "rr",
    "rerank.dev/pipeline-namespace": "ml",
}


def obj(namespace: str, **meta: Any) -> dict[str, Any]:
    data = meta.pop("data", None)
    body: dict[str, Any] = {"metadata": {"name": "rr-ranker", "namespace": namespace, **meta}}
    if data is not None:
        body["data"] = data
    return body


def ref(
    uid: str, *, controller: bool = True, kind: str = "RerankPipeline", name: str = "rr"
) -> dict[str, Any]:
    return {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": controller,
    }


def verdict(live: dict[str, Any]) -> Any:
    return claim(live, uid=UID, pipeline_name="rr", pipeline_namespace="ml")


def managers(*names: str) -> list[dict[str, Any]]:
    return [{"manager": n, "operation": "Apply", "fieldsV1": {}} for n in names]


# ------------------------------------------------------------------------- the pipeline's namespace
def test_own_namespace_needs_a_controller_reference_with_our_uid() -> None:
    assert verdict(obj("ml", ownerReferences=[ref(UID)])).ours


@pytest.mark.parametrize(
    ("meta", "holder"),
    [
        ({}, "it has no controller"),
        ({"labels": OURS_LABELS}, "it has no controller"),  # labels prove nothing
        ({"ownerReferences": [ref(UID, controller=False)]}, "it has no controller"),
        ({"ownerReferences": [ref("another-uid")]}, "controlled by RerankPipeline rr (uid another-uid)"),
        ({"ownerReferences": [ref("rs-uid", kind="ReplicaSet", name="web")]}, "controlled by ReplicaSet web"),
        ({"annotations": {OWNER_UID_ANNOTATION: UID}}, "annotation names another owner"),
        ({"managedFields": managers("kubectl-client-side-apply")}, "written by kubectl-client-side-apply"),
    ],
)
def test_own_namespace_anything_else_is_not_ours(meta: dict[str, Any], holder: str) -> None:
    result = verdict(obj("ml", **meta))
    assert not result.ours
    assert holder in result.holder


# ------------------------------------------------------------------------- other namespaces
def test_other_namespace_needs_the_uid_annotation() -> None:
    result = verdict(obj("apps", annotations={OWNER_UID_ANNOTATION: UID}, labels=OURS_LABELS))
    assert result.ours and not result.legacy


@pytest.mark.parametrize(
    "meta",
    [
        {"labels": OURS_LABELS, "annotations": {OWNER_UID_ANNOTATION: "another-uid"}},
        {"labels": {**OURS_LABELS, "rerank.dev/pipeline-namespace": "elsewhere"}},
        {"ownerReferences": [ref(UID)]},  # cannot legitimately point across namespaces
        {},
    ],
)
def test_other_namespace_without_our_uid_is_not_ours(meta: dict[str, Any]) -> None:
    assert not verdict(obj("apps", **meta)).ours


# ------------------------------------------------------------------------- migration of old copies
def legacy(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "labels": OURS_LABELS,
        "managedFields": managers(FIELD_MANAGER),
        "data": {"endpoint": "http://x:8000", "ready": "true", "milvus-function.json": "{}"},
    }
    base.update(changes)
    return obj("apps", **base)


def test_a_copy_only_the_operator_ever_wrote_is_adopted() -> None:
    result = verdict(legacy())
    assert result.ours and result.legacy


@pytest.mark.parametrize(
    "changes",
    [
        # the victim of the old release: its creator's entry and key are still there
        {"managedFields": managers("kubectl-create", FIELD_MANAGER)},
        {"data": {"important": "keep-me", "endpoint": "http://x:8000"}},
        {"managedFields": []},  # no field management at all proves nothing
        {"labels": {**OURS_LABELS, "rerank.dev/pipeline": "someone-else"}},
        {"labels": {k: v for k, v in OURS_LABELS.items() if k != "app.kubernetes.io/managed-by"}},
    ],
)
def test_a_copy_someone_else_wrote_is_not_adopted(changes: dict[str, Any]) -> None:
    assert not verdict(legacy(**changes)).ours


def test_describe_holder_without_anything() -> None:
    assert describe_holder({"metadata": {}}) == "it has no controller"
