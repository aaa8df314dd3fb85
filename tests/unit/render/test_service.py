"""The reranker Services: the stable one (the endpoint) and, under BlueGreen, each revision's own."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.publish import endpoint_for
from rerank_operator.render import (
    child_names,
    render_deployment,
    render_revision_service,
    render_service,
    render_workload,
    revision,
    selector_labels,
)
from rerank_operator.render.naming import REVISION_LABEL
from rerank_operator.render.workload import blue_green, stable_selector

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


# ------------------------------------------------------------------------------------ BlueGreen
def test_revision_service_shape(make_pipeline: MakePipeline) -> None:
    """The current revision's own Service: the canary reaches that revision's pods and nothing else."""
    pipeline = make_pipeline(engine={"port": 8080})
    rev = revision(pipeline)
    svc = render_revision_service(pipeline)
    assert svc is not None
    assert svc["apiVersion"] == "v1"
    assert svc["kind"] == "Service"
    assert svc["metadata"]["name"] == f"demo-{rev}" == child_names(pipeline).revision_service
    assert svc["metadata"]["namespace"] == "search"
    assert svc["metadata"]["labels"]["app.kubernetes.io/component"] == "canary"
    assert svc["metadata"]["labels"][REVISION_LABEL] == rev
    assert svc["metadata"]["labels"]["rerank.dev/pipeline"] == "demo"
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {**selector_labels(pipeline), REVISION_LABEL: rev},
        "ports": [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}],
    }
    deployment = render_deployment(pipeline)
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_revision_service_never_reaches_another_revisions_pods(make_pipeline: MakePipeline) -> None:
    a, b = make_pipeline(), make_pipeline(model={"name": "BAAI/bge-reranker-large"})
    svc_a, svc_b = render_revision_service(a), render_revision_service(b)
    assert svc_a is not None and svc_b is not None
    assert svc_a["metadata"]["name"] != svc_b["metadata"]["name"]
    pods_b = render_deployment(b)["spec"]["template"]["metadata"]["labels"]
    assert not svc_a["spec"]["selector"].items() <= pods_b.items()


def test_revision_service_is_owned_like_every_child(make_pipeline: MakePipeline) -> None:
    svc = render_revision_service(make_pipeline(metadata={"uid": "u-7"}))
    assert svc is not None
    [owner] = svc["metadata"]["ownerReferences"]
    assert owner["uid"] == "u-7"


@pytest.mark.parametrize("strategy", ["Surge", "Replace"])
def test_no_revision_service_when_rolled_in_place(make_pipeline: MakePipeline, strategy: str) -> None:
    pipeline = make_pipeline(rollout={"strategy": strategy})
    assert blue_green(pipeline) is False
    assert render_revision_service(pipeline) is None
    assert [m["metadata"]["name"] for m in render_workload(pipeline) if m["kind"] == "Service"] == [
        "demo-reranker"
    ]


@pytest.mark.parametrize("strategy", ["Surge", "Replace"])
def test_stable_selector_when_rolled_in_place_is_every_pod(
    make_pipeline: MakePipeline, strategy: str
) -> None:
    """Surge and Replace: the one Deployment's pods, old and new alike (``active`` plays no part)."""
    pipeline = make_pipeline(rollout={"strategy": strategy})
    assert stable_selector(pipeline) == selector_labels(pipeline)
    assert stable_selector(pipeline, {REVISION_LABEL: "0badc0de"}) == selector_labels(pipeline)
    assert render_service(pipeline)["spec"]["selector"] == selector_labels(pipeline)
    assert render_service(pipeline, {REVISION_LABEL: "0badc0de"})["spec"]["selector"] == selector_labels(
        pipeline
    )


def test_stable_selector_under_blue_green_is_one_revision(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    assert blue_green(pipeline) is True
    rev = revision(pipeline)
    # offline (render): the current revision, as after its switch
    assert stable_selector(pipeline) == {**selector_labels(pipeline), REVISION_LABEL: rev}
    # live: whichever revision is active, which may be an older one while the current is checked
    assert stable_selector(pipeline, {REVISION_LABEL: "0badc0de"}) == {
        **selector_labels(pipeline),
        REVISION_LABEL: "0badc0de",
    }
    # the adopted Deployment from before BlueGreen: pinned to its pods' template
    assert stable_selector(pipeline, {"pod-template-hash": "6d4b9c7f8"}) == {
        **selector_labels(pipeline),
        "pod-template-hash": "6d4b9c7f8",
    }
    svc = render_service(pipeline, {REVISION_LABEL: "0badc0de"})
    assert svc["metadata"]["name"] == "demo-reranker"  # the endpoint's name never changes
    assert svc["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
    assert svc["spec"]["selector"][REVISION_LABEL] == "0badc0de"


def test_stable_service_keeps_its_name_and_port_across_revisions(make_pipeline: MakePipeline) -> None:
    a = render_service(make_pipeline())
    b = render_service(make_pipeline(model={"name": "BAAI/bge-reranker-large"}))
    assert a["metadata"] == b["metadata"]
    assert a["spec"]["ports"] == b["spec"]["ports"]
    assert a["spec"]["selector"] != b["spec"]["selector"]  # offline: each selects its own revision
