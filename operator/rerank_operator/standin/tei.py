"""TEI (Hugging Face text-embeddings-inference) rerank wire format, as pure functions over parsed JSON.

The stand-in's ``engine="tei"`` mode answers with these; the HTTP layer is in server.py. What is mirrored,
from TEI's router (``router/src/http/server.rs``, ``types.rs``, ``lib.rs``) and core (``tokenization.rs``):

* ``POST /rerank`` takes ``{"query", "texts", "truncate"?, "truncation_direction"?, "raw_scores"?,
  "return_text"?}`` (serde: unknown fields are ignored, so vLLM's ``documents`` body lacks ``texts``) and
  answers a bare array ``[{"index", "score", "text"?}]``, best first.
* Errors are ``{"error": <message>, "error_type": <ErrorType>}`` with the status TEI derives from the type.
  ``ErrorType`` (``router/src/lib.rs``) is a plain ``#[derive(Serialize)]`` enum with no ``rename_all``,
  so the type goes out as the Rust variant name (``"Validation"``, ``"Empty"``, ...), as captured TEI
  answers show; only the OpenAPI examples in ``server.rs`` spell it in lower case.
* A body axum's ``Json`` extractor rejects never reaches TEI's handler: axum answers it in plain text
  (400 bad JSON, 422 wrong shape, 415 no JSON ``Content-Type``), not in TEI's error JSON.
* Checks run in TEI's order: body extraction (axum's ``Json``), empty ``texts``, the client batch limit,
  then per-pair tokenization against ``max_input_length``, then inference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rerank_operator.standin.faults import FaultMode
from rerank_operator.standin.scoring import Scored, relevance, token_count

SPECIAL_TOKENS = 3  # [CLS] query [SEP] text [SEP]: TEI tokenizes each pair as one sequence
DEFAULT_MAX_CLIENT_BATCH_SIZE = 32  # TEI's --max-client-batch-size default
VERSION = "1.8.0-standin"  # what GET /info reports as TEI's version
INFO_MAX_CONCURRENT_REQUESTS = 512  # TEI's --max-concurrent-requests default
INFO_MAX_BATCH_TOKENS = 16384  # TEI's --max-batch-tokens default
TRUNCATION_DIRECTIONS = ("Left", "Right")


class TeiErrorType(StrEnum):
    """TEI's ``ErrorType``; the value is what goes out as ``error_type`` (serde's variant name)."""

    UNHEALTHY = "Unhealthy"
    BACKEND = "Backend"
    OVERLOADED = "Overloaded"
    VALIDATION = "Validation"
    TOKENIZER = "Tokenizer"
    EMPTY = "Empty"


# TEI's ``impl From<&ErrorType> for StatusCode``.
TEI_ERROR_STATUS: dict[TeiErrorType, int] = {
    TeiErrorType.UNHEALTHY: 503,
    TeiErrorType.BACKEND: 424,
    TeiErrorType.OVERLOADED: 429,
    TeiErrorType.TOKENIZER: 422,
    TeiErrorType.VALIDATION: 413,
    TeiErrorType.EMPTY: 400,
}

# axum's ``Json`` extractor rejections happen before TEI's handler runs (no te_* metric is counted).
JSON_SYNTAX_STATUS = 400  # JsonSyntaxError: "Failed to parse the request body as JSON: ..."
JSON_DATA_STATUS = 422  # JsonDataError: "Failed to deserialize the JSON body into the target type: ..."
JSON_CONTENT_TYPE_STATUS = 415  # MissingJsonContentType
REJECTION_CONTENT_TYPE = "text/plain; charset=utf-8"  # axum answers rejections as plain text


class TeiError(Exception):
    """An error answered in TEI's shape. ``status`` defaults to TEI's mapping of ``error_type``.

    ``metric_err`` is the ``err`` label TEI puts on ``te_request_failure`` for it (None: TEI counts no
    failure, as for a NaN score).
    """

    def __init__(
        self,
        error_type: TeiErrorType,
        message: str,
        *,
        status: int | None = None,
        metric_err: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = TEI_ERROR_STATUS[error_type] if status is None else status
        self.metric_err = metric_err

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "error_type": self.error_type.value}


def unhealthy_body() -> dict[str, Any]:
    """``GET /health`` when the backend fails its check: 503 with this body."""
    return TeiError(TeiErrorType.UNHEALTHY, "unhealthy").body()


class JsonRejection(Exception):
    """A body axum's ``Json`` extractor refused: answered in plain text before TEI's handler runs."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> bytes:
        return self.message.encode()


def _rejection(status: int, detail: str) -> JsonRejection:
    prefix = {
        JSON_SYNTAX_STATUS: "Failed to parse the request body as JSON",
        JSON_CONTENT_TYPE_STATUS: "Expected request with `Content-Type: application/json`",
    }.get(status, "Failed to deserialize the JSON body into the target type")
    message = f"{prefix}: {detail}" if detail else prefix
    return JsonRejection(status, message)


def content_type_rejection() -> JsonRejection:
    """axum answers 415 when the request does not say ``Content-Type: application/json``."""
    return _rejection(JSON_CONTENT_TYPE_STATUS, "")


def syntax_rejection(exc: ValueError) -> JsonRejection:
    return _rejection(JSON_SYNTAX_STATUS, str(exc))


def is_json_content_type(value: str | None) -> bool:
    """axum's check: ``application/json`` or ``application/<anything>+json``, parameters ignored."""
    if not value:
        return False
    mime = value.split(";", 1)[0].strip().lower()
    kind, _, sub = mime.partition("/")
    return kind == "application" and (sub == "json" or sub.endswith("+json"))


def _serde_kind(value: Any) -> str:
    """How serde_json names an unexpected value in ``invalid type: <kind>, expected ...``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, list):
        return "sequence"
    return "map"


def _invalid(path: str, value: Any, expected: str) -> JsonRejection:
    return _rejection(JSON_DATA_STATUS, f"{path}: invalid type: {_serde_kind(value)}, expected {expected}")


@dataclass(frozen=True)
class TeiRerankRequest:
    """TEI's ``RerankRequest`` after deserialization (``truncate`` None means "use --auto-truncate")."""

    query: str
    texts: tuple[str, ...]
    truncate: bool | None = None
    truncation_direction: str = "Right"
    raw_scores: bool = False
    return_text: bool = False

    @property
    def documents(self) -> tuple[str, ...]:
        return self.texts


def _bool(data: dict[str, Any], key: str, *, nullable: bool) -> bool | None:
    if key not in data:
        return None
    value = data[key]
    if value is None and nullable:
        return None
    if not isinstance(value, bool):
        raise _invalid(key, value, "a boolean")
    return value


def parse_request(data: Any) -> TeiRerankRequest:
    """Deserialize like serde would into TEI's ``RerankRequest``; failures are axum's 422 rejection."""
    if not isinstance(data, dict):
        raise _rejection(
            JSON_DATA_STATUS, f"invalid type: {_serde_kind(data)}, expected struct RerankRequest"
        )
    for field in ("query", "texts"):  # serde reports the first missing field in declaration order
        if field not in data:
            raise _rejection(JSON_DATA_STATUS, f"missing field `{field}`")
    query, texts = data["query"], data["texts"]
    if not isinstance(query, str):
        raise _invalid("query", query, "a string")
    if not isinstance(texts, list):
        raise _invalid("texts", texts, "a sequence")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise _invalid(f"texts[{i}]", text, "a string")
    truncate = _bool(data, "truncate", nullable=True)
    direction = data.get("truncation_direction", "Right")
    if not isinstance(direction, str):
        raise _invalid("truncation_direction", direction, "enum TruncationDirection")
    if direction not in TRUNCATION_DIRECTIONS:
        raise _rejection(
            JSON_DATA_STATUS,
            f"truncation_direction: unknown variant `{direction}`, expected `Left` or `Right`",
        )
    return TeiRerankRequest(
        query=query,
        texts=tuple(texts),
        truncate=truncate,
        truncation_direction=direction,
        raw_scores=bool(_bool(data, "raw_scores", nullable=False)),
        return_text=bool(_bool(data, "return_text", nullable=False)),
    )


def check_not_empty(req: TeiRerankRequest) -> None:
    """TEI's first handler check: 400 ``Empty`` (before ``te_request_count`` is incremented)."""
    if not req.texts:
        raise TeiError(TeiErrorType.EMPTY, "`texts` cannot be empty", metric_err="validation")


def check_batch_size(req: TeiRerankRequest, max_client_batch_size: int) -> None:
    """More texts than ``--max-client-batch-size``: 413 ``Validation`` (TEI does not split batches)."""
    if len(req.texts) > max_client_batch_size:
        raise TeiError(
            TeiErrorType.VALIDATION,
            f"batch size {len(req.texts)} > maximum allowed batch size {max_client_batch_size}",
            metric_err="batch_size",
        )


def compute_headers(req: TeiRerankRequest, tokens: int, elapsed_ms: int) -> dict[str, str]:
    """The ``x-*`` headers TEI adds to a successful answer (``ResponseMetadata``)."""
    chars = len(req.query) * len(req.texts) + sum(len(t) for t in req.texts)
    return {
        "x-compute-type": "gpu+optimized",
        "x-compute-time": str(elapsed_ms),
        "x-compute-characters": str(chars),
        "x-compute-tokens": str(tokens),
        "x-total-time": str(elapsed_ms),
        "x-tokenization-time": "0",
        "x-queue-time": "0",
        "x-inference-time": str(elapsed_ms),
    }


def prompt_tokens(req: TeiRerankRequest, max_input_length: int, auto_truncate: bool = False) -> int:
    """Tokens over all (query, text) pairs; an overlong pair without truncation is TEI's 413.

    TEI's tokenizer raises ``TextEmbeddingsError::Validation``, shown as "Input validation error: ...",
    which the router maps to ErrorType::Validation (413), not Tokenizer (422).
    """
    truncate = auto_truncate if req.truncate is None else req.truncate
    q = token_count(req.query)
    total = 0
    for text in req.texts:
        n = q + token_count(text) + SPECIAL_TOKENS
        if n > max_input_length and not truncate:
            raise TeiError(
                TeiErrorType.VALIDATION,
                f"Input validation error: `inputs` must have less than {max_input_length} tokens. Given: {n}",
                metric_err="tokenization",
            )
        total += min(n, max_input_length)
    return total


def _logit(p: float) -> float:
    """The raw score a sigmoid turned into ``p`` (TEI's ``raw_scores`` skips the sigmoid)."""
    return math.log(p) - math.log1p(-p)


def rank(req: TeiRerankRequest) -> list[Scored]:
    """All texts, best first, ordered as TEI orders them.

    TEI stable-sorts ascending by score and then reverses, so equal scores come out highest index first
    (vLLM's order, and the stand-in's vLLM mode, put the lowest index first).
    """
    scores = [relevance(req.query, text) for text in req.texts]
    if req.raw_scores:
        scores = [_logit(s) for s in scores]
    ranked = [Scored(i, s) for i, s in enumerate(scores)]
    return sorted(ranked, key=lambda s: (s.score, s.index), reverse=True)


def inference_fault(mode: FaultMode) -> TeiError | None:
    """The error TEI itself answers for an inference-level fault (None: the fault is not one).

    ``http500``: the backend failed (``Backend error: ...``, 424). ``nan``: TEI refuses NaN scores with
    424 ``score is NaN`` rather than serializing them, so a TEI client never sees a NaN score.
    """
    if mode is FaultMode.HTTP500:
        return TeiError(
            TeiErrorType.BACKEND,
            "Backend error: stand-in fault http500: simulated engine failure",
            metric_err="inference",
        )
    if mode is FaultMode.NAN:
        return TeiError(TeiErrorType.BACKEND, "score is NaN")  # TEI's router counts no failure here
    return None


def body(texts: Sequence[str], results: list[Scored], return_text: bool) -> list[dict[str, Any]]:
    """TEI's ``RerankResponse``: a bare array of ``{"index", "score"}`` (``text`` with ``return_text``)."""
    out: list[dict[str, Any]] = []
    for r in results:
        item: dict[str, Any] = {"index": r.index}
        if return_text and 0 <= r.index < len(texts):
            item["text"] = texts[r.index]
        item["score"] = r.score
        out.append(item)
    return out


def info(
    model_id: str, max_input_length: int, max_client_batch_size: int, auto_truncate: bool
) -> dict[str, Any]:
    """``GET /info``: TEI's ``Info`` for a single-label sequence-classification (reranker) model."""
    return {
        "model_id": model_id,
        "model_sha": None,
        "model_dtype": "float32",
        "served_model_name": model_id,  # newer TEI releases (--served-model-name; defaults to the model id)
        "model_type": {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}},
        "max_concurrent_requests": INFO_MAX_CONCURRENT_REQUESTS,
        "max_input_length": max_input_length,
        "max_batch_tokens": INFO_MAX_BATCH_TOKENS,
        "max_batch_requests": None,
        "max_client_batch_size": max_client_batch_size,
        "auto_truncate": auto_truncate,
        "tokenization_workers": 1,
        "version": VERSION,
        "sha": None,
        "docker_label": None,
    }
