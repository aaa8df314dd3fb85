"""Pure evaluation of a rerank response against a canary (no I/O, so it is tested exhaustively).

The checks mirror what breaks a Milvus search: Milvus reads ``results[].index`` and
``results[].relevance_score`` and fails on a count mismatch; a reranker that answers but ranks the
obvious answer below a distractor silently degrades search quality, which is worse.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rerank_operator.probe.canary import Canary
from rerank_operator.probe.verdict import ProbeVerdict, Reason, failed, healthy, utcnow

Engine = Literal["vllm", "tei"]
ENGINES: tuple[Engine, ...] = ("vllm", "tei")

_BODY_SNIPPET_CHARS = 200


@dataclass(frozen=True)
class _Entry:
    index: int
    score: float


class _Bad(Exception):
    """Internal: the response fails a check; carries the verdict reason."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def short_body(body: bytes) -> str:
    """A one-line excerpt of an error body, preferring the message field of known error shapes."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):  # vLLM >= 0.10.1
            text = err["message"]
        elif isinstance(err, str):  # TEI, vLLM's 401
            text = err
        elif isinstance(data.get("message"), str):  # older vLLM flat error
            text = data["message"]
        elif isinstance(data.get("detail"), str):  # FastAPI default (unknown route)
            text = data["detail"]
    text = re.sub(r"\s+", " ", text).strip()
    text = "".join(ch for ch in text if ch.isprintable())  # no control or escape sequences in status
    if len(text) > _BODY_SNIPPET_CHARS:
        text = text[: _BODY_SNIPPET_CHARS - 3] + "..."
    return text or "<empty body>"


def _as_score(value: Any, where: str) -> float:
    """Scores must be JSON numbers; ``NaN``/``Infinity`` (literal or string) are non-finite, not malformed."""
    if isinstance(value, bool):
        raise _Bad(Reason.MALFORMED_RESPONSE, f"{where}: score is a boolean, not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            raise _Bad(Reason.MALFORMED_RESPONSE, f"{where}: score {value!r} is not a number") from None
        if not math.isfinite(parsed):
            return parsed
        raise _Bad(Reason.MALFORMED_RESPONSE, f"{where}: score is a string ({value!r}), not a number")
    raise _Bad(Reason.MALFORMED_RESPONSE, f"{where}: score is {type(value).__name__}, not a number")


def _entries(data: Any, engine: Engine) -> list[_Entry]:
    """Extract (index, score) pairs from the engine's response shape."""
    if engine == "tei":
        items, score_key = data, "score"
        if not isinstance(items, list):
            raise _Bad(Reason.MALFORMED_RESPONSE, "TEI response is not a JSON array")
    else:
        score_key = "relevance_score"
        if not isinstance(data, dict):
            raise _Bad(Reason.MALFORMED_RESPONSE, "response is not a JSON object")
        items = data.get("results")
        if not isinstance(items, list):
            raise _Bad(Reason.MALFORMED_RESPONSE, "response has no 'results' array")
    out: list[_Entry] = []
    for pos, item in enumerate(items):
        where = f"result {pos}"
        if not isinstance(item, dict):
            raise _Bad(Reason.MALFORMED_RESPONSE, f"{where} is not an object")
        if "index" not in item or score_key not in item:
            raise _Bad(Reason.MALFORMED_RESPONSE, f"{where} lacks 'index' or '{score_key}'")
        index = item["index"]
        if isinstance(index, bool) or not isinstance(index, int):
            raise _Bad(Reason.MALFORMED_RESPONSE, f"{where}: index {index!r} is not an integer")
        out.append(_Entry(index=index, score=_as_score(item[score_key], where)))
    return out


def _check(entries: list[_Entry], canary: Canary) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Count, index and score checks; returns (ranking best first, scores by document index)."""
    n = len(canary.documents)
    if len(entries) != n:
        raise _Bad(Reason.WRONG_RESULT_COUNT, f"sent {n} documents but got {len(entries)} results")
    seen: set[int] = set()
    for e in entries:
        if not 0 <= e.index < n:
            raise _Bad(Reason.INDEX_OUT_OF_RANGE, f"result index {e.index} is outside 0..{n - 1}")
        if e.index in seen:
            raise _Bad(Reason.DUPLICATE_INDEX, f"document index {e.index} appears more than once")
        seen.add(e.index)
    scores = [0.0] * n
    for e in entries:
        scores[e.index] = e.score
    bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
    if bad:
        raise _Bad(Reason.NON_FINITE_SCORE, f"non-finite score for document(s) {bad}")
    # Rank by score, never by the order the server listed results in.
    ranking = tuple(sorted(range(n), key=lambda i: (-scores[i], i)))
    return ranking, tuple(scores)


def evaluate_response(
    status: int,
    body: bytes,
    canary: Canary,
    engine: Engine = "vllm",
    latency_ms: float | None = None,
    max_latency_ms: int | None = None,
    *,
    checked_at: datetime | None = None,
) -> ProbeVerdict:
    """Judge one HTTP response to the canary request; ``Healthy`` only if every check passes."""
    when = checked_at or utcnow()
    common: dict[str, Any] = {"latency_ms": latency_ms, "status_code": status, "checked_at": when}
    if status in (401, 403):
        return failed(Reason.UNAUTHORIZED, f"Unauthorized {status}: {short_body(body)}", **common)
    if status != 200:
        return failed(Reason.HTTP_STATUS, f"HTTPStatus {status}: {short_body(body)}", **common)
    try:
        data = json.loads(body)  # Python's parser accepts NaN/Infinity literals, as vLLM may emit them
    except (ValueError, UnicodeDecodeError) as exc:
        return failed(Reason.INVALID_JSON, f"InvalidJSON: {exc}; body starts {short_body(body)!r}", **common)
    try:
        ranking, scores = _check(_entries(data, engine), canary)
    except _Bad as bad:
        return failed(bad.reason, f"{bad.reason.value}: {bad.message}", **common)
    common.update(ranking=ranking, scores=scores)
    top, want = ranking[0], canary.expected_top_index
    rivals = [i for i in range(len(scores)) if i != want and scores[i] >= scores[want]]
    if rivals:
        return failed(
            Reason.WRONG_TOP_DOCUMENT,
            f"WrongTopDocument: expected document {want} to rank first, but document(s) {rivals} "
            f"scored at least as high ({scores[rivals[0]]:.4g} >= {scores[want]:.4g}); top was {top}",
            **common,
        )
    if max_latency_ms is not None and latency_ms is not None and latency_ms > max_latency_ms:
        return failed(
            Reason.SLOW_RESPONSE,
            f"SlowResponse: correct answer but took {latency_ms:.0f} ms (limit {max_latency_ms} ms)",
            **common,
        )
    took = "" if latency_ms is None else f" in {latency_ms:.0f} ms"
    return healthy(f"ranked the expected document {want} first of {len(scores)}{took}", **common)
