"""The reranker Service: its name, port, and selector."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.publish import endpoint_for
from rerank_operator.render import render_deployment, render_service

MakePipeline = Callable[..., RerankPipeline]


def test_service_shape(make_pipeline: MakePipeline) -> None:
    svc = render_service(make_pipeline())
    assert svc["apiVersion"] == "v1"
    assert svc["kind"] == "Service"
    assert svc["metadata"]["name"] == "demo-reranker"
    assert svc["metadata"]["namespace"] == "search"
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]


@pytest.mark.parametrize("name", ["vllm", "vllm-reranker", "a", "x" * 52])
def test_service_is_never_named_vllm(make_pipeline: MakePipeline, name: str) -> None:
    """A Service called ``vllm`` injects VLLM_PORT & co. into pods, which vLLM reads as its own settings."""
    svc_name = render_service(make_pipeline(metadata={"name": name}))["metadata"]["name"]
    assert svc_name != "vllm"
    assert svc_name.startswith(name)
    assert len(svc_name) <= 63  # a DNS-1035 label


@pytest.mark.parametrize("port", [8000, 8080, 65535])
def test_service_port_targets_the_container_port(make_pipeline: MakePipeline, port: int) -> None:
    pipeline = make_pipeline(engine={"port": port})
    [svc_port] = render_service(pipeline)["spec"]["ports"]
    [container] = render_deployment(pipeline)["spec"]["template"]["spec"]["containers"]
    [container_port] = container["ports"]
    assert svc_port["port"] == port
    assert svc_port["targetPort"] == container_port["name"]
    assert container_port["containerPort"] == port
    assert endpoint_for(pipeline).endswith(f":{port}")


def test_selector_matches_the_pods(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    selector = render_service(pipeline)["spec"]["selector"]
    deployment = render_deployment(pipeline)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector
    assert selector.items() <= pod_labels.items()
    assert selector == deployment["spec"]["selector"]["matchLabels"]


def test_selectors_of_two_pipelines_do_not_overlap(make_pipeline: MakePipeline) -> None:
    a = render_service(make_pipeline(metadata={"name": "a"}))["spec"]["selector"]
    ab = render_deployment(make_pipeline(metadata={"name": "a-b"}))["spec"]["template"]["metadata"]["labels"]
    assert not a.items() <= ab.items()


def test_endpoint_uses_the_service_name(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(metadata={"name": "vllm"})
    svc = render_service(pipeline)
    assert endpoint_for(pipeline) == f"http://{svc['metadata']['name']}.search.svc.cluster.local:8000"
