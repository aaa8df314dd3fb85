"""Every command line the operator renders, through the pinned vLLM's own ``vllm serve`` parser.

Fast (one subprocess, no model loaded): every example, every model quirk, ``extraArgs`` and every
operator-managed flag, plus deliberately wrong command lines that the parser must refuse, so a flag
the pinned vLLM does not accept fails the suite.
"""

from __future__ import annotations

import json
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from rerank_operator.models import RerankPipeline
from rerank_operator.models.quirks import QUIRKS, quirk_for
from rerank_operator.models.spec import MANAGED_FLAGS, ModelSpec
from rerank_operator.render import render_chat_template, render_deployment
from rerank_operator.sandbox.engine import EngineInstall
from rerank_operator.sandbox.podrunner import local_container

HERE = Path(__file__).parent
EXAMPLES = sorted((HERE.parents[1] / "examples").glob("*.yaml"))
# One real checkpoint name per quirk family (a new quirk fails the test until it has one here).
QUIRK_SAMPLES = {
    "qwen3-reranker": "Qwen/Qwen3-Reranker-0.6B",
    "mxbai-rerank-v2": "mixedbread-ai/mxbai-rerank-base-v2",
    "gte-multilingual-reranker": "Alibaba-NLP/gte-multilingual-reranker-base",
    "jina-reranker-v2": "jinaai/jina-reranker-v2-base-multilingual",
}
# Flags users put in extraArgs (tuning the operator has no field for).
EXTRA_ARGS = [
    "--max-num-batched-tokens",
    "4096",
    "--enable-prefix-caching",
    "--disable-log-stats",
    "--uvicorn-log-level=warning",
    "--tensor-parallel-size",
    "1",
]
# Listed in MANAGED_FLAGS only so extraArgs cannot smuggle in the legacy form; the pinned vLLM dropped it.
LEGACY_FLAGS = {"--task"}
TEMPLATE = "{{ messages[0]['content'] }} {{ messages[1]['content'] }}"


def _pipeline(name: str, spec: dict[str, Any]) -> RerankPipeline:
    return RerankPipeline.from_body(
        {
            "apiVersion": "rerank.dev/v1alpha1",
            "kind": "RerankPipeline",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def _examples() -> list[tuple[str, RerankPipeline]]:
    out = []
    for path in EXAMPLES:
        for i, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d):
            if doc.get("kind") != "RerankPipeline":
                continue
            pipeline = RerankPipeline.from_body(doc)
            if pipeline.spec.external is None and pipeline.spec.engine.effective_kind == "vllm":
                out.append((f"{path.stem}[{i}]", pipeline))  # TEI and external ones run no vLLM
    return out


def _quirks() -> list[tuple[str, RerankPipeline]]:
    assert set(QUIRK_SAMPLES) == {q.family for q in QUIRKS}, "add a sample checkpoint for each quirk"
    out = []
    for family, model in QUIRK_SAMPLES.items():
        quirk = quirk_for(model)
        assert quirk is not None and quirk.family == family
        spec: dict[str, Any] = {"model": {"name": model}}
        if quirk.requires_chat_template:
            spec["model"]["chatTemplate"] = TEMPLATE
        if quirk.requires_trust_remote_code:
            spec["model"]["trustRemoteCode"] = True
        out.append((f"quirk-{family}", _pipeline(family, spec)))
    return out


DTYPES = typing.get_args(ModelSpec.model_fields["dtype"].annotation)


def _managed() -> list[tuple[str, RerankPipeline]]:
    """Every spec field that becomes a flag, set at once, then each dtype the API admits."""
    everything = {
        "model": {
            "name": "my-org/ce-reranker",
            "servedName": "ce",
            "revision": "0123456789abcdef0123456789abcdef01234567",
            "maxModelLen": 1024,
            "dtype": "bfloat16",
            "trustRemoteCode": True,
            "hfOverrides": {"architectures": ["BertForSequenceClassification"], "num_labels": 1},
            "chatTemplate": TEMPLATE,
            "convert": "classify",
        },
        "engine": {"port": 18000, "gpuMemoryUtilization": 0.85, "maxNumSeqs": 64, "extraArgs": EXTRA_ARGS},
    }
    out = [("managed-all", _pipeline("managed", everything))]
    for dtype in DTYPES:
        out.append(
            (f"dtype-{dtype}", _pipeline("dt", {"model": {"name": "BAAI/bge-reranker-base", "dtype": dtype}}))
        )
    out.append(
        (
            "extra-args",
            _pipeline(
                "extra", {"model": {"name": "BAAI/bge-reranker-base"}, "engine": {"extraArgs": EXTRA_ARGS}}
            ),
        )
    )
    return out


CASES = [*_examples(), *_quirks(), *_managed()]


def _argv(pipeline: RerankPipeline, scratch: Path) -> list[str]:
    """The rendered container command line after ``vllm``, with the chat-template mount mapped to a
    real file as the pod would have it (vLLM checks that the template is readable)."""
    template = render_chat_template(pipeline)
    local = local_container(
        render_deployment(pipeline),
        lookup=lambda *a: "unused",
        config_map_data=lambda name: template["data"] if template else None,
        volume_dirs={"model-cache": scratch / "hf"},
        scratch=scratch,
    )
    assert local.argv[:2] == ["vllm", "serve"], local.argv
    return local.argv[1:]


def _parse(engine: EngineInstall, argvs: list[list[str]], tmp: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(engine.python), str(HERE / "vllm_cli_parse.py")],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=600,
        env=engine.process_env(tmp / "parse"),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    assert len(data["results"]) == len(argvs)
    return data


@pytest.fixture(scope="module")
def parsed(engine: EngineInstall, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """All rendered cases plus the deliberately wrong ones, parsed in one vLLM process."""
    tmp = tmp_path_factory.mktemp("argv")
    rendered = {name: _argv(p, tmp / name) for name, p in CASES}
    base = rendered["minimal[0]"]
    wrong = {
        "unknown-flag": [*base, "--not-a-vllm-flag"],
        "legacy-task": [*base, "--task", "score"],
        "bad-dtype": [*base, "--dtype", "float8-nonsense"],
    }
    argvs = [*rendered.values(), *wrong.values()]
    data = _parse(engine, argvs, tmp)
    names = [*rendered, *wrong]
    return {
        "rendered": rendered,
        "results": dict(zip(names, data["results"], strict=True)),
        "options": set(data["options"]),
        "pipelines": dict(CASES),
    }


@pytest.mark.parametrize("name", [n for n, _ in CASES])
def test_rendered_command_line_is_accepted_by_vllm(parsed: dict[str, Any], name: str) -> None:
    result = parsed["results"][name]
    assert result["ok"], f"vLLM refused {parsed['rendered'][name]}:\n{result['error']}"
    pipeline: RerankPipeline = parsed["pipelines"][name]
    model, engine_spec = pipeline.spec.model, pipeline.spec.engine
    got = result["parsed"]
    # vLLM read what the operator meant, not merely "no error"
    assert got["model_tag"] == model.name
    assert got["runner"] == "pooling"
    assert got["port"] == engine_spec.port
    assert got["served_model_name"] == [model.effective_served_name]
    assert got["dtype"] == model.dtype
    assert got["max_model_len"] == model.max_model_len
    assert got["revision"] == model.revision
    assert got["trust_remote_code"] == model.trust_remote_code
    assert got["hf_overrides"] == (model.effective_hf_overrides or {})
    assert (got["chat_template"] is not None) == (model.chat_template is not None)
    if engine_spec.gpu_memory_utilization is not None:
        assert got["gpu_memory_utilization"] == engine_spec.gpu_memory_utilization
    if engine_spec.max_num_seqs is not None:
        assert got["max_num_seqs"] == engine_spec.max_num_seqs
    if model.convert is not None:
        assert got["convert"] == model.convert


def test_a_deliberately_wrong_flag_is_refused(parsed: dict[str, Any]) -> None:
    result = parsed["results"]["unknown-flag"]
    assert not result["ok"]
    assert "unrecognized arguments: --not-a-vllm-flag" in result["error"]


def test_the_legacy_task_flag_and_a_bad_dtype_are_refused(parsed: dict[str, Any]) -> None:
    assert not parsed["results"]["legacy-task"]["ok"]
    assert "--task" in parsed["results"]["legacy-task"]["error"]
    assert not parsed["results"]["bad-dtype"]["ok"]
    assert "float8-nonsense" in parsed["results"]["bad-dtype"]["error"]


def test_every_flag_the_operator_manages_exists_in_the_pinned_vllm(parsed: dict[str, Any]) -> None:
    current = set(MANAGED_FLAGS) - LEGACY_FLAGS
    assert current <= parsed["options"], f"unknown to vLLM: {sorted(current - parsed['options'])}"
    assert not (LEGACY_FLAGS & parsed["options"]), "a legacy flag is back: update LEGACY_FLAGS"
