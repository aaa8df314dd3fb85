"""The published ConfigMap: endpoint, Milvus and Milvus Lite function params, readiness, status; for vLLM
and TEI pipelines, run by the operator or external."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.publish import (
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
from rerank_operator.publish.content import publish_namespaces

MakePipeline = Callable[..., RerankPipeline]

FUNCTION_KEYS = {"name", "description", "type", "input_field_names", "output_field_names", "params"}


def function_of(config: PublishedConfig) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(config.function_json)
    return out


def lite_function_of(config: PublishedConfig) -> dict[str, Any]:
    assert config.lite_function_json is not None
    out: dict[str, Any] = json.loads(config.lite_function_json)
    return out


# Every param Milvus' TEI provider reads (v2.6.18), plus the two every model ranker has; queries is the app's.
MILVUS_TEI_PARAMS = {
    "reranker",
    "provider",
    "endpoint",
    "max_client_batch_size",
    "truncate",
    "truncation_direction",
    "credential",
}


# ------------------------------------------------------------------------------------ endpoint
@pytest.mark.parametrize(
    ("meta", "engine", "domain", "expected"),
    [
        ({}, {}, "cluster.local", "http://demo-reranker.search.svc.cluster.local:8000"),
        (
            {"name": "bge", "namespace": "ml"},
            {"port": 9000},
            "corp.internal",
            "http://bge-reranker.ml.svc.corp.internal:9000",
        ),
        ({"name": "vllm"}, {}, "cluster.local", "http://vllm-reranker.search.svc.cluster.local:8000"),
    ],
)
def test_endpoint(
    make_pipeline: MakePipeline, meta: dict[str, Any], engine: dict[str, Any], domain: str, expected: str
) -> None:
    pipeline = make_pipeline(metadata=meta, engine=engine)
    assert endpoint_for(pipeline, domain) == expected
    assert initial_config(pipeline, domain).endpoint == expected


def test_endpoint_has_no_path(make_pipeline: MakePipeline) -> None:
    """Milvus replaces the path with /rerank: publish scheme://host:port only."""
    endpoint = endpoint_for(make_pipeline())
    scheme, _, rest = endpoint.partition("://")
    assert scheme == "http"
    assert "/" not in rest
    assert rest.rsplit(":", 1)[1] == "8000"


def test_default_cluster_domain(make_pipeline: MakePipeline) -> None:
    assert endpoint_for(make_pipeline()).endswith(".svc.cluster.local:8000")


# ----------------------------------------------------------------------------- Milvus function
def test_milvus_function_minimal(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    function = function_of(initial_config(pipeline))
    assert set(function) == FUNCTION_KEYS
    assert function["name"] == "demo_rerank"
    assert function["type"] == 3
    assert function["input_field_names"] == ["document"]
    assert function["output_field_names"] == []
    assert "BAAI/bge-reranker-base" in function["description"]
    assert function["params"] == {
        "reranker": "model",
        "provider": "vllm",
        "endpoint": "http://demo-reranker.search.svc.cluster.local:8000",
        "max_client_batch_size": 32,
    }


def test_milvus_function_with_every_option(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(
        model={"truncatePromptTokens": 512},
        publish={
            "functionName": "my_ranker",
            "inputField": "text",
            "maxClientBatchSize": 8,
            "credential": "rr_key",
        },
    )
    function = milvus_function(pipeline, "http://h:1")
    assert function["name"] == "my_ranker"
    assert function["input_field_names"] == ["text"]
    assert function["params"] == {
        "reranker": "model",
        "provider": "vllm",
        "endpoint": "http://h:1",
        "max_client_batch_size": 8,
        "truncate_prompt_tokens": 512,
        "credential": "rr_key",
    }


@pytest.mark.parametrize("tokens", [-1, 1, 8192])
def test_truncate_prompt_tokens_published_when_set(make_pipeline: MakePipeline, tokens: int) -> None:
    params = milvus_function(make_pipeline(model={"truncatePromptTokens": tokens}), "http://h:1")["params"]
    assert params["truncate_prompt_tokens"] == tokens


def test_optional_params_absent_when_unset(make_pipeline: MakePipeline) -> None:
    params = milvus_function(make_pipeline(), "http://h:1")["params"]
    assert "truncate_prompt_tokens" not in params
    assert "credential" not in params


def test_never_the_legacy_or_per_search_params(
    make_pipeline: MakePipeline, full_spec: dict[str, Any]
) -> None:
    for pipeline in (make_pipeline(), make_pipeline(**full_spec)):
        params = function_of(initial_config(pipeline))["params"]
        assert "maxBatch" not in params  # pre-2.6.1 spelling, silently ignored by current Milvus
        assert "max_batch" not in params
        assert "queries" not in params  # one per search vector: the app sets it
        assert "model" not in params  # Milvus sends no model; vLLM serves its only model


def test_function_name_from_a_dashed_pipeline_name(make_pipeline: MakePipeline) -> None:
    function = milvus_function(make_pipeline(metadata={"name": "bge-m3-prod"}), "http://h:1")
    assert function["name"] == "bge_m3_prod_rerank"


def test_pymilvus_accepts_the_published_function(
    make_pipeline: MakePipeline, full_spec: dict[str, Any]
) -> None:
    pymilvus = pytest.importorskip("pymilvus")
    from pymilvus.client.prepare import Prepare

    for pipeline in (make_pipeline(), make_pipeline(**full_spec)):
        raw = function_of(initial_config(pipeline))
        raw["params"]["queries"] = ["what is a reranker?"]
        function = pymilvus.Function.construct_from_dict(raw)
        assert function.type == pymilvus.FunctionType.RERANK
        assert function.to_dict() == raw
        # the request Milvus receives: every param becomes a string key/value pair
        score = Prepare.ranker_to_function_score(function)
        [schema] = score.functions
        kv = {p.key: p.value for p in schema.params}
        assert kv["reranker"] == "model"
        assert kv["provider"] == "vllm"
        assert kv["endpoint"] == raw["params"]["endpoint"]
        assert int(kv["max_client_batch_size"]) == raw["params"]["max_client_batch_size"]
        assert json.loads(kv["queries"]) == ["what is a reranker?"]
        assert list(schema.input_field_names) == raw["input_field_names"]


# ------------------------------------------------------------------------ Milvus Lite function
def test_milvus_lite_function(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(model={"servedName": "bge"})
    config = initial_config(pipeline)
    lite = lite_function_of(config)
    assert set(lite) == FUNCTION_KEYS
    assert lite["type"] == 3
    assert lite["params"] == {
        "reranker": "model",
        "provider": "cohere",
        "model_name": "bge",
        "base_url": "http://demo-reranker.search.svc.cluster.local:8000/v2",
    }
    assert lite["params"]["base_url"] == config.endpoint + "/v2"
    assert lite["name"] == function_of(config)["name"]
    assert lite["input_field_names"] == function_of(config)["input_field_names"]


def test_milvus_lite_model_name_defaults_to_the_model(make_pipeline: MakePipeline) -> None:
    lite = milvus_lite_function(make_pipeline(), "http://h:1")
    assert lite is not None
    assert lite["params"]["model_name"] == "BAAI/bge-reranker-base"


def test_milvus_lite_function_has_no_api_key(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    params = lite_function_of(initial_config(make_pipeline(**full_spec)))["params"]
    assert "api_key" not in params
    assert "credential" not in params


def test_pymilvus_accepts_the_lite_function(make_pipeline: MakePipeline) -> None:
    pymilvus = pytest.importorskip("pymilvus")
    raw = lite_function_of(initial_config(make_pipeline()))
    raw["params"] |= {"queries": ["q"], "api_key": "placeholder"}
    function = pymilvus.Function.construct_from_dict(raw)
    assert function.params["provider"] == "cohere"
    assert function.to_dict() == raw


# ------------------------------------------------------------------------------------ no secrets
def test_no_secret_anywhere_in_the_configmap(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    """Even the Secret references stay out: apps get a credential *label*, never a key."""
    full_spec["hfTokenSecretRef"] = {"name": "hf-secret-zq1", "key": "hf-key-zq1"}
    full_spec["apiKeySecretRef"] = {"name": "api-secret-zq2", "key": "api-key-zq2"}
    pipeline = make_pipeline(**full_spec)
    for cm in render_published_configmaps(pipeline, initial_config(pipeline)):
        text = json.dumps(cm)
        for marker in ("zq1", "zq2", "api_key", "HF_TOKEN", "VLLM_API_KEY", "secretKeyRef"):
            assert marker not in text, marker
        assert json.loads(cm["data"]["milvus-function.json"])["params"]["credential"] == "rerank_key"


# ------------------------------------------------------------------------------- ConfigMap data
def test_configmap_data_not_ready(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(metadata={"generation": 5})
    config = initial_config(pipeline)
    assert config.ready is False
    assert config.reason == AWAITING_FIRST_PROBE
    data = config.data()
    assert set(data) == set(DATA_KEYS)
    assert data["ready"] == "false"
    assert data["reason"] == "AwaitingFirstProbe"
    assert data["generation"] == "5"
    assert data["model"] == "BAAI/bge-reranker-base"
    assert data["endpoint"] == "http://demo-reranker.search.svc.cluster.local:8000"
    assert all(isinstance(v, str) for v in data.values())  # ConfigMap data is string-only
    assert json.loads(data["milvus-function.json"]) == function_of(config)
    assert data["milvus-function.json"].endswith("\n")


def test_generation_zero_offline(make_pipeline: MakePipeline) -> None:
    assert initial_config(make_pipeline()).data()["generation"] == "0"


def test_marked_flips_only_ready_and_reason(make_pipeline: MakePipeline) -> None:
    config = initial_config(make_pipeline())
    ready = config.marked(ready=True, reason="Healthy")
    assert ready.ready is True
    data = ready.data()
    assert data["ready"] == "true"
    assert data["reason"] == "Healthy"  # always published: going ready changes values, never keys
    assert set(data) == set(DATA_KEYS) == set(config.data())
    failing = ready.marked(ready=False, reason="WrongTopDocument")
    assert failing.data()["reason"] == "WrongTopDocument"
    assert failing.data()["ready"] == "false"
    # the function params are the last known good ones, unchanged through the flips
    for other in (ready, failing):
        assert other.function_json == config.function_json
        assert other.lite_function_json == config.lite_function_json
        assert other.endpoint == config.endpoint
    assert config.ready is False  # frozen: marked() returns a copy


def test_status_round_trip(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    config = initial_config(make_pipeline(metadata={"generation": 3}, **full_spec))
    status = config.to_status()
    assert set(status) == {"endpoint", "model", "generation", "functionJson", "liteFunctionJson"}
    back = PublishedConfig.from_status(status, ready=True, reason="Healthy")
    assert back == config.marked(ready=True, reason="Healthy")
    # JSON-serialisable, as it must be to live in the status
    assert PublishedConfig.from_status(
        json.loads(json.dumps(status)), ready=False, reason="x"
    ) == config.marked(ready=False, reason="x")


@pytest.mark.parametrize(
    "status",
    [
        {},
        {"endpoint": "e"},
        {"endpoint": "e", "model": "m", "generation": "x", "functionJson": "", "liteFunctionJson": ""},
    ],
    ids=["empty", "partial", "bad-generation"],
)
def test_from_incomplete_status_is_none(status: dict[str, Any]) -> None:
    assert PublishedConfig.from_status(status, ready=False, reason="r") is None


# --------------------------------------------------------------------------------- namespaces
def test_published_into_own_and_extra_namespaces(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(metadata={"uid": "u-1"}, publish={"namespaces": ["apps", "web"]})
    cms = render_published_configmaps(pipeline, initial_config(pipeline))
    assert [cm["metadata"]["namespace"] for cm in cms] == ["search", "apps", "web"]
    assert {cm["metadata"]["name"] for cm in cms} == {"demo-ranker"}
    assert all(cm["data"] == cms[0]["data"] for cm in cms)
    assert "ownerReferences" in cms[0]["metadata"]
    for cm in cms[1:]:
        assert "ownerReferences" not in cm["metadata"]
        assert cm["metadata"]["labels"]["rerank.dev/pipeline-namespace"] == "search"


def test_own_namespace_listed_again_is_not_duplicated(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(publish={"namespaces": ["apps", "search"]})
    assert publish_namespaces(pipeline) == ["search", "apps"]
    assert len(render_published_configmaps(pipeline, initial_config(pipeline))) == 2


def test_configmap_shape(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(publish={"configMapName": "rankers"})
    cm = render_published_configmap(pipeline, initial_config(pipeline), "apps")
    assert cm["apiVersion"] == "v1"
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "rankers"
    assert cm["metadata"]["namespace"] == "apps"
    assert cm["metadata"]["labels"]["app.kubernetes.io/component"] == "ranker-config"
    assert cm["data"] == initial_config(pipeline).data()


@pytest.mark.parametrize(
    "endpoint", ["http://reranker.example.com", "https://rr.search.example.com:8443", "http://10.0.0.7:65535"]
)
def test_publish_endpoint_replaces_the_service_address(make_pipeline: MakePipeline, endpoint: str) -> None:
    pipeline = make_pipeline(publish={"endpoint": endpoint})
    assert endpoint_for(pipeline, "corp.internal") == endpoint
    config = initial_config(pipeline)
    assert config.endpoint == endpoint
    assert json.loads(config.function_json)["params"]["endpoint"] == endpoint
    assert lite_function_of(config)["params"]["base_url"] == f"{endpoint}/v2"


def test_vllm_configmap_is_exactly_what_it_was(make_pipeline: MakePipeline) -> None:
    """Golden data of the simplest vLLM pipeline: the TEI and spec.external work changed no byte of it."""
    data = initial_config(make_pipeline(metadata={"generation": 5})).data()
    description = "vLLM reranker BAAI/bge-reranker-base managed by rerank-operator (search/demo)"
    endpoint = "http://demo-reranker.search.svc.cluster.local:8000"
    head = f'{{\n  "name": "demo_rerank",\n  "description": "{description}",\n  "type": 3,\n'
    head += '  "input_field_names": [\n    "document"\n  ],\n  "output_field_names": [],\n  "params": {\n'
    assert list(data.items()) == [
        ("endpoint", endpoint),
        ("model", "BAAI/bge-reranker-base"),
        ("ready", "false"),
        ("generation", "5"),
        (
            "milvus-function.json",
            head + '    "reranker": "model",\n    "provider": "vllm",\n'
            f'    "endpoint": "{endpoint}",\n    "max_client_batch_size": 32\n  }}\n}}\n',
        ),
        (
            "milvus-lite-function.json",
            head + '    "reranker": "model",\n    "provider": "cohere",\n'
            f'    "model_name": "BAAI/bge-reranker-base",\n    "base_url": "{endpoint}/v2"\n  }}\n}}\n',
        ),
        ("reason", "AwaitingFirstProbe"),
    ]


# ------------------------------------------------------------------------------------------- TEI
def test_tei_function_has_exactly_milvus_tei_params(
    make_pipeline: MakePipeline, tei_spec: dict[str, Any]
) -> None:
    pipeline = make_pipeline(**tei_spec)
    config = initial_config(pipeline)
    function = function_of(config)
    assert set(function) == FUNCTION_KEYS
    assert function["params"] == {
        "reranker": "model",
        "provider": "tei",
        "endpoint": "http://demo-reranker.search.svc.cluster.local:8080",  # the TEI port, the Service
        "max_client_batch_size": 16,  # publish.maxClientBatchSize: TEI runs with the same limit
    }
    assert set(function["params"]) <= MILVUS_TEI_PARAMS
    assert (
        function["description"]
        == "TEI reranker BAAI/bge-reranker-large managed by rerank-operator (search/demo)"
    )
    assert config.model == "bge-large"


def test_tei_with_auto_truncate_publishes_no_truncate(
    make_pipeline: MakePipeline, tei_spec: dict[str, Any]
) -> None:
    """The server's --auto-truncate already truncates; TEI takes a request without truncate to mean it."""
    for auto in (True, False, None):
        tei_spec["engine"]["autoTruncate"] = auto
        params = milvus_function(make_pipeline(**tei_spec), "http://h:1")["params"]
        assert "truncate" not in params, auto
        assert "truncation_direction" not in params
        assert "truncate_prompt_tokens" not in params


def test_tei_credential_is_published(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    tei_spec["publish"]["credential"] = "tei_key"
    params = milvus_function(make_pipeline(**tei_spec), "http://h:1")["params"]
    assert params["credential"] == "tei_key"
    assert set(params) <= MILVUS_TEI_PARAMS


def test_tei_has_no_milvus_lite_function(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    pipeline = make_pipeline(metadata={"generation": 2}, **tei_spec)
    assert milvus_lite_function(pipeline, "http://h:1") is None
    config = initial_config(pipeline)
    assert config.lite_function_json is None
    data = config.data()
    assert set(data) == set(DATA_KEYS) - {LITE_FUNCTION_KEY}
    assert list(data) == ["endpoint", "model", "ready", "generation", "milvus-function.json", "reason"]
    ready = config.marked(ready=True, reason="Healthy").data()
    assert set(ready) == set(data)  # going ready still changes values only
    for cm in render_published_configmaps(pipeline, config):
        assert LITE_FUNCTION_KEY not in cm["data"]


def test_tei_status_round_trip_without_a_lite_function(
    make_pipeline: MakePipeline, tei_spec: dict[str, Any]
) -> None:
    config = initial_config(make_pipeline(metadata={"generation": 7}, **tei_spec))
    status = config.to_status()
    assert set(status) == {"endpoint", "model", "generation", "functionJson"}
    back = PublishedConfig.from_status(json.loads(json.dumps(status)), ready=True, reason="Healthy")
    assert back == config.marked(ready=True, reason="Healthy")
    # a null left by a merge patch reads as absent
    assert PublishedConfig.from_status(
        {**status, "liteFunctionJson": None}, ready=False, reason="r"
    ) == config.marked(ready=False, reason="r")


def test_vllm_status_without_a_lite_function_is_incomplete(make_pipeline: MakePipeline) -> None:
    """A vLLM config must carry the Milvus Lite Function (apps refuse a ConfigMap without it)."""
    status = initial_config(make_pipeline()).to_status()
    del status["liteFunctionJson"]
    assert PublishedConfig.from_status(status, ready=False, reason="r") is None
    status["functionJson"] = "not json"  # no provider to go by: incomplete too
    assert PublishedConfig.from_status(status, ready=False, reason="r") is None


def test_pymilvus_sends_milvus_the_tei_params(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    pymilvus = pytest.importorskip("pymilvus")
    from pymilvus.client.prepare import Prepare

    tei_spec["publish"]["credential"] = "tei_key"
    raw = function_of(initial_config(make_pipeline(**tei_spec)))
    raw["params"]["queries"] = ["what is a reranker?"]
    function = pymilvus.Function.construct_from_dict(raw)
    assert function.to_dict() == raw
    [schema] = Prepare.ranker_to_function_score(function).functions
    kv = {p.key: p.value for p in schema.params}
    assert set(kv) == {"reranker", "provider", "endpoint", "max_client_batch_size", "credential", "queries"}
    assert set(kv) - {"queries"} <= MILVUS_TEI_PARAMS
    assert (kv["provider"], kv["max_client_batch_size"], kv["credential"]) == ("tei", "16", "tei_key")


# ------------------------------------------------------------------------------------ external
def test_external_vllm_publishes_the_external_endpoint(
    make_pipeline: MakePipeline, external_spec: dict[str, Any]
) -> None:
    pipeline = make_pipeline(**external_spec)
    endpoint = "http://reranker.kserve.svc.cluster.local:8080"
    assert endpoint_for(pipeline, "corp.internal") == endpoint  # not a Service of ours
    config = initial_config(pipeline)
    assert config.endpoint == endpoint
    function = function_of(config)
    assert function["params"] == {
        "reranker": "model",
        "provider": "vllm",
        "endpoint": endpoint,
        "max_client_batch_size": 32,
        "truncate_prompt_tokens": 512,
    }
    assert function["description"] == (
        "external vLLM reranker BAAI/bge-reranker-v2-m3 probed by rerank-operator (search/demo)"
    )
    lite = lite_function_of(config)
    assert lite["params"] == {
        "reranker": "model",
        "provider": "cohere",
        "model_name": "bge-m3",
        "base_url": f"{endpoint}/v2",
    }
    assert set(config.data()) == set(DATA_KEYS)


def test_external_tei(make_pipeline: MakePipeline, external_spec: dict[str, Any]) -> None:
    external_spec["external"]["engine"] = "tei"
    del external_spec["model"]["truncatePromptTokens"]  # vLLM-only
    external_spec["publish"] = {"maxClientBatchSize": 64}
    pipeline = make_pipeline(**external_spec)
    config = initial_config(pipeline)
    assert function_of(config)["params"] == {
        "reranker": "model",
        "provider": "tei",
        "endpoint": "http://reranker.kserve.svc.cluster.local:8080",
        "max_client_batch_size": 64,
    }
    assert config.lite_function_json is None
    assert LITE_FUNCTION_KEY not in config.data()


def test_no_secret_in_an_external_or_tei_configmap(
    make_pipeline: MakePipeline, external_spec: dict[str, Any], tei_spec: dict[str, Any]
) -> None:
    external_spec["external"]["apiKeySecretRef"] = {"name": "ext-secret-zq3", "key": "ext-key-zq3"}
    tei_spec["apiKeySecretRef"] = {"name": "tei-secret-zq4", "key": "tei-key-zq4"}
    for pipeline in (make_pipeline(**external_spec), make_pipeline(**tei_spec)):
        for cm in render_published_configmaps(pipeline, initial_config(pipeline)):
            text = json.dumps(cm)
            for marker in ("zq3", "zq4", "api_key", "secretKeyRef"):
                assert marker not in text, marker
