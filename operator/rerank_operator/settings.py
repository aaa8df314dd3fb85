"""Operator settings from the environment, read in one place.

* ``RERANK_OPERATOR_CLUSTER_DOMAIN``: cluster DNS domain for published endpoints (``cluster.local``).
* ``RERANK_OPERATOR_HOST_OVERRIDES``: the probe's resolver seam, ``host:port=127.0.0.1:port,...``;
  lets tests and the sandbox reach loopback stand-ins. Empty in production (cluster DNS).
* ``RERANK_OPERATOR_HOST_OVERRIDES_FILE``: the same entries in a file re-read when it changes (the
  sandbox's seam for pipelines applied while the operator runs). Unset in production.
* ``RERANK_OPERATOR_RESYNC_SECONDS``: how often each pipeline re-reads what is not watched (Secrets,
  autoscalers, copies in unwatched namespaces) and re-checks everything; each period is jittered by
  +-10% so pipelines do not resync in step (default 600). Watched children are corrected at once.
* ``RERANK_OPERATOR_STATUS_HEARTBEAT_SECONDS``: per-canary status detail (latency, consecutive counts,
  probe time) is written at most this often when nothing else changed (default 600).
* ``RERANK_OPERATOR_MAX_CONCURRENT_PASSES``: passes doing their work at once, over all pipelines; the
  rest wait their turn (default 32, ``reconcile.slots``).
"""

from __future__ import annotations

import logging
import os

from rerank_operator.publish.content import DEFAULT_CLUSTER_DOMAIN
from rerank_operator.reconcile.slots import DEFAULT_LIMIT

log = logging.getLogger(__name__)


def cluster_domain() -> str:
    return os.environ.get("RERANK_OPERATOR_CLUSTER_DOMAIN", "").strip() or DEFAULT_CLUSTER_DOMAIN


def _seconds(name: str, default: float, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using the default, %s", name, raw, default)
        return default
    return max(minimum, value)


def resync_seconds() -> float:
    return _seconds("RERANK_OPERATOR_RESYNC_SECONDS", 600.0, 1.0)


def status_heartbeat_seconds() -> float:
    return _seconds("RERANK_OPERATOR_STATUS_HEARTBEAT_SECONDS", 600.0, 0.0)


def max_concurrent_passes() -> int:
    raw = os.environ.get("RERANK_OPERATOR_MAX_CONCURRENT_PASSES", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_LIMIT
    except ValueError:
        log.warning(
            "RERANK_OPERATOR_MAX_CONCURRENT_PASSES=%r is not a whole number; using the default, %s",
            raw,
            DEFAULT_LIMIT,
        )
        return DEFAULT_LIMIT
    return max(1, value)
