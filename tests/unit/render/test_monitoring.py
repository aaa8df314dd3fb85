"""The PodMonitor for the reranker pods' /metrics."""

from __future__ import annotations

from collections.abc import Callable

from rerank_operator.models import RerankPipeline
from rerank_operator.render import render_deployment, render_pod_monitor, selector_labels
from rerank_operator.render.autoscaling import default_query, prometheus_label

MakePipeline = Callable[..., RerankPipeline]


def test_off_by_default(make_pipeline: MakePipeline) -> None:
    assert render_pod_monitor(make_pipeline()) is None


def test_shape(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(
        metadata={"uid": "u-1"},
        monitoring={"podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}}},
    )
    monitor = render_pod_monitor(pipeline)
    assert monitor is not None
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "PodMonitor"
    assert monitor["metadata"]["name"] == "demo-reranker"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["metadata"]["labels"]["rerank.dev/pipeline"] == "demo"
    assert monitor["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]


def test_selects_the_deployments_pods_on_its_port(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(monitoring={"podMonitor": {"enabled": True}})
    monitor = render_pod_monitor(pipeline)
    deployment = render_deployment(pipeline)
    assert monitor is not None
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in container["ports"]}


def test_user_labels_cannot_replace_ours(make_pipeline: MakePipeline) -> None:
    labels = {"rerank.dev/pipeline": "other", "app.kubernetes.io/managed-by": "me"}
    monitor = render_pod_monitor(
        make_pipeline(monitoring={"podMonitor": {"enabled": True, "labels": labels}})
    )
    assert monitor is not None
    assert monitor["metadata"]["labels"]["rerank.dev/pipeline"] == "demo"
    assert monitor["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "rerank-operator"


def test_keeps_the_labels_the_default_keda_query_selects_on(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(monitoring={"podMonitor": {"enabled": True}})
    monitor = render_pod_monitor(pipeline)
    assert monitor is not None
    query = default_query(pipeline, "vllm:num_requests_waiting")
    for label in monitor["spec"]["podTargetLabels"]:
        assert prometheus_label(label) in query
    assert set(monitor["spec"]["podTargetLabels"]) == set(selector_labels(pipeline))


def test_tei_is_scraped_on_its_metrics_port(make_pipeline: MakePipeline) -> None:
    """TEI serves /metrics on its own Prometheus port, not on the API port."""
    pipeline = make_pipeline(
        engine={"kind": "tei", "port": 8080}, monitoring={"podMonitor": {"enabled": True}}
    )
    monitor = render_pod_monitor(pipeline)
    assert monitor is not None
    assert monitor["spec"]["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s"}
    ]
    [container] = render_deployment(pipeline)["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "metrics": 9000}
    args = container["args"]
    assert args[args.index("--prometheus-port") + 1] == str(ports["metrics"])
    # the same pods and target labels as for vLLM
    vllm = render_pod_monitor(make_pipeline(monitoring={"podMonitor": {"enabled": True}}))
    assert vllm is not None
    assert monitor["spec"]["selector"] == vllm["spec"]["selector"]
    assert monitor["spec"]["podTargetLabels"] == vllm["spec"]["podTargetLabels"]
