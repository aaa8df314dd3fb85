"""spec.autoscaling and spec.monitoring: defaults, targets, and the refusals users see from `validate`."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rerank_operator.cli import main
from rerank_operator.models import RerankPipeline
from rerank_operator.models.autoscaling import DEFAULT_TARGETS, KV_CACHE_METRIC, QUEUE_METRIC
from rerank_operator.models.quantity import quantity_decimal

MakePipeline = Callable[..., RerankPipeline]
Problems = Callable[[dict[str, Any]], list[str]]
MakeBody = Callable[..., dict[str, Any]]


def test_defaults(make_pipeline: MakePipeline) -> None:
    autoscaling = make_pipeline(autoscaling={"maxReplicas": 3}).spec.autoscaling
    assert autoscaling is not None
    assert autoscaling.provider == "hpa"
    assert autoscaling.min_replicas == 1
    assert autoscaling.max_replicas == 3
    assert autoscaling.metric.name is None  # the engine's queue: see the next assertions
    assert autoscaling.metric.name_for("vllm") == QUEUE_METRIC == "vllm:num_requests_waiting"
    assert autoscaling.metric.name_for("tei") == "te_queue_size"
    assert autoscaling.metric.target_for("tei") == "2"
    assert autoscaling.metric.target_average_value is None
    assert autoscaling.metric.target_for("vllm") == "2"
    assert autoscaling.behavior is None
    assert autoscaling.keda is None


def test_no_autoscaling_by_default(make_pipeline: MakePipeline) -> None:
    spec = make_pipeline().spec
    assert spec.autoscaling is None
    assert spec.monitoring.pod_monitor.enabled is False
    assert spec.monitoring.pod_monitor.interval == "30s"


@pytest.mark.parametrize(
    ("metric", "target", "expected"),
    [
        ({}, "2", Decimal(2)),
        ({"name": KV_CACHE_METRIC}, "800m", Decimal("0.8")),
        ({"name": QUEUE_METRIC, "targetAverageValue": 5}, "5", Decimal(5)),
        ({"name": "vllm:num_requests_running", "targetAverageValue": "1500m"}, "1500m", Decimal("1.5")),
    ],
)
def test_targets(make_pipeline: MakePipeline, metric: dict[str, Any], target: str, expected: Decimal) -> None:
    autoscaling = make_pipeline(autoscaling={"maxReplicas": 3, "metric": metric}).spec.autoscaling
    assert autoscaling is not None
    assert autoscaling.metric.target_for("vllm") == target
    assert autoscaling.metric.target_decimal_for("vllm") == expected


def test_every_defaulted_target_is_a_valid_quantity() -> None:
    for name, target in DEFAULT_TARGETS.items():
        assert quantity_decimal(target) > 0, name


@pytest.mark.parametrize(
    ("autoscaling", "field", "fragment"),
    [
        (
            {"minReplicas": 0, "maxReplicas": 2},
            "spec.autoscaling.minReplicas",
            "scaled to zero fails searches",
        ),
        ({"minReplicas": 0, "maxReplicas": 2}, "spec.autoscaling.minReplicas", "30 s per batch, 3 tries"),
        ({"minReplicas": 4, "maxReplicas": 2}, "spec.autoscaling.maxReplicas", "at least minReplicas"),
        ({"maxReplicas": 2, "provider": "keda"}, "spec.autoscaling.keda", "needs keda.serverAddress"),
        (
            {"maxReplicas": 2, "provider": "keda", "keda": {"query": "sum(x)"}},
            "spec.autoscaling.keda",
            "needs keda.serverAddress",
        ),
        ({"maxReplicas": 2, "provider": "kpa"}, "spec.autoscaling.provider", "'hpa' or 'keda'"),
        (
            {"maxReplicas": 2, "keda": {"serverAddress": "http://prom:9090"}},
            "spec.autoscaling.keda",
            "only used with provider: keda",
        ),
        (
            {"maxReplicas": 2, "metric": {"name": "queue_depth"}},
            "spec.autoscaling.metric.targetAverageValue",
            "required for this metric",
        ),
        ({"minReplicas": 1}, "spec.autoscaling.maxReplicas", "Field required"),
    ],
)
def test_refusals_name_the_field(
    make_body: MakeBody, problems: Problems, autoscaling: dict[str, Any], field: str, fragment: str
) -> None:
    [line] = problems(make_body(autoscaling=autoscaling))
    path, _, message = line.partition(": ")
    assert path == field
    assert fragment in message


def test_validate_command_refuses_min_zero_and_max_below_min(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The acceptance check, through the CLI users run."""
    text = "".join(
        "---\napiVersion: rerank.dev/v1alpha1\nkind: RerankPipeline\n"
        f"metadata: {{name: p{i}}}\n"
        f"spec: {{model: {{name: BAAI/bge-reranker-base}}, autoscaling: {autoscaling}}}\n"
        for i, autoscaling in enumerate(
            ["{minReplicas: 0, maxReplicas: 2}", "{minReplicas: 3, maxReplicas: 2}"]
        )
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code = main(["validate", "-f", str(path)])
    out, _ = capsys.readouterr()
    assert code == 1
    assert "spec.autoscaling.minReplicas: minReplicas must be at least 1" in out
    assert "spec.autoscaling.maxReplicas: maxReplicas must be at least minReplicas" in out


def test_pod_monitor_interval_is_a_prometheus_duration(make_body: MakeBody, problems: Problems) -> None:
    assert problems(make_body(monitoring={"podMonitor": {"interval": "1m30s"}})) == []
    [line] = problems(make_body(monitoring={"podMonitor": {"interval": "90"}}))
    assert line.startswith("spec.monitoring.podMonitor.interval:")
