"""The ``vllm serve`` command line rendered from the spec."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.render import serve_args, serve_command
from rerank_operator.render.vllm_args import CHAT_TEMPLATE_DIR, CHAT_TEMPLATE_FILE

MakePipeline = Callable[..., RerankPipeline]


def flag_value(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} appears {args.count(flag)} times in {args}"
    return args[args.index(flag) + 1]


def test_command_is_vllm_serve() -> None:
    assert serve_command() == ["vllm", "serve"]


def test_minimal_args_exactly(make_pipeline: MakePipeline) -> None:
    assert serve_args(make_pipeline()) == [
        "BAAI/bge-reranker-base",
        "--runner",
        "pooling",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--served-model-name",
        "BAAI/bge-reranker-base",
        "--dtype",
        "auto",
    ]


def test_model_is_the_first_argument(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    args = serve_args(make_pipeline(**full_spec))
    assert args[0] == "Qwen/Qwen3-Reranker-0.6B"
    assert "--model" not in args


def test_no_legacy_task_flag(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    for pipeline in (make_pipeline(), make_pipeline(**full_spec)):
        args = serve_args(pipeline)
        assert "--task" not in args  # rejected by vLLM 0.13+
        assert flag_value(args, "--runner") == "pooling"


def test_every_option(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    args = serve_args(make_pipeline(**full_spec))
    assert flag_value(args, "--port") == "8080"
    assert flag_value(args, "--served-model-name") == "qwen3-rerank"
    assert flag_value(args, "--dtype") == "bfloat16"
    assert flag_value(args, "--convert") == "classify"
    assert flag_value(args, "--revision") == "v1.0"
    assert flag_value(args, "--max-model-len") == "8192"
    assert args.count("--trust-remote-code") == 1
    assert json.loads(flag_value(args, "--hf-overrides")) == full_spec["model"]["hfOverrides"]
    assert flag_value(args, "--chat-template") == f"{CHAT_TEMPLATE_DIR}/{CHAT_TEMPLATE_FILE}"
    assert flag_value(args, "--gpu-memory-utilization") == "0.85"
    assert flag_value(args, "--max-num-seqs") == "64"
    # extra args come last, verbatim and in order
    assert args[-2:] == ["--enable-prefix-caching", "--max-num-batched-tokens=16384"]


def test_all_args_are_strings(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    assert all(isinstance(a, str) for a in serve_args(make_pipeline(**full_spec)))


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("revision", "abc123", "--revision"),
        ("maxModelLen", 512, "--max-model-len"),
        ("convert", "classify", "--convert"),
        ("servedName", "reranker", "--served-model-name"),
        ("dtype", "half", "--dtype"),
    ],
)
def test_model_fields_map_to_flags(make_pipeline: MakePipeline, field: str, value: Any, flag: str) -> None:
    assert flag_value(serve_args(make_pipeline(model={field: value})), flag) == str(value)


@pytest.mark.parametrize(
    ("field", "flag"),
    [("revision", "--revision"), ("maxModelLen", "--max-model-len"), ("convert", "--convert")],
)
def test_unset_optional_fields_leave_flags_out(make_pipeline: MakePipeline, field: str, flag: str) -> None:
    pipeline = make_pipeline()
    assert field not in pipeline.spec.model.to_api()  # really unset, not defaulted
    assert flag not in serve_args(pipeline)


@pytest.mark.parametrize(("value", "rendered"), [(0.9, "0.9"), (1, "1.0"), (0.05, "0.05"), (0.333, "0.333")])
def test_gpu_memory_utilization_formatting(make_pipeline: MakePipeline, value: float, rendered: str) -> None:
    args = serve_args(make_pipeline(engine={"gpuMemoryUtilization": value}))
    assert flag_value(args, "--gpu-memory-utilization") == rendered
    assert float(rendered) == pytest.approx(value)


def test_trust_remote_code_is_a_bare_flag(make_pipeline: MakePipeline) -> None:
    args = serve_args(make_pipeline(model={"trustRemoteCode": True}))
    i = args.index("--trust-remote-code")
    assert i == len(args) - 1 or args[i + 1].startswith("--")
    assert "--trust-remote-code" not in serve_args(make_pipeline(model={"trustRemoteCode": False}))


def test_hf_overrides_is_compact_sorted_json(make_pipeline: MakePipeline) -> None:
    overrides = {"b": [1, 2], "a": {"y": True, "x": None}, "c": "s p"}
    raw = flag_value(serve_args(make_pipeline(model={"hfOverrides": overrides})), "--hf-overrides")
    assert raw == '{"a":{"x":null,"y":true},"b":[1,2],"c":"s p"}'
    assert json.loads(raw) == overrides


def test_custom_port(make_pipeline: MakePipeline) -> None:
    assert flag_value(serve_args(make_pipeline(engine={"port": 9000})), "--port") == "9000"


def test_api_key_never_on_the_command_line(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    args = serve_args(make_pipeline(**full_spec))
    assert not any(a.startswith("--api-key") for a in args)
    assert "rerank-api-key" not in " ".join(args)
    assert "hf-token" not in " ".join(args)


def test_chat_template_flag_only_with_a_template(make_pipeline: MakePipeline) -> None:
    assert "--chat-template" not in serve_args(make_pipeline())
    args = serve_args(make_pipeline(model={"chatTemplate": "{{ messages }}"}))
    assert flag_value(args, "--chat-template") == "/etc/rerank/chat-template/template.jinja"
    assert "{{ messages }}" not in args  # the text goes into a ConfigMap, not argv


def test_extra_args_keep_order_and_do_not_displace_managed_flags(make_pipeline: MakePipeline) -> None:
    extra = ["--seed", "0", "--enable-prefix-caching"]
    args = serve_args(make_pipeline(engine={"extraArgs": extra}))
    assert args[-3:] == extra
    assert flag_value(args, "--port") == "8000"
