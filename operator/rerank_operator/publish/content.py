"""The published ranker config.

Milvus calls the reranker itself, so the endpoint is the in-cluster Service URL (scheme, host and
port only: Milvus replaces any path with ``/rerank``). Param names are the ones current Milvus
(2.6.1+) reads; the pre-2.6.1 ``maxBatch`` spelling is silently ignored there and never published.

Publishing rule: the *last known good* function params are kept through failures, only ``ready``
and ``reason`` flip. ``PublishedConfig`` is that snapshot; the operator keeps it in status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from rerank_operator.models import RerankPipeline
from rerank_operator.render.naming import child_names, object_meta

FUNCTION_TYPE_RERANK = 3  # pymilvus FunctionType.RERANK, as Function.to_dict() serialises it
AWAITING_FIRST_PROBE = "AwaitingFirstProbe"
READY_REASON = "Healthy"  # the published reason of a ready config, as the Ready condition says
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DATA_KEYS = (
    "endpoint",
    "model",
    "ready",
    "reason",
    "generation",
    "milvus-function.json",
    "milvus-lite-function.json",
)


def endpoint_for(pipeline: RerankPipeline, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """``http://<service>.<namespace>.svc.<domain>:<port>``: reachable from Milvus in any namespace of
    the cluster; ``publish.endpoint`` instead when Milvus reaches the reranker some other way."""
    if pipeline.spec.publish.endpoint:
        return pipeline.spec.publish.endpoint
    service = child_names(pipeline).service
    return f"http://{service}.{pipeline.namespace}.svc.{cluster_domain}:{pipeline.spec.engine.port}"


def revision_endpoint(pipeline: RerankPipeline, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """BlueGreen: the current revision's own Service, where its canary runs before the switch."""
    service = child_names(pipeline).revision_service
    return f"http://{service}.{pipeline.namespace}.svc.{cluster_domain}:{pipeline.spec.engine.port}"


def function_name(pipeline: RerankPipeline) -> str:
    return pipeline.spec.publish.function_name or f"{pipeline.name.replace('-', '_')}_rerank"


def milvus_function(pipeline: RerankPipeline, endpoint: str) -> dict[str, Any]:
    """``Function.to_dict()`` for Milvus' vllm model ranker, minus ``queries`` (set per search)."""
    publish = pipeline.spec.publish
    params: dict[str, Any] = {
        "reranker": "model",
        "provider": "vllm",
        "endpoint": endpoint,
        "max_client_batch_size": publish.max_client_batch_size,
    }
    if pipeline.spec.model.truncate_prompt_tokens is not None:
        params["truncate_prompt_tokens"] = pipeline.spec.model.truncate_prompt_tokens
    if publish.credential:
        params["credential"] = publish.credential
    return _function(pipeline, params)


def milvus_lite_function(pipeline: RerankPipeline, endpoint: str) -> dict[str, Any]:
    """Milvus Lite only knows the ``cohere`` provider; vLLM's Cohere-compatible ``/v2`` route serves it.

    ``api_key`` is deliberately absent: Milvus Lite requires one, and the app helper supplies it at
    load time (any non-empty string when vLLM runs without a key), so no secret is ever published.
    """
    params = {
        "reranker": "model",
        "provider": "cohere",
        "model_name": pipeline.spec.model.effective_served_name,
        "base_url": f"{endpoint}/v2",
    }
    return _function(pipeline, params)


def _function(pipeline: RerankPipeline, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": function_name(pipeline),
        "description": f"vLLM reranker {pipeline.spec.model.name} managed by rerank-operator "
        f"({pipeline.namespace}/{pipeline.name})",
        "type": FUNCTION_TYPE_RERANK,
        "input_field_names": [pipeline.spec.publish.input_field],
        "output_field_names": [],
        "params": params,
    }


@dataclass(frozen=True)
class PublishedConfig:
    """One state of the published ConfigMap data; ``data()`` is exactly what lands in it."""

    endpoint: str
    model: str
    generation: int
    function_json: str
    lite_function_json: str
    ready: bool = False
    reason: str = AWAITING_FIRST_PROBE

    def data(self) -> dict[str, str]:
        out = {
            "endpoint": self.endpoint,
            "model": self.model,
            "ready": "true" if self.ready else "false",
            "generation": str(self.generation),
            "milvus-function.json": self.function_json,
            "milvus-lite-function.json": self.lite_function_json,
            # always present (``Healthy`` when ready): the same keys in every version of the ConfigMap, so
            # going ready is a change of values only, and no apply has to remove a key
            "reason": READY_REASON if self.ready else self.reason,
        }
        return out

    def marked(self, *, ready: bool, reason: str) -> PublishedConfig:
        return replace(self, ready=ready, reason=reason)

    def to_status(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "generation": self.generation,
            "functionJson": self.function_json,
            "liteFunctionJson": self.lite_function_json,
        }

    @classmethod
    def from_status(cls, status: dict[str, Any], *, ready: bool, reason: str) -> PublishedConfig | None:
        try:
            return cls(
                endpoint=str(status["endpoint"]),
                model=str(status["model"]),
                generation=int(status["generation"]),
                function_json=str(status["functionJson"]),
                lite_function_json=str(status["liteFunctionJson"]),
                ready=ready,
                reason=reason,
            )
        except (KeyError, TypeError, ValueError):
            return None


def initial_config(pipeline: RerankPipeline, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> PublishedConfig:
    """The config the current spec would publish, not yet proven by a probe."""
    endpoint = endpoint_for(pipeline, cluster_domain)
    return PublishedConfig(
        endpoint=endpoint,
        model=pipeline.spec.model.effective_served_name,
        generation=pipeline.metadata.generation or 0,
        function_json=_dumps(milvus_function(pipeline, endpoint)),
        lite_function_json=_dumps(milvus_lite_function(pipeline, endpoint)),
    )


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def publish_namespaces(pipeline: RerankPipeline) -> list[str]:
    """The pipeline's own namespace first, then the extra ones, without duplicates."""
    out = [pipeline.namespace]
    for ns in pipeline.spec.publish.namespaces:
        if ns not in out:
            out.append(ns)
    return out


def render_published_configmap(
    pipeline: RerankPipeline, config: PublishedConfig, namespace: str
) -> dict[str, Any]:
    meta = object_meta(pipeline, child_names(pipeline).published, "ranker-config", namespace=namespace)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": config.data()}


def render_published_configmaps(pipeline: RerankPipeline, config: PublishedConfig) -> list[dict[str, Any]]:
    return [render_published_configmap(pipeline, config, ns) for ns in publish_namespaces(pipeline)]
