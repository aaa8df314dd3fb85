"""Canary validation and the built-in canary's answerability."""

from __future__ import annotations

import pytest

from rerank_operator.probe import DEFAULT_CANARY, Canary
from rerank_operator.standin.scoring import STOPWORDS, rank, tokenize


def test_default_canary_answer_is_not_first_document() -> None:
    # An echo-the-input server must not pass by accident.
    assert DEFAULT_CANARY.expected_top_index != 0
    assert "Paris" in DEFAULT_CANARY.documents[DEFAULT_CANARY.expected_top_index]


def test_default_canary_is_answered_by_the_lexical_scorer() -> None:
    ranked = rank(DEFAULT_CANARY.query, list(DEFAULT_CANARY.documents))
    assert ranked[0].index == DEFAULT_CANARY.expected_top_index
    assert ranked[0].score > ranked[1].score


def test_default_canary_distractors_share_no_word_with_the_query() -> None:
    query = set(tokenize(DEFAULT_CANARY.query))
    for i, doc in enumerate(DEFAULT_CANARY.documents):
        if i != DEFAULT_CANARY.expected_top_index:
            assert not query & set(tokenize(doc)), doc
    answer = set(tokenize(DEFAULT_CANARY.documents[DEFAULT_CANARY.expected_top_index]))
    assert {"capital", "france"} <= answer - STOPWORDS


def test_documents_are_coerced_to_a_tuple() -> None:
    canary = Canary("q", ["a", "b"], 1)  # type: ignore[arg-type]
    assert canary.documents == ("a", "b")
    assert hash(canary) == hash(Canary("q", ("a", "b"), 1))


@pytest.mark.parametrize(
    ("query", "documents", "top", "match"),
    [
        ("", ("a",), 0, "query"),
        ("   ", ("a",), 0, "query"),
        ("q", (), 0, "at least one document"),
        ("q", ("a", ""), 0, "non-empty strings"),
        ("q", ("a", "b"), 2, "out of range"),
        ("q", ("a", "b"), -1, "out of range"),
        ("q", ("a", "b"), True, "integer"),
    ],
)
def test_invalid_canaries_are_rejected(query: str, documents: tuple[str, ...], top: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Canary(query, documents, top)
