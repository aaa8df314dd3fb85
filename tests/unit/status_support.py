"""Statuses as the operator writes them, for the GitOps health checks (Argo CD Lua, kstatus).

``observation()`` builds a ``reconcile.decide.Observation`` of a verified pipeline (a rolled-out
Deployment, a passing canary, the current generation published); keyword arguments replace fields.
``valid_status``/``invalid_status`` are the operator's own status assembly (``reconcile.decide``),
re-exported with a fixed clock.

A plain module, not conftest fixtures: the tests use these values in ``pytest.mark.parametrize``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rerank_operator.publish import PublishedConfig
from rerank_operator.reconcile import decide
from rerank_operator.reconcile.decide import Observation
from rerank_operator.reconcile.workload import WorkloadState

NOW = "2026-01-01T00:00:00Z"
MODEL = "BAAI/bge-reranker-base"
ENDPOINT = "http://bge-base-reranker.search.svc.cluster.local:8000"
ROLLED = WorkloadState(desired=1, ready=1, updated=1, pods_current=True)


def snapshot(generation: int) -> PublishedConfig:
    """The published (last good) config of ``generation``."""
    return PublishedConfig(
        endpoint=ENDPOINT, model=MODEL, generation=generation, function_json="{}", lite_function_json="{}"
    )


def observation(generation: int = 1, **changes: Any) -> Observation:
    """A verified pipeline at ``generation``; ``changes`` replace fields."""
    verified = Observation(
        generation=generation,
        workload=ROLLED,
        endpoint=ENDPOINT,
        served_model=MODEL,
        healthy=True,
        last_probe={"ok": True, "reason": "Healthy", "message": "ok", "latencyMs": 12.0, "time": NOW},
        latency={"p50Ms": 12.0, "p95Ms": 12.0, "samples": 1},
        successes=1,
        failures=0,
        published=snapshot(generation),
        published_ready=True,
        config_map_name="bge-base-ranker",
        namespaces=["search"],
    )
    return replace(verified, **changes)


def valid_status(
    obs: Observation, previous: dict[str, Any] | None = None, *, now: str = NOW
) -> dict[str, Any]:
    return decide.valid_status(obs, previous, now=now)


def invalid_status(
    generation: int, problems: list[str], previous: dict[str, Any] | None = None, *, now: str = NOW
) -> dict[str, Any]:
    return decide.invalid_status(previous, generation, problems, now=now)
