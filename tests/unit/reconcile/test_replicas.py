"""Who owns Deployment.spec.replicas: the handover to an autoscaler, and the count status follows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator import FIELD_MANAGER
from rerank_operator.models import RerankPipeline
from rerank_operator.reconcile.replicas import (
    HANDOVER_MANAGER,
    desired_replicas,
    handover_manifest,
    owns_replicas,
)
from rerank_operator.render import revision

MakePipeline = Callable[..., RerankPipeline]
AUTOSCALING = {"minReplicas": 2, "maxReplicas": 5}


def entry(manager: str, fields: dict[str, Any], operation: str = "Apply", **extra: Any) -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "fieldsType": "FieldsV1", "fieldsV1": fields, **extra}


def live(replicas: int | None, *entries: dict[str, Any], name: str = "demo-reranker") -> dict[str, Any]:
    spec = {} if replicas is None else {"replicas": replicas}
    return {"metadata": {"name": name, "managedFields": list(entries)}, "spec": spec}


OURS = entry(FIELD_MANAGER, {"f:spec": {"f:replicas": {}, "f:template": {}}})
OURS_WITHOUT_REPLICAS = entry(FIELD_MANAGER, {"f:spec": {"f:template": {}}})
HPA_SCALE = entry(
    "kube-controller-manager", {"f:spec": {"f:replicas": {}}}, operation="Update", subresource="scale"
)


OURS_CREATED = entry(FIELD_MANAGER, {"f:spec": {"f:replicas": {}, "f:template": {}}}, operation="Update")


def test_owns_replicas_reads_managed_fields() -> None:
    assert owns_replicas(live(3, OURS))
    assert not owns_replicas(live(3, OURS_WITHOUT_REPLICAS))
    assert not owns_replicas(live(3, HPA_SCALE))  # through the scale subresource: not the main resource
    assert not owns_replicas(None)
    assert not owns_replicas({"metadata": {}})


def test_the_create_time_update_entry_counts() -> None:
    """A child the operator created (POST) owns its fields through an Update entry that the next apply
    folds into the Apply entry: dropping the count there would remove it all the same."""
    assert owns_replicas(live(3, OURS_CREATED))
    assert owns_replicas(live(3, OURS_CREATED, OURS_WITHOUT_REPLICAS))


def test_only_our_entries_count() -> None:
    kubectl = entry("kubectl-client-side-apply", {"f:spec": {"f:replicas": {}}}, operation="Update")
    assert not owns_replicas(live(3, kubectl))
    assert owns_replicas(live(3, kubectl, OURS))


def test_handover_applies_exactly_the_live_count(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(replicas=1, autoscaling=AUTOSCALING, rollout={"strategy": "Surge"})
    assert handover_manifest(pipeline, live(3, OURS_CREATED)) == handover_manifest(pipeline, live(3, OURS))
    manifest = handover_manifest(pipeline, live(3, OURS))
    assert manifest == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-reranker", "namespace": "search"},
        "spec": {"replicas": 3},  # the live count, not spec.replicas (1) nor minReplicas (2)
    }
    assert HANDOVER_MANAGER != FIELD_MANAGER


def test_blue_green_handover_names_the_revisions_deployment(make_pipeline: MakePipeline) -> None:
    """BlueGreen: the Deployment the operator applies is the current revision's, so is the handover."""
    pipeline = make_pipeline(replicas=1, autoscaling=AUTOSCALING)
    name = f"demo-{revision(pipeline)}"
    assert handover_manifest(pipeline, live(4, OURS, name=name)) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "search"},
        "spec": {"replicas": 4},
    }


@pytest.mark.parametrize(
    ("spec", "deployment"),
    [
        ({"replicas": 3}, live(3, OURS)),  # the operator scales: nothing to hand over
        ({"autoscaling": AUTOSCALING}, None),  # no Deployment yet: created without a count
        ({"autoscaling": AUTOSCALING}, live(3, OURS_WITHOUT_REPLICAS, HPA_SCALE)),  # handed over already
        ({"autoscaling": AUTOSCALING}, live(None, OURS)),
    ],
)
def test_no_handover_needed(make_pipeline: MakePipeline, spec: dict[str, Any], deployment: Any) -> None:
    assert handover_manifest(make_pipeline(**spec), deployment) is None


def test_desired_replicas_follow_the_owner(make_pipeline: MakePipeline) -> None:
    fixed = make_pipeline(replicas=3)
    assert desired_replicas(fixed, live(5, HPA_SCALE)) == 3  # the operator owns it: its value counts
    scaled = make_pipeline(replicas=3, autoscaling=AUTOSCALING)
    assert desired_replicas(scaled, live(5, HPA_SCALE)) == 5  # the autoscaler's count
    assert desired_replicas(scaled, live(0)) == 0  # scaled to zero by hand: status must say so
    assert desired_replicas(scaled, None) == 2  # before the Deployment exists: what the HPA enforces first
