"""The autoscaler child of a pipeline: an autoscaling/v2 HorizontalPodAutoscaler or a KEDA ScaledObject.

Both scale the pipeline's Deployment through its ``scale`` subresource on one per-pod vLLM metric
(``spec.autoscaling.metric``). Pure functions, like the rest of ``render``.
"""

from __future__ import annotations

from typing import Any

from rerank_operator.models import AutoscalingSpec, RerankPipeline, ScalingRules
from rerank_operator.render.naming import child_names, object_meta, selector_labels

HPA_API_VERSION = "autoscaling/v2"
KEDA_API_VERSION = "keda.sh/v1alpha1"
HPA_KIND = "HorizontalPodAutoscaler"
KEDA_KIND = "ScaledObject"


def autoscaler_kind(autoscaling: AutoscalingSpec) -> str:
    return KEDA_KIND if autoscaling.provider == "keda" else HPA_KIND


def _scale_target(pipeline: RerankPipeline, target: str | None) -> dict[str, str]:
    """The Deployment to scale: the current spec's, or (BlueGreen) the active revision's, which the
    engine names: the autoscaler follows the revision that serves, not a candidate being checked."""
    name = target or child_names(pipeline).deployment
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}


def _rules(rules: ScalingRules) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rules.stabilization_window_seconds is not None:
        out["stabilizationWindowSeconds"] = rules.stabilization_window_seconds
    if rules.select_policy is not None:
        out["selectPolicy"] = rules.select_policy
    if rules.policies:  # an empty list is refused by the HPA; left out, it takes the defaults
        out["policies"] = [p.to_api() for p in rules.policies]
    return out


def behavior(autoscaling: AutoscalingSpec) -> dict[str, Any] | None:
    """autoscaling/v2 ``behavior`` (KEDA passes the same object to the HPA it manages)."""
    if autoscaling.behavior is None:
        return None
    out: dict[str, Any] = {}
    if autoscaling.behavior.scale_up is not None:
        out["scaleUp"] = _rules(autoscaling.behavior.scale_up)
    if autoscaling.behavior.scale_down is not None:
        out["scaleDown"] = _rules(autoscaling.behavior.scale_down)
    return out or None


def render_hpa(
    pipeline: RerankPipeline, autoscaling: AutoscalingSpec, target: str | None = None
) -> dict[str, Any]:
    """A ``Pods`` metric: the custom-metrics API (e.g. prometheus-adapter) serves the vLLM series per pod
    and the HPA keeps its average at the target."""
    metric = autoscaling.metric
    spec: dict[str, Any] = {
        "scaleTargetRef": _scale_target(pipeline, target),
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": metric.name_for(pipeline.spec.engine_kind)},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": metric.target_for(pipeline.spec.engine_kind),
                    },
                },
            }
        ],
    }
    rules = behavior(autoscaling)
    if rules:
        spec["behavior"] = rules
    return {
        "apiVersion": HPA_API_VERSION,
        "kind": HPA_KIND,
        "metadata": object_meta(pipeline, child_names(pipeline).autoscaler, "autoscaler"),
        "spec": spec,
    }


def prometheus_label(label: str) -> str:
    """A Kubernetes label as Prometheus' Kubernetes discovery and PodMonitor podTargetLabels name it."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in label)


def default_query(pipeline: RerankPipeline, metric: str) -> str:
    """The metric summed over the pipeline's pods, selected by namespace and the pods' selector labels
    (which the PodMonitor keeps as target labels). KEDA divides the sum by the pod count."""
    matchers = [f'namespace="{pipeline.namespace}"'] + [
        f'{prometheus_label(k)}="{v}"' for k, v in sorted(selector_labels(pipeline).items())
    ]
    return f"sum({metric}{{{','.join(matchers)}}})"


def _threshold(pipeline: RerankPipeline, autoscaling: AutoscalingSpec) -> str:
    """KEDA parses its threshold as a float, not a Kubernetes quantity (``800m`` must be ``0.8``)."""
    return format(autoscaling.metric.target_decimal_for(pipeline.spec.engine_kind).normalize(), "f")


def render_scaled_object(
    pipeline: RerankPipeline, autoscaling: AutoscalingSpec, target: str | None = None
) -> dict[str, Any]:
    keda = autoscaling.keda
    assert keda is not None and keda.server_address is not None  # admission and pydantic guarantee it
    trigger: dict[str, Any] = {
        "type": "prometheus",
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": keda.server_address,
            "query": keda.query
            or default_query(pipeline, autoscaling.metric.name_for(pipeline.spec.engine_kind)),
            "threshold": _threshold(pipeline, autoscaling),
        },
    }
    if keda.authentication_ref is not None:
        trigger["authenticationRef"] = keda.authentication_ref.to_api()
    spec: dict[str, Any] = {
        "scaleTargetRef": _scale_target(pipeline, target),
        "minReplicaCount": autoscaling.min_replicas,
        "maxReplicaCount": autoscaling.max_replicas,
        "triggers": [trigger],
    }
    if keda.polling_interval_seconds is not None:
        spec["pollingInterval"] = keda.polling_interval_seconds
    rules = behavior(autoscaling)
    if rules:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": rules}}
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": KEDA_KIND,
        "metadata": object_meta(pipeline, child_names(pipeline).autoscaler, "autoscaler"),
        "spec": spec,
    }


def render_autoscaler(pipeline: RerankPipeline, target: str | None = None) -> dict[str, Any] | None:
    """The autoscaler ``spec.autoscaling`` asks for, or None when the operator owns the replica count.
    ``target``: the Deployment it scales (default: the current spec's)."""
    autoscaling = pipeline.spec.autoscaling
    if autoscaling is None:
        return None
    if autoscaling.provider == "keda":
        return render_scaled_object(pipeline, autoscaling, target)
    return render_hpa(pipeline, autoscaling, target)
