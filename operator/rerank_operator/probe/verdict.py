"""The probe's verdict and its closed reason vocabulary.

Reasons are a fixed set so the operator can count failures by reason (metrics, conditions) without
parsing messages; messages are free-form detail for humans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    """Why a probe passed or failed; the values are CamelCase condition reasons."""

    HEALTHY = "Healthy"
    CONNECTION_REFUSED = "ConnectionRefused"
    TIMEOUT = "Timeout"
    CONNECTION_ERROR = "ConnectionError"
    HTTP_STATUS = "HTTPStatus"
    UNAUTHORIZED = "Unauthorized"
    INVALID_JSON = "InvalidJSON"
    MALFORMED_RESPONSE = "MalformedResponse"
    WRONG_RESULT_COUNT = "WrongResultCount"
    DUPLICATE_INDEX = "DuplicateIndex"
    INDEX_OUT_OF_RANGE = "IndexOutOfRange"
    NON_FINITE_SCORE = "NonFiniteScore"
    WRONG_TOP_DOCUMENT = "WrongTopDocument"
    SLOW_RESPONSE = "SlowResponse"
    MODEL_NOT_LISTED = "ModelNotListed"
    BATCH_LIMIT_EXCEEDED = "BatchLimitExceeded"  # TEI's --max-client-batch-size < the published batch size
    INVALID_ENDPOINT = "InvalidEndpoint"
    ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"


REASONS: tuple[str, ...] = tuple(r.value for r in Reason)
FAILURE_REASONS: tuple[str, ...] = tuple(r.value for r in Reason if r is not Reason.HEALTHY)


def utcnow() -> datetime:
    """Timezone-aware UTC now (naive datetimes are ambiguous once serialised)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProbeVerdict:
    """Outcome of one canary rerank request.

    ``ranking`` lists document indices best first (by score, ties by index); ``scores[i]`` is the score
    of document ``i``. Both are empty when the response was too broken to read them.
    """

    ok: bool
    reason: str
    message: str
    latency_ms: float | None = None
    status_code: int | None = None
    ranking: tuple[int, ...] = ()
    scores: tuple[float, ...] = ()
    model_listed: bool | None = None
    checked_at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (non-finite scores become ``None``; time is ISO 8601 UTC)."""
        return {
            "ok": self.ok,
            "reason": str(self.reason),
            "message": self.message,
            "latencyMs": None if self.latency_ms is None else round(self.latency_ms, 3),
            "statusCode": self.status_code,
            "ranking": list(self.ranking),
            "scores": [s if math.isfinite(s) else None for s in self.scores],
            "modelListed": self.model_listed,
            "checkedAt": self.checked_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


def healthy(message: str, **kw: Any) -> ProbeVerdict:
    """A passing verdict."""
    return ProbeVerdict(ok=True, reason=Reason.HEALTHY, message=message, **kw)


def failed(reason: Reason, message: str, **kw: Any) -> ProbeVerdict:
    """A failing verdict; ``reason`` must not be ``Healthy``."""
    if reason is Reason.HEALTHY:
        raise ValueError("a failed verdict needs a failure reason")
    return ProbeVerdict(ok=False, reason=reason, message=message, **kw)
