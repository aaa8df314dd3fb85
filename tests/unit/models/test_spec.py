"""The RerankPipeline spec: defaults, round trips, bounds, unknown fields, cross-field rules, errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from rerank_operator.models import (
    DEFAULT_IMAGE,
    InvalidPipeline,
    ModelCacheSpec,
    RerankPipeline,
    RerankPipelineSpec,
    format_errors,
)
from rerank_operator.models.spec import DEFAULT_DRAIN_SECONDS, MANAGED_FLAGS, RESERVED_ENV, managed_flag_in

Problems = Callable[[dict[str, Any]], list[str]]
MakeBody = Callable[..., dict[str, Any]]
MakePipeline = Callable[..., RerankPipeline]


def only_problem(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------------------------ defaults
def test_every_default(make_pipeline: MakePipeline) -> None:
    spec = make_pipeline().spec
    assert spec.model.dtype == "auto"
    assert spec.model.trust_remote_code is False
    assert spec.model.served_name is None
    assert spec.model.effective_served_name == "BAAI/bge-reranker-base"
    assert spec.model.revision is None
    assert spec.model.max_model_len is None
    assert spec.model.hf_overrides is None
    assert spec.model.chat_template is None
    assert spec.model.truncate_prompt_tokens is None
    assert spec.model.convert is None

    assert spec.engine.image is None  # no schema default: see test_default_images_follow_the_engine
    assert spec.engine.kind is None
    assert spec.engine.effective_kind == "vllm" == spec.engine_kind
    assert spec.image == DEFAULT_IMAGE
    assert spec.external is None
    assert spec.engine.max_batch_tokens is None
    assert spec.engine.auto_truncate is None
    assert spec.engine.image_pull_policy == "IfNotPresent"
    assert spec.engine.port == 8000
    assert spec.engine.gpu_memory_utilization is None
    assert spec.engine.max_num_seqs is None
    assert spec.engine.extra_args == []
    assert spec.engine.env == []
    assert spec.engine.startup_timeout_seconds == 1800
    assert spec.engine.shm_size == "2Gi"

    assert spec.replicas == 1
    assert spec.resources.gpus == 1
    assert spec.resources.gpu_resource_name == "nvidia.com/gpu"
    assert spec.resources.requests is None
    assert spec.resources.limits is None
    assert spec.node_selector == {}
    assert spec.tolerations == []
    assert spec.affinity is None
    assert spec.runtime_class_name is None
    assert spec.priority_class_name is None

    assert spec.model_cache.pvc is None
    assert spec.model_cache.existing_claim is None
    assert spec.model_cache.kind == "emptyDir"
    assert spec.hf_token_secret_ref is None
    assert spec.api_key_secret_ref is None

    assert spec.probe.query is None
    assert spec.probe.documents is None
    assert spec.probe.interval_seconds == 30
    assert spec.probe.timeout_seconds == 10
    assert spec.probe.failure_threshold == 3
    assert spec.probe.success_threshold == 1
    assert spec.probe.max_latency_ms is None

    assert spec.rollout.strategy == "BlueGreen"
    assert spec.rollout.drain_seconds == DEFAULT_DRAIN_SECONDS == 180

    assert spec.publish.config_map_name is None
    assert spec.publish.namespaces == []
    assert spec.publish.function_name is None
    assert spec.publish.input_field == "document"
    assert spec.publish.max_client_batch_size == 32
    assert spec.publish.credential is None


def test_default_image_is_a_pinned_vllm_openai_tag() -> None:
    repo, _, tag = DEFAULT_IMAGE.partition(":")
    assert repo == "vllm/vllm-openai"
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"pin an exact release, not {tag!r}"


def test_metadata_defaults_and_passthrough(make_body: MakeBody) -> None:
    body = make_body(metadata={"namespace": None})
    del body["metadata"]["namespace"]
    pipeline = RerankPipeline.from_body(body)
    assert pipeline.namespace == "default"
    assert pipeline.name == "demo"
    assert pipeline.metadata.uid is None
    assert pipeline.metadata.generation is None


def test_api_object_from_the_server_parses(make_body: MakeBody) -> None:
    """What kopf hands over: server-set metadata and a status are accepted, not rejected."""
    body = make_body(
        metadata={
            "uid": "1234-abcd",
            "generation": 7,
            "resourceVersion": "999",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "finalizers": ["rerank.dev/finalizer"],
            "labels": {"team": "search"},
            "annotations": {"note": "x"},
        }
    )
    body["status"] = {"observedGeneration": 6, "conditions": []}
    pipeline = RerankPipeline.from_body(body)
    assert pipeline.metadata.uid == "1234-abcd"
    assert pipeline.metadata.generation == 7
    assert pipeline.metadata.labels == {"team": "search"}
    assert pipeline.metadata.annotations == {"note": "x"}
    assert pipeline.status == {"observedGeneration": 6, "conditions": []}


# ---------------------------------------------------------------------------------- round trip
def test_minimal_spec_to_api_is_the_full_defaulted_form() -> None:
    api = RerankPipelineSpec.model_validate({"model": {"name": "BAAI/bge-reranker-base"}}).to_api()
    assert api == {
        "model": {"name": "BAAI/bge-reranker-base", "dtype": "auto", "trustRemoteCode": False},
        "engine": {
            "imagePullPolicy": "IfNotPresent",
            "port": 8000,
            "extraArgs": [],
            "env": [],
            "startupTimeoutSeconds": 1800,
            "shmSize": "2Gi",
        },
        "replicas": 1,
        "resources": {"gpus": 1, "gpuResourceName": "nvidia.com/gpu"},
        "nodeSelector": {},
        "tolerations": [],
        "modelCache": {},
        "rollout": {"strategy": "BlueGreen", "drainSeconds": 180},
        "probe": api["probe"],  # checked below: its defaults are owned by the probe
        "publish": {"namespaces": [], "inputField": "document", "maxClientBatchSize": 32},
        "monitoring": {"podMonitor": {"enabled": False, "interval": "30s", "labels": {}}},
    }
    assert "autoscaling" not in api  # without it, spec.replicas applies
    assert api["probe"]["intervalSeconds"] == 30
    assert api["probe"]["failureThreshold"] == 3
    assert api["probe"]["successThreshold"] == 1
    assert "query" not in api["probe"]
    assert "documents" not in api["probe"]


def test_every_option_round_trips(full_spec: dict[str, Any]) -> None:
    spec = RerankPipelineSpec.model_validate(full_spec)
    assert spec.to_api() == full_spec
    # and the serialised form parses back into an equal object
    assert RerankPipelineSpec.model_validate(spec.to_api()) == spec


def test_full_pipeline_round_trips(make_body: MakeBody, full_spec: dict[str, Any]) -> None:
    body = make_body(metadata={"uid": "u-1", "generation": 3}, **full_spec)
    pipeline = RerankPipeline.from_body(body)
    api = pipeline.to_api()
    assert api["spec"] == full_spec
    assert api["apiVersion"] == "rerank.dev/v1alpha1"
    assert api["kind"] == "RerankPipeline"
    assert api["metadata"]["uid"] == "u-1"


def test_full_spec_sets_every_field(
    full_spec: dict[str, Any], tei_spec: dict[str, Any], external_spec: dict[str, Any]
) -> None:
    """Guards the round-trip test: a field added to the API must be added to FULL_SPEC too (or, when only
    a TEI or external pipeline may set it, to TEI_SPEC or EXTERNAL_SPEC)."""

    def unset_fields(model: Any, data: dict[str, Any], path: str) -> list[str]:
        missing = []
        for name, info in type(model).model_fields.items():
            alias = info.alias or name
            if alias not in data:
                missing.append(f"{path}.{alias}")
                continue
            value = getattr(model, name)
            if hasattr(type(value), "model_fields"):
                missing += unset_fields(value, data[alias], f"{path}.{alias}")
            elif isinstance(value, list) and value and hasattr(type(value[0]), "model_fields"):
                for i, item in enumerate(value):
                    missing += unset_fields(item, data[alias][i], f"{path}.{alias}[{i}]")
        return missing

    spec = RerankPipelineSpec.model_validate(full_spec)
    missing = set(unset_fields(spec, full_spec, "spec"))
    for other in (tei_spec, external_spec):
        missing &= set(unset_fields(RerankPipelineSpec.model_validate(other), other, "spec"))
    # one env var uses value, the other valueFrom (they are exclusive); pvc excludes existingClaim
    allowed = {"spec.engine.env[0].valueFrom", "spec.engine.env[1].value", "spec.modelCache.existingClaim"}
    assert missing <= allowed, sorted(missing - allowed)
    for other in (tei_spec, external_spec):  # they round-trip too
        parsed = RerankPipelineSpec.model_validate(other)
        assert RerankPipelineSpec.model_validate(parsed.to_api()) == parsed


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cpu", 4),
        ("cpu", "500m"),
        ("cpu", "1.5"),
        ("memory", "16Gi"),
        ("memory", "512Mi"),
        ("memory", "1e9"),
        ("memory", "128974848"),
        ("memory", "129M"),
        ("cpu", ".5"),
    ],
)
def test_quantities_accept_kubernetes_forms(
    make_body: MakeBody, problems: Problems, field: str, value: Any
) -> None:
    body = make_body(resources={"requests": {field: value}, "limits": {field: value}})
    assert problems(body) == []
    resources = RerankPipeline.from_body(body).spec.resources
    assert resources.requests is not None
    assert resources.requests.to_api() == {field: value}


@pytest.mark.parametrize("mode", ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"])
def test_every_pvc_access_mode(make_pipeline: MakePipeline, mode: str) -> None:
    pvc = make_pipeline(modelCache={"pvc": {"accessModes": [mode]}}).spec.model_cache.pvc
    assert pvc is not None
    assert pvc.access_modes == [mode]
    assert pvc.size == "50Gi"


@pytest.mark.parametrize("dtype", ["auto", "half", "float16", "bfloat16", "float", "float32"])
def test_every_dtype(make_pipeline: MakePipeline, dtype: str) -> None:
    assert make_pipeline(model={"dtype": dtype}).spec.model.dtype == dtype


@pytest.mark.parametrize(
    ("cache", "kind"),
    [({}, "emptyDir"), ({"pvc": {}}, "pvc"), ({"existingClaim": "shared-hf-cache"}, "existingClaim")],
)
def test_model_cache_kind(cache: dict[str, Any], kind: str) -> None:
    assert ModelCacheSpec.model_validate(cache).kind == kind


def test_truncate_prompt_tokens_minus_one_means_model_limit(make_pipeline: MakePipeline) -> None:
    assert make_pipeline(model={"truncatePromptTokens": -1}).spec.model.truncate_prompt_tokens == -1


# ------------------------------------------------------------------------------ bounds and enums
BAD_VALUES: list[tuple[dict[str, Any], str, str]] = [
    ({"replicas": -1}, "spec.replicas", "greater than or equal to 0"),
    ({"replicas": 65}, "spec.replicas", "less than or equal to 64"),
    (
        {"model": {"truncatePromptTokens": -2}},
        "spec.model.truncatePromptTokens",
        "greater than or equal to -1",
    ),
    ({"model": {"maxModelLen": 15}}, "spec.model.maxModelLen", "greater than or equal to 16"),
    ({"model": {"dtype": "fp8"}}, "spec.model.dtype", "'auto'"),
    ({"model": {"convert": "embed"}}, "spec.model.convert", "'classify'"),
    ({"model": {"name": "not a repo id"}}, "spec.model.name", "pattern"),
    ({"model": {"name": "org/repo/extra"}}, "spec.model.name", "pattern"),
    ({"model": {"name": ""}}, "spec.model.name", "at least 1"),
    ({"model": {"servedName": ""}}, "spec.model.servedName", "at least 1"),
    ({"model": {"chatTemplate": ""}}, "spec.model.chatTemplate", "at least 1"),
    ({"engine": {"gpuMemoryUtilization": 0}}, "spec.engine.gpuMemoryUtilization", "greater than 0"),
    (
        {"engine": {"gpuMemoryUtilization": 1.01}},
        "spec.engine.gpuMemoryUtilization",
        "less than or equal to 1",
    ),
    ({"engine": {"port": 0}}, "spec.engine.port", "greater than or equal to 1"),
    ({"engine": {"port": 65536}}, "spec.engine.port", "less than or equal to 65535"),
    ({"engine": {"maxNumSeqs": 0}}, "spec.engine.maxNumSeqs", "greater than or equal to 1"),
    ({"engine": {"startupTimeoutSeconds": 29}}, "spec.engine.startupTimeoutSeconds", "greater than or equal"),
    ({"engine": {"imagePullPolicy": "Sometimes"}}, "spec.engine.imagePullPolicy", "'Always'"),
    ({"engine": {"image": ""}}, "spec.engine.image", "at least 1"),
    ({"engine": {"shmSize": "lots"}}, "spec.engine.shmSize", "not a Kubernetes quantity"),
    ({"engine": {"shmSize": -1}}, "spec.engine.shmSize", "must not be negative"),
    ({"engine": {"env": [{"name": "1BAD"}]}}, "spec.engine.env[0].name", "pattern"),
    ({"resources": {"gpus": -1}}, "spec.resources.gpus", "greater than or equal to 0"),
    ({"resources": {"gpus": 17}}, "spec.resources.gpus", "less than or equal to 16"),
    ({"resources": {"gpuResourceName": "nvidia.com/gpu/x"}}, "spec.resources.gpuResourceName", "pattern"),
    ({"resources": {"requests": {"memory": "16 GiB"}}}, "spec.resources.requests.memory", "not a Kubernetes"),
    ({"resources": {"requests": {"cpu": "-1"}}}, "spec.resources.requests.cpu", "not a Kubernetes quantity"),
    ({"resources": {"limits": {"cpu": -1}}}, "spec.resources.limits.cpu", "must not be negative"),
    (
        {"resources": {"limits": {"memory": "16gb"}}},
        "spec.resources.limits.memory",
        "not a Kubernetes quantity",
    ),
    ({"modelCache": {"pvc": {"size": "big"}}}, "spec.modelCache.pvc.size", "not a Kubernetes quantity"),
    ({"modelCache": {"pvc": {"accessModes": []}}}, "spec.modelCache.pvc.accessModes", "at least 1"),
    (
        {"modelCache": {"pvc": {"accessModes": ["RWO"]}}},
        "spec.modelCache.pvc.accessModes[0]",
        "'ReadWriteOnce'",
    ),
    ({"modelCache": {"existingClaim": "Bad_Claim"}}, "spec.modelCache.existingClaim", "pattern"),
    ({"tolerations": [{"operator": "In"}]}, "spec.tolerations[0].operator", "'Exists'"),
    ({"tolerations": [{"effect": "NoRun"}]}, "spec.tolerations[0].effect", "'NoSchedule'"),
    ({"runtimeClassName": "Nvidia_Runtime"}, "spec.runtimeClassName", "pattern"),
    ({"nodeSelector": {"pool": 1}}, "spec.nodeSelector.pool", "valid string"),
    ({"hfTokenSecretRef": {"name": "hf"}}, "spec.hfTokenSecretRef.key", "Field required"),
    ({"apiKeySecretRef": {"name": "Bad Name", "key": "k"}}, "spec.apiKeySecretRef.name", "pattern"),
    ({"apiKeySecretRef": {"name": "key", "key": "a/b"}}, "spec.apiKeySecretRef.key", "pattern"),
    ({"probe": {"intervalSeconds": 0}}, "spec.probe.intervalSeconds", "greater than or equal"),
    ({"probe": {"timeoutSeconds": 0}}, "spec.probe.timeoutSeconds", "greater than 0"),
    ({"probe": {"failureThreshold": 0}}, "spec.probe.failureThreshold", "greater than or equal to 1"),
    ({"probe": {"successThreshold": 0}}, "spec.probe.successThreshold", "greater than or equal to 1"),
    ({"probe": {"maxLatencyMs": 0}}, "spec.probe.maxLatencyMs", "greater than or equal to 1"),
    ({"probe": {"query": "q", "documents": ["only one"]}}, "spec.probe.documents", "at least 2"),
    ({"probe": {"query": "q", "documents": ["a", ""]}}, "spec.probe.documents[1]", "at least 1"),
    ({"rollout": {"strategy": "Recreate"}}, "spec.rollout.strategy", "'BlueGreen', 'Surge' or 'Replace'"),
    ({"rollout": {"drainSeconds": -1}}, "spec.rollout.drainSeconds", "greater than or equal to 0"),
    ({"rollout": {"drainSeconds": 86401}}, "spec.rollout.drainSeconds", "less than or equal to 86400"),
    ({"publish": {"endpoint": "http://rr.example.com/v1"}}, "spec.publish.endpoint", "pattern"),
    ({"publish": {"endpoint": "http://rr.example.com/"}}, "spec.publish.endpoint", "pattern"),
    ({"publish": {"endpoint": "rr.example.com:8000"}}, "spec.publish.endpoint", "pattern"),
    ({"publish": {"endpoint": "grpc://rr.example.com"}}, "spec.publish.endpoint", "pattern"),
    ({"publish": {"endpoint": "http://rr.example.com:65536"}}, "spec.publish.endpoint", "pattern"),
    ({"publish": {"maxClientBatchSize": 0}}, "spec.publish.maxClientBatchSize", "greater than or equal to 1"),
    ({"publish": {"credential": "has space"}}, "spec.publish.credential", "pattern"),
    ({"publish": {"inputField": "1doc"}}, "spec.publish.inputField", "pattern"),
    ({"publish": {"functionName": "my-func"}}, "spec.publish.functionName", "pattern"),
    ({"publish": {"configMapName": "Ranker"}}, "spec.publish.configMapName", "pattern"),
    ({"publish": {"namespaces": ["Apps"]}}, "spec.publish.namespaces[0]", "pattern"),
    (
        {"publish": {"namespaces": ["apps", "web", "apps"]}},
        "spec.publish.namespaces",
        "duplicate namespaces apps",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), BAD_VALUES, ids=[c[1] + ":" + c[2] for c in BAD_VALUES]
)
def test_bad_value_is_reported_at_its_api_path(
    make_body: MakeBody, problems: Problems, spec: dict[str, Any], path: str, fragment: str
) -> None:
    line = only_problem(problems(make_body(**spec)))
    assert line.startswith(f"{path}: "), line
    assert fragment in line


def test_quantity_that_is_a_fraction_names_the_field_not_the_union_member(
    make_body: MakeBody, problems: Problems
) -> None:
    lines = problems(make_body(resources={"requests": {"cpu": 0.5}}))
    assert lines
    assert all(line.startswith("spec.resources.requests.cpu: ") for line in lines), lines


# ------------------------------------------------------------------------------ unknown fields
UNKNOWN_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"bogus": 1}, "spec.bogus"),
    ({"model": {"bogus": 1}}, "spec.model.bogus"),
    ({"engine": {"bogus": 1}}, "spec.engine.bogus"),
    ({"engine": {"env": [{"name": "A", "bogus": 1}]}}, "spec.engine.env[0].bogus"),
    ({"resources": {"bogus": 1}}, "spec.resources.bogus"),
    ({"resources": {"requests": {"gpu": 1}}}, "spec.resources.requests.gpu"),
    ({"resources": {"limits": {"nvidia.com/gpu": 1}}}, "spec.resources.limits.nvidia.com/gpu"),
    ({"tolerations": [{"key": "k", "bogus": 1}]}, "spec.tolerations[0].bogus"),
    ({"modelCache": {"bogus": 1}}, "spec.modelCache.bogus"),
    ({"modelCache": {"pvc": {"bogus": 1}}}, "spec.modelCache.pvc.bogus"),
    ({"hfTokenSecretRef": {"name": "a", "key": "b", "bogus": 1}}, "spec.hfTokenSecretRef.bogus"),
    ({"apiKeySecretRef": {"name": "a", "key": "b", "bogus": 1}}, "spec.apiKeySecretRef.bogus"),
    ({"probe": {"bogus": 1}}, "spec.probe.bogus"),
    ({"publish": {"bogus": 1}}, "spec.publish.bogus"),
    # snake_case spellings are unknown fields too: the API is camelCase only
    ({"model_cache": {}}, "spec.model_cache"),
    ({"node_selector": {}}, "spec.node_selector"),
    ({"hf_token_secret_ref": {"name": "a", "key": "b"}}, "spec.hf_token_secret_ref"),
    ({"model": {"served_name": "x"}}, "spec.model.served_name"),
    ({"model": {"truncate_prompt_tokens": 8}}, "spec.model.truncate_prompt_tokens"),
    ({"engine": {"extra_args": []}}, "spec.engine.extra_args"),
    ({"resources": {"gpu_resource_name": "amd.com/gpu"}}, "spec.resources.gpu_resource_name"),
    ({"probe": {"interval_seconds": 10}}, "spec.probe.interval_seconds"),
    ({"publish": {"max_client_batch_size": 8}}, "spec.publish.max_client_batch_size"),
    ({"modelCache": {"existing_claim": "x"}}, "spec.modelCache.existing_claim"),
]


@pytest.mark.parametrize(("spec", "path"), UNKNOWN_FIELDS, ids=[c[1] for c in UNKNOWN_FIELDS])
def test_unknown_field_is_rejected_at_every_level(
    make_body: MakeBody, problems: Problems, spec: dict[str, Any], path: str
) -> None:
    assert only_problem(problems(make_body(**spec))) == f"{path}: unknown field"


def test_unknown_top_level_field_is_rejected(make_body: MakeBody, problems: Problems) -> None:
    body = make_body()
    body["sepc"] = {}
    assert only_problem(problems(body)) == "sepc: unknown field"


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("apiVersion", "rerank.dev/v1", "apiVersion"),
        ("kind", "RerankPipelines", "kind"),
    ],
)
def test_wrong_api_version_or_kind(
    make_body: MakeBody, problems: Problems, key: str, value: str, path: str
) -> None:
    body = make_body()
    body[key] = value
    assert only_problem(problems(body)).startswith(f"{path}: ")


def test_missing_spec_and_model(make_body: MakeBody, problems: Problems) -> None:
    body = make_body()
    del body["spec"]
    assert only_problem(problems(body)) == "spec: Field required"
    body = make_body()
    del body["spec"]["model"]
    assert only_problem(problems(body)) == "spec.model: Field required"


# --------------------------------------------------------------------------------- cross-field
CROSS_FIELD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "pvc-and-existing-claim",
        {"modelCache": {"pvc": {"size": "10Gi"}, "existingClaim": "shared"}},
        "spec.modelCache",
        "at most one of modelCache.pvc and modelCache.existingClaim",
    ),
    (
        "query-without-documents",
        {"probe": {"query": "q"}},
        "spec.probe",
        "probe.query and probe.documents must be set together",
    ),
    (
        "documents-without-query",
        {"probe": {"documents": ["a", "b"]}},
        "spec.probe",
        "probe.query and probe.documents must be set together",
    ),
    (
        "expected-top-index-out-of-range",
        {"probe": {"query": "q", "documents": ["a", "b"], "expectedTopIndex": 2}},
        "spec.probe.expectedTopIndex",
        "must index into probe.documents",
    ),
    (
        "expected-top-index-without-documents",
        {"probe": {"expectedTopIndex": 1}},
        "spec.probe.expectedTopIndex",
        "probe.expectedTopIndex",
    ),
    (
        "env-value-and-value-from",
        {"engine": {"env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}},
        "spec.engine.env[0]",
        "set either value or valueFrom, not both",
    ),
    (
        "toleration-exists-with-value",
        {"tolerations": [{"key": "gpu", "operator": "Exists", "value": "yes"}]},
        "spec.tolerations[0]",
        "value must be empty when operator is Exists",
    ),
]


@pytest.mark.parametrize(
    ("spec", "path", "fragment"), [c[1:] for c in CROSS_FIELD], ids=[c[0] for c in CROSS_FIELD]
)
def test_cross_field_rule(
    make_body: MakeBody, problems: Problems, spec: dict[str, Any], path: str, fragment: str
) -> None:
    line = only_problem(problems(make_body(**spec)))
    assert line.startswith(f"{path}: "), line
    assert fragment in line


@pytest.mark.parametrize("index", [0, 1, 2])
def test_expected_top_index_inside_documents_is_fine(make_pipeline: MakePipeline, index: int) -> None:
    probe = make_pipeline(
        probe={"query": "q", "documents": ["a", "b", "c"], "expectedTopIndex": index}
    ).spec.probe
    assert probe.expected_top_index == index
    assert probe.documents == ["a", "b", "c"]


def test_toleration_exists_with_empty_value_is_fine(make_pipeline: MakePipeline) -> None:
    spec = make_pipeline(tolerations=[{"key": "gpu", "operator": "Exists", "value": ""}]).spec
    assert spec.tolerations[0].operator == "Exists"


@pytest.mark.parametrize("name", RESERVED_ENV)
def test_reserved_env_names_are_rejected(make_body: MakeBody, problems: Problems, name: str) -> None:
    for entry in (
        {"name": name, "value": "plain"},
        {"name": name, "valueFrom": {"secretKeyRef": {"name": "s"}}},
    ):
        line = only_problem(problems(make_body(engine={"env": [{"name": "OK", "value": "1"}, entry]})))
        assert line.startswith("spec.engine.env: "), line
        assert name in line
        assert "hfTokenSecretRef" in line
        assert "apiKeySecretRef" in line


def test_reserved_env_names_cover_the_token_and_key() -> None:
    assert {"HF_TOKEN", "VLLM_API_KEY"} <= set(RESERVED_ENV)


@pytest.mark.parametrize("flag", MANAGED_FLAGS)
@pytest.mark.parametrize("form", ["separate", "equals", "underscores"])
def test_managed_flags_in_extra_args_are_rejected(
    make_body: MakeBody, problems: Problems, flag: str, form: str
) -> None:
    if form == "separate":
        args = ["--enable-prefix-caching", flag, "x"]
    elif form == "equals":
        args = [f"{flag}=x"]
    else:  # vLLM's parser reads --api_key as --api-key
        args = ["--" + flag[2:].replace("-", "_") + "=x"]
    line = only_problem(problems(make_body(engine={"extraArgs": args})))
    assert line.startswith("spec.engine.extraArgs: "), line
    assert "managed by the operator" in line


def test_managed_flag_message_names_the_flag_as_written(make_body: MakeBody, problems: Problems) -> None:
    line = only_problem(problems(make_body(engine={"extraArgs": ["--api-key=sk-123"]})))
    assert line == "spec.engine.extraArgs: --api-key is managed by the operator; use the matching spec field"


@pytest.mark.parametrize(
    "args",
    [
        ["--enable-prefix-caching"],
        ["--max-num-batched-tokens=16384"],
        ["--max-num-batched-tokens", "16384"],
        ["--portal"],  # shares a prefix with --port but is another flag
        ["--served-model-names-extra"],
        ["--disable-log-requests", "--seed", "0"],
        ["port"],  # a value, not a flag
    ],
)
def test_unmanaged_extra_args_are_fine(make_pipeline: MakePipeline, args: list[str]) -> None:
    assert make_pipeline(engine={"extraArgs": args}).spec.engine.extra_args == args


@pytest.mark.parametrize(
    ("args", "found"),
    [
        ([], None),
        (["--port"], "--port"),
        (["--x", "--api-key=1"], "--api-key"),
        (["--max_model_len=10"], "--max_model_len"),
        (["--hf_overrides", "{}"], "--hf_overrides"),
        (["-port"], None),
        (["--porta"], None),
    ],
)
def test_managed_flag_in(args: list[str], found: str | None) -> None:
    assert managed_flag_in(args) == found


# ----------------------------------------------------------------------------- metadata.name
@pytest.mark.parametrize("name", ["a", "bge-base", "x1", "a" * 52, "qwen3-0-6b"])
def test_valid_names(make_pipeline: MakePipeline, name: str) -> None:
    assert make_pipeline(metadata={"name": name}).name == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("a" * 53, "at most 52 characters"),
        ("1abc", "pattern"),  # DNS-1035: must start with a letter
        ("Abc", "pattern"),
        ("a_b", "pattern"),
        ("a.b", "pattern"),  # a DNS-1123 subdomain, but not a label
        ("-a", "pattern"),
        ("a-", "pattern"),
        ("", "at least 1"),
    ],
)
def test_invalid_names(make_body: MakeBody, problems: Problems, name: str, fragment: str) -> None:
    line = only_problem(problems(make_body(metadata={"name": name})))
    assert line.startswith("metadata.name: "), line
    assert fragment in line


# ----------------------------------------------------------------------------- format_errors
def test_format_errors_names_camel_case_api_paths(make_body: MakeBody) -> None:
    body = make_body(
        model={"truncatePromptTokens": -5},
        replicas=-1,
        tolerations=[{"key": "a"}, {"effect": "Sometimes"}],
        bogus=True,
    )
    with pytest.raises(ValidationError) as info:
        RerankPipeline.model_validate(body)
    lines = format_errors(info.value)
    assert len(lines) == 4
    assert "spec.model.truncatePromptTokens: Input should be greater than or equal to -1" in lines
    assert "spec.replicas: Input should be greater than or equal to 0" in lines
    assert any(line.startswith("spec.tolerations[1].effect: ") for line in lines)
    assert "spec.bogus: unknown field" in lines
    assert not any("truncate_prompt_tokens" in line or "Value error" in line for line in lines)


def test_format_errors_moves_a_validator_field_prefix_into_the_path(make_body: MakeBody) -> None:
    body = make_body(model={"name": "Qwen/Qwen3-Reranker-0.6B"})
    with pytest.raises(ValidationError) as info:
        RerankPipeline.model_validate(body)
    [line] = format_errors(info.value)
    assert line.startswith("spec.model.chatTemplate: qwen3-reranker models need spec.model.chatTemplate")


def test_format_errors_keeps_field_names_that_look_like_type_labels(make_body: MakeBody) -> None:
    """``intervalSeconds`` starts with ``int``: it is a field, not pydantic's union-member label."""
    with pytest.raises(ValidationError) as info:
        RerankPipeline.model_validate(make_body(probe={"intervalSeconds": 0}))
    [line] = format_errors(info.value)
    assert line.startswith("spec.probe.intervalSeconds: ")


def test_format_errors_root_problem() -> None:
    with pytest.raises(ValidationError) as info:
        RerankPipeline.model_validate("not a mapping")
    [line] = format_errors(info.value)
    assert line.startswith("<root>: ")


def test_invalid_pipeline_carries_one_line_per_problem(make_body: MakeBody) -> None:
    with pytest.raises(InvalidPipeline) as info:
        RerankPipeline.from_body(make_body(replicas=-1, engine={"port": 0}))
    assert len(info.value.problems) == 2
    assert str(info.value) == "; ".join(info.value.problems)
    assert isinstance(info.value, ValueError)


def test_models_are_frozen(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    with pytest.raises(ValidationError):
        pipeline.spec.replicas = 5  # type: ignore[misc]
    assert pipeline.spec.replicas == 1


# ------------------------------------------------------------------------- JSON types as the apiserver sees them
@pytest.mark.parametrize(
    "spec",
    [{"replicas": "2"}, {"resources": {"gpus": True}}, {"engine": {"port": "8000"}}],
    ids=["string", "bool", "string-port"],
)
def test_numbers_of_the_wrong_json_type_are_rejected(
    make_body: MakeBody, problems: Problems, spec: dict[str, Any]
) -> None:
    assert problems(make_body(**spec)) != []


def test_default_images_follow_the_engine(make_pipeline: MakePipeline) -> None:
    from rerank_operator.models import DEFAULT_TEI_CPU_IMAGE, DEFAULT_TEI_IMAGE

    assert make_pipeline(engine={"kind": "vllm"}).spec.image == DEFAULT_IMAGE
    assert make_pipeline(engine={"kind": "tei"}).spec.image == DEFAULT_TEI_IMAGE
    assert make_pipeline(engine={"kind": "tei"}, resources={"gpus": 0}).spec.image == DEFAULT_TEI_CPU_IMAGE
    assert make_pipeline(engine={"kind": "tei", "image": "mine:1"}).spec.image == "mine:1"


def test_engine_kind_and_api_key_of_an_external_pipeline(make_pipeline: MakePipeline) -> None:
    ref = {"name": "k", "key": "v"}
    external = make_pipeline(
        external={"endpoint": "https://rr.example.com", "engine": "tei", "apiKeySecretRef": ref}
    )
    assert external.spec.engine_kind == "tei"
    assert external.spec.effective_api_key_ref is not None
    assert external.spec.effective_api_key_ref.to_api() == ref
    served = make_pipeline(apiKeySecretRef=ref)
    assert served.spec.engine_kind == "vllm"
    assert served.spec.effective_api_key_ref == served.spec.api_key_secret_ref
