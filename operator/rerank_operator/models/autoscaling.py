"""``spec.autoscaling``: let an autoscaler size the reranker fleet on vLLM's own load.

Why these bounds: Milvus calls the reranker synchronously while it answers a search (30 s per batch,
3 tries) and a model takes minutes to download and load, so a pipeline scaled to zero fails searches
instead of waking up. ``minReplicas`` is therefore at least 1, refused at admission with that reason.

The metric is a vLLM Prometheus series, averaged per pod. The default, the number of requests waiting
in vLLM's queue, is the signal that a pooling (rerank) server is saturated: pooling requests are short
and not streamed, so the queue grows exactly when the GPU cannot keep up, and it drains to zero at rest.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rerank_operator.models.base import ApiModel, cel, with_cel
from rerank_operator.models.quantity import Quantity, quantity_decimal

QUEUE_METRIC = "vllm:num_requests_waiting"
RUNNING_METRIC = "vllm:num_requests_running"
KV_CACHE_METRIC = "vllm:kv_cache_usage_perc"
TEI_QUEUE_METRIC = "te_queue_size"  # TEI's router: requests waiting to be batched
# The default series per engine (spec.engine.kind): each engine's own queue.
QUEUE_METRICS: dict[str, str] = {"vllm": QUEUE_METRIC, "tei": TEI_QUEUE_METRIC}
# Per-pod average targets for the metrics whose scale is known; any other metric needs its own.
DEFAULT_TARGETS: dict[str, str] = {QUEUE_METRIC: "2", KV_CACHE_METRIC: "800m", TEI_QUEUE_METRIC: "2"}
PROMETHEUS_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
MAX_REPLICAS = 64  # as spec.replicas

MIN_REPLICAS_MESSAGE = (
    "minReplicas must be at least 1: Milvus calls the reranker synchronously during a search (30 s per "
    "batch, 3 tries) and a model takes minutes to load, so a pipeline scaled to zero fails searches "
    "instead of waking up"
)
MAX_BELOW_MIN_MESSAGE = "maxReplicas must be at least minReplicas"
KEDA_SERVER_MESSAGE = (
    "provider keda needs keda.serverAddress, the Prometheus server KEDA queries "
    "(e.g. http://prometheus-operated.monitoring.svc:9090)"
)
KEDA_WITHOUT_PROVIDER_MESSAGE = "keda is only used with provider: keda (remove it, or set provider: keda)"
TARGET_REQUIRED_MESSAGE = (
    "targetAverageValue is required for this metric (a default exists only for "
    + " and ".join(DEFAULT_TARGETS)
    + ")"
)


class ScalingPolicy(ApiModel):
    """One rate limit, as in autoscaling/v2: at most ``value`` pods (or percent) per ``periodSeconds``."""

    type: Literal["Pods", "Percent"] = Field(
        description="Pods: an absolute number; Percent: of current pods."
    )
    value: int = Field(ge=1, le=1000, description="How many pods (or percent) may change per period.")
    period_seconds: int = Field(ge=1, le=1800, description="The period the value applies to.")


class ScalingRules(ApiModel):
    """How fast one direction may scale, as in autoscaling/v2 ``HPAScalingRules``."""

    stabilization_window_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="Look back this long and use the most conservative recommendation (autoscaling/v2 "
        "defaults: 0 for scale-up, 300 for scale-down). A long scale-down window keeps pods whose model "
        "took minutes to load through short lulls.",
    )
    select_policy: Literal["Max", "Min", "Disabled"] | None = Field(
        default=None, description="Which policy wins when several apply; Disabled turns this direction off."
    )
    policies: list[ScalingPolicy] = Field(
        default_factory=list, max_length=10, description="Rate limits; the autoscaler's defaults when empty."
    )


class ScalingBehavior(ApiModel):
    """Scale-up and scale-down stabilisation and rate limits (autoscaling/v2 ``behavior``)."""

    scale_up: ScalingRules | None = Field(default=None, description="Rules for adding pods.")
    scale_down: ScalingRules | None = Field(default=None, description="Rules for removing pods.")


class AutoscalingMetric(ApiModel):
    """The per-pod metric the autoscaler keeps at its target."""

    model_config = with_cel(
        # `!has(self.name)`: the apiserver checks rules against the schema's own default ({}) too,
        # before nested defaults fill name in; a missing name is the (defaulted) queue metric
        cel(
            "has(self.targetAverageValue) || !has(self.name) || self.name in ["
            + ", ".join(f"'{name}'" for name in DEFAULT_TARGETS)
            + "]",
            TARGET_REQUIRED_MESSAGE,
            field_path=".targetAverageValue",
        )
    )

    # No schema default: the default is the engine's own queue series, and the engine is a sibling field.
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=PROMETHEUS_NAME,
        description="Series to scale on, as the metrics pipeline serves it. Default: the engine's queue, "
        f"{QUEUE_METRIC} for vLLM (requests queued because the engine is busy) or {TEI_QUEUE_METRIC} for "
        f"TEI. Also known for vLLM: {RUNNING_METRIC} (requests in the running batch) and {KV_CACHE_METRIC} "
        "(GPU KV-cache use, 0 to 1); any other name needs targetAverageValue. provider hpa reads it from "
        "the custom-metrics API (pods/<name>), provider keda from Prometheus.",
    )
    target_average_value: Quantity | None = Field(
        default=None,
        description="Per-pod average to keep the metric at (e.g. 2, 800m). Defaults: "
        + ", ".join(f"{v} for {k}" for k, v in DEFAULT_TARGETS.items())
        + "; required for other metrics.",
    )

    @model_validator(mode="after")
    def _target_known(self) -> AutoscalingMetric:
        if self.target_average_value is None and self.name is not None and self.name not in DEFAULT_TARGETS:
            raise ValueError(f"targetAverageValue: {TARGET_REQUIRED_MESSAGE}")
        return self

    def name_for(self, engine: str) -> str:
        """The series to scale on for ``engine`` (spec.engine_kind): the user's, or its queue."""
        return self.name if self.name is not None else QUEUE_METRICS[engine]

    def target_for(self, engine: str) -> str:
        """The target as a Kubernetes quantity string."""
        if self.target_average_value is not None:
            return str(self.target_average_value)
        return DEFAULT_TARGETS[self.name_for(engine)]

    def target_decimal_for(self, engine: str) -> Decimal:
        """The target as a plain number (KEDA's threshold is a float, not a quantity)."""
        return quantity_decimal(self.target_for(engine))


class KedaAuthenticationRef(ApiModel):
    """A KEDA TriggerAuthentication holding the Prometheus credentials (never inlined here)."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="Name of the (Cluster)TriggerAuthentication.",
    )
    kind: Literal["TriggerAuthentication", "ClusterTriggerAuthentication"] = Field(
        default="TriggerAuthentication", description="TriggerAuthentication (namespaced) or the cluster kind."
    )


class KedaSpec(ApiModel):
    """The KEDA Prometheus trigger (provider: keda)."""

    server_address: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Prometheus server KEDA queries, e.g. http://prometheus-operated.monitoring.svc:9090. "
        "Required with provider keda.",
    )
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="PromQL whose value is the total over the pipeline's pods (KEDA divides it by the pod "
        'count). Default: sum(<metric>{namespace="<ns>",app_kubernetes_io_instance="<name>",...}) over '
        "the pod labels the PodMonitor keeps.",
    )
    authentication_ref: KedaAuthenticationRef | None = Field(
        default=None, description="Credentials for the Prometheus server, when it needs them."
    )
    polling_interval_seconds: int | None = Field(
        default=None, ge=1, le=3600, description="How often KEDA queries Prometheus (KEDA's default: 30)."
    )


class AutoscalingSpec(ApiModel):
    """Size the reranker fleet with an autoscaler on vLLM's own load instead of spec.replicas.

    While set, the operator never writes the Deployment's replica count (the autoscaler owns it);
    removing it hands the count back to spec.replicas.
    """

    model_config = with_cel(
        cel("self.minReplicas >= 1", MIN_REPLICAS_MESSAGE, field_path=".minReplicas"),
        cel(
            "!has(self.maxReplicas) || self.maxReplicas >= self.minReplicas",
            MAX_BELOW_MIN_MESSAGE,
            field_path=".maxReplicas",
        ),
        cel(
            "self.provider != 'keda' || (has(self.keda) && has(self.keda.serverAddress))",
            KEDA_SERVER_MESSAGE,
            field_path=".keda",
        ),
        cel("!has(self.keda) || self.provider == 'keda'", KEDA_WITHOUT_PROVIDER_MESSAGE, field_path=".keda"),
    )

    provider: Literal["hpa", "keda"] = Field(
        default="hpa",
        description="hpa: an autoscaling/v2 HorizontalPodAutoscaler with a Pods metric, served by a "
        "custom-metrics adapter (e.g. prometheus-adapter). keda: a KEDA ScaledObject with a Prometheus "
        "trigger (KEDA must be installed).",
    )
    # No schema minimum: the CEL rule above refuses 0 with the reason instead of a bare bound.
    min_replicas: int = Field(
        default=1,
        le=MAX_REPLICAS,
        description="Fewest pods, at least 1 (scale to zero would fail Milvus searches while a model loads).",
    )
    max_replicas: int = Field(
        le=MAX_REPLICAS,
        description="Most pods. Each needs its GPUs: pods beyond the free capacity stay Pending, with "
        "the scheduler's message in status.",
    )
    metric: AutoscalingMetric = Field(
        default_factory=AutoscalingMetric, description="The per-pod load metric and its target."
    )
    behavior: ScalingBehavior | None = Field(
        default=None, description="Scale-up and scale-down stabilisation, as in autoscaling/v2."
    )
    keda: KedaSpec | None = Field(default=None, description="KEDA's Prometheus trigger (provider: keda).")

    @field_validator("min_replicas")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError(MIN_REPLICAS_MESSAGE)
        return value

    @model_validator(mode="after")
    def _check(self) -> AutoscalingSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"maxReplicas: {MAX_BELOW_MIN_MESSAGE}")
        if self.provider == "keda" and (self.keda is None or self.keda.server_address is None):
            raise ValueError(f"keda: {KEDA_SERVER_MESSAGE}")
        if self.keda is not None and self.provider != "keda":
            raise ValueError(f"keda: {KEDA_WITHOUT_PROVIDER_MESSAGE}")
        return self
