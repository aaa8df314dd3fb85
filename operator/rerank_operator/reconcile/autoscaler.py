"""What the autoscaler (HPA or KEDA ScaledObject) and the optional monitoring child say (pure).

The autoscaler's own conditions are the truth about whether scaling works: an HPA whose metric cannot
be read (no custom-metrics API, no series for the pods) reports ``ScalingActive=False`` with a reason
such as ``FailedGetPodsMetric``; KEDA reports ``Ready=False`` on the ScaledObject. That reason is
surfaced as the pipeline's ``Degraded`` reason: the reranker serves, but at a fixed size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from rerank_operator.models import RerankPipeline
from rerank_operator.render import child_names
from rerank_operator.render.autoscaling import HPA_KIND, KEDA_API_VERSION, KEDA_KIND, autoscaler_kind
from rerank_operator.render.monitoring import POD_MONITOR_API_VERSION, POD_MONITOR_KIND

# Kinds whose API exists only where an add-on installed its CRD: applied only when discovery finds it.
OPTIONAL_APIS: dict[str, tuple[str, str]] = {
    KEDA_KIND: (KEDA_API_VERSION, "scaledobjects"),
    POD_MONITOR_KIND: (POD_MONITOR_API_VERSION, "podmonitors"),
}
NOT_INSTALLED = "AutoscalerNotInstalled"
_INSTALL_HINT = {KEDA_KIND: "KEDA is not installed"}


@dataclass(frozen=True)
class AutoscalerState:
    provider: str
    kind: str
    name: str
    metric: str
    min_replicas: int
    max_replicas: int
    current_replicas: int | None = None
    desired_replicas: int | None = None
    # The autoscaler's own (reason, message) when it cannot scale or compute its metric.
    problem: tuple[str, str] | None = None

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "kind": self.kind,
            "name": self.name,
            "metric": self.metric,
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "currentReplicas": self.current_replicas,
            "desiredReplicas": self.desired_replicas,
        }
        if self.problem is not None:
            out["reason"], out["message"] = self.problem[0], self.problem[1][:4096]
        return out


def _conditions(obj: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {str(c.get("type")): c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def hpa_problem(hpa: dict[str, Any] | None) -> tuple[str, str] | None:
    """``AbleToScale=False`` (cannot read or write the scale) or ``ScalingActive=False`` (cannot
    compute the metric), in that order, with the HPA controller's reason and message."""
    conditions = _conditions(hpa)
    for type_ in ("AbleToScale", "ScalingActive"):
        c = conditions.get(type_)
        if c is not None and c.get("status") == "False":
            return str(c.get("reason") or type_), str(c.get("message") or "")
    return None


def scaled_object_problem(scaled_object: dict[str, Any] | None) -> tuple[str, str] | None:
    """KEDA: ``Ready=False`` (the trigger cannot be evaluated) or ``Fallback=True`` (KEDA gave up on the
    metric and holds its fallback count)."""
    conditions = _conditions(scaled_object)
    ready = conditions.get("Ready")
    if ready is not None and ready.get("status") == "False":
        return str(ready.get("reason") or "ScaledObjectNotReady"), str(ready.get("message") or "")
    fallback = conditions.get("Fallback")
    if fallback is not None and fallback.get("status") == "True":
        return str(fallback.get("reason") or "FallbackActive"), str(fallback.get("message") or "")
    return None


def keda_hpa_name(scaled_object: dict[str, Any] | None) -> str | None:
    """The HorizontalPodAutoscaler KEDA made for the ScaledObject (its desired count lives there)."""
    name = ((scaled_object or {}).get("status") or {}).get("hpaName")
    return str(name) if name else None


def observe_autoscaler(
    pipeline: RerankPipeline,
    autoscaler: dict[str, Any] | None,
    *,
    keda_hpa: dict[str, Any] | None = None,
    not_installed: bool = False,
) -> AutoscalerState | None:
    """The state of the autoscaler ``spec.autoscaling`` asks for (None without it).

    ``autoscaler`` is the live HPA or ScaledObject; ``keda_hpa`` the HPA KEDA manages for a ScaledObject;
    ``not_installed`` that the cluster has no API for the kind (KEDA missing).
    """
    spec = pipeline.spec.autoscaling
    if spec is None:
        return None
    kind = autoscaler_kind(spec)
    base = AutoscalerState(
        provider=spec.provider,
        kind=kind,
        name=child_names(pipeline).autoscaler,
        metric=spec.metric.name_for(pipeline.spec.engine_kind),
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
    )
    if not_installed:
        api, plural = OPTIONAL_APIS[kind]
        hint = _INSTALL_HINT.get(kind, f"{kind} is not available")
        message = f"{hint}: the cluster serves no {plural} in {api}, so nothing scales the Deployment"
        return replace(base, problem=(NOT_INSTALLED, message))
    hpa = keda_hpa if kind == KEDA_KIND else autoscaler
    status = (hpa or {}).get("status") or {}
    problem = scaled_object_problem(autoscaler) if kind == KEDA_KIND else None
    problem = problem or hpa_problem(hpa)
    current, desired = status.get("currentReplicas"), status.get("desiredReplicas")
    if (_conditions(hpa).get("ScalingActive") or {}).get("status") != "True":
        # an HPA that never computed a recommendation reports desiredReplicas 0: not a count to show
        desired = None
    return replace(
        base,
        current_replicas=int(current) if current is not None else None,
        desired_replicas=int(desired) if desired is not None else None,
        problem=problem,
    )


def pod_monitor_status(
    pipeline: RerankPipeline, *, not_installed: bool, rejected: str | None = None
) -> dict[str, Any] | None:
    """``status.podMonitor`` when one is asked for: Applied, NotInstalled (no prometheus-operator
    API here) or Rejected."""
    if not pipeline.spec.monitoring.pod_monitor.enabled:
        return None
    name = child_names(pipeline).pod_monitor
    if not_installed:
        api, plural = OPTIONAL_APIS[POD_MONITOR_KIND]
        message = (
            f"the cluster serves no {plural} in {api} (prometheus-operator's CRDs are not installed): "
            "nothing scrapes the reranker pods for the autoscaler"
        )
        return {"name": name, "state": "NotInstalled", "message": message}
    if rejected is not None:
        return {"name": name, "state": "Rejected", "message": rejected[:4096]}
    return {"name": name, "state": "Applied", "message": ""}


def stale_children(pipeline: RerankPipeline, status: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Children a previous spec asked for and this one does not: the autoscaler after autoscaling is
    removed or its provider changed (two autoscalers on one Deployment would fight, and one left
    behind would fight the operator), and a PodMonitor that was switched off."""
    status = status or {}
    out: list[tuple[str, str]] = []
    spec = pipeline.spec.autoscaling
    wanted_kind = autoscaler_kind(spec) if spec is not None else None
    previous = status.get("autoscaling") or {}
    kind, name = previous.get("kind"), previous.get("name")
    if kind in (HPA_KIND, KEDA_KIND) and name and kind != wanted_kind:
        out.append((str(kind), str(name)))
    monitor = status.get("podMonitor") or {}
    if (
        monitor.get("state") == "Applied"
        and monitor.get("name")
        and not pipeline.spec.monitoring.pod_monitor.enabled
    ):
        out.append((POD_MONITOR_KIND, str(monitor["name"])))
    return out
