"""Settings from the environment: defaults, and what a bad value becomes."""

from __future__ import annotations

import pytest

from rerank_operator.reconcile.slots import DEFAULT_LIMIT
from rerank_operator.settings import max_concurrent_passes


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_LIMIT),
        ("", DEFAULT_LIMIT),
        ("8", 8),
        (" 64 ", 64),
        ("0", 1),
        ("-3", 1),
        ("many", DEFAULT_LIMIT),
    ],
)
def test_max_concurrent_passes(raw: str | None, expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if raw is None:
        monkeypatch.delenv("RERANK_OPERATOR_MAX_CONCURRENT_PASSES", raising=False)
    else:
        monkeypatch.setenv("RERANK_OPERATOR_MAX_CONCURRENT_PASSES", raw)
    assert max_concurrent_passes() == expected


def test_a_bad_value_is_named_in_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("RERANK_OPERATOR_MAX_CONCURRENT_PASSES", "many")
    with caplog.at_level("WARNING"):
        assert max_concurrent_passes() == DEFAULT_LIMIT
    assert "RERANK_OPERATOR_MAX_CONCURRENT_PASSES='many'" in caplog.text
