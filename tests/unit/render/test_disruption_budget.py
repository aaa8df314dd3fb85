"""The PodDisruptionBudget: drains take one reranker pod at a time and never wait on an unhealthy one."""

from __future__ import annotations

from collections.abc import Callable

from rerank_operator.models import RerankPipeline
from rerank_operator.render import render_deployment, render_disruption_budget, revision
from rerank_operator.render.naming import REVISION_LABEL

MakePipeline = Callable[..., RerankPipeline]


def test_no_budget_where_only_one_pod_ever_runs(make_pipeline: MakePipeline) -> None:
    assert render_disruption_budget(make_pipeline(replicas=1)) is None  # one pod may always go
    assert render_disruption_budget(make_pipeline(replicas=0)) is None
    scaled = make_pipeline(replicas=1, autoscaling={"minReplicas": 1, "maxReplicas": 3})
    assert render_disruption_budget(scaled) is not None  # the autoscaler may add pods
    single = make_pipeline(replicas=1, autoscaling={"minReplicas": 1, "maxReplicas": 1})
    assert render_disruption_budget(single) is None


def test_budget_shape(make_pipeline: MakePipeline) -> None:
    pdb = render_disruption_budget(make_pipeline(replicas=2))
    assert pdb is not None
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["kind"] == "PodDisruptionBudget"
    assert pdb["metadata"]["name"] == "demo-reranker"
    assert pdb["metadata"]["namespace"] == "search"
    assert pdb["spec"]["maxUnavailable"] == 1
    # a pod that never got ready (still loading, crash-looping) must not block a node drain
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "minAvailable" not in pdb["spec"]  # minAvailable 1 would block draining a single replica


def test_budget_selects_exactly_the_deployments_pods(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(replicas=2, rollout={"strategy": "Surge"})
    pdb = render_disruption_budget(pipeline)
    assert pdb is not None
    deployment = render_deployment(pipeline)
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_blue_green_budget_covers_every_revision(make_pipeline: MakePipeline) -> None:
    """BlueGreen: one budget for the pods of every revision (the serving one, the candidate, those
    draining), so a node drain still takes one reranker pod at a time while two revisions run."""
    pipeline = make_pipeline(replicas=2)
    pdb = render_disruption_budget(pipeline)
    assert pdb is not None
    assert pdb["metadata"]["name"] == "demo-reranker"
    selector = pdb["spec"]["selector"]["matchLabels"]
    assert REVISION_LABEL not in selector
    for spec in ({"replicas": 2}, {"replicas": 2, "model": {"name": "BAAI/bge-reranker-large"}}):
        other = make_pipeline(**spec)
        deployment = render_deployment(other)
        assert deployment["spec"]["selector"]["matchLabels"][REVISION_LABEL] == revision(other)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        assert render_disruption_budget(other) == pdb  # the budget does not change with the revision


def test_budgets_of_two_pipelines_do_not_overlap(make_pipeline: MakePipeline) -> None:
    pdb_a = render_disruption_budget(make_pipeline(replicas=2, metadata={"name": "a", "namespace": "search"}))
    pdb_b = render_disruption_budget(make_pipeline(replicas=2, metadata={"name": "b", "namespace": "search"}))
    assert pdb_a is not None and pdb_b is not None
    a, b = pdb_a["spec"]["selector"]["matchLabels"], pdb_b["spec"]["selector"]["matchLabels"]
    assert a["app.kubernetes.io/instance"] == "a" and b["app.kubernetes.io/instance"] == "b"
    assert {k: v for k, v in a.items() if k != "app.kubernetes.io/instance"} == {
        k: v for k, v in b.items() if k != "app.kubernetes.io/instance"
    }
