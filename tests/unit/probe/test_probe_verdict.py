"""Verdict serialisation and the reason vocabulary."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rerank_operator.probe import FAILURE_REASONS, REASONS, ProbeVerdict, Reason
from rerank_operator.probe.verdict import failed, healthy

DOCUMENTED = {
    "ConnectionRefused",
    "Timeout",
    "ConnectionError",
    "HTTPStatus",
    "Unauthorized",
    "InvalidJSON",
    "MalformedResponse",
    "WrongResultCount",
    "DuplicateIndex",
    "IndexOutOfRange",
    "NonFiniteScore",
    "WrongTopDocument",
    "SlowResponse",
    "ModelNotListed",
    "BatchLimitExceeded",
    "InvalidEndpoint",
    "EndpointNotAllowed",
}


def test_reason_vocabulary_is_closed_and_camel_case() -> None:
    assert set(FAILURE_REASONS) == DOCUMENTED
    assert set(REASONS) == DOCUMENTED | {"Healthy"}
    assert all(r[0].isupper() and r.isalnum() for r in REASONS)


def test_to_dict_is_strict_json() -> None:
    v = failed(
        Reason.NON_FINITE_SCORE,
        "m",
        scores=(0.5, math.nan, math.inf),
        ranking=(0, 1, 2),
        latency_ms=1.23456,
        status_code=200,
    )
    d = v.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["scores"] == [0.5, None, None]
    assert d["reason"] == "NonFiniteScore"
    assert type(d["reason"]) is str
    assert d["latencyMs"] == 1.235
    assert d["statusCode"] == 200
    assert d["ranking"] == [0, 1, 2]


def test_checked_at_is_utc_iso() -> None:
    v = healthy("fine", checked_at=datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert v.to_dict()["checkedAt"] == "2026-05-01T12:00:00Z"
    assert ProbeVerdict(ok=True, reason="Healthy", message="").checked_at.tzinfo is UTC


def test_failed_needs_a_failure_reason() -> None:
    with pytest.raises(ValueError, match="failure reason"):
        failed(Reason.HEALTHY, "x")
