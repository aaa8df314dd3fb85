"""Canary queries: a rerank request whose right answer is known in advance.

A reranker can answer ``/health`` with 200 while inference is broken (vLLM issue 36960), so the only
proof that it works is a real rerank request whose correct top document we know.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Canary:
    """A query, its candidate documents, and the index of the document that must rank first."""

    query: str
    documents: tuple[str, ...]
    expected_top_index: int

    def __post_init__(self) -> None:
        if not isinstance(self.documents, tuple):
            # Accept any sequence from callers but keep the dataclass hashable and immutable.
            object.__setattr__(self, "documents", tuple(self.documents))
        if not self.query.strip():
            raise ValueError("canary query must not be empty")
        if not self.documents:
            raise ValueError("canary needs at least one document")
        if any(not isinstance(d, str) or not d.strip() for d in self.documents):
            raise ValueError("canary documents must be non-empty strings")
        if isinstance(self.expected_top_index, bool) or not isinstance(self.expected_top_index, int):
            raise ValueError("expected_top_index must be an integer")
        if not 0 <= self.expected_top_index < len(self.documents):
            raise ValueError(
                f"expected_top_index {self.expected_top_index} is out of range for "
                f"{len(self.documents)} document(s)"
            )


# The answer sits at index 1 (not 0) so a server that echoes the input order with equal scores fails.
# The distractors share no word with the query, so a lexical-overlap scorer (the stand-in) also gets it
# right, while any real cross-encoder finds it trivially.
DEFAULT_CANARY = Canary(
    query="What is the capital of France?",
    documents=(
        "Bananas contain potassium and dietary fiber.",
        "Paris is the capital and largest city of France.",
        "A binary search tree keeps its keys in sorted order.",
        "Photosynthesis lets green plants turn sunlight into chemical energy.",
    ),
    expected_top_index=1,
)
