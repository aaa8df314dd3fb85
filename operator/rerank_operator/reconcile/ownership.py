"""Is an existing object provably this pipeline's? (pure: decided from the live object alone)

The operator lends its RBAC to whoever can create a RerankPipeline, so it must never let a pipeline
take over an object someone else made (a confused deputy). Names and labels prove nothing: they are
strings anybody can write. What proves ownership:

* in the pipeline's own namespace, a *controller* ownerReference carrying the pipeline's UID (the
  garbage collector and every controller-runtime operator read it the same way);
* in another namespace, where ownerReferences cannot point, the annotation ``rerank.dev/owner-uid``
  holding the pipeline's UID, written only on objects the operator itself created.

Migration from releases before ownership checks: their children in the pipeline's namespace already
carry the controller reference, so they pass as they are. Their copies in other namespaces carry only
labels; such a copy is adopted (and gains the annotation at the next write) only when nothing but the
operator's own field manager ever wrote it and it holds nothing but the operator's keys, which a
ConfigMap someone else created and the old release wrote into never satisfies (its creator's
managedFields entry and keys are still there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rerank_operator import FIELD_MANAGER
from rerank_operator.publish.content import DATA_KEYS
from rerank_operator.render.naming import (
    MANAGED_BY,
    OWNER_UID_ANNOTATION,
    PIPELINE_LABEL,
    PIPELINE_NAMESPACE_LABEL,
)

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


@dataclass(frozen=True)
class Claim:
    """The verdict on one live object: ours or not, and whose it is in words for status messages."""

    ours: bool
    holder: str
    legacy: bool = False  # adopted by the migration rule (a copy from before the annotation)


def _meta(live: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = live.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def controller_reference(live: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in _meta(live).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller"):
            return ref
    return None


def describe_holder(live: Mapping[str, Any]) -> str:
    """Who the object belongs to, as far as its metadata says (for an ``ApplyRejected`` message)."""
    ref = controller_reference(live)
    if ref is not None:
        return f"it is controlled by {ref.get('kind')} {ref.get('name')} (uid {ref.get('uid')})"
    meta = _meta(live)
    uid = (meta.get("annotations") or {}).get(OWNER_UID_ANNOTATION)
    if uid:
        return f"its {OWNER_UID_ANNOTATION} annotation names another owner (uid {uid})"
    managers = sorted({str(m.get("manager")) for m in meta.get("managedFields") or [] if m.get("manager")})
    if managers:
        return f"it has no controller and was written by {', '.join(managers)}"
    return "it has no controller"


def claim(live: Mapping[str, Any], *, uid: str, pipeline_name: str, pipeline_namespace: str) -> Claim:
    """Decide whether the live object may be written (or deleted) on behalf of this pipeline."""
    meta = _meta(live)
    same_namespace = meta.get("namespace", pipeline_namespace) == pipeline_namespace
    if same_namespace:
        ref = controller_reference(live)
        if ref is not None and ref.get("uid") == uid:
            return Claim(True, "this pipeline")
        return Claim(False, describe_holder(live))
    annotation = (meta.get("annotations") or {}).get(OWNER_UID_ANNOTATION)
    if annotation == uid:
        return Claim(True, "this pipeline")
    if annotation is None and _legacy_copy(live, pipeline_name, pipeline_namespace):
        return Claim(True, "this pipeline (adopted copy of an earlier release)", legacy=True)
    return Claim(False, describe_holder(live))


def _legacy_copy(live: Mapping[str, Any], pipeline_name: str, pipeline_namespace: str) -> bool:
    """A copy an earlier release published: its labels, only our field manager, only our keys."""
    meta = _meta(live)
    labels = meta.get("labels") or {}
    if (
        labels.get(PIPELINE_LABEL) != pipeline_name
        or labels.get(PIPELINE_NAMESPACE_LABEL) != pipeline_namespace
        or labels.get(MANAGED_BY_LABEL) != MANAGED_BY
        or controller_reference(live) is not None
    ):
        return False
    managers = {m.get("manager") for m in meta.get("managedFields") or []}
    if managers != {FIELD_MANAGER}:  # none at all (no server-side apply) proves nothing either
        return False
    return set(live.get("data") or {}) <= set(DATA_KEYS) and not live.get("binaryData")
