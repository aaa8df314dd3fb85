"""The PodDisruptionBudget: drains take one reranker pod at a time and never wait on an unhealthy one."""

from __future__ import annotations

from collections.abc import Callable

from rerank_operator.models import RerankPipeline
from rerank_operator.render import render_deployment, render_disruption_budget

MakePipeline = Callable[..., RerankPipeline]


def test_budget_shape(make_pipeline: MakePipeline) -> None:
    pdb = render_disruption_budget(make_pipeline())
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["kind"] == "PodDisruptionBudget"
    assert pdb["metadata"]["name"] == "demo-reranker"
    assert pdb["metadata"]["namespace"] == "search"
    assert pdb["spec"]["maxUnavailable"] == 1
    # a pod that never got ready (still loading, crash-looping) must not block a node drain
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "minAvailable" not in pdb["spec"]  # minAvailable 1 would block draining a single replica


def test_budget_selects_exactly_the_deployments_pods(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(replicas=2)
    pdb = render_disruption_budget(pipeline)
    deployment = render_deployment(pipeline)
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_budgets_of_two_pipelines_do_not_overlap(make_pipeline: MakePipeline) -> None:
    a = render_disruption_budget(make_pipeline(metadata={"name": "a", "namespace": "search"}))["spec"][
        "selector"
    ]["matchLabels"]
    b = render_disruption_budget(make_pipeline(metadata={"name": "b", "namespace": "search"}))["spec"][
        "selector"
    ]["matchLabels"]
    assert a["app.kubernetes.io/instance"] == "a" and b["app.kubernetes.io/instance"] == "b"
    assert {k: v for k, v in a.items() if k != "app.kubernetes.io/instance"} == {
        k: v for k, v in b.items() if k != "app.kubernetes.io/instance"
    }
