"""The ``text-embeddings-router`` command line (Hugging Face Text Embeddings Inference), from the spec.

Kept separate and tiny, like ``vllm_args``: TEI's flags move between releases (1.6 renamed
``--hf-api-token`` to ``--hf-token``), and a change there is a change here.

What the operator always passes, and why:

* ``--hostname 0.0.0.0``: TEI's default is 0.0.0.0, but clap also reads the flag from the env var
  ``HOSTNAME``, which Kubernetes sets to the pod's name: left to itself TEI would bind to whatever that
  name resolves to, not to every interface the kubelet's probes and the Service reach.
* ``--port``: ``spec.engine.port`` (TEI's own default is 3000).
* ``--max-client-batch-size``: ``spec.publish.maxClientBatchSize``, the very number the operator publishes
  to Milvus as ``max_client_batch_size``. TEI refuses a request with more documents than this limit
  (413/422), and Milvus would send batches of the published size: setting both from one field is what
  guarantees the published parameter never exceeds what the server accepts.
* ``--served-model-name``: the effective served name, as for vLLM, so ``/info`` reports the same name
  whichever engine serves it.
* ``--prometheus-port``: TEI serves ``/metrics`` on a port of its own (default 9000), which the pod
  declares as the ``metrics`` port and the PodMonitor scrapes; passed explicitly so the two always agree,
  and moved off 9000 when ``spec.engine.port`` is 9000 itself.

Secrets are never on argv (a pod's args are readable by anyone who can read the Deployment): the API key
reaches TEI as env ``API_KEY`` and the Hugging Face token as ``HF_TOKEN`` (and ``HF_API_TOKEN``, the name
releases before 1.6 read), both from ``secretKeyRef``s; the cache directory as ``HUGGINGFACE_HUB_CACHE``.
"""

from __future__ import annotations

from rerank_operator.models import RerankPipeline

ROUTER = "text-embeddings-router"
# TEI's default --prometheus-port; the pod's "metrics" port.
TEI_METRICS_PORT = 9000
_METRICS_FALLBACK_PORT = 9001
# model.dtype values TEI takes (the models refuse the others for TEI); "auto" means no flag.
_TEI_DTYPE_FLAGS = {"float16": "float16", "float32": "float32"}


def router_command() -> list[str]:
    """The image's own entrypoint, spelled out so the container never depends on the image's ENTRYPOINT."""
    return [ROUTER]


def metrics_port(pipeline: RerankPipeline) -> int:
    """Where TEI serves ``/metrics``: its default 9000, unless the API port already is 9000."""
    return _METRICS_FALLBACK_PORT if pipeline.spec.engine.port == TEI_METRICS_PORT else TEI_METRICS_PORT


def router_args(pipeline: RerankPipeline) -> list[str]:
    spec = pipeline.spec
    model = spec.model
    engine = spec.engine
    args = [
        "--model-id",
        model.name,
        "--hostname",
        "0.0.0.0",
        "--port",
        str(engine.port),
        "--max-client-batch-size",
        str(spec.publish.max_client_batch_size),
        "--served-model-name",
        model.effective_served_name,
        "--prometheus-port",
        str(metrics_port(pipeline)),
    ]
    if model.revision:
        args += ["--revision", model.revision]
    dtype = _TEI_DTYPE_FLAGS.get(model.dtype)
    if dtype is not None:
        args += ["--dtype", dtype]
    if engine.max_batch_tokens is not None:
        args += ["--max-batch-tokens", str(engine.max_batch_tokens)]
    if engine.auto_truncate:
        args.append("--auto-truncate")
    # the API key comes from the API_KEY env var and the token from HF_TOKEN (secretKeyRefs), never argv
    args += list(engine.extra_args)
    return args
