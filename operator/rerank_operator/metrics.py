"""Prometheus metrics of the operator (served by ``rerank-operator run --metrics-port``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "rerank_operator_reconciles",
    "Reconcile passes, by result (ok, invalid, rejected, error).",
    ["result"],
    registry=REGISTRY,
)
PROBE_LATENCY = Histogram(
    "rerank_operator_probe_latency_seconds",
    "Latency of canary rerank requests.",
    ["namespace", "pipeline"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
PROBE_FAILURES = Counter(
    "rerank_operator_probe_failures",
    "Failed canary rerank checks, by reason.",
    ["namespace", "pipeline", "reason"],
    registry=REGISTRY,
)
# What status writes only at its heartbeat (``reconcile.status_diff``), kept here for every canary.
PROBE_CONSECUTIVE = Gauge(
    "rerank_operator_probe_consecutive",
    "Consecutive canary results of the same outcome (success or failure) up to the last canary.",
    ["namespace", "pipeline", "outcome"],
    registry=REGISTRY,
)
PROBE_LAST_TIME = Gauge(
    "rerank_operator_probe_last_timestamp_seconds",
    "Unix time of the last canary rerank.",
    ["namespace", "pipeline"],
    registry=REGISTRY,
)
PIPELINE_READY = Gauge(
    "rerank_operator_pipeline_ready",
    "1 when the pipeline is Ready, else 0.",
    ["namespace", "pipeline"],
    registry=REGISTRY,
)
PUBLISH_EVENTS = Counter(
    "rerank_operator_publish_events",
    "Changes of the published ranker config, by kind (published, marked_ready, marked_not_ready, withdrawn).",
    ["namespace", "pipeline", "event"],
    registry=REGISTRY,
)


def pipelines_by_ready() -> dict[str, int]:
    """Pipeline counts by ready state, derived from the per-pipeline gauge."""
    counts = {"true": 0, "false": 0}
    for metric in PIPELINE_READY.collect():
        for sample in metric.samples:
            counts["true" if sample.value >= 1 else "false"] += 1
    return counts


class _PipelinesByReady(Collector):
    """``rerank_operator_pipelines{ready="true|false"}``: computed at scrape time, never stale."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("rerank_operator_pipelines", "Pipelines by ready state.", labels=["ready"])
        for ready, count in pipelines_by_ready().items():
            family.add_metric([ready], count)
        yield family


REGISTRY.register(_PipelinesByReady())


def forget_pipeline(namespace: str, pipeline: str) -> None:
    """Drop a deleted pipeline's series so dashboards do not show ghosts."""
    for metric in (PIPELINE_READY, PROBE_LATENCY, PROBE_LAST_TIME):
        with contextlib.suppress(KeyError):
            metric.remove(namespace, pipeline)
    for outcome in ("success", "failure"):
        with contextlib.suppress(KeyError):
            PROBE_CONSECUTIVE.remove(namespace, pipeline, outcome)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    start_http_server(port, addr=addr, registry=REGISTRY)
