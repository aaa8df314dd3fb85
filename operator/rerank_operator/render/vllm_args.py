"""The ``vllm serve`` command line, from the spec.

Kept separate and tiny because vLLM's flags move between releases: a change there is a change here.
"""

from __future__ import annotations

import json

from rerank_operator.models import RerankPipeline

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
