"""``spec.monitoring``: let Prometheus scrape vLLM's own metrics from the reranker pods.

An autoscaler on vLLM's load needs those series in Prometheus first (prometheus-adapter and KEDA both
read them from there). The operator renders a prometheus-operator ``PodMonitor`` on request, and only
applies it where the ``monitoring.coreos.com`` API exists; status says when it does not.
"""

from __future__ import annotations

from pydantic import Field

from rerank_operator.models.base import ApiModel

DURATION = r"^([0-9]+(ms|s|m|h))+$"


class PodMonitorSpec(ApiModel):
    """A prometheus-operator PodMonitor for the reranker pods' /metrics."""

    enabled: bool = Field(
        default=False,
        description="Create a PodMonitor (needs the monitoring.coreos.com CRDs; without them status says so).",
    )
    interval: str = Field(
        default="30s", max_length=32, pattern=DURATION, description="Scrape interval (Prometheus duration)."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on the PodMonitor, e.g. the one your Prometheus' podMonitorSelector "
        "matches (release: kube-prometheus-stack).",
    )


class MonitoringSpec(ApiModel):
    """How the reranker pods' metrics reach Prometheus."""

    pod_monitor: PodMonitorSpec = Field(
        default_factory=PodMonitorSpec, description="A PodMonitor for vLLM's /metrics."
    )
