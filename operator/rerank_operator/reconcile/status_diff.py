"""Which status changes are state and which are per-canary detail (pure).

Every canary round changes ``lastProbe.time``, its latency, the latency percentiles and the consecutive
counters. Writing those each round would make every idle pipeline an etcd write and a watch event for
every watcher (Argo CD, Flux, the operator itself) every ``probe.intervalSeconds``. So status is
written when :func:`essential` changes (a verdict, a reason, a condition, the published config, the
replica counts) and per-canary detail only rides along, or is refreshed by a heartbeat
(``RERANK_OPERATOR_STATUS_HEARTBEAT_SECONDS``). The metrics keep every round.
"""

from __future__ import annotations

import copy
from typing import Any

DETAIL_FIELDS = ("latency", "consecutiveSuccesses", "consecutiveFailures")
DETAIL_PROBE_FIELDS = ("time", "latencyMs", "message")


def essential(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` without its per-canary detail. The canary's message may quote numbers (a latency, a
    score) that differ each round; it is left out of the conditions that repeat it as well, while
    their reasons (the verdict) stay."""
    out = copy.deepcopy(status)
    for key in DETAIL_FIELDS:
        out.pop(key, None)
    probe = out.get("lastProbe")
    message = ""
    if isinstance(probe, dict):
        message = str(probe.get("message") or "")
        for key in DETAIL_PROBE_FIELDS:
            probe.pop(key, None)
    if message:
        for condition in out.get("conditions") or []:
            if isinstance(condition, dict) and isinstance(condition.get("message"), str):
                condition["message"] = condition["message"].replace(message, "<canary message>")
    return out
