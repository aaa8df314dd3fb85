"""Pure evaluation of rerank responses against a canary (no I/O, so it is tested exhaustively).

The checks protect Milvus itself, for vLLM's ``{"results": [...]}`` and TEI's bare ``[...]`` alike.
Milvus (2.6.1+) sorts the results of each request by ``index`` and assigns the scores BY POSITION,
without checking the indices or the count: an answer with fewer results than documents (a ``top_n``, a
skipped index) silently shifts scores onto the wrong documents, and one with more panics Milvus' proxy
(``index out of range``); its "%d docs but got %d scores" check cannot fire for these providers. So each
request must answer exactly one result per document it carried, with unique in-range indices and finite
scores. Beyond that, a reranker that answers but ranks the obvious answer below a distractor silently
degrades search quality, which is worse than failing.

Milvus sends at most ``max_client_batch_size`` documents per request; the canary may be split the same
way (see ``ProbeTarget.batches``), and each request's answer is checked against the documents it carried.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from rerank_operator.probe.canary import Canary
from rerank_operator.probe.verdict import ProbeVerdict, Reason, failed, healthy, utcnow

Engine = Literal["vllm", "tei"]
ENGINES: tuple[Engine, ...] = ("vllm", "tei")

_BODY_SNIPPET_CHARS = 200
# TEI's answer to more texts than --max-client-batch-size: 413 ``{"error": "batch size N > maximum
# allowed batch size M", "error_type": "Validation"}``.
_TEI_BATCH_ERROR = re.compile(r"batch size (\d+) > maximum allowed batch size (\d+)")


@dataclass(frozen=True)
class Answer:
    """One HTTP response to a canary request that carried the canary documents ``documents``."""

    status: int
    body: bytes
    documents: range


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


def _check(entries: list[_Entry], documents: range, split: bool) -> list[_Entry]:
    """Count and index checks for one request; returns the entries with canary-wide indices."""
    n = len(documents)
    carried = f" (canary documents {documents.start}..{documents.stop - 1})" if split else ""
    if len(entries) != n:
        raise _Bad(Reason.WRONG_RESULT_COUNT, f"sent {n} documents{carried} but got {len(entries)} results")
    seen: set[int] = set()
    for e in entries:
        if not 0 <= e.index < n:
            raise _Bad(Reason.INDEX_OUT_OF_RANGE, f"result index {e.index} is outside 0..{n - 1}{carried}")
        if e.index in seen:
            raise _Bad(Reason.DUPLICATE_INDEX, f"document index {e.index} appears more than once{carried}")
        seen.add(e.index)
    return [_Entry(index=documents.start + e.index, score=e.score) for e in entries]


def _scores(entries: list[_Entry], n: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Score checks over the whole canary; returns (ranking best first, scores by document index)."""
    scores = [0.0] * n
    for e in entries:
        scores[e.index] = e.score
    bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
    if bad:
        raise _Bad(Reason.NON_FINITE_SCORE, f"non-finite score for document(s) {bad}")
    # Rank by score, never by the order the server listed results in.
    ranking = tuple(sorted(range(n), key=lambda i: (-scores[i], i)))
    return ranking, tuple(scores)


def tei_batch_limit(status: int, body: bytes) -> tuple[int, int] | None:
    """``(batch sent, server's limit)`` when ``body`` is TEI's 413 for a batch over its limit."""
    if status != 413:
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    match = _TEI_BATCH_ERROR.search(error) if isinstance(error, str) else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def batch_limit_message(limit: int, wanted: int, evidence: str) -> str:
    """The ``BatchLimitExceeded`` message: both numbers, where the limit was seen, and the two ways out."""
    return (
        f"BatchLimitExceeded: the TEI server accepts at most {limit} documents per request ({evidence}), "
        f"but Milvus is set to send up to {wanted} (max_client_batch_size): searches that rerank more than "
        f"{limit} candidates fail with 413. Lower spec.publish.maxClientBatchSize to {limit} or less, or "
        f"raise the server's --max-client-batch-size to {wanted} or more"
    )


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
    """Judge one HTTP response to a canary request that carried every canary document."""
    answer = Answer(status, body, range(len(canary.documents)))
    return evaluate_answers([answer], canary, engine, latency_ms, max_latency_ms, checked_at=checked_at)


def evaluate_answers(
    answers: Sequence[Answer],
    canary: Canary,
    engine: Engine = "vllm",
    latency_ms: float | None = None,
    max_latency_ms: int | None = None,
    *,
    max_client_batch_size: int | None = None,
    checked_at: datetime | None = None,
) -> ProbeVerdict:
    """Judge the responses to the canary's requests, in the order sent; ``Healthy`` only if every check
    passes. Sending stops at the first non-200 (as a Milvus search fails there), so ``answers`` cover
    every canary document unless the last one failed. ``latency_ms`` is the time of all of them.

    TEI's 413 for a batch over its ``--max-client-batch-size`` is ``BatchLimitExceeded`` (measured against
    ``max_client_batch_size``, the published batch size, or else the batch the canary sent)."""
    when = checked_at or utcnow()
    common: dict[str, Any] = {"latency_ms": latency_ms, "status_code": None, "checked_at": when}
    split = len(answers) > 1
    entries: list[_Entry] = []
    for answer in answers:
        status, body = answer.status, answer.body
        common["status_code"] = status
        if status in (401, 403):
            return failed(Reason.UNAUTHORIZED, f"Unauthorized {status}: {short_body(body)}", **common)
        batch = tei_batch_limit(status, body) if engine == "tei" else None
        if batch is not None:
            sent, limit = batch
            message = batch_limit_message(limit, max_client_batch_size or sent, f"it refused {sent} with 413")
            return failed(Reason.BATCH_LIMIT_EXCEEDED, message, **common)
        if status != 200:
            return failed(Reason.HTTP_STATUS, f"HTTPStatus {status}: {short_body(body)}", **common)
        try:
            data = json.loads(body)  # Python's parser accepts NaN/Infinity literals, as vLLM may emit them
        except (ValueError, UnicodeDecodeError) as exc:
            return failed(
                Reason.INVALID_JSON, f"InvalidJSON: {exc}; body starts {short_body(body)!r}", **common
            )
        try:
            entries += _check(_entries(data, engine), answer.documents, split)
        except _Bad as bad:
            return failed(bad.reason, f"{bad.reason.value}: {bad.message}", **common)
    n = len(canary.documents)
    covered = sorted(i for a in answers for i in a.documents)
    if covered != list(range(n)):
        raise ValueError(f"the answers cover canary documents {covered}, not 0..{n - 1}")
    try:
        ranking, scores = _scores(entries, n)
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
    requests = f" ({len(answers)} requests, as Milvus splits them)" if split else ""
    return healthy(f"ranked the expected document {want} first of {len(scores)}{took}{requests}", **common)
