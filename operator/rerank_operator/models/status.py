"""The ``RerankPipeline`` status. Every field is declared so the apiserver does not prune it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rerank_operator.models.base import ApiModel


class Condition(ApiModel):
    """A standard Kubernetes condition (metav1.Condition shape)."""

    type: str = Field(
        max_length=316, description="Condition type: Ready, Progressing, Degraded, Stalled, ..."
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(description="When the status last changed (RFC 3339).")
    observed_generation: int = Field(
        default=0, ge=0, description="metadata.generation this was computed from."
    )


class ProbeResultStatus(ApiModel):
    """The most recent canary rerank check."""

    time: str = Field(description="When the check ran (RFC 3339).")
    ok: bool = Field(description="Whether the reranker answered correctly.")
    reason: str = Field(description="Healthy, or why the check failed (e.g. WrongTopDocument, Timeout).")
    message: str = Field(default="", max_length=4096, description="Details of the verdict.")
    latency_ms: float | None = Field(default=None, description="Round-trip time of the canary request.")


class LatencyStatus(ApiModel):
    """Rolling latency of recent successful canary checks."""

    p50_ms: float | None = Field(default=None, description="Median latency in milliseconds.")
    p95_ms: float | None = Field(default=None, description="95th percentile latency in milliseconds.")
    samples: int = Field(default=0, ge=0, description="How many checks the percentiles cover.")


class PublishedStatus(ApiModel):
    """What was last published for apps and Milvus."""

    config_map_name: str = Field(description="Name of the published ConfigMap.")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces it is published in.")
    ready: bool = Field(default=False, description="Whether the published config is marked ready.")
    endpoint: str | None = Field(default=None, description="The endpoint last known to work.")
    model: str | None = Field(default=None, description="Served model name last known to work.")
    generation: int | None = Field(default=None, description="Pipeline generation last published as working.")
    function_json: str | None = Field(default=None, description="Last known good Milvus Function JSON.")
    lite_function_json: str | None = Field(
        default=None, description="Last known good Milvus Lite Function JSON."
    )
    time: str | None = Field(default=None, description="When the working config was last published.")


class AutoscalingStatus(ApiModel):
    """The autoscaler child and what it reports (spec.autoscaling)."""

    provider: Literal["hpa", "keda"] = Field(description="hpa or keda.")
    kind: str = Field(description="Kind of the autoscaler object (HorizontalPodAutoscaler, ScaledObject).")
    name: str = Field(description="Name of the autoscaler object.")
    metric: str = Field(description="The metric it scales on.")
    min_replicas: int = Field(description="Fewest pods.")
    max_replicas: int = Field(description="Most pods.")
    current_replicas: int | None = Field(default=None, description="Pods the autoscaler last saw.")
    desired_replicas: int | None = Field(default=None, description="Pods the autoscaler asks for.")
    reason: str | None = Field(
        default=None, description="The autoscaler's own reason when it cannot scale or compute its metric."
    )
    message: str | None = Field(default=None, max_length=4096, description="The autoscaler's own message.")


class PodMonitorStatus(ApiModel):
    """Whether the requested PodMonitor exists (spec.monitoring.podMonitor)."""

    name: str = Field(description="Name of the PodMonitor.")
    state: Literal["Applied", "NotInstalled", "Rejected"] = Field(
        description="Applied; NotInstalled (no monitoring.coreos.com PodMonitor API in the cluster); "
        "Rejected (the apiserver refused it)."
    )
    message: str = Field(default="", max_length=4096, description="Details.")


class RetiringRevision(ApiModel):
    """A revision that served before the last switch, kept until its drain ends."""

    revision: str = Field(description="The revision (its pods' rerank.dev/revision label).")
    deployment: str = Field(description="Its Deployment.")
    until: str = Field(description="When it is deleted (RFC 3339).")


class RevisionsStatus(ApiModel):
    """BlueGreen: which revision the endpoint's Service selects, and the one being checked."""

    active: str | None = Field(
        default=None, description="Revision the endpoint's Service selects (what Milvus reaches)."
    )
    active_deployment: str | None = Field(default=None, description="The active revision's Deployment.")
    candidate: str | None = Field(
        default=None, description="Revision of the current spec, while it is not active yet."
    )
    candidate_deployment: str | None = Field(default=None, description="The candidate's Deployment.")
    reason: str | None = Field(default=None, description="Why the candidate is not active yet.")
    message: str | None = Field(default=None, max_length=4096, description="Details of that reason.")
    retiring: list[RetiringRevision] = Field(
        default_factory=list, description="Previous revisions still draining."
    )


class RerankPipelineStatus(ApiModel):
    """Observed state, written only by the operator."""

    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
        description="Ready, Progressing, Degraded, Stalled, Probed and Published conditions.",
    )
    replicas: int | None = Field(
        default=None,
        description="Desired pods: spec.replicas, or the Deployment's count while an autoscaler owns it.",
    )
    ready_replicas: int | None = Field(default=None, description="Pods passing their readiness probe.")
    endpoint: str | None = Field(
        default=None, description="Endpoint Milvus calls (scheme://host:port, no path)."
    )
    served_model: str | None = Field(default=None, description="Model name the server reports.")
    last_probe: ProbeResultStatus | None = Field(default=None, description="The last canary check.")
    latency: LatencyStatus | None = Field(default=None, description="Rolling canary latency.")
    consecutive_failures: int | None = Field(default=None, description="Canary failures in a row.")
    consecutive_successes: int | None = Field(default=None, description="Canary successes in a row.")
    published: PublishedStatus | None = Field(default=None, description="The published ranker config.")
    autoscaling: AutoscalingStatus | None = Field(default=None, description="The autoscaler, when used.")
    pod_monitor: PodMonitorStatus | None = Field(default=None, description="The PodMonitor, when asked for.")
    revisions: RevisionsStatus | None = Field(
        default=None, description="BlueGreen rollouts: the active and the candidate revision."
    )
