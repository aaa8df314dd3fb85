"""docs/networkpolicy.yaml must select the pods the operator renders and admit its canary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rerank_operator.models import RerankPipeline
from rerank_operator.render import render_deployment

REPO_ROOT = Path(__file__).resolve().parents[3]


def policy() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docs" / "networkpolicy.yaml").read_text())
    return data


def example() -> RerankPipeline:
    docs = yaml.safe_load_all((REPO_ROOT / "examples" / "cached-private.yaml").read_text())
    [pipeline] = [d for d in docs if d["kind"] == "RerankPipeline"]
    return RerankPipeline.from_body(pipeline)


def test_policy_selects_exactly_the_examples_reranker_pods() -> None:
    pipeline = example()
    deployment = render_deployment(pipeline)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = policy()["spec"]["podSelector"]["matchLabels"]
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert policy()["metadata"]["namespace"] == pipeline.namespace


def test_policy_opens_only_the_serving_port_to_milvus_and_the_operator() -> None:
    spec = policy()["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    [rule] = spec["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": example().spec.engine.port}]
    peers = {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"]}
    chart = yaml.safe_load((REPO_ROOT / "helm" / "rerank-operator" / "Chart.yaml").read_text())
    assert peers == {"milvus", chart["name"]}  # the chart's pods carry app.kubernetes.io/name=<chart>
    for peer in rule["from"]:
        assert peer["namespaceSelector"], "a bare podSelector would only match the reranker's namespace"
