"""Every child of a pipeline: the workload from ``render`` plus the published ConfigMaps.

Composed here (not in ``render``) because the published content lives in ``publish``, which
itself builds on ``render``'s naming.
"""

from __future__ import annotations

from typing import Any

from rerank_operator.models import RerankPipeline
from rerank_operator.publish.content import (
    DEFAULT_CLUSTER_DOMAIN,
    initial_config,
    render_published_configmaps,
)
from rerank_operator.render import render_workload


def render_all(
    pipeline: RerankPipeline, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
) -> list[dict[str, Any]]:
    """Every child, with the published ConfigMaps in their initial, not-ready state."""
    return render_workload(pipeline) + render_published_configmaps(
        pipeline, initial_config(pipeline, cluster_domain)
    )
