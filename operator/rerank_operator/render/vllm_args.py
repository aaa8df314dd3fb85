"""The ``vllm serve`` command line, from the spec, and the dispatcher between it and TEI's.

Kept separate and tiny because vLLM's flags move between releases: a change there is a change here.
``server_command``/``server_args`` are what the Deployment and the revision hash use: they pick
``vllm serve`` or ``text-embeddings-router`` (``render.tei_args``) by ``spec.engine.kind``.
"""

from __future__ import annotations

import json

from rerank_operator.models import RerankPipeline
from rerank_operator.render.tei_args import router_args, router_command

CHAT_TEMPLATE_DIR = "/etc/rerank/chat-template"
CHAT_TEMPLATE_FILE = "template.jinja"


def serve_command() -> list[str]:
    """Works for both old (api_server module) and new (``vllm serve``) image entrypoints."""
    return ["vllm", "serve"]


def serve_args(pipeline: RerankPipeline) -> list[str]:
    spec = pipeline.spec
    model = spec.model
    args = [
        model.name,
        "--runner",
        "pooling",
        "--host",
        "0.0.0.0",
        "--port",
        str(spec.engine.port),
        "--served-model-name",
        model.effective_served_name,
        "--dtype",
        model.dtype,
    ]
    if model.convert:
        args += ["--convert", model.convert]
    if model.revision:
        args += ["--revision", model.revision]
    if model.max_model_len is not None:
        args += ["--max-model-len", str(model.max_model_len)]
    if model.trust_remote_code:
        args.append("--trust-remote-code")
    overrides = model.effective_hf_overrides
    if overrides:
        args += ["--hf-overrides", json.dumps(overrides, sort_keys=True, separators=(",", ":"))]
    if model.chat_template is not None:
        args += ["--chat-template", f"{CHAT_TEMPLATE_DIR}/{CHAT_TEMPLATE_FILE}"]
    if spec.engine.gpu_memory_utilization is not None:
        args += ["--gpu-memory-utilization", repr(spec.engine.gpu_memory_utilization)]
    if spec.engine.max_num_seqs is not None:
        args += ["--max-num-seqs", str(spec.engine.max_num_seqs)]
    # the API key comes from the VLLM_API_KEY env var (a secretKeyRef), never from argv
    args += list(spec.engine.extra_args)
    return args


def server_command(pipeline: RerankPipeline) -> list[str]:
    """The container command of the engine the pipeline runs (``spec.engine.kind``)."""
    if pipeline.spec.engine.effective_kind == "tei":
        return router_command()
    return serve_command()


def server_args(pipeline: RerankPipeline) -> list[str]:
    """The container args of the engine the pipeline runs (``spec.engine.kind``)."""
    if pipeline.spec.engine.effective_kind == "tei":
        return router_args(pipeline)
    return serve_args(pipeline)
