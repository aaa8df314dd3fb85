"""Deterministic lexical relevance: a cross-encoder stand-in that needs no model or GPU.

Each (query, document) pair is scored on its own, like a real cross-encoder, so scores do not depend on
which other documents share the batch (Milvus splits documents into batches of 32).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_WORD = re.compile(r"\w+", re.UNICODE)

# Function words count a little, so "the capital of France" still prefers documents sharing the content
# words; the list is short on purpose (English only, the stand-in is not a search engine).
STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "how",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "with",
    }
)
_STOPWORD_WEIGHT = 0.1


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens."""
    return _WORD.findall(text.lower())


def token_count(text: str) -> int:
    """What the stand-in calls a token (words); used for usage counts and context-length checks."""
    return len(tokenize(text))


def _weight(token: str) -> float:
    return _STOPWORD_WEIGHT if token in STOPWORDS else 1.0


def relevance(query: str, document: str) -> float:
    """Weighted share of distinct query words found in the document, squashed into (0, 1).

    A sigmoid keeps the output shaped like a real cross-encoder's ``relevance_score``; a tiny
    length penalty prefers the shorter of two documents covering the query equally.
    """
    q = set(tokenize(query))
    d = tokenize(document)
    if not q:
        return _sigmoid(-4.0)
    doc_set = set(d)
    total = sum(_weight(t) for t in q)
    matched = sum(_weight(t) for t in q if t in doc_set)
    coverage = matched / total
    return _sigmoid(8.0 * coverage - 4.0 - 0.001 * min(len(d), 1000))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # this form cannot overflow for very negative x
    return e / (1.0 + e)


@dataclass(frozen=True)
class Scored:
    """One ranked result: original document index and its score."""

    index: int
    score: float


def rank(query: str, documents: list[str]) -> list[Scored]:
    """All documents, best first; ties broken by the lower index (stable, deterministic)."""
    scored = [Scored(i, relevance(query, doc)) for i, doc in enumerate(documents)]
    return sorted(scored, key=lambda s: (-s.score, s.index))
