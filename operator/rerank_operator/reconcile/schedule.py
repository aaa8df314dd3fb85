"""When a pipeline's next pass runs, and what wakes it (no Kubernetes, no kopf; ``reconcile.runner``
runs the passes).

A pass runs when something happened, or when something is due; never on a tick:

* ``CHANGE``: a watch event for the pipeline (a new generation, deletion) or for one of its children,
  copies or pods, or for a grant of a namespace it publishes into. Events arriving within
  ``COALESCE_SECONDS`` share one pass (a rollout brings bursts: pod created, scheduled, ready);
* ``PROBE``: the canary's interval has passed (``probe.intervalSeconds``);
* ``RESYNC``: the long, jittered period after which unwatched objects are read again;
* ``RETRY``: a failed pass (backoff), or a child that was rejected or is someone else's (whose fix
  may be invisible to the watches);
* ``DRAIN``: a BlueGreen revision's drain ends, and it is deleted.

Only ``PROBE`` passes trust remembered unwatched objects: see ``reconcile.view``.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

COALESCE_SECONDS = 0.05  # kopf 1.45 hands over every event at once (it no longer batches them)
APPLY_ERROR_RETRY_SECONDS = 60.0  # a rejected or foreign child: how often it is tried again
MIN_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
RESYNC_JITTER = 0.1  # each resync period is drawn from +-10% around the configured one


class Trigger(enum.Enum):
    CHANGE = "change"
    PROBE = "probe"
    RESYNC = "resync"
    RETRY = "retry"
    DRAIN = "drain"

    @property
    def refreshes(self) -> bool:
        """Whether the pass reads unwatched objects again (see ``reconcile.view.CachedReads``)."""
        return self is not Trigger.PROBE


def jittered(period: float, rng: random.Random | None = None) -> float:
    return period * (rng or random).uniform(1 - RESYNC_JITTER, 1 + RESYNC_JITTER)


@dataclass
class Schedule:
    """The due times (monotonic seconds) of one pipeline's passes (``reconcile.runner`` keeps them)."""

    resync_seconds: float
    next_resync: float
    retry_at: float | None = None
    backoff: float = MIN_BACKOFF_SECONDS

    @classmethod
    def starting(cls, now: float, resync_seconds: float) -> Schedule:
        return cls(resync_seconds=resync_seconds, next_resync=now + jittered(resync_seconds))

    def passed(self, now: float, trigger: Trigger) -> None:
        """A pass succeeded."""
        self.retry_at = None
        self.backoff = MIN_BACKOFF_SECONDS
        if trigger is Trigger.RESYNC or now >= self.next_resync:
            self.next_resync = now + jittered(self.resync_seconds)

    def failed(self, now: float) -> float:
        """A pass failed: retried after a growing delay (returned)."""
        delay = self.backoff
        self.retry_at = now + delay
        self.backoff = min(self.backoff * 2, MAX_BACKOFF_SECONDS)
        return delay

    def next_due(
        self,
        *,
        last_pass: float,
        last_probe: float | None,
        probe_interval: float,
        apply_errors: bool,
        drain_due: float | None = None,
    ) -> tuple[float, Trigger]:
        """The earliest due time and why. A pipeline never probed (invalid, or nothing to probe yet)
        counts from its last pass, so nothing is ever due "now" over and over."""
        due = [
            ((last_probe if last_probe is not None else last_pass) + probe_interval, Trigger.PROBE),
            (self.next_resync, Trigger.RESYNC),
        ]
        if self.retry_at is not None:
            due.append((self.retry_at, Trigger.RETRY))
        if apply_errors:
            due.append((last_pass + APPLY_ERROR_RETRY_SECONDS, Trigger.RETRY))
        if drain_due is not None:  # a second late, so the pass finds the drain over
            due.append((max(drain_due + 1.0, last_pass), Trigger.DRAIN))
        return min(due, key=lambda d: d[0])
