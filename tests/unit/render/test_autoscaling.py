"""The autoscaler child: an autoscaling/v2 HorizontalPodAutoscaler or a KEDA ScaledObject, and the
Deployment that leaves its replica count to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.manifests import render_all
from rerank_operator.models import RerankPipeline
from rerank_operator.render import render_autoscaler, render_deployment, revision, selector_labels
from rerank_operator.render.autoscaling import default_query, prometheus_label

MakePipeline = Callable[..., RerankPipeline]
KEDA = {"provider": "keda", "keda": {"serverAddress": "http://prometheus.monitoring.svc:9090"}}


def test_no_autoscaler_without_spec_autoscaling(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(replicas=3)
    assert render_autoscaler(pipeline) is None
    assert render_deployment(pipeline)["spec"]["replicas"] == 3
    kinds = {m["kind"] for m in render_all(pipeline)}
    assert not kinds & {"HorizontalPodAutoscaler", "ScaledObject"}


def test_deployment_leaves_replicas_to_the_autoscaler(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(replicas=3, autoscaling={"maxReplicas": 4})
    deployment = render_deployment(pipeline)
    assert "replicas" not in deployment["spec"]
    # everything else is rendered as without autoscaling
    fixed = render_deployment(make_pipeline(replicas=3))
    del fixed["spec"]["replicas"]
    assert deployment == fixed


def test_hpa_shape(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(autoscaling={"minReplicas": 2, "maxReplicas": 5})
    hpa = render_autoscaler(pipeline)
    assert hpa is not None
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["kind"] == "HorizontalPodAutoscaler"
    assert hpa["metadata"]["name"] == "demo-reranker"
    assert hpa["metadata"]["namespace"] == "search"
    assert hpa["metadata"]["labels"]["app.kubernetes.io/component"] == "autoscaler"
    assert hpa["metadata"]["labels"]["rerank.dev/pipeline"] == "demo"
    assert hpa["spec"] == {
        # BlueGreen: by default the current revision's own Deployment (the operator passes the serving one)
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"demo-{revision(pipeline)}",
        },
        "minReplicas": 2,
        "maxReplicas": 5,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "vllm:num_requests_waiting"},
                    "target": {"type": "AverageValue", "averageValue": "2"},
                },
            }
        ],
    }


def test_hpa_targets_the_rendered_deployment(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(autoscaling={"maxReplicas": 2})
    hpa = render_autoscaler(pipeline)
    deployment = render_deployment(pipeline)
    assert hpa is not None
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (
        deployment["apiVersion"],
        deployment["kind"],
        deployment["metadata"]["name"],
    )


def test_hpa_owned_by_the_pipeline(make_pipeline: MakePipeline) -> None:
    hpa = render_autoscaler(make_pipeline(metadata={"uid": "u-1"}, autoscaling={"maxReplicas": 2}))
    assert hpa is not None
    [owner] = hpa["metadata"]["ownerReferences"]
    assert owner["uid"] == "u-1" and owner["controller"] is True


def test_hpa_behavior_is_passed_through(make_pipeline: MakePipeline) -> None:
    behavior = {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
        },
        "scaleDown": {"stabilizationWindowSeconds": 600, "selectPolicy": "Min"},
    }
    hpa = render_autoscaler(make_pipeline(autoscaling={"maxReplicas": 2, "behavior": behavior}))
    assert hpa is not None
    assert hpa["spec"]["behavior"] == behavior


def test_empty_behavior_is_left_out(make_pipeline: MakePipeline) -> None:
    """An explicit empty policy list is refused by the apiserver; unset rules take its defaults."""
    hpa = render_autoscaler(make_pipeline(autoscaling={"maxReplicas": 2, "behavior": {"scaleDown": {}}}))
    assert hpa is not None
    assert hpa["spec"]["behavior"] == {"scaleDown": {}}
    hpa = render_autoscaler(make_pipeline(autoscaling={"maxReplicas": 2, "behavior": {}}))
    assert hpa is not None
    assert "behavior" not in hpa["spec"]


def test_hpa_with_a_raw_metric(make_pipeline: MakePipeline) -> None:
    metric = {"name": "vllm:num_requests_running", "targetAverageValue": "1500m"}
    hpa = render_autoscaler(make_pipeline(autoscaling={"maxReplicas": 2, "metric": metric}))
    assert hpa is not None
    pods = hpa["spec"]["metrics"][0]["pods"]
    assert pods == {
        "metric": {"name": "vllm:num_requests_running"},
        "target": {"type": "AverageValue", "averageValue": "1500m"},
    }


def test_scaled_object_shape(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(autoscaling={"minReplicas": 1, "maxReplicas": 3, **KEDA})
    so = render_autoscaler(pipeline)
    assert so is not None
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    assert so["kind"] == "ScaledObject"
    assert so["metadata"]["name"] == "demo-reranker"
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"demo-{revision(pipeline)}",
    }
    assert spec["minReplicaCount"] == 1
    assert spec["maxReplicaCount"] == 3
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metricType"] == "AverageValue"
    assert trigger["metadata"] == {
        "serverAddress": "http://prometheus.monitoring.svc:9090",
        "query": 'sum(vllm:num_requests_waiting{namespace="search",app_kubernetes_io_component="server",'
        'app_kubernetes_io_instance="demo",app_kubernetes_io_name="vllm-reranker"})',
        "threshold": "2",
    }
    assert "authenticationRef" not in trigger
    assert set(spec) == {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "triggers"}


def test_scaled_object_options(make_pipeline: MakePipeline) -> None:
    keda: dict[str, Any] = {
        "serverAddress": "https://prom.example.com/prometheus",
        "query": "sum(rate(vllm:request_success_total[1m]))",
        "authenticationRef": {"name": "prom-auth"},
        "pollingIntervalSeconds": 10,
    }
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 900}}
    autoscaling = {
        "provider": "keda",
        "maxReplicas": 4,
        "keda": keda,
        "behavior": behavior,
        "metric": {"name": "vllm:kv_cache_usage_perc"},
    }
    so = render_autoscaler(make_pipeline(autoscaling=autoscaling))
    assert so is not None
    [trigger] = so["spec"]["triggers"]
    assert trigger["metadata"]["query"] == keda["query"]
    assert trigger["metadata"]["serverAddress"] == keda["serverAddress"]
    assert trigger["metadata"]["threshold"] == "0.8"  # KEDA parses a float, not the quantity 800m
    assert trigger["authenticationRef"] == {"name": "prom-auth", "kind": "TriggerAuthentication"}
    assert so["spec"]["pollingInterval"] == 10
    assert so["spec"]["advanced"] == {"horizontalPodAutoscalerConfig": {"behavior": behavior}}


def test_keda_threshold_is_plain_decimal(make_pipeline: MakePipeline) -> None:
    for target, threshold in (("2k", "2000"), ("1500m", "1.5"), (3, "3"), ("1e1", "10")):
        autoscaling = {**KEDA, "maxReplicas": 2, "metric": {"name": "q", "targetAverageValue": target}}
        so = render_autoscaler(make_pipeline(autoscaling=autoscaling))
        assert so is not None
        assert so["spec"]["triggers"][0]["metadata"]["threshold"] == threshold


def test_default_query_selects_exactly_the_pipelines_pods(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(metadata={"name": "a", "namespace": "team"})
    query = default_query(pipeline, "vllm:num_requests_waiting")
    assert query.startswith("sum(vllm:num_requests_waiting{") and query.endswith("})")
    assert 'namespace="team"' in query
    for key, value in selector_labels(pipeline).items():
        assert f'{prometheus_label(key)}="{value}"' in query
    other = default_query(
        make_pipeline(metadata={"name": "b", "namespace": "team"}), "vllm:num_requests_waiting"
    )
    assert other != query


def test_prometheus_label_names() -> None:
    assert prometheus_label("app.kubernetes.io/instance") == "app_kubernetes_io_instance"
    assert prometheus_label("rerank.dev/pipeline") == "rerank_dev_pipeline"


def test_render_all_of_the_autoscaled_example(repo_root: Any) -> None:
    """The acceptance check: an HPA on the pipeline's Deployment and no replicas in the Deployment."""
    import yaml

    body = yaml.safe_load((repo_root / "examples" / "autoscaled.yaml").read_text())
    manifests = render_all(RerankPipeline.from_body(body))
    by_kind = {m["kind"]: m for m in manifests}
    assert "replicas" not in by_kind["Deployment"]["spec"]
    hpa = by_kind["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == by_kind["Deployment"]["metadata"]["name"]
    assert "PodMonitor" in by_kind
    # the disruption budget works at any count: one pod at a time, never a fixed number
    assert by_kind["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("autoscaling", [{"maxReplicas": 3}, {"maxReplicas": 3, **KEDA}], ids=["hpa", "keda"])
def test_autoscaler_scales_the_deployment_it_is_given(
    make_pipeline: MakePipeline, autoscaling: dict[str, Any]
) -> None:
    """BlueGreen: the operator points the autoscaler at the serving revision while a candidate is checked;
    its own name stays, so the switch retargets it instead of making a second one."""
    pipeline = make_pipeline(autoscaling=autoscaling)
    scaler = render_autoscaler(pipeline, "demo-0badc0de")
    assert scaler is not None
    assert scaler["metadata"]["name"] == "demo-reranker"
    assert scaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo-0badc0de",
    }
    default = render_autoscaler(pipeline)
    assert default is not None
    assert default["spec"]["scaleTargetRef"]["name"] == render_deployment(pipeline)["metadata"]["name"]


@pytest.mark.parametrize("strategy", ["Surge", "Replace"])
@pytest.mark.parametrize("autoscaling", [{"maxReplicas": 3}, {"maxReplicas": 3, **KEDA}], ids=["hpa", "keda"])
def test_autoscaler_of_a_deployment_rolled_in_place(
    make_pipeline: MakePipeline, autoscaling: dict[str, Any], strategy: str
) -> None:
    scaler = render_autoscaler(make_pipeline(autoscaling=autoscaling, rollout={"strategy": strategy}))
    assert scaler is not None
    assert scaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo-reranker",
    }


def test_a_tei_pipeline_scales_on_teis_own_queue_by_default(make_pipeline: MakePipeline) -> None:
    """vLLM's series do not exist for TEI: its default is te_queue_size, in the HPA and KEDA's query."""
    hpa = render_autoscaler(make_pipeline(engine={"kind": "tei"}, autoscaling={"maxReplicas": 3}))
    assert hpa is not None
    assert hpa["spec"]["metrics"][0]["pods"] == {
        "metric": {"name": "te_queue_size"},
        "target": {"type": "AverageValue", "averageValue": "2"},
    }
    so = render_autoscaler(make_pipeline(engine={"kind": "tei"}, autoscaling={"maxReplicas": 3, **KEDA}))
    assert so is not None
    metadata = so["spec"]["triggers"][0]["metadata"]
    assert metadata["query"].startswith('sum(te_queue_size{namespace="search",')
    assert metadata["threshold"] == "2"


def test_a_named_metric_is_kept_for_either_engine(make_pipeline: MakePipeline) -> None:
    metric = {"name": "te_batch_current_size", "targetAverageValue": 8}
    hpa = render_autoscaler(
        make_pipeline(engine={"kind": "tei"}, autoscaling={"maxReplicas": 3, "metric": metric})
    )
    assert hpa is not None
    assert hpa["spec"]["metrics"][0]["pods"]["metric"] == {"name": "te_batch_current_size"}
    assert hpa["spec"]["metrics"][0]["pods"]["target"]["averageValue"] == "8"
