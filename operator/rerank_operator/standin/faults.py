"""Fault modes: the ways a real reranker misbehaves, switchable at runtime.

Faults affect only the rerank routes; ``/health`` keeps answering 200 in every mode (except
``loading``, where nothing listens), as vLLM does when inference is broken but the process is up.
In TEI mode (``engine="tei"``) ``http500`` is a failing backend, which TEI's health check runs: there
``/health`` answers 503 and rerank requests 424 (see :mod:`rerank_operator.standin.tei`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from enum import StrEnum


class FaultMode(StrEnum):
    """What the stand-in does to rerank requests."""

    HEALTHY = "healthy"  # correct answers
    HTTP500 = "http500"  # 500 with a vLLM-shaped error body
    SLOW = "slow"  # correct answer after ``delay_s``
    WRONG_COUNT = "wrong_count"  # one result fewer than documents
    NAN = "nan"  # every relevance_score is NaN (emitted as the bare ``NaN`` literal)
    SHUFFLED = "shuffled"  # scores reversed: the best document gets the worst score
    DUPLICATE_INDEX = "duplicate_index"  # the last result repeats the first result's index
    INDEX_OUT_OF_RANGE = "index_out_of_range"  # one index equals len(documents)
    INVALID_JSON = "invalid_json"  # 200 with a body that is not JSON
    MALFORMED = "malformed"  # 200 with JSON lacking ``results``
    NOT_FOUND = "not_found"  # 404 as if the route did not exist
    DROP = "drop"  # read the request, close the connection without answering
    LOADING = "loading"  # not listening at all (connection refused), like vLLM loading weights


MAX_DELAY_S = 600.0


@dataclass(frozen=True)
class Fault:
    """The active mode and its parameters."""

    mode: FaultMode = FaultMode.HEALTHY
    delay_s: float = 0.0  # SLOW: how long to wait before answering

    @classmethod
    def make(cls, mode: str | FaultMode, delay_s: float | None = None) -> Fault:
        """Validated construction (ValueError lists the valid modes)."""
        try:
            fmode = FaultMode(mode)
        except ValueError:
            valid = ", ".join(m.value for m in FaultMode)
            raise ValueError(f"unknown fault mode {mode!r}; valid: {valid}") from None
        delay = 2.0 if delay_s is None and fmode is FaultMode.SLOW else float(delay_s or 0.0)
        if not math.isfinite(delay) or not 0.0 <= delay <= MAX_DELAY_S:
            raise ValueError(f"delay_s must be between 0 and {MAX_DELAY_S:g}")
        return cls(mode=fmode, delay_s=delay)


class FaultState:
    """Thread-safe holder: handler threads read it while tests or the admin route switch it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fault = Fault()

    def get(self) -> Fault:
        with self._lock:
            return self._fault

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._fault = fault
