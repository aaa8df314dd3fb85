"""A prometheus-operator PodMonitor for the reranker pods' ``/metrics`` (spec.monitoring.podMonitor).

vLLM serves its Prometheus metrics on the API port without authentication (``/metrics`` is exempt
from ``--api-key``); TEI serves them on a port of its own (``--prometheus-port``, the pod's ``metrics``
port), also without authentication. The pods' selector labels become target labels, so a query can pick
one pipeline's series (``render.autoscaling.default_query`` relies on that).
"""

from __future__ import annotations

from typing import Any

from rerank_operator.models import RerankPipeline
from rerank_operator.render.naming import child_names, object_meta, selector_labels
from rerank_operator.render.workload import metrics_port_name

POD_MONITOR_API_VERSION = "monitoring.coreos.com/v1"
POD_MONITOR_KIND = "PodMonitor"
METRICS_PATH = "/metrics"


def render_pod_monitor(pipeline: RerankPipeline) -> dict[str, Any] | None:
    options = pipeline.spec.monitoring.pod_monitor
    if not options.enabled:
        return None
    meta = object_meta(pipeline, child_names(pipeline).pod_monitor, "metrics")
    # ours win: the pipeline's lookups and garbage collection rely on them
    meta["labels"] = {**options.labels, **meta["labels"]}
    selector = selector_labels(pipeline)
    return {
        "apiVersion": POD_MONITOR_API_VERSION,
        "kind": POD_MONITOR_KIND,
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector},
            "podMetricsEndpoints": [
                {"port": metrics_port_name(pipeline), "path": METRICS_PATH, "interval": options.interval}
            ],
            "podTargetLabels": sorted(selector),
        },
    }
