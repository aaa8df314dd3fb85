"""A few of vLLM's (or, in TEI mode, TEI's) Prometheus metrics, so dashboards and scrape configs can be
exercised locally.

TEI's names are those its router records through the ``metrics`` crate (``te_request_count``,
``te_request_success``, ``te_request_failure{err}``, ``te_request_duration``, ``te_queue_size``,
``te_batch_current_size``); its Prometheus exporter writes counters without a ``_total`` suffix and
without HELP lines.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Literal

MetricsEngine = Literal["vllm", "tei"]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe counters, rendered in Prometheus text format 0.0.4."""

    def __init__(self, served_model: str, engine: MetricsEngine = "vllm") -> None:
        self._model = served_model
        self.engine: MetricsEngine = engine
        self._lock = threading.Lock()
        self._running = 0
        # Requests "waiting" in the engine's queue: the stand-in answers every request at once, so a
        # queue exists only when a test or demo sets one (set_waiting), e.g. to drive an autoscaler.
        self._waiting = 0
        self._success = 0
        self._latency_sum = 0.0
        self._latency_count = 0
        self._prompt_tokens = 0
        self._by_route: Counter[tuple[str, int]] = Counter()
        self._te_count = 0  # te_request_count{method="batch"}: rerank requests past TEI's empty check
        self._te_failures: Counter[str] = Counter()  # te_request_failure{err}

    def started(self) -> None:
        with self._lock:
            self._running += 1

    def set_waiting(self, waiting: int) -> None:
        if waiting < 0:
            raise ValueError("waiting must not be negative")
        with self._lock:
            self._waiting = waiting

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._waiting

    def finished(self, route: str, status: int, seconds: float, tokens: int = 0) -> None:
        with self._lock:
            self._running -= 1
            self._by_route[(route, status)] += 1
            if status == 200:
                self._success += 1
                self._prompt_tokens += tokens
                self._latency_sum += seconds
                self._latency_count += 1

    def te_counted(self) -> None:
        """TEI increments ``te_request_count`` once a rerank request passes its empty-``texts`` check."""
        with self._lock:
            self._te_count += 1

    def te_failed(self, err: str) -> None:
        """``te_request_failure{err=...}`` (TEI's labels: validation, batch_size, tokenization, ...)."""
        with self._lock:
            self._te_failures[err] += 1

    def render(self, fault_mode: str) -> str:
        with self._lock:
            lines = self._tei_lines() if self.engine == "tei" else self._vllm_lines()
            lines += [
                "# HELP standin_requests_total Rerank requests answered by the stand-in, by route/status.",
                "# TYPE standin_requests_total counter",
            ]
            lines += [
                f'standin_requests_total{{route="{_label(route)}",code="{code}"}} {n}'
                for (route, code), n in sorted(self._by_route.items())
            ]
        lines += [
            "# HELP standin_fault_mode The active fault mode (value 1).",
            "# TYPE standin_fault_mode gauge",
            f'standin_fault_mode{{mode="{_label(fault_mode)}"}} 1',
        ]
        return "\n".join(lines) + "\n"

    def _tei_lines(self) -> list[str]:
        """Called with the lock held."""
        lines = [
            "# TYPE te_request_count counter",
            f'te_request_count{{method="batch"}} {self._te_count}',
            "# TYPE te_request_success counter",
            f'te_request_success{{method="batch"}} {self._success}',
            "# TYPE te_request_failure counter",
        ]
        lines += [
            f'te_request_failure{{err="{_label(e)}"}} {n}' for e, n in sorted(self._te_failures.items())
        ]
        return [
            *lines,
            "# TYPE te_queue_size gauge",
            f"te_queue_size {self._waiting}",
            "# TYPE te_batch_current_size gauge",
            f"te_batch_current_size {self._running}",
            "# TYPE te_request_duration histogram",
            f'te_request_duration_bucket{{le="+Inf"}} {self._latency_count}',
            f"te_request_duration_sum {self._latency_sum:.6f}",
            f"te_request_duration_count {self._latency_count}",
        ]

    def _vllm_lines(self) -> list[str]:
        """Called with the lock held."""
        m = f'model_name="{_label(self._model)}"'
        return [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{m}}} {self._running}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{m}}} {self._waiting}",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{m}}} 0.0",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{finished_reason="stop",{m}}} {self._success}',
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{m}}} {self._prompt_tokens}",
            "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.",
            "# TYPE vllm:e2e_request_latency_seconds histogram",
            f'vllm:e2e_request_latency_seconds_bucket{{le="+Inf",{m}}} {self._latency_count}',
            f"vllm:e2e_request_latency_seconds_sum{{{m}}} {self._latency_sum:.6f}",
            f"vllm:e2e_request_latency_seconds_count{{{m}}} {self._latency_count}",
        ]
