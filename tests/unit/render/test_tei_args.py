"""The ``text-embeddings-router`` (TEI) command line rendered from the spec, and the engine dispatcher."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.models.spec import TEI_MANAGED_FLAGS
from rerank_operator.render import (
    router_args,
    router_command,
    serve_args,
    serve_command,
    server_args,
    server_command,
)
from rerank_operator.render.tei_args import TEI_METRICS_PORT, metrics_port

MakePipeline = Callable[..., RerankPipeline]
TEI = {"kind": "tei"}


def flag_value(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} appears {args.count(flag)} times in {args}"
    return args[args.index(flag) + 1]


def test_command_is_the_router() -> None:
    assert router_command() == ["text-embeddings-router"]


def test_minimal_args_exactly(make_pipeline: MakePipeline) -> None:
    assert router_args(make_pipeline(engine=TEI)) == [
        "--model-id",
        "BAAI/bge-reranker-base",
        "--hostname",
        "0.0.0.0",
        "--port",
        "8000",
        "--max-client-batch-size",
        "32",
        "--served-model-name",
        "BAAI/bge-reranker-base",
        "--prometheus-port",
        "9000",
    ]


def test_every_option(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    args = router_args(make_pipeline(**tei_spec))
    assert args == [
        "--model-id",
        "BAAI/bge-reranker-large",
        "--hostname",
        "0.0.0.0",
        "--port",
        "8080",
        "--max-client-batch-size",
        "16",
        "--served-model-name",
        "bge-large",
        "--prometheus-port",
        "9000",
        "--revision",
        "main",
        "--dtype",
        "float16",
        "--max-batch-tokens",
        "32768",
        "--auto-truncate",
        "--max-concurrent-requests=256",  # extraArgs, verbatim and last
    ]


def test_hostname_is_always_explicit(make_pipeline: MakePipeline) -> None:
    """TEI reads --hostname from env HOSTNAME, which Kubernetes sets to the pod's name."""
    assert flag_value(router_args(make_pipeline(engine=TEI)), "--hostname") == "0.0.0.0"


@pytest.mark.parametrize("size", [1, 16, 32, 4096])
def test_client_batch_size_is_the_published_one(make_pipeline: MakePipeline, size: int) -> None:
    """The server accepts exactly the batch the published config lets Milvus send."""
    pipeline = make_pipeline(engine=TEI, publish={"maxClientBatchSize": size})
    assert flag_value(router_args(pipeline), "--max-client-batch-size") == str(size)
    assert pipeline.spec.publish.max_client_batch_size == size


@pytest.mark.parametrize(("dtype", "flag"), [("auto", None), ("float16", "float16"), ("float32", "float32")])
def test_dtype(make_pipeline: MakePipeline, dtype: str, flag: str | None) -> None:
    args = router_args(make_pipeline(engine=TEI, model={"dtype": dtype}))
    if flag is None:
        assert "--dtype" not in args  # TEI picks the dtype for the device itself
    else:
        assert flag_value(args, "--dtype") == flag


def test_served_name_defaults_to_the_model(make_pipeline: MakePipeline) -> None:
    args = router_args(make_pipeline(engine=TEI, model={"servedName": "bge"}))
    assert flag_value(args, "--served-model-name") == "bge"
    assert flag_value(args, "--model-id") == "BAAI/bge-reranker-base"


@pytest.mark.parametrize(("value", "present"), [(None, False), (False, False), (True, True)])
def test_auto_truncate_is_a_bare_flag(make_pipeline: MakePipeline, value: bool | None, present: bool) -> None:
    engine: dict[str, Any] = {**TEI, "autoTruncate": value} if value is not None else TEI
    args = router_args(make_pipeline(engine=engine))
    assert ("--auto-truncate" in args) is present
    assert "true" not in args and "false" not in args


def test_optional_flags_are_left_out_when_unset(make_pipeline: MakePipeline) -> None:
    args = router_args(make_pipeline(engine=TEI))
    for flag in ("--revision", "--dtype", "--max-batch-tokens", "--auto-truncate"):
        assert flag not in args


@pytest.mark.parametrize(("port", "metrics"), [(8000, 9000), (3000, 9000), (9000, 9001), (9001, 9000)])
def test_metrics_port_never_collides_with_the_api_port(
    make_pipeline: MakePipeline, port: int, metrics: int
) -> None:
    pipeline = make_pipeline(engine={**TEI, "port": port})
    args = router_args(pipeline)
    assert flag_value(args, "--port") == str(port)
    assert flag_value(args, "--prometheus-port") == str(metrics) == str(metrics_port(pipeline))
    assert TEI_METRICS_PORT == 9000


def test_no_secret_on_argv(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    args = router_args(make_pipeline(**tei_spec, hfTokenSecretRef={"name": "hf-secret", "key": "token"}))
    for flag in ("--api-key", "--hf-token", "--hf-api-token"):
        assert not any(a.startswith(flag) for a in args)
    assert not any("rerank-api-key" in a or "hf-secret" in a for a in args)


def test_every_rendered_flag_is_one_extra_args_may_not_repeat(
    make_pipeline: MakePipeline, tei_spec: dict[str, Any]
) -> None:
    """So extraArgs can never make a managed flag ambiguous."""
    tei_spec["engine"]["extraArgs"] = []
    flags = [a for a in router_args(make_pipeline(**tei_spec)) if a.startswith("-")]
    assert flags
    assert set(flags) <= set(TEI_MANAGED_FLAGS)


def test_args_are_strings(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    assert all(isinstance(a, str) for a in router_args(make_pipeline(**tei_spec)))


# ---------------------------------------------------------------------------------- dispatcher
@pytest.mark.parametrize("engine", [{}, {"kind": "vllm"}], ids=["unset", "vllm"])
def test_dispatcher_runs_vllm_by_default(make_pipeline: MakePipeline, engine: dict[str, Any]) -> None:
    pipeline = make_pipeline(engine=engine)
    assert server_command(pipeline) == serve_command() == ["vllm", "serve"]
    assert server_args(pipeline) == serve_args(pipeline)


def test_dispatcher_runs_tei_for_tei(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    pipeline = make_pipeline(**tei_spec)
    assert server_command(pipeline) == router_command()
    assert server_args(pipeline) == router_args(pipeline)
    assert "--runner" not in server_args(pipeline)
