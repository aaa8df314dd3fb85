"""Per-model vLLM quirks: matching, defaults, requirements, and the CEL form of the patterns."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.models.quirks import QUIRKS, ModelQuirk, cel_pattern, quirk_for
from rerank_operator.render import serve_args

Problems = Callable[[dict[str, Any]], list[str]]
MakeBody = Callable[..., dict[str, Any]]
MakePipeline = Callable[..., RerankPipeline]

TEMPLATE = "{{ messages[0]['content'] }} / {{ messages[1]['content'] }}"
QWEN3_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}

MATCHES: list[tuple[str, str | None]] = [
    ("Qwen/Qwen3-Reranker-0.6B", "qwen3-reranker"),
    ("Qwen/Qwen3-Reranker-4B", "qwen3-reranker"),
    ("qwen/qwen3-reranker-8b", "qwen3-reranker"),  # Hugging Face ids are case-insensitive
    ("Qwen/Qwen3-Embedding-0.6B", None),
    ("someone/Qwen3-Reranker-0.6B", None),  # anchored at the org: a re-upload may already be converted
    ("tomaarsen/Qwen3-Reranker-0.6B-seq-cls", None),
    ("mixedbread-ai/mxbai-rerank-base-v2", "mxbai-rerank-v2"),
    ("mixedbread-ai/mxbai-rerank-large-v2", "mxbai-rerank-v2"),
    ("mixedbread-ai/mxbai-rerank-large-v1", None),
    ("Alibaba-NLP/gte-multilingual-reranker-base", "gte-multilingual-reranker"),
    ("jinaai/jina-reranker-v2-base-multilingual", "jina-reranker-v2"),
    ("jinaai/jina-reranker-v1-turbo-en", None),
    ("BAAI/bge-reranker-base", None),
    ("BAAI/bge-reranker-large", None),
    ("BAAI/bge-reranker-v2-m3", None),
    ("cross-encoder/ms-marco-MiniLM-L-6-v2", None),
]


@pytest.mark.parametrize(("name", "family"), MATCHES)
def test_quirk_for(name: str, family: str | None) -> None:
    quirk = quirk_for(name)
    assert (quirk.family if quirk else None) == family


def test_quirk_families_are_unique_and_patterns_case_insensitive() -> None:
    families = [q.family for q in QUIRKS]
    assert len(families) == len(set(families))
    for quirk in QUIRKS:
        assert quirk.pattern.flags & re.IGNORECASE, quirk.family
        assert quirk.pattern.pattern.removeprefix("(?i)").startswith("^"), f"{quirk.family} must be anchored"


# ------------------------------------------------------------------------------- Qwen3-Reranker
def test_qwen3_without_chat_template_is_rejected_with_a_clear_message(
    make_body: MakeBody, problems: Problems
) -> None:
    [line] = problems(make_body(model={"name": "Qwen/Qwen3-Reranker-0.6B"}))
    assert line == (
        "spec.model.chatTemplate: qwen3-reranker models need spec.model.chatTemplate "
        "(without it scores are near random)"
    )


def test_qwen3_gets_default_hf_overrides_when_unset(make_pipeline: MakePipeline) -> None:
    model = make_pipeline(model={"name": "Qwen/Qwen3-Reranker-0.6B", "chatTemplate": TEMPLATE}).spec.model
    assert model.hf_overrides is None  # the spec stays as written ...
    assert model.effective_hf_overrides == QWEN3_OVERRIDES  # ... the quirk fills in what vLLM needs


def test_qwen3_default_overrides_reach_the_command_line(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(model={"name": "Qwen/Qwen3-Reranker-0.6B", "chatTemplate": TEMPLATE})
    args = serve_args(pipeline)
    assert json.loads(args[args.index("--hf-overrides") + 1]) == QWEN3_OVERRIDES
    assert "--chat-template" in args
    assert "--trust-remote-code" not in args  # never implied


def test_user_overrides_win_without_merging(make_pipeline: MakePipeline) -> None:
    mine = {"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["No", "Yes"]}
    model = make_pipeline(
        model={"name": "Qwen/Qwen3-Reranker-4B", "chatTemplate": TEMPLATE, "hfOverrides": mine}
    ).spec.model
    assert model.effective_hf_overrides == mine
    assert "is_original_qwen3_reranker" not in (model.effective_hf_overrides or {})


def test_empty_user_overrides_switch_the_defaults_off(make_pipeline: MakePipeline) -> None:
    """For an already converted checkpoint: ``hfOverrides: {}`` means "none", not "the defaults"."""
    pipeline = make_pipeline(
        model={"name": "Qwen/Qwen3-Reranker-0.6B", "chatTemplate": TEMPLATE, "hfOverrides": {}}
    )
    assert pipeline.spec.model.effective_hf_overrides == {}
    assert "--hf-overrides" not in serve_args(pipeline)


def test_effective_overrides_are_a_copy(make_pipeline: MakePipeline) -> None:
    model = make_pipeline(model={"name": "Qwen/Qwen3-Reranker-0.6B", "chatTemplate": TEMPLATE}).spec.model
    overrides = model.effective_hf_overrides
    assert overrides is not None
    overrides["architectures"] = ["Broken"]
    assert model.effective_hf_overrides == QWEN3_OVERRIDES
    qwen = quirk_for("Qwen/Qwen3-Reranker-0.6B")
    assert qwen is not None
    assert qwen.hf_overrides == QWEN3_OVERRIDES


# ----------------------------------------------------------------------------------- the others
def test_mxbai_v2_needs_a_template_and_gets_overrides(make_body: MakeBody, problems: Problems) -> None:
    [line] = problems(make_body(model={"name": "mixedbread-ai/mxbai-rerank-base-v2"}))
    assert line.startswith("spec.model.chatTemplate: mxbai-rerank-v2 models need")
    pipeline = RerankPipeline.from_body(
        make_body(model={"name": "mixedbread-ai/mxbai-rerank-base-v2", "chatTemplate": TEMPLATE})
    )
    assert pipeline.spec.model.effective_hf_overrides == {
        "architectures": ["Qwen2ForSequenceClassification"],
        "classifier_from_token": ["0", "1"],
        "method": "from_2_way_softmax",
    }


def test_jina_v2_needs_trust_remote_code(make_body: MakeBody, problems: Problems) -> None:
    name = "jinaai/jina-reranker-v2-base-multilingual"
    [line] = problems(make_body(model={"name": name}))
    assert line == (
        "spec.model.trustRemoteCode: jina-reranker-v2 models ship custom code: "
        "set spec.model.trustRemoteCode: true to allow it"
    )
    assert problems(make_body(model={"name": name, "trustRemoteCode": False})) == [line]
    pipeline = RerankPipeline.from_body(make_body(model={"name": name, "trustRemoteCode": True}))
    assert pipeline.spec.model.effective_hf_overrides is None
    assert "--trust-remote-code" in serve_args(pipeline)
    assert "--hf-overrides" not in serve_args(pipeline)


def test_gte_gets_overrides_and_needs_nothing_else(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(model={"name": "Alibaba-NLP/gte-multilingual-reranker-base"})
    assert pipeline.spec.model.effective_hf_overrides == {
        "architectures": ["GteNewForSequenceClassification"]
    }
    args = serve_args(pipeline)
    assert json.loads(args[args.index("--hf-overrides") + 1]) == {
        "architectures": ["GteNewForSequenceClassification"]
    }
    assert "--chat-template" not in args
    assert "--trust-remote-code" not in args


@pytest.mark.parametrize(
    "name", ["BAAI/bge-reranker-base", "BAAI/bge-reranker-v2-m3", "cross-encoder/ms-marco-MiniLM-L-6-v2"]
)
def test_plain_cross_encoders_need_nothing(make_pipeline: MakePipeline, name: str) -> None:
    pipeline = make_pipeline(model={"name": name})
    assert pipeline.spec.model.effective_hf_overrides is None
    args = serve_args(pipeline)
    for flag in ("--hf-overrides", "--chat-template", "--trust-remote-code", "--convert"):
        assert flag not in args


def test_quirks_are_data_for_every_requirement() -> None:
    """Each quirk asks for at least one thing, and a template requirement comes with overrides."""
    for quirk in QUIRKS:
        assert quirk.hf_overrides or quirk.requires_chat_template or quirk.requires_trust_remote_code
        if quirk.requires_chat_template:
            assert quirk.hf_overrides, quirk.family


# --------------------------------------------------------------------------------- CEL patterns
def test_cel_pattern_escapes_backslashes_and_quotes() -> None:
    quirk = ModelQuirk(family="odd", pattern=re.compile(r"^a\.b'c"))
    assert cel_pattern(quirk) == "^a\\\\.b\\'c"


def test_quirk_patterns_are_re2_compatible() -> None:
    re2 = pytest.importorskip("re2", reason="google-re2 (a cel-python dependency) checks RE2 syntax")
    for quirk in QUIRKS:
        re2.compile(quirk.pattern.pattern)


@pytest.mark.parametrize(("name", "family"), MATCHES)
def test_cel_matches_agrees_with_python(name: str, family: str | None) -> None:
    """The apiserver evaluates the same regexes with CEL's matches(); it must pick the same models."""
    celpy = pytest.importorskip("celpy", reason="cel-python evaluates CEL offline")
    env = celpy.Environment()
    for quirk in QUIRKS:
        program = env.program(env.compile(f"self.matches('{cel_pattern(quirk)}')"))
        matched = bool(program.evaluate({"self": celpy.celtypes.StringType(name)}))
        assert matched == (quirk.family == family), (quirk.family, name)
