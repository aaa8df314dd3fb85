"""Folding the create-time ``Update`` entry into our ``Apply`` entry (what makes dropped fields go away)."""

from __future__ import annotations

from typing import Any

from rerank_operator import FIELD_MANAGER
from rerank_operator.kube.managed_fields import covered, fold_managed_fields


def entry(manager: str, operation: str, fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": "2026-12-02T07:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        **extra,
    }


def test_nothing_to_fold_without_our_update_entry() -> None:
    entries = [entry(FIELD_MANAGER, "Apply", {"f:data": {}}), entry("kubectl-edit", "Update", {"f:data": {}})]
    assert fold_managed_fields(entries) is None


def test_update_entry_alone_becomes_an_apply_entry() -> None:
    folded = fold_managed_fields([entry(FIELD_MANAGER, "Update", {"f:data": {"f:reason": {}}})])
    assert folded == [entry(FIELD_MANAGER, "Apply", {"f:data": {"f:reason": {}}})]


def test_update_and_apply_entries_merge_and_others_stay() -> None:
    status = entry("kube-controller-manager", "Update", {"f:status": {}}, subresource="status")
    ours_status = entry(FIELD_MANAGER, "Update", {"f:status": {"f:x": {}}}, subresource="status")
    entries = [
        entry(
            FIELD_MANAGER,
            "Update",
            {"f:data": {"f:reason": {}, "f:ready": {}}, "f:metadata": {"f:labels": {}}},
        ),
        entry(FIELD_MANAGER, "Apply", {"f:data": {"f:ready": {}, "f:endpoint": {}}}),
        status,
        ours_status,
    ]
    folded = fold_managed_fields(entries)
    assert folded is not None
    apply, *rest = folded
    assert apply["operation"] == "Apply" and apply["manager"] == FIELD_MANAGER
    assert apply["fieldsV1"] == {
        "f:data": {"f:ready": {}, "f:endpoint": {}, "f:reason": {}},
        "f:metadata": {"f:labels": {}},
    }
    assert rest == [status, ours_status]  # other managers and subresource entries are not ours to fold


# ------------------------------------------------------------------------------ when a fold is needed
def test_an_apply_that_sets_every_field_of_the_update_entry_needs_no_fold() -> None:
    fields = {
        "f:metadata": {
            "f:labels": {".": {}, "f:app": {}},
            "f:ownerReferences": {".": {}, 'k:{"uid":"u1"}': {}},
        },
        "f:data": {".": {}, "f:ready": {}, "f:reason": {}},
    }
    manifest = {
        "metadata": {"labels": {"app": "x"}, "ownerReferences": [{"uid": "u1", "kind": "RerankPipeline"}]},
        "data": {"ready": "true", "reason": "Healthy"},
    }
    assert covered(fields, manifest)


def test_a_field_the_apply_drops_needs_the_fold() -> None:
    fields = {"f:data": {"f:ready": {}, "f:reason": {}}}
    assert not covered(fields, {"data": {"ready": "true"}})  # reason would linger under the Update entry
    owner = {"f:metadata": {"f:ownerReferences": {'k:{"uid":"u1"}': {}}}}
    assert not covered(owner, {"metadata": {"ownerReferences": [{"uid": "u2"}]}})
    assert not covered({"f:spec": {"f:ports": {"i:0": {}}}}, {"spec": {"ports": [{}]}})  # positional
    assert covered({"f:spec": {"f:args": {'v:"--x"': {}}}}, {"spec": {"args": ["--x"]}})
    assert not covered({"f:spec": {"f:args": {'v:"--x"': {}}}}, {"spec": {"args": ["--y"]}})
