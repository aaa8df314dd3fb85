"""spec.external: a reranker something else runs, for which the operator renders no workload at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.manifests import render_all
from rerank_operator.models import RerankPipeline
from rerank_operator.render import child_names, render_workload
from rerank_operator.render.workload import blue_green

MakePipeline = Callable[..., RerankPipeline]


@pytest.mark.parametrize("engine", ["vllm", "tei"])
@pytest.mark.parametrize("strategy", ["BlueGreen", "Surge", "Replace"])
def test_no_workload(
    make_pipeline: MakePipeline, external_spec: dict[str, Any], engine: str, strategy: str
) -> None:
    external_spec["external"]["engine"] = engine
    if engine == "tei":
        del external_spec["model"]["truncatePromptTokens"]  # vLLM only
    # replicas > 1 would otherwise bring a PodDisruptionBudget; nothing is rendered regardless
    pipeline = make_pipeline(**external_spec, replicas=3, rollout={"strategy": strategy})
    assert render_workload(pipeline) == []


def test_only_the_published_config_is_rendered(
    make_pipeline: MakePipeline, external_spec: dict[str, Any]
) -> None:
    pipeline = make_pipeline(**external_spec, replicas=2, publish={"namespaces": ["apps"]})
    manifests = render_all(pipeline)
    assert manifests
    assert {m["kind"] for m in manifests} == {"ConfigMap"}
    assert {m["metadata"]["name"] for m in manifests} == {child_names(pipeline).published}
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "PersistentVolumeClaim", "PodMonitor"):
        assert kind not in {m["kind"] for m in manifests}


def test_no_blue_green_for_external(make_pipeline: MakePipeline, external_spec: dict[str, Any]) -> None:
    """No revision to start, check or switch to: the reconciler skips its revision planning."""
    pipeline = make_pipeline(**external_spec)
    assert pipeline.spec.rollout.strategy == "BlueGreen"  # the default stays in the spec
    assert not blue_green(pipeline)
    assert blue_green(make_pipeline())


def test_the_same_model_run_by_the_operator_has_a_workload(
    make_pipeline: MakePipeline, external_spec: dict[str, Any]
) -> None:
    del external_spec["external"]
    kinds = [m["kind"] for m in render_workload(make_pipeline(**external_spec))]
    assert "Deployment" in kinds and "Service" in kinds
