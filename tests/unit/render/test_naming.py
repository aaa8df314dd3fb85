"""Names, labels and owner references of a pipeline's children."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.manifests import render_all
from rerank_operator.models import RerankPipeline
from rerank_operator.render import child_names, labels, owner_reference, revision, selector_labels
from rerank_operator.render.naming import (
    REVISION_LABEL,
    legacy_deployment_name,
    object_meta,
    revision_name,
    revision_selector,
)

MakePipeline = Callable[..., RerankPipeline]

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
RECOMMENDED = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
               "app.kubernetes.io/managed-by")  # fmt: skip


def with_every_child(make_pipeline: MakePipeline, **meta: Any) -> RerankPipeline:
    return make_pipeline(
        metadata=meta,
        replicas=2,  # every kind of child, the disruption budget included
        model={"chatTemplate": "t"},
        modelCache={"pvc": {}},
        publish={"namespaces": ["apps", "web"]},
    )


def everything(make_pipeline: MakePipeline, **meta: Any) -> list[dict[str, Any]]:
    return render_all(with_every_child(make_pipeline, **meta))


def test_child_names(make_pipeline: MakePipeline) -> None:
    """BlueGreen (the default): the revision's own Deployment, Service and chat template; the stable
    Service keeps the name (and address) it always had."""
    pipeline = make_pipeline()
    rev = revision(pipeline)
    names = child_names(pipeline)
    assert names.deployment == f"demo-{rev}"
    assert names.service == "demo-reranker"
    assert names.revision_service == f"demo-{rev}"
    assert names.disruption_budget == "demo-reranker"
    assert names.cache_pvc == "demo-model-cache"
    assert names.chat_template == f"demo-{rev}-chat-template"
    assert names.published == "demo-ranker"
    assert names.autoscaler == "demo-reranker"
    assert names.pod_monitor == "demo-reranker"


@pytest.mark.parametrize("strategy", ["Surge", "Replace"])
def test_child_names_when_rolled_in_place(make_pipeline: MakePipeline, strategy: str) -> None:
    names = child_names(make_pipeline(rollout={"strategy": strategy}))
    assert names.deployment == "demo-reranker"
    assert names.service == "demo-reranker"
    assert names.cache_pvc == "demo-model-cache"
    assert names.chat_template == "demo-chat-template"
    assert names.published == "demo-ranker"


def test_revision_naming_helpers(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    assert REVISION_LABEL == "rerank.dev/revision"
    assert revision_name("demo", "0123abcd") == "demo-0123abcd"
    assert legacy_deployment_name("demo") == "demo-reranker"
    assert revision_selector(pipeline, "0123abcd") == {
        **selector_labels(pipeline),
        REVISION_LABEL: "0123abcd",
    }
    # the revision is in the selector, never in selector_labels (the base every revision shares)
    assert REVISION_LABEL not in selector_labels(pipeline)


def test_published_name_can_be_chosen(make_pipeline: MakePipeline) -> None:
    assert child_names(make_pipeline(publish={"configMapName": "search.ranker"})).published == "search.ranker"


def test_children_do_not_collide(make_pipeline: MakePipeline) -> None:
    names = child_names(make_pipeline())
    configmaps = {names.chat_template, names.published}
    assert len(configmaps) == 2
    assert names.cache_pvc not in configmaps
    assert names.revision_service != names.service  # the canary's Service is not the endpoint


def test_revisions_of_one_pipeline_do_not_collide(make_pipeline: MakePipeline) -> None:
    a = child_names(make_pipeline())
    b = child_names(make_pipeline(model={"name": "BAAI/bge-reranker-large"}))
    assert a.deployment != b.deployment
    assert a.revision_service != b.revision_service
    assert a.chat_template != b.chat_template
    assert (a.service, a.published, a.disruption_budget) == (b.service, b.published, b.disruption_budget)


@pytest.mark.parametrize("name", ["a", "vllm", "x" * 52, "a" + "-b" * 25])
def test_names_are_valid_kubernetes_names_at_the_length_limit(make_pipeline: MakePipeline, name: str) -> None:
    pipeline = make_pipeline(metadata={"name": name})
    names = child_names(pipeline)
    for service in (names.service, names.revision_service):
        assert DNS1035.match(service)
        assert len(service) <= 63
    for child in (names.deployment, names.cache_pvc, names.chat_template, names.published):
        assert DNS1123_SUBDOMAIN.match(child)
        assert len(child) <= 253
    for value in labels(pipeline, "server").values():
        assert len(value) <= 63
        assert LABEL_VALUE.match(value)


def test_labels(make_pipeline: MakePipeline) -> None:
    assert labels(make_pipeline(), "server") == {
        "app.kubernetes.io/name": "vllm-reranker",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/managed-by": "rerank-operator",
        "app.kubernetes.io/part-of": "rerank-operator",
        "rerank.dev/pipeline": "demo",
    }


def test_selector_is_a_stable_subset_of_the_labels(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    assert selector_labels(pipeline).items() <= labels(pipeline, "server").items()
    # a spec change never changes the (immutable) Deployment selector
    other = make_pipeline(model={"name": "BAAI/bge-reranker-large"}, replicas=3)
    assert selector_labels(other) == selector_labels(pipeline)


def test_every_child_carries_the_recommended_labels(make_pipeline: MakePipeline) -> None:
    manifests = everything(make_pipeline)
    assert {m["kind"] for m in manifests} == {
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }
    for m in manifests:
        meta_labels = m["metadata"]["labels"]
        for key in RECOMMENDED:
            assert meta_labels.get(key), (m["kind"], m["metadata"]["name"], key)
        assert meta_labels["app.kubernetes.io/instance"] == "demo"
        assert meta_labels["app.kubernetes.io/managed-by"] == "rerank-operator"
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for key in RECOMMENDED:
        assert pod_labels.get(key)


def test_owner_reference(make_pipeline: MakePipeline) -> None:
    assert owner_reference(make_pipeline()) is None
    assert owner_reference(make_pipeline(metadata={"uid": "u-42"})) == {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPipeline",
        "name": "demo",
        "uid": "u-42",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_offline_render_has_no_owner_references(make_pipeline: MakePipeline) -> None:
    for m in everything(make_pipeline):
        assert "ownerReferences" not in m["metadata"], m["kind"]


def test_owner_references_only_in_the_pipeline_namespace(make_pipeline: MakePipeline) -> None:
    manifests = everything(make_pipeline, uid="u-42")
    own = [m for m in manifests if m["metadata"]["namespace"] == "search"]
    foreign = [m for m in manifests if m["metadata"]["namespace"] != "search"]
    # template, PVC, Deployment, revision Service, stable Service, PodDisruptionBudget, published ConfigMap
    assert len(own) == 7
    assert [m["metadata"]["name"] for m in own if m["kind"] == "Service"] == [
        f"demo-{revision(with_every_child(make_pipeline, uid='u-42'))}",
        "demo-reranker",
    ]
    assert {m["metadata"]["namespace"] for m in foreign} == {"apps", "web"}
    for m in own:
        [owner] = m["metadata"]["ownerReferences"]
        assert owner["uid"] == "u-42"
        assert owner["controller"] is True
    for m in foreign:
        # a cross-namespace ownerReference is invalid: garbage collection would delete the object
        assert "ownerReferences" not in m["metadata"]
        assert m["metadata"]["labels"]["rerank.dev/pipeline-namespace"] == "search"
        assert m["metadata"]["labels"]["rerank.dev/pipeline"] == "demo"
        # the UID is what proves the copy is ours (labels are just strings anybody can write)
        assert m["metadata"]["annotations"] == {
            "rerank.dev/owner-uid": "u-42",
            "rerank.dev/owner": "search/demo",
        }
    for m in own:
        assert (
            "annotations" not in m["metadata"] or "rerank.dev/owner-uid" not in m["metadata"]["annotations"]
        )


def test_object_meta_does_not_share_label_dicts(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(metadata={"uid": "u"})
    a = object_meta(pipeline, "x", "server")
    b = object_meta(pipeline, "y", "server", namespace="other")
    assert "rerank.dev/pipeline-namespace" in b["labels"]
    assert "rerank.dev/pipeline-namespace" not in a["labels"]
    assert a["ownerReferences"] is not None
    assert "ownerReferences" not in b
