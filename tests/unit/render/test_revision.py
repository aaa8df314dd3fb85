"""A pipeline's revision: a new one for every change that may change the scores, none for the rest."""

from __future__ import annotations

import copy
import gc
import importlib
from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.models import DEFAULT_IMAGE, RerankPipeline
from rerank_operator.render import config_hash, render_deployment, revision
from rerank_operator.render.naming import REVISION_LABEL
from rerank_operator.render.revision import _HASHES, REVISION_CHARS, _config_hash

MakePipeline = Callable[..., RerankPipeline]
# The package re-exports the function `revision`, which shadows the module of the same name.
revision_module = importlib.import_module("rerank_operator.render.revision")

BASE: dict[str, Any] = {
    "model": {"chatTemplate": "A {{ messages }}", "maxModelLen": 512},
    "engine": {"image": "vllm/vllm-openai:v0.10.1", "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "INFO"}]},
    "replicas": 2,
    "resources": {"gpus": 1},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "rerank", "effect": "NoSchedule"}],
}

# each changes what scores documents: a new revision (BlueGreen: its own Deployment next to the old)
NEW_REVISION: list[tuple[str, dict[str, Any]]] = [
    ("model", {"model": {"name": "BAAI/bge-reranker-large"}}),
    ("model-revision", {"model": {"revision": "2cfc18c9415c912f9d8155881c133215df768a70"}}),
    ("served-name", {"model": {"servedName": "bge"}}),
    ("dtype", {"model": {"dtype": "float16"}}),
    ("max-model-len", {"model": {"maxModelLen": 1024}}),
    ("hf-overrides", {"model": {"hfOverrides": {"architectures": ["X"]}}}),
    ("chat-template", {"model": {"chatTemplate": "B {{ messages }}"}}),
    ("no-chat-template", {"model": {"chatTemplate": None}}),
    ("image", {"engine": {"image": "vllm/vllm-openai:v0.10.2"}}),
    ("extra-args", {"engine": {"extraArgs": ["--seed", "1"]}}),
    ("max-num-seqs", {"engine": {"maxNumSeqs": 8}}),
    ("env-value", {"engine": {"env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}]}}),
    (
        "env-added",
        {
            "engine": {
                "env": [
                    {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
                    {"name": "VLLM_USE_V1", "value": "1"},
                ]
            }
        },
    ),
    ("port", {"engine": {"port": 8001}}),
    ("hf-token", {"hfTokenSecretRef": {"name": "hf", "key": "token"}}),
    ("api-key", {"apiKeySecretRef": {"name": "api", "key": "key"}}),
]

# each only moves or counts pods: the same revision, rolled in place (or not at all)
SAME_REVISION: list[tuple[str, dict[str, Any]]] = [
    ("gpus", {"resources": {"gpus": 2}}),
    ("gpu-resource", {"resources": {"gpus": 1, "gpuResourceName": "amd.com/gpu"}}),
    ("cpu-memory", {"resources": {"gpus": 1, "requests": {"cpu": "2", "memory": "8Gi"}}}),
    ("tolerations", {"tolerations": [{"key": "other", "operator": "Exists"}]}),
    ("no-tolerations", {"tolerations": []}),
    ("replicas", {"replicas": 5}),
    ("zero-replicas", {"replicas": 0}),
    ("node-selector", {"nodeSelector": {"pool": "a100"}}),
    ("priority-class", {"priorityClassName": "high"}),
    ("autoscaling", {"autoscaling": {"minReplicas": 1, "maxReplicas": 4}}),
    ("drain", {"rollout": {"drainSeconds": 30}}),
    ("probe", {"probe": {"intervalSeconds": 120, "failureThreshold": 10}}),
    ("publish", {"publish": {"namespaces": ["apps"], "maxClientBatchSize": 8}}),
    ("truncate", {"model": {"truncatePromptTokens": 256}}),
]


TEI_BASE: dict[str, Any] = {
    "model": {"dtype": "float16"},
    "engine": {"kind": "tei", "maxBatchTokens": 8192, "env": [{"name": "RUST_LOG", "value": "info"}]},
    "replicas": 2,
    "resources": {"gpus": 1},
    "publish": {"maxClientBatchSize": 32},
}

TEI_NEW_REVISION: list[tuple[str, dict[str, Any]]] = [
    ("model", {"model": {"name": "BAAI/bge-reranker-large"}}),
    ("model-revision", {"model": {"revision": "main"}}),
    ("served-name", {"model": {"servedName": "bge"}}),
    ("dtype", {"model": {"dtype": "float32"}}),
    ("image", {"engine": {"image": "ghcr.io/huggingface/text-embeddings-inference:hopper-1.8"}}),
    ("max-batch-tokens", {"engine": {"maxBatchTokens": 16384}}),
    ("auto-truncate", {"engine": {"autoTruncate": True}}),
    ("extra-args", {"engine": {"extraArgs": ["--max-concurrent-requests=64"]}}),
    ("env", {"engine": {"env": [{"name": "RUST_LOG", "value": "debug"}]}}),
    ("port", {"engine": {"port": 8080}}),
    # the server's own limit: a revision that accepts the new batch size is checked before it serves
    ("client-batch", {"publish": {"maxClientBatchSize": 64}}),
    # TEI's default image differs between CPU and GPU nodes
    ("to-cpu", {"resources": {"gpus": 0}}),
    ("api-key", {"apiKeySecretRef": {"name": "api", "key": "key"}}),
    ("hf-token", {"hfTokenSecretRef": {"name": "hf", "key": "token"}}),
]

TEI_SAME_REVISION: list[tuple[str, dict[str, Any]]] = [
    ("more-gpus", {"resources": {"gpus": 2}}),
    ("replicas", {"replicas": 4}),
    ("tolerations", {"tolerations": [{"key": "other", "operator": "Exists"}]}),
    ("publish-namespaces", {"publish": {"maxClientBatchSize": 32, "namespaces": ["apps"]}}),
    ("probe", {"probe": {"intervalSeconds": 120}}),
]


def cases(vllm: list[tuple[str, dict[str, Any]]], tei: list[tuple[str, dict[str, Any]]]) -> Any:
    """The vLLM and the TEI cases as (base, change) parameters of one test."""
    return pytest.mark.parametrize(
        ("base", "change"),
        [(BASE, c) for _, c in vllm] + [(TEI_BASE, c) for _, c in tei],
        ids=[f"vllm-{i}" for i, _ in vllm] + [f"tei-{i}" for i, _ in tei],
    )


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in {**out[key], **value}.items() if v is not None}
        else:
            out[key] = value
    return out


def test_revision_is_the_start_of_the_config_hash(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(**BASE)
    rev = revision(pipeline)
    assert REVISION_CHARS == 8
    assert len(rev) == 8
    int(rev, 16)
    assert config_hash(pipeline).startswith(rev)
    assert revision(make_pipeline(**BASE)) == rev  # deterministic


def test_revision_labels_the_pods(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(**BASE)
    d = render_deployment(pipeline)
    assert d["spec"]["template"]["metadata"]["labels"][REVISION_LABEL] == revision(pipeline)


def test_revision_ignores_the_pipelines_metadata(make_pipeline: MakePipeline) -> None:
    a = make_pipeline(metadata={"uid": "1", "generation": 1}, **BASE)
    b = make_pipeline(metadata={"uid": "2", "generation": 7, "labels": {"team": "search"}}, **BASE)
    assert revision(a) == revision(b)


@cases(NEW_REVISION, TEI_NEW_REVISION)
def test_a_change_of_what_scores_is_a_new_revision(
    make_pipeline: MakePipeline, base: dict[str, Any], change: dict[str, Any]
) -> None:
    before = make_pipeline(**base)
    after = make_pipeline(**merged(base, change))
    assert revision(before) != revision(after)
    assert render_deployment(before)["metadata"]["name"] != render_deployment(after)["metadata"]["name"]


@cases(SAME_REVISION, TEI_SAME_REVISION)
def test_a_change_that_only_moves_pods_keeps_the_revision(
    make_pipeline: MakePipeline, base: dict[str, Any], change: dict[str, Any]
) -> None:
    before = make_pipeline(**base)
    after = make_pipeline(**merged(base, change))
    assert revision(before) == revision(after)
    # the same Deployment, rolled in place if its pods change at all
    assert render_deployment(before)["metadata"]["name"] == render_deployment(after)["metadata"]["name"]


def test_the_strategy_does_not_change_the_revision(make_pipeline: MakePipeline) -> None:
    revisions = {
        revision(make_pipeline(**merged(BASE, {"rollout": {"strategy": s}})))
        for s in ("BlueGreen", "Surge", "Replace")
    }
    assert len(revisions) == 1


def test_two_pipelines_with_one_spec_share_a_revision_but_not_names(make_pipeline: MakePipeline) -> None:
    """The revision is the spec's; names carry the pipeline's name, so two pipelines never collide."""
    a = make_pipeline(metadata={"name": "a"}, **BASE)
    b = make_pipeline(metadata={"name": "b"}, **BASE)
    assert revision(a) == revision(b)
    assert render_deployment(a)["metadata"]["name"] == f"a-{revision(a)}"
    assert render_deployment(b)["metadata"]["name"] == f"b-{revision(b)}"


# ---------------------------------------------------------------------------- engines and upgrades
# config_hash of make_pipeline() as the operator computed it before engine.kind existed (when engine.image
# had a schema default). Every running vLLM pipeline's pods carry such a hash: if it changed, upgrading the
# operator would start a new revision (or roll the pods) of every pipeline.
HASH_BEFORE_ENGINE_KIND = "f42f143302f21edf"


def test_vllm_hash_is_the_one_before_engine_kind(make_pipeline: MakePipeline) -> None:
    assert config_hash(make_pipeline()) == HASH_BEFORE_ENGINE_KIND


@pytest.mark.parametrize(
    "engine",
    [{"image": DEFAULT_IMAGE}, {"kind": "vllm"}, {"kind": "vllm", "image": DEFAULT_IMAGE}],
    ids=["stored-default-image", "explicit-kind", "both"],
)
def test_the_old_schema_default_image_hashes_like_no_image(
    make_pipeline: MakePipeline, engine: dict[str, Any]
) -> None:
    """Objects stored before engine.image lost its schema default spell the image out; new ones leave it
    unset. Both run the same pods, so they are the same revision, as is an explicit kind: vllm."""
    stored, fresh = make_pipeline(engine=engine), make_pipeline()
    assert fresh.spec.engine.image is None
    assert config_hash(stored) == config_hash(fresh) == HASH_BEFORE_ENGINE_KIND
    assert render_deployment(stored) == render_deployment(fresh)
    # and so with every other field set
    base = merged(BASE, {"engine": {"image": None}})
    with_default = merged(BASE, {"engine": {"image": DEFAULT_IMAGE}})
    assert revision(make_pipeline(**base)) == revision(make_pipeline(**with_default))


def test_tei_is_a_different_revision(make_pipeline: MakePipeline) -> None:
    vllm = make_pipeline()
    tei = make_pipeline(engine={"kind": "tei"})
    assert config_hash(tei) != config_hash(vllm)
    # even were the args and the image the same, the engine is part of the identity
    assert config_hash(make_pipeline(engine={"kind": "tei", "image": DEFAULT_IMAGE})) != config_hash(vllm)


def test_tei_gpu_count_with_a_pinned_image_keeps_the_revision(make_pipeline: MakePipeline) -> None:
    """Only the default image follows the GPUs: with an image of the user's, 0 GPUs or 1 is the same pod."""
    pinned = merged(TEI_BASE, {"engine": {"image": "my/tei:1"}})
    assert revision(make_pipeline(**pinned)) == revision(
        make_pipeline(**merged(pinned, {"resources": {"gpus": 0}}))
    )


def test_external_revision_follows_the_server_it_points_at(
    make_pipeline: MakePipeline, external_spec: dict[str, Any]
) -> None:
    base = make_pipeline(**external_spec)
    assert revision(base) == revision(make_pipeline(**external_spec))
    assert revision(base) == revision(
        make_pipeline(**external_spec, replicas=3, probe={"intervalSeconds": 5})
    )
    moved = copy.deepcopy(external_spec)
    moved["external"]["endpoint"] = "https://rerank.example.com"
    keyed = copy.deepcopy(external_spec)
    keyed["external"]["apiKeySecretRef"] = {"name": "other", "key": "token"}
    tei = copy.deepcopy(external_spec)
    tei["external"]["engine"] = "tei"
    del tei["model"]["truncatePromptTokens"]  # vLLM only
    others = {revision(make_pipeline(**spec)) for spec in (moved, keyed, tei)}
    assert len(others) == 3 and revision(base) not in others


def test_the_hash_is_computed_once_per_pipeline_object(
    make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass names its children many times; the hash of one (frozen) object is remembered, a new
    object is hashed afresh, and an object's entry goes when the object does."""
    computed: list[int] = []

    def counting(pipeline: RerankPipeline) -> str:
        computed.append(id(pipeline))
        return _config_hash(pipeline)

    monkeypatch.setattr(revision_module, "_config_hash", counting)
    first = make_pipeline()
    digest = config_hash(first)
    assert config_hash(first) == config_hash(first) == digest == _config_hash(first)
    assert computed == [id(first)]
    other = make_pipeline(model={"name": "BAAI/bge-reranker-large"})
    assert config_hash(other) == _config_hash(other) != digest
    assert len(computed) == 2
    key = id(first)
    del first
    gc.collect()
    assert key not in _HASHES
