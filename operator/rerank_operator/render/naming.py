"""Names and labels of a pipeline's children, derived in one place so nothing drifts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rerank_operator import API_VERSION, GROUP, KIND
from rerank_operator.models import RerankPipeline
from rerank_operator.render.revision import revision

APP_NAME = "rerank-operator"
MANAGED_BY = "rerank-operator"
PIPELINE_LABEL = "rerank.dev/pipeline"
PIPELINE_NAMESPACE_LABEL = "rerank.dev/pipeline-namespace"
# On BlueGreen Deployments, their pods and per-revision Services: which revision (render.revision) they run.
REVISION_LABEL = "rerank.dev/revision"
# On copies in other namespaces (no ownerReference can point there): the UID is the proof of
# ownership (see reconcile.ownership), the namespace/name is for people.
OWNER_UID_ANNOTATION = f"{GROUP}/owner-uid"
OWNER_ANNOTATION = f"{GROUP}/owner"


@dataclass(frozen=True)
class ChildNames:
    # the Deployment of the current spec: <name>-reranker rolled in place (Surge, Replace), or the
    # current revision's own <name>-<revision> (BlueGreen)
    deployment: str
    service: str  # the stable Service: the published endpoint
    revision_service: str  # BlueGreen: the current revision's Service, for the canary only
    disruption_budget: str
    cache_pvc: str
    chat_template: str
    published: str
    autoscaler: str
    pod_monitor: str


def child_names(pipeline: RerankPipeline) -> ChildNames:
    """Suffixes keep every child distinct and the Service never named ``vllm``.

    (A Service called ``vllm`` injects ``VLLM_PORT`` & co. into pods, which vLLM reads as its own settings.)
    """
    name = pipeline.name
    revisions = blue_green(pipeline)
    return ChildNames(
        deployment=revision_name(name, revision(pipeline)) if revisions else legacy_deployment_name(name),
        service=f"{name}-reranker",
        revision_service=revision_name(name, revision(pipeline)),
        disruption_budget=f"{name}-reranker",
        cache_pvc=f"{name}-model-cache",
        # BlueGreen: each revision mounts its own template, so a candidate's new text never reaches a
        # serving pod (a restarted one would load it: two templates, two sets of scores)
        chat_template=f"{revision_name(name, revision(pipeline))}-chat-template"
        if revisions
        else f"{name}-chat-template",
        published=published_name(name, pipeline.spec.publish.config_map_name),
        autoscaler=f"{name}-reranker",
        pod_monitor=f"{name}-reranker",
    )


def blue_green(pipeline: RerankPipeline) -> bool:
    """Whether the pipeline runs revisions side by side (BlueGreen). Never with ``spec.external``: the
    operator runs no pods for it, so there is no revision to start, check or switch to."""
    return pipeline.spec.rollout.strategy == "BlueGreen" and pipeline.spec.external is None


def revision_name(pipeline_name: str, rev: str) -> str:
    """Name of a revision's Deployment and Service (a DNS-1035 label: names are at most 52 characters)."""
    return f"{pipeline_name}-{rev}"


def legacy_deployment_name(pipeline_name: str) -> str:
    """The Deployment that rolls in place (Surge, Replace), and the one operators before BlueGreen made."""
    return f"{pipeline_name}-reranker"


def published_name(pipeline_name: str, configured: str | None = None) -> str:
    """The published ConfigMap's name; also used on deletion, when the spec may no longer parse."""
    return configured or f"{pipeline_name}-ranker"


def labels(pipeline: RerankPipeline, component: str) -> dict[str, str]:
    """Recommended ``app.kubernetes.io/*`` labels plus our own pipeline label for lookups."""
    return {
        "app.kubernetes.io/name": "vllm-reranker",
        "app.kubernetes.io/instance": pipeline.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": APP_NAME,
        PIPELINE_LABEL: pipeline.name,
    }


def selector_labels(pipeline: RerankPipeline) -> dict[str, str]:
    """Immutable Deployment selector: only labels that never change for a pipeline."""
    return {
        "app.kubernetes.io/name": "vllm-reranker",
        "app.kubernetes.io/instance": pipeline.name,
        "app.kubernetes.io/component": "server",
    }


def revision_selector(pipeline: RerankPipeline, rev: str) -> dict[str, str]:
    """The pods of one revision: a BlueGreen Deployment's selector, its Service's, and the stable
    Service's while that revision is active."""
    return {**selector_labels(pipeline), REVISION_LABEL: rev}


def owner_reference(pipeline: RerankPipeline) -> dict[str, Any] | None:
    """Controller reference for same-namespace children; ``None`` offline (no uid yet)."""
    uid = pipeline.metadata.uid
    if not uid:
        return None
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": pipeline.name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(
    pipeline: RerankPipeline, name: str, component: str, *, namespace: str | None = None
) -> dict[str, Any]:
    """Metadata of a child; children in other namespaces cannot carry an ownerReference, so they
    carry the pipeline's UID in an annotation instead."""
    ns = namespace or pipeline.namespace
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels(pipeline, component)}
    owner = owner_reference(pipeline)
    if owner is not None and ns == pipeline.namespace:
        meta["ownerReferences"] = [owner]
    if ns != pipeline.namespace:
        meta["labels"][PIPELINE_NAMESPACE_LABEL] = pipeline.namespace
        meta["annotations"] = {OWNER_ANNOTATION: f"{pipeline.namespace}/{pipeline.name}"}
        if pipeline.metadata.uid:
            meta["annotations"][OWNER_UID_ANNOTATION] = pipeline.metadata.uid
    return meta
