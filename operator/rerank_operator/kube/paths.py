"""REST paths of the resources the operator touches."""

from __future__ import annotations

from rerank_operator import GROUP, PLURAL, VERSION

# kind -> (API prefix, plural)
_RESOURCES: dict[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "ScaledObject": ("/apis/keda.sh/v1alpha1", "scaledobjects"),
    "PodMonitor": ("/apis/monitoring.coreos.com/v1", "podmonitors"),
    "Secret": ("/api/v1", "secrets"),
    "Pod": ("/api/v1", "pods"),
    "Event": ("/api/v1", "events"),
    "RerankPipeline": (f"/apis/{GROUP}/{VERSION}", PLURAL),
    "RerankPublishGrant": (f"/apis/{GROUP}/{VERSION}", "rerankpublishgrants"),
}


def resource_path(kind: str, namespace: str | None) -> str:
    """The collection in ``namespace``; ``None``: in all namespaces (for lists and watches)."""
    prefix, plural = _RESOURCES[kind]
    if namespace is None:
        return f"{prefix}/{plural}"
    return f"{prefix}/namespaces/{namespace}/{plural}"


def object_path(kind: str, namespace: str, name: str, subresource: str | None = None) -> str:
    path = f"{resource_path(kind, namespace)}/{name}"
    return f"{path}/{subresource}" if subresource else path
