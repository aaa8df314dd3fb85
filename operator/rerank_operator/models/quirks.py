"""Known per-model serving quirks of vLLM rerankers.

Kept as data so that a change in vLLM or a new model family is a one-line change here.
The policy (documented in the README):

* overrides that are pure facts about a checkpoint (``--hf-overrides``) are *defaulted* when the
  user gives none, so ``kubectl apply`` of a bare Qwen3-Reranker works;
* a chat template is *required* where scores are near random without one, because we cannot
  guess a template that matches the user's vLLM version;
* executing remote code is never implied: models that need it must set ``trustRemoteCode: true``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelQuirk:
    """What a model family needs beyond ``vllm serve <model> --runner pooling``."""

    family: str
    pattern: re.Pattern[str]
    hf_overrides: dict[str, Any] = field(default_factory=dict)
    requires_chat_template: bool = False
    requires_trust_remote_code: bool = False
    note: str = ""


# Regexes are RE2-compatible on purpose: the same strings are used in CEL rules in the CRD.
QUIRKS: tuple[ModelQuirk, ...] = (
    ModelQuirk(
        family="qwen3-reranker",
        pattern=re.compile(r"(?i)^qwen/qwen3-reranker-"),
        hf_overrides={
            "architectures": ["Qwen3ForSequenceClassification"],
            "classifier_from_token": ["no", "yes"],
            "is_original_qwen3_reranker": True,
        },
        requires_chat_template=True,
        note="original Qwen3-Reranker checkpoints are causal LMs scored via the yes/no tokens",
    ),
    ModelQuirk(
        family="mxbai-rerank-v2",
        pattern=re.compile(r"(?i)^mixedbread-ai/mxbai-rerank-[a-z]+-v2"),
        hf_overrides={
            "architectures": ["Qwen2ForSequenceClassification"],
            "classifier_from_token": ["0", "1"],
            "method": "from_2_way_softmax",
        },
        requires_chat_template=True,
        note="mxbai-rerank-v2 is a Qwen2 causal LM scored via the 0/1 tokens",
    ),
    ModelQuirk(
        family="gte-multilingual-reranker",
        pattern=re.compile(r"(?i)^alibaba-nlp/gte-multilingual-reranker-"),
        hf_overrides={"architectures": ["GteNewForSequenceClassification"]},
    ),
    ModelQuirk(
        family="jina-reranker-v2",
        pattern=re.compile(r"(?i)^jinaai/jina-reranker-v2-"),
        requires_trust_remote_code=True,
        note="ships custom modelling code",
    ),
)


def quirk_for(model_name: str) -> ModelQuirk | None:
    """The quirk entry matching a Hugging Face repo id, if any."""
    for quirk in QUIRKS:
        if quirk.pattern.search(model_name):
            return quirk
    return None


def cel_pattern(quirk: ModelQuirk) -> str:
    """The quirk's regex as a CEL string literal body (RE2 syntax, single-quoted)."""
    return quirk.pattern.pattern.replace("\\", "\\\\").replace("'", "\\'")
