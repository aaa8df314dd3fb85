"""What apps and Milvus consume: the published ConfigMap content (no Kubernetes I/O here)."""

from rerank_operator.publish.content import (
    AWAITING_FIRST_PROBE,
    DATA_KEYS,
    LITE_FUNCTION_KEY,
    PublishedConfig,
    endpoint_for,
    initial_config,
    milvus_function,
    milvus_lite_function,
    render_published_configmap,
    render_published_configmaps,
)

__all__ = [
    "AWAITING_FIRST_PROBE",
    "DATA_KEYS",
    "LITE_FUNCTION_KEY",
    "PublishedConfig",
    "endpoint_for",
    "initial_config",
    "milvus_function",
    "milvus_lite_function",
    "render_published_configmap",
    "render_published_configmaps",
]
