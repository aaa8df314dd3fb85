"""Pure functions from a RerankPipeline to the manifests of its children."""

from __future__ import annotations

from typing import Any

from rerank_operator.models import RerankPipeline
from rerank_operator.render.autoscaling import render_autoscaler
from rerank_operator.render.monitoring import render_pod_monitor
from rerank_operator.render.naming import ChildNames, child_names, labels, owner_reference, selector_labels
from rerank_operator.render.revision import config_hash, revision
from rerank_operator.render.tei_args import router_args, router_command
from rerank_operator.render.vllm_args import serve_args, serve_command, server_args, server_command
from rerank_operator.render.workload import (
    render_cache_pvc,
    render_chat_template,
    render_deployment,
    render_disruption_budget,
    render_revision_service,
    render_service,
)


def render_workload(pipeline: RerankPipeline) -> list[dict[str, Any]]:
    """Children that serve the model, in apply order (config and storage before the pods).

    Nothing for a pipeline with ``spec.external``: something else runs that reranker, and the operator only
    probes it and publishes it (the published ConfigMaps come from ``publish``, not from here).
    """
    if pipeline.spec.external is not None:
        return []
    out = [
        render_chat_template(pipeline),
        render_cache_pvc(pipeline),
        render_deployment(pipeline),
        render_revision_service(pipeline),
        render_service(pipeline),
        render_disruption_budget(pipeline),
        render_autoscaler(pipeline),
        render_pod_monitor(pipeline),
    ]
    return [m for m in out if m is not None]


__all__ = [
    "ChildNames",
    "child_names",
    "config_hash",
    "labels",
    "owner_reference",
    "render_autoscaler",
    "render_cache_pvc",
    "render_chat_template",
    "render_deployment",
    "render_disruption_budget",
    "render_pod_monitor",
    "render_revision_service",
    "render_service",
    "render_workload",
    "revision",
    "router_args",
    "router_command",
    "selector_labels",
    "serve_args",
    "serve_command",
    "server_args",
    "server_command",
]
