from prometheus_client import generate_latest

from rerank_operator import metrics


def test_pipelines_by_ready_follows_the_per_pipeline_gauge() -> None:
    metrics.PIPELINE_READY.labels("ns-a", "one").set(1)
    metrics.PIPELINE_READY.labels("ns-a", "two").set(0)
    before = metrics.pipelines_by_ready()
    metrics.PIPELINE_READY.labels("ns-b", "three").set(1)
    after = metrics.pipelines_by_ready()
    assert after["true"] == before["true"] + 1
    assert after["false"] == before["false"]
    text = generate_latest(metrics.REGISTRY).decode()
    assert f'rerank_operator_pipelines{{ready="true"}} {float(after["true"])}' in text
    metrics.forget_pipeline("ns-b", "three")
    assert metrics.pipelines_by_ready()["true"] == before["true"]
    metrics.forget_pipeline("ns-a", "one")
    metrics.forget_pipeline("ns-a", "two")


def test_exposition_names() -> None:
    metrics.RECONCILES.labels("ok").inc()
    metrics.PROBE_FAILURES.labels("ns", "p", "Timeout").inc()
    metrics.PROBE_LATENCY.labels("ns", "p").observe(0.02)
    metrics.PUBLISH_EVENTS.labels("ns", "p", "published").inc()
    metrics.PROBE_CONSECUTIVE.labels("ns", "p", "success").set(4)
    metrics.PROBE_LAST_TIME.labels("ns", "p").set(1.7e9)
    text = generate_latest(metrics.REGISTRY).decode()
    for name in (
        'rerank_operator_reconciles_total{result="ok"}',
        'rerank_operator_probe_failures_total{namespace="ns",pipeline="p",reason="Timeout"}',
        'rerank_operator_probe_latency_seconds_bucket{le="0.025",namespace="ns",pipeline="p"}',
        'rerank_operator_publish_events_total{event="published",namespace="ns",pipeline="p"}',
        'rerank_operator_probe_consecutive{namespace="ns",outcome="success",pipeline="p"} 4.0',
        'rerank_operator_probe_last_timestamp_seconds{namespace="ns",pipeline="p"}',
    ):
        assert name in text, name
    metrics.forget_pipeline("ns", "p")
    assert (
        'rerank_operator_probe_consecutive{namespace="ns",' not in generate_latest(metrics.REGISTRY).decode()
    )
