"""Operator settings from the environment, read in one place.

* ``RERANK_OPERATOR_CLUSTER_DOMAIN``: cluster DNS domain for published endpoints (``cluster.local``).
* ``RERANK_OPERATOR_HOST_OVERRIDES``: the probe's resolver seam, ``host:port=127.0.0.1:port,...``;
  lets tests and the sandbox reach loopback stand-ins. Empty in production (cluster DNS).
* ``RERANK_OPERATOR_HOST_OVERRIDES_FILE``: the same entries in a file re-read when it changes (the
  sandbox's seam for pipelines applied while the operator runs). Unset in production.
* ``RERANK_OPERATOR_RESYNC_SECONDS``: level-based resync period that corrects drift (default 30).
"""

from __future__ import annotations

import os

from rerank_operator.publish.content import DEFAULT_CLUSTER_DOMAIN


def cluster_domain() -> str:
    return os.environ.get("RERANK_OPERATOR_CLUSTER_DOMAIN", "").strip() or DEFAULT_CLUSTER_DOMAIN


def resync_seconds() -> float:
    raw = os.environ.get("RERANK_OPERATOR_RESYNC_SECONDS", "").strip()
    try:
        value = float(raw) if raw else 30.0
    except ValueError:
        return 30.0
    return max(1.0, value)
