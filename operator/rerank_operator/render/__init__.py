"""Pure functions from a RerankPipeline to the manifests of its children."""

from __future__ import annotations

from typing import Any

from rerank_operator.models import RerankPipeline
from rerank_operator.publish.content import DEFAULT_CLUSTER_DOMAIN, initial_config, render_published_configmaps
from rerank_operator.render.naming import ChildNames, child_names, labels, owner_reference, selector_labels
from rerank_operator.render.vllm_args import serve_args, serve_command
from rerank_operator.render.workload import (
    config_hash,
    render_cache_pvc,
    render_chat_template,
    render_deployment,
    render_service,
)


def render_workload(pipeline: RerankPipeline) -> list[dict[str, Any]]:
    """Children that serve the model, in apply order (config and storage before the pods)."""
    out = [render_chat_template(pipeline), render_cache_pvc(pipeline), render_deployment(pipeline), render_service(pipeline)]
    return [m for m in out if m is not None]


def render_all(pipeline: RerankPipeline, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> list[dict[str, Any]]:
    """Every child, with the published ConfigMaps in their initial, not-ready state."""
    return render_workload(pipeline) + render_published_configmaps(pipeline, initial_config(pipeline, cluster_domain))


__all__ = [
    "ChildNames",
    "child_names",
    "config_hash",
    "labels",
    "owner_reference",
    "render_all",
    "render_cache_pvc",
    "render_chat_template",
    "render_deployment",
    "render_service",
    "render_workload",
    "selector_labels",
    "serve_args",
    "serve_command",
]
