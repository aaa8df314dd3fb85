"""vLLM / TEI rerank wire format, as pure functions over parsed JSON (the HTTP layer is in server.py).

Mirrors vLLM's ``RerankRequest``/``RerankResponse`` closely enough that Milvus (``/rerank``, no model),
Milvus Lite (Cohere-style ``/v2/rerank`` with ``model`` and ``top_n``) and the probe all see what a real
vLLM would answer, including its 400/404 errors.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, replace
from typing import Any

from rerank_operator.standin.faults import FaultMode
from rerank_operator.standin.scoring import Scored, rank, token_count

_SPECIAL_TOKENS = 3  # [CLS] query [SEP] document [SEP]


class ApiError(Exception):
    """An error answered in vLLM's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    TYPES = {400: "BadRequestError", 401: "Unauthorized", 404: "NotFoundError", 500: "InternalServerError"}

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    def body(self, tei: bool = False) -> dict[str, Any]:
        if tei:  # TEI's flat shape
            return {"error": self.message, "error_type": "Validation" if self.status == 400 else "Backend"}
        kind = self.TYPES.get(self.status, "Error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.status}}


@dataclass(frozen=True)
class RerankRequest:
    """A parsed request; ``tei`` is True for TEI's ``{"query", "texts"}`` body."""

    query: str
    documents: tuple[str, ...]
    model: str | None = None
    top_n: int = 0
    truncate_prompt_tokens: int | None = None
    tei: bool = False
    return_text: bool = False


def _require(cond: bool, message: str, param: str) -> None:
    if not cond:
        raise ApiError(400, message, param)


def parse_request(data: Any) -> RerankRequest:
    """Validate a decoded JSON body like vLLM's pydantic model (extra fields are ignored)."""
    _require(isinstance(data, dict), "request body must be a JSON object", "body")
    tei = "texts" in data and "documents" not in data
    key = "texts" if tei else "documents"
    query, docs = data.get("query"), data.get(key)
    _require(isinstance(query, str), "'query' must be a string", "query")
    _require(
        isinstance(docs, list) and all(isinstance(d, str) for d in docs),
        f"'{key}' must be a list of strings",
        key,
    )
    model = data.get("model")
    _require(model is None or isinstance(model, str), "'model' must be a string", "model")
    top_n = data.get("top_n") or 0
    _require(isinstance(top_n, int) and not isinstance(top_n, bool), "'top_n' must be an integer", "top_n")
    tpt = data.get("truncate_prompt_tokens")
    _require(
        tpt is None or (isinstance(tpt, int) and not isinstance(tpt, bool) and tpt >= -1),
        "'truncate_prompt_tokens' must be an integer >= -1",
        "truncate_prompt_tokens",
    )
    if tei and data.get("truncate") is True:
        tpt = -1  # TEI truncates to the model limit
    return RerankRequest(
        query=query,
        documents=tuple(docs),
        model=model,
        top_n=top_n,
        truncate_prompt_tokens=tpt,
        tei=tei,
        return_text=data.get("return_text") is True,
    )


def check_model(req: RerankRequest, served_model: str) -> None:
    """vLLM answers 404 for a model name it does not serve; no name means "the only model"."""
    if req.model is not None and req.model != served_model:
        raise ApiError(404, f"The model `{req.model}` does not exist.", "model")


def prompt_tokens(req: RerankRequest, max_model_len: int) -> int:
    """Total prompt tokens, enforcing vLLM's context-length rule (400 unless truncation is asked for)."""
    limit = max_model_len
    if req.truncate_prompt_tokens is not None and req.truncate_prompt_tokens != -1:
        if req.truncate_prompt_tokens > max_model_len:
            raise ApiError(
                400,
                f"truncate_prompt_tokens value ({req.truncate_prompt_tokens}) is greater than "
                f"max_model_len ({max_model_len}). Please, select a smaller truncation size.",
                "truncate_prompt_tokens",
            )
        limit = req.truncate_prompt_tokens
    total = 0
    q = token_count(req.query)
    for doc in req.documents:
        n = q + token_count(doc) + _SPECIAL_TOKENS
        if n > max_model_len and req.truncate_prompt_tokens is None:
            raise ApiError(
                400,
                f"This model's maximum context length is {max_model_len} tokens. However, you requested "
                f"{n} tokens in the input for rerank. Please reduce the length of the input.",
                "documents",
            )
        total += min(n, limit)
    return total


def apply_fault(results: list[Scored], mode: FaultMode, n_documents: int) -> list[Scored]:
    """Corrupt a correct ranking the way ``mode`` says (modes that are not about the body pass through)."""
    if not results:
        return results
    if mode is FaultMode.WRONG_COUNT:
        return results[:-1]
    if mode is FaultMode.NAN:
        return [replace(r, score=math.nan) for r in results]
    if mode is FaultMode.SHUFFLED:
        worst_first = [r.score for r in reversed(results)]
        flipped = [Scored(r.index, s) for r, s in zip(results, worst_first, strict=True)]
        return sorted(flipped, key=lambda s: (-s.score, s.index))
    if mode is FaultMode.DUPLICATE_INDEX:
        dup = Scored(results[0].index, results[-1].score)
        return [*results[:-1], dup] if len(results) > 1 else [*results, dup]
    if mode is FaultMode.INDEX_OUT_OF_RANGE:
        return [*results[:-1], Scored(n_documents, results[-1].score)]
    return results


def rerank_results(req: RerankRequest, mode: FaultMode) -> list[Scored]:
    """Score, cut to ``top_n`` (0 or negative: all, as vLLM), then apply the body fault."""
    ranked = rank(req.query, list(req.documents))
    if req.top_n > 0:
        ranked = ranked[: req.top_n]
    return apply_fault(ranked, mode, len(req.documents))


def vllm_body(req: RerankRequest, results: list[Scored], served_model: str, tokens: int) -> dict[str, Any]:
    """vLLM's RerankResponse (also what Cohere clients read: ``results[].index/relevance_score``)."""

    def text(i: int) -> str:
        return req.documents[i] if 0 <= i < len(req.documents) else ""

    return {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": served_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "results": [
            {"index": r.index, "document": {"text": text(r.index)}, "relevance_score": r.score}
            for r in results
        ],
    }


def tei_body(req: RerankRequest, results: list[Scored]) -> list[dict[str, Any]]:
    """TEI's bare array ``[{"index", "score"}]`` (``text`` only when ``return_text``)."""
    out: list[dict[str, Any]] = []
    for r in results:
        item: dict[str, Any] = {"index": r.index, "score": r.score}
        if req.return_text and 0 <= r.index < len(req.documents):
            item["text"] = req.documents[r.index]
        out.append(item)
    return out


def dumps(payload: Any) -> bytes:
    """JSON bytes; NaN goes out as the bare ``NaN`` literal, as Python-based servers emit it."""
    return json.dumps(payload, allow_nan=True).encode()
