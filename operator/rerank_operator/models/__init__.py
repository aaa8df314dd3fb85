"""Pydantic models of the RerankPipeline API: the single source of truth for the CRD and rendering."""

from rerank_operator.models.pipeline import InvalidPipeline, ObjectMeta, RerankPipeline, format_errors
from rerank_operator.models.spec import (
    DEFAULT_IMAGE,
    HF_CACHE_PATH,
    CachePvcSpec,
    ComputeResources,
    EngineSpec,
    EnvVar,
    ModelCacheSpec,
    ModelSpec,
    ProbeSpec,
    PublishSpec,
    RerankPipelineSpec,
    ResourcesSpec,
    RolloutSpec,
    SecretKeyRef,
    Toleration,
)
from rerank_operator.models.status import (
    Condition,
    LatencyStatus,
    ProbeResultStatus,
    PublishedStatus,
    RerankPipelineStatus,
)

__all__ = [
    "DEFAULT_IMAGE",
    "HF_CACHE_PATH",
    "CachePvcSpec",
    "ComputeResources",
    "Condition",
    "EngineSpec",
    "EnvVar",
    "InvalidPipeline",
    "LatencyStatus",
    "ModelCacheSpec",
    "ModelSpec",
    "ObjectMeta",
    "ProbeResultStatus",
    "ProbeSpec",
    "PublishSpec",
    "PublishedStatus",
    "RerankPipeline",
    "RerankPipelineSpec",
    "RerankPipelineStatus",
    "ResourcesSpec",
    "RolloutSpec",
    "SecretKeyRef",
    "Toleration",
    "format_errors",
]
