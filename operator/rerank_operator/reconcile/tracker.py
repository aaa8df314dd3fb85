"""Probe hysteresis and rolling latency, per pipeline.

``healthy`` flips to True after ``success_threshold`` successes in a row and back to False only
after ``failure_threshold`` failures in a row, so one slow canary does not flap what apps see.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

WINDOW = 50  # latency samples kept for p50/p95


@dataclass
class ProbeTracker:
    healthy: bool = False
    successes: int = 0
    failures: int = 0
    last_reason: str | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    # What status said before a restart: reported until this process has samples of its own, so a
    # restart neither drops the numbers nor writes status just to remove them.
    resumed_percentiles: dict[str, Any] | None = None

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> ProbeTracker:
        """Resume counters and the last percentiles after an operator restart (samples are not persisted)."""
        published = status.get("published") or {}
        return cls(
            healthy=bool(published.get("ready", False)),
            successes=int(status.get("consecutiveSuccesses") or 0),
            failures=int(status.get("consecutiveFailures") or 0),
            last_reason=(status.get("lastProbe") or {}).get("reason"),
            resumed_percentiles=status.get("latency") or None,
        )

    def record(
        self,
        ok: bool,
        reason: str,
        latency_ms: float | None,
        *,
        success_threshold: int,
        failure_threshold: int,
    ) -> None:
        self.last_reason = reason
        if ok:
            self.successes += 1
            self.failures = 0
            if latency_ms is not None:
                self.latencies.append(latency_ms)
            if self.successes >= success_threshold:
                self.healthy = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= failure_threshold:
                self.healthy = False

    def percentiles(self) -> dict[str, Any] | None:
        if not self.latencies:
            return self.resumed_percentiles
        ordered = sorted(self.latencies)
        return {
            "p50Ms": round(_quantile(ordered, 0.50), 3),
            "p95Ms": round(_quantile(ordered, 0.95), 3),
            "samples": len(ordered),
        }


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile: simple, and exact for the small windows kept here."""
    index = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]
