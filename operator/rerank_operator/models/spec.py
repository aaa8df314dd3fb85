"""The ``RerankPipeline`` spec: the single source of truth for the CRD schema and for rendering.

Every field carries a description (it becomes ``kubectl explain`` text). Cross-field rules are
expressed twice on purpose: as CEL ``x-kubernetes-validations`` so the apiserver rejects bad
objects at admission, and as pydantic validators so ``rerank-operator validate`` and the operator
itself give the same message offline. ``tests/unit/models`` keeps the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, field_validator, model_validator
from pydantic.alias_generators import to_snake

from rerank_operator.models.autoscaling import AutoscalingSpec
from rerank_operator.models.base import ApiModel, cel, with_cel
from rerank_operator.models.monitoring import MonitoringSpec
from rerank_operator.models.quantity import Quantity
from rerank_operator.models.quirks import QUIRKS, cel_pattern, quirk_for

# A pinned vLLM image: pooling runner, /rerank, /v2/rerank and /health. The same release as the CPU build
# the engine tier of the tests runs (rerank_operator.sandbox.engine.VLLM_VERSION; a test keeps them in step).
DEFAULT_IMAGE = "vllm/vllm-openai:v0.32.0"
# TEI's GPU image is built for Ampere (A100/A10G...); its CPU image for gpus: 0. Other GPU generations
# have their own tags (turing-, 86-, 89-, hopper-), which a user pins in engine.image.
DEFAULT_TEI_IMAGE = "ghcr.io/huggingface/text-embeddings-inference:1.8"
DEFAULT_TEI_CPU_IMAGE = "ghcr.io/huggingface/text-embeddings-inference:cpu-1.8"
EngineKind = Literal["vllm", "tei"]
ENGINE_KINDS: tuple[EngineKind, ...] = get_args(EngineKind)
DEFAULT_PORT = 8000
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
# Where the upstream image keeps Hugging Face downloads (it runs as root, HF_HOME unset).
HF_CACHE_PATH = "/root/.cache/huggingface"
# TEI's images read HUGGINGFACE_HUB_CACHE (default /data, its documented volume).
TEI_CACHE_PATH = "/data"
# Milvus's default max_client_batch_size, and TEI's default --max-client-batch-size.
DEFAULT_CLIENT_BATCH_SIZE = 32

HF_REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# scheme://host[:port] and nothing else: Milvus replaces any path with /rerank.
BASE_URL = rf"^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:{_PORT})?$"
QUALIFIED_NAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


# ---------------------------------------------------------------------------------------- model
class ModelSpec(ApiModel):
    """Which checkpoint to serve and how vLLM should load it."""

    model_config = with_cel(
        cel(
            "!has(self.truncatePromptTokens) || self.truncatePromptTokens != 0",
            "truncatePromptTokens: 0 would truncate every prompt to nothing; use -1 or a positive limit",
            field_path=".truncatePromptTokens",
        ),
        cel(
            "!has(self.truncatePromptTokens) || !has(self.maxModelLen) || self.truncatePromptTokens <= self.maxModelLen",
            "truncatePromptTokens must not exceed maxModelLen (vLLM answers 400 to every such request)",
            field_path=".truncatePromptTokens",
        ),
    )

    name: str = Field(
        min_length=1,
        max_length=200,
        pattern=HF_REPO_ID,
        description="Hugging Face repo id of the reranker, e.g. BAAI/bge-reranker-base.",
    )
    revision: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Model revision (branch, tag or commit) to pin; passed as --revision.",
    )
    served_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Name the server reports and Milvus Lite must send (--served-model-name). "
        "Defaults to the model name.",
    )
    max_model_len: int | None = Field(
        default=None,
        ge=16,
        le=1_048_576,
        description="Context length in tokens (--max-model-len). Set it for long-context models "
        "(Qwen3 rerankers default to 32k+) to save GPU memory.",
    )
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = Field(
        default="auto", description="Weight and activation dtype (--dtype)."
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Allow the checkpoint's custom modelling code to run (--trust-remote-code). "
        "Required by models such as jinaai/jina-reranker-v2-*.",
    )
    hf_overrides: dict[str, Any] | None = Field(
        default=None,
        description="Overrides of the Hugging Face config (--hf-overrides, as JSON). When unset, "
        "known models get the overrides they need (see the README's model quirks table).",
    )
    chat_template: str | None = Field(
        default=None,
        min_length=1,
        max_length=262_144,
        description="Inline Jinja chat template. The operator stores it in a ConfigMap, mounts it and "
        "passes --chat-template. Required for Qwen3-Reranker and mxbai-rerank-v2.",
    )
    truncate_prompt_tokens: int | None = Field(
        default=None,
        ge=-1,
        description="Truncate each query+document pair to this many tokens (-1: the model's limit). "
        "Published to Milvus as truncate_prompt_tokens so overlong documents do not fail searches.",
    )
    convert: Literal["classify"] | None = Field(
        default=None,
        description="Adapter for checkpoints that are not classifiers (--convert); 'classify' is "
        "needed for *ForCausalLM checkpoints that lack built-in overrides.",
    )

    @model_validator(mode="after")
    def _check_quirks(self) -> ModelSpec:
        tpt = self.truncate_prompt_tokens
        if tpt == 0:
            raise ValueError(
                "truncatePromptTokens: 0 would truncate every prompt to nothing; use -1 or a positive limit"
            )
        if tpt is not None and self.max_model_len is not None and tpt > self.max_model_len:
            raise ValueError(
                "truncatePromptTokens: must not exceed maxModelLen (vLLM answers 400 to every such request)"
            )
        return self

    def quirk_problem(self) -> str | None:
        """What a known model family needs and the spec lacks (``field: message``), for vLLM serving.

        Checked at the spec level, not here: the needs are vLLM's (an external server or TEI has its own
        way of loading the model), so they apply only when the operator serves the model with vLLM.
        """
        quirk = quirk_for(self.name)
        if quirk is None:
            return None
        if quirk.requires_chat_template and self.chat_template is None:
            return f"chatTemplate: {_chat_template_message(quirk.family)}"
        if quirk.requires_trust_remote_code and not self.trust_remote_code:
            return f"trustRemoteCode: {_trust_message(quirk.family)}"
        return None

    @property
    def effective_served_name(self) -> str:
        return self.served_name or self.name

    @property
    def effective_hf_overrides(self) -> dict[str, Any] | None:
        """User overrides win; otherwise the known quirk's overrides, if any."""
        if self.hf_overrides is not None:
            return self.hf_overrides
        quirk = quirk_for(self.name)
        return dict(quirk.hf_overrides) if quirk and quirk.hf_overrides else None


def _chat_template_message(family: str) -> str:
    return f"{family} models need spec.model.chatTemplate (without it scores are near random)"


def _trust_message(family: str) -> str:
    return f"{family} models ship custom code: set spec.model.trustRemoteCode: true to allow it"


# --------------------------------------------------------------------------------------- engine
class EnvVar(ApiModel):
    """An environment variable for the vLLM container (same shape as a Pod's env entry)."""

    model_config = with_cel(
        cel("!(has(self.value) && has(self.valueFrom))", "set either value or valueFrom, not both")
    )

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME, description="Variable name.")
    value: str | None = Field(default=None, description="Literal value.")
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="Source of the value (secretKeyRef, configMapKeyRef, fieldRef, ...), as in a Pod spec.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value is not None and self.value_from is not None:
            raise ValueError("set either value or valueFrom, not both")
        return self


RESERVED_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "VLLM_API_KEY", "HF_HOME")
# TEI reads every flag from an env var of the flag's name too; these are the ones the operator sets as
# env (API key, token, cache) or always passes on argv (model id), so a user copy would be ambiguous.
TEI_RESERVED_ENV = ("API_KEY", "HF_TOKEN", "HF_API_TOKEN", "HUGGINGFACE_HUB_CACHE", "MODEL_ID")


# Flags rendered from spec fields; letting extraArgs repeat them would make the result ambiguous.
MANAGED_FLAGS = (
    "--port",
    "--host",
    "--api-key",
    "--served-model-name",
    "--runner",
    "--task",
    "--model",
    "--chat-template",
    "--hf-overrides",
    "--trust-remote-code",
    "--revision",
    "--max-model-len",
    "--dtype",
    "--gpu-memory-utilization",
    "--max-num-seqs",
    "--convert",
)
# text-embeddings-router's flags the operator renders (clap: exact long names, and -p for --port).
# --prometheus-port is managed because the pod's metrics port (and the PodMonitor) is TEI's default.
TEI_MANAGED_FLAGS = (
    "--model-id",
    "--revision",
    "--dtype",
    "--served-model-name",
    "--max-batch-tokens",
    "--max-client-batch-size",
    "--auto-truncate",
    "--hostname",
    "--port",
    "-p",
    "--api-key",
    "--hf-token",
    "--hf-api-token",
    "--huggingface-hub-cache",
    "--prometheus-port",
)
_IS_TEI = "has(self.kind) && self.kind == 'tei'"


def _managed_flags_rules() -> list[dict[str, str]]:
    names = "|".join(re.escape(f[2:]).replace("\\-", "-").replace("-", "[-_]") for f in MANAGED_FLAGS)
    tei_long = "|".join(re.escape(f[2:]).replace("\\-", "-") for f in TEI_MANAGED_FLAGS if f.startswith("--"))
    return [
        cel(
            f"({_IS_TEI}) || !has(self.extraArgs) || self.extraArgs.all(a, !a.matches('^--({names})(=.*)?$'))",
            "extraArgs must not repeat flags the operator manages (--port, --api-key, --served-model-name, ...): "
            "use the matching spec field",
            field_path=".extraArgs",
        ),
        cel(
            f"!({_IS_TEI}) || !has(self.extraArgs) || "
            f"self.extraArgs.all(a, !a.matches('^(--({tei_long})(=.*)?|-p.*)$'))",
            "extraArgs must not repeat TEI flags the operator manages (--model-id, --port, --api-key, "
            "--max-client-batch-size, ...): use the matching spec field",
            field_path=".extraArgs",
        ),
    ]


def _env_rules() -> list[dict[str, str]]:
    vllm = ", ".join(repr(n) for n in RESERVED_ENV)
    tei = ", ".join(repr(n) for n in TEI_RESERVED_ENV)
    return [
        cel(
            f"({_IS_TEI}) || !has(self.env) || self.env.all(e, !(e.name in [{vllm}]))",
            "HF_TOKEN, VLLM_API_KEY and HF_HOME are managed by the operator: use "
            "spec.hfTokenSecretRef, spec.apiKeySecretRef and spec.modelCache",
            field_path=".env",
        ),
        cel(
            f"!({_IS_TEI}) || !has(self.env) || self.env.all(e, !(e.name in [{tei}]))",
            "API_KEY, HF_TOKEN, HF_API_TOKEN, HUGGINGFACE_HUB_CACHE and MODEL_ID are managed by the operator "
            "for TEI: use spec.apiKeySecretRef, spec.hfTokenSecretRef, spec.modelCache and spec.model.name",
            field_path=".env",
        ),
    ]


class EngineSpec(ApiModel):
    """The server process: vLLM (default) or Hugging Face Text Embeddings Inference (TEI)."""

    model_config = with_cel(*_managed_flags_rules(), *_env_rules())

    # No schema defaults for kind and image: a stored object keeps "unset", so CEL can tell "TEI's default
    # image" from "an image the user chose", and a future default image reaches objects that never set one.
    kind: EngineKind | None = Field(
        default=None,
        description="Which server runs the model: vllm (the default) or tei (Hugging Face Text Embeddings "
        "Inference). Milvus has a rerank provider for each.",
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description=f"Server image. Pin a tag or digest. Defaults: {DEFAULT_IMAGE} for vllm; for tei "
        f"{DEFAULT_TEI_IMAGE} (Ampere GPUs) or, with resources.gpus: 0, {DEFAULT_TEI_CPU_IMAGE}.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", description="Image pull policy of the server container."
    )
    port: int = Field(
        default=DEFAULT_PORT, ge=1, le=65535, description="Port the server listens on (--port)."
    )
    gpu_memory_utilization: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="vLLM only: fraction of GPU memory vLLM may use (--gpu-memory-utilization); "
        "vLLM's default is ~0.9.",
    )
    max_num_seqs: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="vLLM only: maximum concurrent sequences per step (--max-num-seqs).",
    )
    max_batch_tokens: int | None = Field(
        default=None,
        ge=1,
        le=16_777_216,
        description="TEI only: total tokens in one batch (--max-batch-tokens; TEI's default is 16384).",
    )
    auto_truncate: bool | None = Field(
        default=None,
        description="TEI only: truncate inputs longer than the model's limit instead of refusing them "
        "(--auto-truncate). Without it an overlong document fails the whole Milvus search.",
    )
    extra_args: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list,
        max_length=128,
        description="Extra arguments appended to the server command. Flags the operator manages "
        "(--port, --api-key, --served-model-name, ...) are rejected.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=128,
        description="Extra environment variables for the server container.",
    )
    startup_timeout_seconds: int = Field(
        default=1800,
        ge=30,
        le=86400,
        description="How long the startup probe waits for /health while weights download and load "
        "(the server does not answer until then).",
    )
    shm_size: Quantity = Field(default="2Gi", description="Size limit of the memory-backed /dev/shm volume.")

    @model_validator(mode="after")
    def _check(self) -> EngineSpec:
        tei = self.effective_kind == "tei"
        reserved = TEI_RESERVED_ENV if tei else RESERVED_ENV
        for e in self.env:
            if e.name in reserved:
                uses = (
                    "spec.apiKeySecretRef, spec.hfTokenSecretRef, spec.modelCache and spec.model.name"
                    if tei
                    else "spec.hfTokenSecretRef, spec.apiKeySecretRef and spec.modelCache"
                )
                raise ValueError(f"env: {e.name} is managed by the operator: use {uses}")
        managed = tei_managed_flag_in(self.extra_args) if tei else managed_flag_in(self.extra_args)
        if managed:
            raise ValueError(f"extraArgs: {managed} is managed by the operator; use the matching spec field")
        return self

    @property
    def effective_kind(self) -> EngineKind:
        return self.kind or "vllm"

    def effective_image(self, gpus: int) -> str:
        """The image to run: the user's, or the engine's pinned default for GPU or CPU nodes."""
        if self.image is not None:
            return self.image
        if self.effective_kind == "tei":
            return DEFAULT_TEI_IMAGE if gpus > 0 else DEFAULT_TEI_CPU_IMAGE
        return DEFAULT_IMAGE


def managed_flag_in(args: list[str]) -> str | None:
    """The first managed vLLM flag in ``args``, as the user spelled it.

    vLLM's argument parser treats ``_`` and ``-`` in a long flag's name alike (``--api_key`` is
    ``--api-key``), so the check normalises them the same way.
    """
    for arg in args:
        flag = arg.split("=", 1)[0]
        if not flag.startswith("--"):
            continue
        if "--" + flag[2:].replace("_", "-") in MANAGED_FLAGS:
            return flag
    return None


def tei_managed_flag_in(args: list[str]) -> str | None:
    """The first managed TEI flag in ``args``: clap takes long names exactly, and ``-p``/``-p8000``."""
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in TEI_MANAGED_FLAGS or (flag.startswith("-p") and not flag.startswith("--")):
            return flag
    return None


# ------------------------------------------------------------------------------------ resources
class ComputeResources(ApiModel):
    """CPU and memory amounts."""

    cpu: Quantity | None = Field(default=None, description="CPU quantity, e.g. 4 or 500m.")
    memory: Quantity | None = Field(default=None, description="Memory quantity, e.g. 16Gi.")


class ResourcesSpec(ApiModel):
    """GPU, CPU and memory for each reranker pod."""

    gpus: int = Field(
        default=1,
        ge=0,
        le=16,
        description="GPUs per pod (limit of gpuResourceName). 0 runs without a GPU (needs a CPU build of vLLM).",
    )
    gpu_resource_name: str = Field(
        default=DEFAULT_GPU_RESOURCE,
        min_length=1,
        max_length=253,
        pattern=QUALIFIED_NAME,
        description="Extended resource name of the GPU, e.g. nvidia.com/gpu or amd.com/gpu.",
    )
    requests: ComputeResources | None = Field(default=None, description="CPU and memory requests.")
    limits: ComputeResources | None = Field(default=None, description="CPU and memory limits.")


# ----------------------------------------------------------------------------------- scheduling
class Toleration(ApiModel):
    """A Pod toleration, as in a Pod spec."""

    model_config = with_cel(
        cel(
            "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
            "value must be empty when operator is Exists",
        )
    )

    key: str | None = Field(
        default=None, max_length=316, description="Taint key to tolerate; empty matches all."
    )
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (default)."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty matches all."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated before eviction."
    )

    @model_validator(mode="after")
    def _check(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("value must be empty when operator is Exists")
        return self


# ---------------------------------------------------------------------------------- model cache
AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]


class CachePvcSpec(ApiModel):
    """A PersistentVolumeClaim the operator creates for the Hugging Face cache."""

    size: Quantity = Field(default="50Gi", description="Requested storage, e.g. 50Gi.")
    storage_class_name: str | None = Field(
        default=None, max_length=253, description="StorageClass; the cluster default when unset."
    )
    access_modes: list[AccessMode] = Field(
        default_factory=lambda: list[AccessMode](["ReadWriteOnce"]),
        min_length=1,
        max_length=4,
        description="Access modes. Use ReadWriteMany to share one cache across several replicas.",
    )


class ModelCacheSpec(ApiModel):
    """Where downloaded weights live. Set pvc or existingClaim; with neither, an emptyDir is used."""

    model_config = with_cel(
        cel(
            "!(has(self.pvc) && has(self.existingClaim))",
            "set at most one of modelCache.pvc and modelCache.existingClaim",
        )
    )

    pvc: CachePvcSpec | None = Field(default=None, description="Create and own a PVC for the model cache.")
    existing_claim: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Use this existing PVC (not owned or deleted by the operator).",
    )

    @model_validator(mode="after")
    def _one(self) -> ModelCacheSpec:
        if self.pvc is not None and self.existing_claim is not None:
            raise ValueError("set at most one of modelCache.pvc and modelCache.existingClaim")
        return self

    @property
    def kind(self) -> Literal["pvc", "existingClaim", "emptyDir"]:
        if self.pvc is not None:
            return "pvc"
        if self.existing_claim is not None:
            return "existingClaim"
        return "emptyDir"


class SecretKeyRef(ApiModel):
    """A key of a Secret in the pipeline's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN, description="Secret name.")
    key: str = Field(min_length=1, max_length=253, pattern=SECRET_KEY, description="Key within the Secret.")


# ------------------------------------------------------------------------------------ probe
class ProbeSpec(ApiModel):
    """The operator's canary rerank check (POST /rerank with known documents)."""

    model_config = with_cel(
        cel(
            "has(self.query) == has(self.documents)",
            "probe.query and probe.documents must be set together",
        ),
        cel(
            "!has(self.expectedTopIndex) || (has(self.documents) && self.expectedTopIndex < size(self.documents))",
            "probe.expectedTopIndex must index into probe.documents (the built-in canary's answer is fixed)",
            field_path=".expectedTopIndex",
        ),
    )

    query: str | None = Field(
        default=None, min_length=1, max_length=4096, description="Canary query; a built-in one when unset."
    )
    documents: list[Annotated[str, Field(min_length=1, max_length=8192)]] | None = Field(
        default=None,
        min_length=2,
        max_length=32,
        description="Canary documents; exactly one should clearly answer the query.",
    )
    expected_top_index: int | None = Field(
        default=None,
        ge=0,
        le=31,
        description="Index in documents of the one that must rank first (0 when documents are set and "
        "this is not).",
    )
    interval_seconds: int = Field(default=30, ge=1, le=3600, description="Seconds between canary checks.")
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="Timeout of one canary request.")
    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures before the pipeline is marked not ready."
    )
    success_threshold: int = Field(
        default=1, ge=1, le=100, description="Consecutive successes before the pipeline is marked ready."
    )
    max_latency_ms: int | None = Field(
        default=None,
        ge=1,
        le=120_000,
        description="A canary slower than this counts as a failure (reason SlowResponse).",
    )

    @model_validator(mode="after")
    def _check(self) -> ProbeSpec:
        if (self.query is None) != (self.documents is None):
            raise ValueError("probe.query and probe.documents must be set together")
        if self.expected_top_index is not None and (
            self.documents is None or self.expected_top_index >= len(self.documents)
        ):
            raise ValueError(
                "expectedTopIndex: probe.expectedTopIndex must index into probe.documents "
                "(the built-in canary's answer is fixed)"
            )
        return self


# ---------------------------------------------------------------------------------- publish
# publish.endpoint is probed by the operator, from the operator's network position: an address that
# only makes sense inside the operator's pod or cluster would let a pipeline author aim the canary
# at things they cannot reach themselves (and it could never be what an outside Milvus uses).
_LOCAL_HOSTS = (
    r"^https?://(localhost|127([.][0-9]+){3}|0[.]0[.]0[.]0|169[.]254([.][0-9]+){2})(:[0-9]+)?$",
    r"^https?://[^:]*[.]svc([.][^:]*)?(:[0-9]+)?$",
    r"^https?://[^.:]+(:[0-9]+)?$",  # a single label resolves through the cluster's search domains
    # cloud instance-metadata services outside 169.254/16 (GCP by name, Alibaba Cloud)
    r"^https?://(metadata[.]google[.]internal|100[.]100[.]100[.]200)(:[0-9]+)?$",
)
EXTERNAL_ENDPOINT_MESSAGE = (
    "publish.endpoint is for Milvus outside the cluster: use a dotted host name or IP, not localhost, "
    "a loopback, link-local or cloud-metadata address, a bare name or a .svc name (leave it unset to "
    "publish the Service)"
)


# spec.external.endpoint is probed from the operator's pod and called by Milvus from its own: an address
# that names the operator's pod itself (loopback, link-local, cloud metadata) or that resolves through the
# pod's own search domains (a bare name) means different things to the two. Other namespaces' .svc names
# are fine there (a KServe InferenceService, say): both reach them the same way.
_IN_POD_HOSTS = (_LOCAL_HOSTS[0], _LOCAL_HOSTS[2], _LOCAL_HOSTS[3])
EXTERNAL_SERVER_MESSAGE = (
    "external.endpoint must be an address both Milvus and the operator reach the same way: not localhost, "
    "a loopback, link-local or cloud-metadata address, or a bare name (use a dotted name, e.g. "
    "<service>.<namespace>.svc or a public host)"
)


def _no_match_rule(patterns: tuple[str, ...]) -> str:
    checks = " && ".join(f"!self.endpoint.matches('{pattern}')" for pattern in patterns)
    return f"!has(self.endpoint) || ({checks})"


def _external_endpoint_rule() -> str:
    return _no_match_rule(_LOCAL_HOSTS)


def local_host_endpoint(value: str, patterns: tuple[str, ...] = _LOCAL_HOSTS) -> bool:
    """Whether ``value`` matches one of the refused host patterns (the CEL rules' Python twin)."""
    return any(re.match(pattern, value) for pattern in patterns)


class PublishSpec(ApiModel):
    """The ConfigMap apps read to build a pymilvus rerank Function."""

    model_config = with_cel(cel(_external_endpoint_rule(), EXTERNAL_ENDPOINT_MESSAGE, field_path=".endpoint"))

    config_map_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Name of the published ConfigMap; <pipeline name>-ranker when unset.",
    )
    namespaces: list[Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Extra namespaces to publish the ConfigMap into (the pipeline's own is always included).",
    )

    @field_validator("namespaces")
    @classmethod
    def _unique_namespaces(cls, value: list[str]) -> list[str]:
        # mirrors x-kubernetes-list-type: set, with which the apiserver rejects duplicates
        duplicates = sorted({ns for ns in value if value.count(ns) > 1})
        if duplicates:
            raise ValueError(f"duplicate namespaces {', '.join(duplicates)} (each may appear once)")
        return value

    endpoint: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        pattern=BASE_URL,
        description="The address Milvus reaches the reranker at, when it is not the in-cluster Service "
        "(Milvus outside the cluster, behind an Ingress or a LoadBalancer you route to the Service): "
        "scheme://host[:port], no path (Milvus appends /rerank). It is published and it is what the "
        "canary probes, so a published endpoint is always one that answered.",
    )

    @field_validator("endpoint")
    @classmethod
    def _external(cls, value: str | None) -> str | None:
        # mirrors the CEL rule above, so offline validation agrees with admission
        if value is not None and local_host_endpoint(value):
            raise ValueError(EXTERNAL_ENDPOINT_MESSAGE)
        return value

    function_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the Milvus Function; <pipeline name, with - as _>_rerank when unset.",
    )
    input_field: str = Field(
        default="document",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Milvus VARCHAR field holding the document text the reranker reads.",
    )
    max_client_batch_size: int = Field(
        default=DEFAULT_CLIENT_BATCH_SIZE,
        ge=1,
        le=4096,
        description="Documents per rerank request Milvus sends (param max_client_batch_size). For TEI the "
        "operator starts the server with the same --max-client-batch-size, and the canary checks that an "
        "external TEI's /info allows at least this many (a larger batch fails every search).",
    )
    credential: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Label of a Milvus credential (credential.<label>.apikey in milvus.yaml) that holds "
        "the reranker API key. A label, never a secret value.",
    )


# ---------------------------------------------------------------------------------- external
class ExternalSpec(ApiModel):
    """A reranker some other system runs (KServe, another cluster, a managed service): the operator
    deploys nothing, and only probes and publishes it."""

    model_config = with_cel(
        cel(_no_match_rule(_IN_POD_HOSTS), EXTERNAL_SERVER_MESSAGE, field_path=".endpoint")
    )

    endpoint: str = Field(
        min_length=1,
        max_length=512,
        pattern=BASE_URL,
        description="Where the reranker answers, for Milvus and the canary alike: scheme://host[:port], no "
        "path (Milvus replaces any path with /rerank).",
    )

    @field_validator("endpoint")
    @classmethod
    def _reachable(cls, value: str) -> str:
        # mirrors the CEL rule above
        if local_host_endpoint(value, _IN_POD_HOSTS):
            raise ValueError(EXTERNAL_SERVER_MESSAGE)
        return value

    engine: EngineKind = Field(
        default="vllm", description="The protocol the server speaks: vllm or tei (Milvus's provider)."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key the server requires. The operator reads it to probe; it "
        "is never published (Milvus gets it from publish.credential).",
    )


# ------------------------------------------------------------------------------------- spec
RolloutStrategy = Literal["BlueGreen", "Surge", "Replace"]
# Milvus gives each batch 30 s (all its retries included); a mounted ConfigMap reaches pods within the
# kubelet's sync period plus its cache TTL (about a minute each by default); and a margin on top.
DEFAULT_DRAIN_SECONDS = 180


class RolloutSpec(ApiModel):
    """How a spec change replaces running pods: a choice between never mixing models, needing one
    spare pod, and needing none, which only the platform team can make."""

    strategy: RolloutStrategy = Field(
        default="BlueGreen",
        description="BlueGreen (default): a change of the serving pod template (model, revision, args, "
        "image, env...) starts a new revision (its own Deployment) next to the running one, checks it with "
        "the canary through its own Service, then switches the endpoint's Service to it in one write; the "
        "old revision keeps serving until then and is removed after drainSeconds. One search is never "
        "scored by two models, and a candidate that fails its canary never takes traffic; a change needs "
        "room for `replicas` extra pods (their GPUs). Surge: the Deployment rolls in place, one extra pod "
        "at a time (maxSurge 1, maxUnavailable 0); needs one spare pod, but old and new pods serve side by "
        "side for as long as new pods take to load, so one search can be scored by two models. Replace: "
        "stop an old pod first (maxSurge 0, maxUnavailable 1); needs no spare GPU, but with one replica "
        "the endpoint is down until the new pod has loaded the model, and with more it can mix models "
        "as Surge does.",
    )
    drain_seconds: int = Field(
        default=DEFAULT_DRAIN_SECONDS,
        ge=0,
        le=86400,
        description="BlueGreen: how long the previous revision keeps running after the switch, for "
        "requests already sent to it (Milvus allows a batch 30 s) and for kube-proxy and mounted copies of "
        "the published ConfigMap to catch up; then it is deleted.",
    )


@dataclass(frozen=True)
class FieldUse:
    """A spec field (camelCase path under ``spec``) and what counts as the user having set it.

    Only fields without a schema default can be told apart from "not set" at admission, so the tables
    below name those; ``nonempty`` and ``true`` cover lists, maps and booleans whose default is empty/false.
    One table drives both the CEL rule and its pydantic twin, so the two cannot drift apart.
    """

    path: str
    test: Literal["set", "nonempty", "true"] = "set"

    def cel(self) -> str:
        parts = self.path.split(".")
        checks = [f"has(self.{'.'.join(parts[: i + 1])})" for i in range(len(parts))]
        if self.test == "nonempty":
            checks.append(f"size(self.{self.path}) > 0")
        elif self.test == "true":
            checks.append(f"self.{self.path} == true")
        return " && ".join(checks)

    def is_set(self, spec: RerankPipelineSpec) -> bool:
        value: Any = spec
        for part in self.path.split("."):
            value = getattr(value, to_snake(part))
            if value is None:
                return False
        if self.test == "nonempty":
            return len(value) > 0
        if self.test == "true":
            return value is True
        return True


# What configures the operator's own pods: meaningless (and refused) with spec.external.
WORKLOAD_FIELDS = (
    FieldUse("engine.kind"),
    FieldUse("engine.image"),
    FieldUse("engine.gpuMemoryUtilization"),
    FieldUse("engine.maxNumSeqs"),
    FieldUse("engine.maxBatchTokens"),
    FieldUse("engine.autoTruncate"),
    FieldUse("engine.extraArgs", "nonempty"),
    FieldUse("engine.env", "nonempty"),
    FieldUse("model.revision"),
    FieldUse("model.maxModelLen"),
    FieldUse("model.hfOverrides"),
    FieldUse("model.chatTemplate"),
    FieldUse("model.convert"),
    FieldUse("model.trustRemoteCode", "true"),
    FieldUse("autoscaling"),
    FieldUse("nodeSelector", "nonempty"),
    FieldUse("tolerations", "nonempty"),
    FieldUse("affinity"),
    FieldUse("runtimeClassName"),
    FieldUse("priorityClassName"),
    FieldUse("modelCache.pvc"),
    FieldUse("modelCache.existingClaim"),
    FieldUse("hfTokenSecretRef"),
    FieldUse("apiKeySecretRef"),
    FieldUse("monitoring.podMonitor.enabled", "true"),
)
# Settings only one engine understands, with what the other engine offers instead.
ENGINE_ONLY_FIELDS: tuple[tuple[FieldUse, EngineKind, str], ...] = (
    (FieldUse("model.maxModelLen"), "vllm", "TEI takes the model's own limit"),
    (FieldUse("model.hfOverrides"), "vllm", "TEI loads the checkpoint's config as is"),
    (FieldUse("model.chatTemplate"), "vllm", "TEI serves sequence-classification rerankers only"),
    (FieldUse("model.convert"), "vllm", "TEI serves sequence-classification rerankers only"),
    (FieldUse("model.trustRemoteCode", "true"), "vllm", "TEI runs no checkpoint code"),
    (FieldUse("model.truncatePromptTokens"), "vllm", "for TEI use engine.autoTruncate"),
    (FieldUse("engine.gpuMemoryUtilization"), "vllm", "TEI sizes batches with engine.maxBatchTokens"),
    (FieldUse("engine.maxNumSeqs"), "vllm", "TEI sizes batches with engine.maxBatchTokens"),
    (FieldUse("engine.maxBatchTokens"), "tei", "vLLM sizes batches with engine.maxNumSeqs"),
    (FieldUse("engine.autoTruncate"), "tei", "for vLLM use model.truncatePromptTokens"),
)
# With spec.external, its endpoint is both what Milvus calls and what the canary checks.
EXTERNAL_PUBLISH_ENDPOINT = FieldUse("publish.endpoint")
EXTERNAL_PUBLISH_ENDPOINT_MESSAGE = "with spec.external, external.endpoint is what Milvus calls and the canary checks: leave publish.endpoint unset"
ENGINE_LABELS: dict[EngineKind, str] = {"vllm": "vLLM", "tei": "TEI"}
TEI_VLLM_METRIC_MESSAGE = (
    "vLLM's series (vllm:*) do not exist for TEI: leave it unset for TEI's queue (te_queue_size) or name a "
    "TEI series (te_*)"
)
TEI_DTYPES = ("auto", "float16", "float32")
TEI_DTYPE_MESSAGE = "TEI takes dtype auto, float16 or float32 (--dtype)"

# The engine that serves (or, with spec.external, speaks for) the pipeline, as a CEL expression on spec.
_SERVED_KIND = "((has(self.engine) && has(self.engine.kind)) ? self.engine.kind : 'vllm')"
_KIND = f"(has(self.external) ? self.external.engine : {_SERVED_KIND})"
_SERVES_VLLM = f"(!has(self.external) && {_SERVED_KIND} == 'vllm')"


def external_conflict_message(use: FieldUse) -> str:
    """The same words for every field: the rule's fieldPath (and validate's prefix) names the field."""
    del use
    return "configures the operator's own pods, and spec.external runs none: remove one of the two"


def engine_only_message(use: FieldUse, engine: EngineKind, instead: str) -> str:
    del use
    other = ENGINE_LABELS["tei" if engine == "vllm" else "vllm"]
    return f"only {ENGINE_LABELS[engine]} takes this setting, not {other} ({instead})"


def _spec_rules() -> list[dict[str, str]]:
    rules = [
        cel(
            f"!has(self.external) || !({use.cel()})",
            external_conflict_message(use),
            field_path=f".{use.path}",
        )
        for use in WORKLOAD_FIELDS
    ]
    rules.append(
        cel(
            f"!has(self.external) || !({EXTERNAL_PUBLISH_ENDPOINT.cel()})",
            EXTERNAL_PUBLISH_ENDPOINT_MESSAGE,
            field_path=f".{EXTERNAL_PUBLISH_ENDPOINT.path}",
        )
    )
    rules += [
        cel(
            f"{_KIND} == '{engine}' || !({use.cel()})",
            engine_only_message(use, engine, instead),
            field_path=f".{use.path}",
        )
        for use, engine, instead in ENGINE_ONLY_FIELDS
    ]
    metric = FieldUse("autoscaling.metric.name")
    rules.append(
        cel(
            f"{_KIND} != 'tei' || !({metric.cel()}) || !self.autoscaling.metric.name.startsWith('vllm:')",
            TEI_VLLM_METRIC_MESSAGE,
            field_path=f".{metric.path}",
        )
    )
    rules.append(
        cel(
            f"has(self.external) || {_SERVED_KIND} != 'tei' || self.model.dtype in "
            f"[{', '.join(repr(d) for d in TEI_DTYPES)}]",
            TEI_DTYPE_MESSAGE,
            field_path=".model.dtype",
        )
    )
    for q in QUIRKS:
        matches = f"self.model.name.matches('{cel_pattern(q)}')"
        if q.requires_chat_template:
            rules.append(
                cel(
                    f"!{_SERVES_VLLM} || !{matches} || has(self.model.chatTemplate)",
                    _chat_template_message(q.family),
                    field_path=".model.chatTemplate",
                )
            )
        if q.requires_trust_remote_code:
            rules.append(
                cel(
                    f"!{_SERVES_VLLM} || !{matches} || self.model.trustRemoteCode",
                    _trust_message(q.family),
                    field_path=".model.trustRemoteCode",
                )
            )
    return rules


class RerankPipelineSpec(ApiModel):
    """Desired state of a reranker (run by the operator, or external) and its published Milvus config."""

    model_config = with_cel(*_spec_rules())

    model: ModelSpec = Field(
        description="The reranker model: the one to serve, or with spec.external the one that server serves."
    )
    engine: EngineSpec = Field(
        default_factory=EngineSpec, description="The server the operator runs: vLLM or TEI."
    )
    external: ExternalSpec | None = Field(
        default=None,
        description="A reranker that something else runs (KServe, another cluster, a managed service). The "
        "operator then deploys nothing: it probes this endpoint and publishes it once the canary passes. "
        "Fields that configure pods (engine.*, autoscaling, modelCache, scheduling...) are refused with it.",
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Number of reranker pods. Ignored while spec.autoscaling is set (the autoscaler owns "
        "the count); applied again when it is removed.",
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None,
        description="Let an autoscaler (HorizontalPodAutoscaler or KEDA) size the fleet on vLLM's load. "
        "Without it, replicas applies.",
    )
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="Per-pod GPU, CPU and memory."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pods must match (e.g. a GPU pool)."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=64,
        description="Tolerations for tainted GPU nodes. A toleration for the GPU resource taint is "
        "added automatically when gpus > 0.",
    )
    affinity: dict[str, Any] | None = Field(
        default=None, description="Pod affinity and anti-affinity, as in a Pod spec."
    )
    runtime_class_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="RuntimeClass of the pods, e.g. nvidia.",
    )
    priority_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, description="PriorityClass of the pods."
    )
    model_cache: ModelCacheSpec = Field(
        default_factory=ModelCacheSpec, description="Where the Hugging Face cache lives."
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a Hugging Face token (env HF_TOKEN; for TEI also HF_API_TOKEN, the "
        "name releases before 1.6 read), for gated models.",
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key the server requires (env VLLM_API_KEY for vLLM, API_KEY "
        "for TEI). The operator reads it to probe; it is never published.",
    )
    rollout: RolloutSpec = Field(
        default_factory=RolloutSpec, description="How spec changes replace running pods."
    )
    probe: ProbeSpec = Field(default_factory=ProbeSpec, description="The canary rerank check.")
    publish: PublishSpec = Field(default_factory=PublishSpec, description="The published ranker config.")
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="How Prometheus scrapes the reranker pods' metrics."
    )

    @model_validator(mode="after")
    def _check_engine(self) -> RerankPipelineSpec:
        # mirrors _spec_rules(), in the same order; one problem at a time, naming the field
        problem = self.engine_problem()
        if problem is not None:
            raise ValueError(problem)
        return self

    def engine_problem(self) -> str | None:
        """The first cross-field problem of the engine choice, as ``path: message`` (None when fine)."""
        if self.external is not None:
            for use in WORKLOAD_FIELDS:
                if use.is_set(self):
                    return f"{use.path}: {external_conflict_message(use)}"
            if EXTERNAL_PUBLISH_ENDPOINT.is_set(self):
                return f"{EXTERNAL_PUBLISH_ENDPOINT.path}: {EXTERNAL_PUBLISH_ENDPOINT_MESSAGE}"
        kind = self.engine_kind
        for use, engine, instead in ENGINE_ONLY_FIELDS:
            if kind != engine and use.is_set(self):
                return f"{use.path}: {engine_only_message(use, engine, instead)}"
        metric = self.autoscaling.metric.name if self.autoscaling is not None else None
        if kind == "tei" and metric is not None and metric.startswith("vllm:"):
            return f"autoscaling.metric.name: {TEI_VLLM_METRIC_MESSAGE}"
        if self.external is None and kind == "tei" and self.model.dtype not in TEI_DTYPES:
            return f"model.dtype: {TEI_DTYPE_MESSAGE}"
        if self.external is None and kind == "vllm":
            quirk = self.model.quirk_problem()
            if quirk is not None:
                return f"model.{quirk}"
        return None

    @property
    def engine_kind(self) -> EngineKind:
        """The protocol the reranker speaks: what the canary sends and the provider Milvus is given."""
        return self.external.engine if self.external is not None else self.engine.effective_kind

    @property
    def image(self) -> str:
        """The server image the operator runs (user's, or the engine's pinned default for the nodes)."""
        return self.engine.effective_image(self.resources.gpus)

    @property
    def effective_api_key_ref(self) -> SecretKeyRef | None:
        """The Secret key the server requires: the external server's, or the operator-run one's."""
        return self.external.api_key_secret_ref if self.external is not None else self.api_key_secret_ref
