"""The published ranker config.

Milvus calls the reranker itself, so the endpoint is the in-cluster Service URL (scheme, host and
port only: Milvus replaces any path with ``/rerank``), ``publish.endpoint`` when Milvus reaches it some
other way, or ``external.endpoint`` for a reranker another system runs. Param names are the ones current
Milvus (2.6.1+) reads; the pre-2.6.1 ``maxBatch`` spelling is silently ignored there and never published.

The Milvus provider is the protocol the reranker speaks (``spec.engine_kind``): ``vllm`` or ``tei``.
The Milvus Lite function (``milvus-lite-function.json``) is published for vLLM only: Milvus Lite's one
model-rerank provider is Cohere-style, which vLLM serves on ``/v2/rerank`` and TEI does not serve at all,
so a TEI pipeline's ConfigMap has no such key (and ``rerank_operator.client`` says why when asked for it).

Publishing rule: the *last known good* function params are kept through failures, only ``ready``
and ``reason`` flip. ``PublishedConfig`` is that snapshot; the operator keeps it in status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from rerank_operator.models import RerankPipeline
from rerank_operator.models.spec import ENGINE_LABELS
from rerank_operator.render.naming import child_names, object_meta

FUNCTION_TYPE_RERANK = 3  # pymilvus FunctionType.RERANK, as Function.to_dict() serialises it
AWAITING_FIRST_PROBE = "AwaitingFirstProbe"
READY_REASON = "Healthy"  # the published reason of a ready config, as the Ready condition says
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
LITE_FUNCTION_KEY = "milvus-lite-function.json"
# Every key a published ConfigMap can hold; all of them are present except LITE_FUNCTION_KEY, which
# only a vLLM pipeline's config has (Milvus Lite cannot call TEI).
DATA_KEYS = (
    "endpoint",
    "model",
    "ready",
    "reason",
    "generation",
    "milvus-function.json",
    LITE_FUNCTION_KEY,
)


def endpoint_for(pipeline: RerankPipeline, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> str:
    """``http://<service>.<namespace>.svc.<domain>:<port>``: reachable from Milvus in any namespace of
    the cluster; ``publish.endpoint`` instead when Milvus reaches the reranker some other way; and for
    ``spec.external`` the external server's endpoint (there is no Service: the canary and Milvus both
    call the external server, and admission refuses ``publish.endpoint`` next to it)."""
    if pipeline.spec.external is not None:
        return pipeline.spec.external.endpoint
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
    """``Function.to_dict()`` for Milvus' model ranker, minus ``queries`` (set per search).

    The provider is the protocol the reranker speaks (``spec.engine_kind``); every other param is one
    that provider reads, so nothing is silently ignored:

    * ``vllm``: ``truncate_prompt_tokens`` when ``model.truncatePromptTokens`` is set (Milvus forwards it
      in every request body).
    * ``tei``: ``truncate`` and ``truncation_direction`` are never published. A TEI request without
      ``truncate`` uses the server's own ``--auto-truncate``, which is what the spec decides:
      ``engine.autoTruncate`` for a TEI the operator runs (``truncate: true`` would add nothing when it is
      true, and overrule the spec when it is not), and the other system's choice for an external TEI
      (the API has no per-request truncation field; ``truncatePromptTokens`` is vLLM-only). So
      publishing ``truncate: true`` never helps today; a spec field asking for it would be the place.

    ``max_client_batch_size`` is ``publish.maxClientBatchSize`` for both: the operator starts TEI with the
    same ``--max-client-batch-size``, and the canary checks an external TEI's ``/info`` allows it.
    """
    spec = pipeline.spec
    publish = spec.publish
    params: dict[str, Any] = {
        "reranker": "model",
        "provider": spec.engine_kind,
        "endpoint": endpoint,
        "max_client_batch_size": publish.max_client_batch_size,
    }
    if spec.engine_kind == "vllm" and spec.model.truncate_prompt_tokens is not None:
        params["truncate_prompt_tokens"] = spec.model.truncate_prompt_tokens
    if publish.credential:
        params["credential"] = publish.credential
    return _function(pipeline, params)


def milvus_lite_function(pipeline: RerankPipeline, endpoint: str) -> dict[str, Any] | None:
    """Milvus Lite only knows the ``cohere`` provider; vLLM's Cohere-compatible ``/v2`` route serves it.

    ``None`` for a TEI reranker: TEI serves no Cohere-compatible route, so Milvus Lite cannot call it
    (the published ConfigMap then has no Milvus Lite key).

    ``api_key`` is deliberately absent: Milvus Lite requires one, and the app helper supplies it at
    load time (any non-empty string when vLLM runs without a key), so no secret is ever published.
    """
    if pipeline.spec.engine_kind != "vllm":
        return None
    params = {
        "reranker": "model",
        "provider": "cohere",
        "model_name": pipeline.spec.model.effective_served_name,
        "base_url": f"{endpoint}/v2",
    }
    return _function(pipeline, params)


def _function(pipeline: RerankPipeline, params: dict[str, Any]) -> dict[str, Any]:
    spec = pipeline.spec
    label = ENGINE_LABELS[spec.engine_kind]
    if spec.external is not None:
        what = f"external {label} reranker {spec.model.name} probed"
    else:
        what = f"{label} reranker {spec.model.name} managed"
    return {
        "name": function_name(pipeline),
        "description": f"{what} by rerank-operator ({pipeline.namespace}/{pipeline.name})",
        "type": FUNCTION_TYPE_RERANK,
        "input_field_names": [pipeline.spec.publish.input_field],
        "output_field_names": [],
        "params": params,
    }


@dataclass(frozen=True)
class PublishedConfig:
    """One state of the published ConfigMap data; ``data()`` is exactly what lands in it.

    ``lite_function_json`` is ``None`` for a reranker Milvus Lite cannot call (TEI): ``data()`` then has
    no ``milvus-lite-function.json`` key and ``to_status()`` no ``liteFunctionJson``.
    """

    endpoint: str
    model: str
    generation: int
    function_json: str
    lite_function_json: str | None = None
    ready: bool = False
    reason: str = AWAITING_FIRST_PROBE

    def data(self) -> dict[str, str]:
        out = {
            "endpoint": self.endpoint,
            "model": self.model,
            "ready": "true" if self.ready else "false",
            "generation": str(self.generation),
            "milvus-function.json": self.function_json,
        }
        if self.lite_function_json is not None:
            out[LITE_FUNCTION_KEY] = self.lite_function_json
        # always present (``Healthy`` when ready): the same keys in every version of the ConfigMap, so
        # going ready is a change of values only, and no apply has to remove a key
        out["reason"] = READY_REASON if self.ready else self.reason
        return out

    def marked(self, *, ready: bool, reason: str) -> PublishedConfig:
        return replace(self, ready=ready, reason=reason)

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "endpoint": self.endpoint,
            "model": self.model,
            "generation": self.generation,
            "functionJson": self.function_json,
        }
        if self.lite_function_json is not None:
            out["liteFunctionJson"] = self.lite_function_json
        return out

    @classmethod
    def from_status(cls, status: dict[str, Any], *, ready: bool, reason: str) -> PublishedConfig | None:
        """The config ``to_status()`` wrote, or ``None`` when ``status`` does not hold a complete one.

        ``liteFunctionJson`` may be absent (or null) only next to a Function whose provider is not
        ``vllm``: a vLLM config without it would publish a ConfigMap that apps must refuse.
        """
        try:
            lite = status.get("liteFunctionJson")
            config = cls(
                endpoint=str(status["endpoint"]),
                model=str(status["model"]),
                generation=int(status["generation"]),
                function_json=str(status["functionJson"]),
                lite_function_json=None if lite is None else str(lite),
                ready=ready,
                reason=reason,
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        if config.lite_function_json is None and _provider(config.function_json) in (None, "vllm"):
            return None
        return config


def _provider(function_json: str) -> str | None:
    """The ``provider`` param of a Function JSON, or ``None`` when it has none (or is not JSON)."""
    try:
        provider = json.loads(function_json)["params"]["provider"]
    except (ValueError, KeyError, TypeError):
        return None
    return provider if isinstance(provider, str) else None


def initial_config(pipeline: RerankPipeline, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN) -> PublishedConfig:
    """The config the current spec would publish, not yet proven by a probe."""
    endpoint = endpoint_for(pipeline, cluster_domain)
    lite = milvus_lite_function(pipeline, endpoint)
    return PublishedConfig(
        endpoint=endpoint,
        model=pipeline.spec.model.effective_served_name,
        generation=pipeline.metadata.generation or 0,
        function_json=_dumps(milvus_function(pipeline, endpoint)),
        lite_function_json=None if lite is None else _dumps(lite),
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
