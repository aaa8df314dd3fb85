"""A pipeline's revision: a new one for every change that may change the scores, none for the rest."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.render import config_hash, render_deployment, revision
from rerank_operator.render.naming import REVISION_LABEL
from rerank_operator.render.revision import REVISION_CHARS

MakePipeline = Callable[..., RerankPipeline]

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


@pytest.mark.parametrize("change", [c[1] for c in NEW_REVISION], ids=[c[0] for c in NEW_REVISION])
def test_a_change_of_what_scores_is_a_new_revision(
    make_pipeline: MakePipeline, change: dict[str, Any]
) -> None:
    before = make_pipeline(**BASE)
    after = make_pipeline(**merged(BASE, change))
    assert revision(before) != revision(after)
    assert render_deployment(before)["metadata"]["name"] != render_deployment(after)["metadata"]["name"]


@pytest.mark.parametrize("change", [c[1] for c in SAME_REVISION], ids=[c[0] for c in SAME_REVISION])
def test_a_change_that_only_moves_pods_keeps_the_revision(
    make_pipeline: MakePipeline, change: dict[str, Any]
) -> None:
    before = make_pipeline(**BASE)
    after = make_pipeline(**merged(BASE, change))
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
