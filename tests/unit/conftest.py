"""Shared builders for the unit tests (pure functions: no cluster, no network, no mocks).

Test modules cannot import this file (several ``conftest.py`` share one module name), so the
builders are offered as fixtures:

* ``make_body(metadata=None, **spec)``: a RerankPipeline document as a plain dict, camelCase like a
  YAML file. ``spec`` keywords replace top-level spec keys, except ``model``, which is merged onto the
  default model (so ``make_body(model={"dtype": "half"})`` still names a model).
  ``metadata`` is merged onto ``{"name": "demo", "namespace": "search"}``.
* ``make_pipeline(metadata=None, **spec)``: the same, parsed into a ``RerankPipeline``.
* ``problems(body)``: the ``field: message`` lines ``RerankPipeline.from_body`` reports ([] if valid).
* ``full_spec``: a spec with every field of the API set (a fresh copy per test), except those only a TEI
  or an external pipeline may set, which ``tei_spec`` and ``external_spec`` set.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rerank_operator.models import InvalidPipeline, RerankPipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "BAAI/bge-reranker-base"
DEFAULT_NAME = "demo"
DEFAULT_NAMESPACE = "search"

QWEN3_TEMPLATE = (
    "<|im_start|>system\nAnswer yes or no.<|im_end|>\n"
    "<|im_start|>user\n<Query>: {{ messages[0]['content'] }}\n"
    "<Document>: {{ messages[1]['content'] }}<|im_end|>\n<|im_start|>assistant\n"
)

# Every field of the API set, with values that differ from the defaults where possible.
FULL_SPEC: dict[str, Any] = {
    "model": {
        "name": "Qwen/Qwen3-Reranker-0.6B",
        "revision": "v1.0",
        "servedName": "qwen3-rerank",
        "maxModelLen": 8192,
        "dtype": "bfloat16",
        "trustRemoteCode": True,
        "hfOverrides": {"architectures": ["Qwen3ForSequenceClassification"], "custom": {"nested": [1, 2]}},
        "chatTemplate": QWEN3_TEMPLATE,
        "truncatePromptTokens": 4000,
        "convert": "classify",
    },
    "engine": {
        "image": "registry.example.com/vllm/vllm-openai:v0.10.2",
        "imagePullPolicy": "Always",
        "port": 8080,
        "gpuMemoryUtilization": 0.85,
        "maxNumSeqs": 64,
        "extraArgs": ["--enable-prefix-caching", "--max-num-batched-tokens=16384"],
        "env": [
            {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        ],
        "startupTimeoutSeconds": 900,
        "shmSize": "4Gi",
    },
    "replicas": 3,
    "autoscaling": {
        "provider": "keda",
        "minReplicas": 2,
        "maxReplicas": 6,
        "metric": {"name": "vllm:num_requests_running", "targetAverageValue": "24"},
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": 30,
                "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": 900,
                "selectPolicy": "Min",
                "policies": [{"type": "Percent", "value": 50, "periodSeconds": 300}],
            },
        },
        "keda": {
            "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
            "query": 'sum(vllm:num_requests_running{namespace="search",model_name="qwen3-rerank"})',
            "authenticationRef": {"name": "prometheus-auth", "kind": "ClusterTriggerAuthentication"},
            "pollingIntervalSeconds": 15,
        },
    },
    "resources": {
        "gpus": 2,
        "gpuResourceName": "amd.com/gpu",
        "requests": {"cpu": "500m", "memory": "8Gi"},
        "limits": {"cpu": 4, "memory": "16Gi"},
    },
    "nodeSelector": {"pool": "gpu-a100"},
    "tolerations": [
        {
            "key": "dedicated",
            "operator": "Equal",
            "value": "rerank",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        }
    ],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "demo"}},
                    },
                }
            ]
        }
    },
    "runtimeClassName": "nvidia",
    "priorityClassName": "high-priority",
    "modelCache": {
        "pvc": {"size": "100Gi", "storageClassName": "fast-ssd", "accessModes": ["ReadWriteMany"]}
    },
    "hfTokenSecretRef": {"name": "hf-token", "key": "token"},
    "apiKeySecretRef": {"name": "rerank-api-key", "key": "api-key"},
    "rollout": {"strategy": "Replace", "drainSeconds": 45},
    "probe": {
        "query": "What is the capital of France?",
        "documents": ["Berlin is in Germany.", "Paris is the capital of France.", "Bananas are yellow."],
        "expectedTopIndex": 1,
        "intervalSeconds": 60,
        "timeoutSeconds": 2.5,
        "failureThreshold": 5,
        "successThreshold": 2,
        "maxLatencyMs": 1500,
    },
    "publish": {
        "configMapName": "qwen-ranker-config",
        "namespaces": ["apps", "search-frontend"],
        "endpoint": "https://reranker.search.example.com:8443",
        "functionName": "qwen_rerank",
        "inputField": "text",
        "maxClientBatchSize": 64,
        "credential": "rerank_key",
    },
    "monitoring": {
        "podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kube-prometheus-stack"}}
    },
}


# Every TEI-specific field, on a TEI pipeline (the fields FULL_SPEC cannot set: they are TEI-only).
TEI_SPEC: dict[str, Any] = {
    "model": {
        "name": "BAAI/bge-reranker-large",
        "revision": "main",
        "servedName": "bge-large",
        "dtype": "float16",
    },
    "engine": {
        "kind": "tei",
        "image": "ghcr.io/huggingface/text-embeddings-inference:hopper-1.8",
        "port": 8080,
        "maxBatchTokens": 32768,
        "autoTruncate": True,
        "extraArgs": ["--max-concurrent-requests=256"],
        "env": [{"name": "RUST_LOG", "value": "info"}],
    },
    "apiKeySecretRef": {"name": "rerank-api-key", "key": "api-key"},
    "publish": {"maxClientBatchSize": 16},
}

# Every spec.external field: a reranker some other system runs.
EXTERNAL_SPEC: dict[str, Any] = {
    "model": {"name": "BAAI/bge-reranker-v2-m3", "servedName": "bge-m3", "truncatePromptTokens": 512},
    "external": {
        "endpoint": "http://reranker.kserve.svc.cluster.local:8080",
        "engine": "vllm",
        "apiKeySecretRef": {"name": "kserve-key", "key": "token"},
    },
}


def build_body(metadata: dict[str, Any] | None = None, **spec_overrides: Any) -> dict[str, Any]:
    model = {"name": DEFAULT_MODEL}
    if "model" in spec_overrides:
        model = {**model, **copy.deepcopy(spec_overrides.pop("model"))}
    spec: dict[str, Any] = {"model": model, **copy.deepcopy(spec_overrides)}
    return {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPipeline",
        "metadata": {"name": DEFAULT_NAME, "namespace": DEFAULT_NAMESPACE, **(metadata or {})},
        "spec": spec,
    }


def problems_of(body: dict[str, Any]) -> list[str]:
    try:
        RerankPipeline.from_body(body)
    except InvalidPipeline as exc:
        return exc.problems
    return []


@pytest.fixture
def make_body() -> Callable[..., dict[str, Any]]:
    return build_body


@pytest.fixture
def make_pipeline() -> Callable[..., RerankPipeline]:
    def make(metadata: dict[str, Any] | None = None, **spec_overrides: Any) -> RerankPipeline:
        return RerankPipeline.from_body(build_body(metadata, **spec_overrides))

    return make


@pytest.fixture
def problems() -> Callable[[dict[str, Any]], list[str]]:
    return problems_of


@pytest.fixture
def full_spec() -> dict[str, Any]:
    return copy.deepcopy(FULL_SPEC)


@pytest.fixture
def tei_spec() -> dict[str, Any]:
    return copy.deepcopy(TEI_SPEC)


@pytest.fixture
def external_spec() -> dict[str, Any]:
    return copy.deepcopy(EXTERNAL_SPEC)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
