"""Config and storage children: the model-cache PVC and the chat-template ConfigMap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.manifests import render_all
from rerank_operator.models import RerankPipeline
from rerank_operator.render import render_cache_pvc, render_chat_template, render_workload, revision

MakePipeline = Callable[..., RerankPipeline]


# ------------------------------------------------------------------------------------------ PVC
@pytest.mark.parametrize("cache", [{}, {"existingClaim": "shared-cache"}], ids=["emptyDir", "existingClaim"])
def test_no_pvc_unless_asked(make_pipeline: MakePipeline, cache: dict[str, Any]) -> None:
    pipeline = make_pipeline(modelCache=cache)
    assert render_cache_pvc(pipeline) is None
    assert "PersistentVolumeClaim" not in {m["kind"] for m in render_all(pipeline)}


def test_pvc_defaults(make_pipeline: MakePipeline) -> None:
    pvc = render_cache_pvc(make_pipeline(modelCache={"pvc": {}}))
    assert pvc is not None
    assert pvc["apiVersion"] == "v1"
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert pvc["metadata"]["name"] == "demo-model-cache"
    assert pvc["metadata"]["namespace"] == "search"
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}}


def test_pvc_with_every_option(make_pipeline: MakePipeline) -> None:
    pvc = render_cache_pvc(
        make_pipeline(
            modelCache={
                "pvc": {
                    "size": "200Gi",
                    "storageClassName": "fast",
                    "accessModes": ["ReadWriteMany", "ReadOnlyMany"],
                }
            }
        )
    )
    assert pvc is not None
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany", "ReadOnlyMany"],
        "resources": {"requests": {"storage": "200Gi"}},
        "storageClassName": "fast",
    }


def test_pvc_size_as_integer_bytes_is_rendered_as_a_string(make_pipeline: MakePipeline) -> None:
    pvc = render_cache_pvc(make_pipeline(modelCache={"pvc": {"size": 10737418240}}))
    assert pvc is not None
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10737418240"


def test_pvc_is_owned_by_the_pipeline_when_it_has_a_uid(make_pipeline: MakePipeline) -> None:
    pvc = render_cache_pvc(make_pipeline(metadata={"uid": "u-1"}, modelCache={"pvc": {}}))
    assert pvc is not None
    [owner] = pvc["metadata"]["ownerReferences"]
    assert owner["uid"] == "u-1"
    assert pvc["metadata"]["labels"]["app.kubernetes.io/component"] == "model-cache"


def test_existing_claim_is_never_rendered_or_owned(make_pipeline: MakePipeline) -> None:
    manifests = render_all(make_pipeline(metadata={"uid": "u-1"}, modelCache={"existingClaim": "team-cache"}))
    assert all(m["metadata"]["name"] != "team-cache" for m in manifests)


# ------------------------------------------------------------------------------- chat template
def test_no_template_configmap_without_a_template(make_pipeline: MakePipeline) -> None:
    assert render_chat_template(make_pipeline()) is None


def test_template_configmap_holds_the_text_verbatim(make_pipeline: MakePipeline) -> None:
    text = "{#- judge -#}\n<|im_start|>user\n{{ messages[0]['content'] }}\n\n</think>\n\n"
    pipeline = make_pipeline(model={"chatTemplate": text})
    cm = render_chat_template(pipeline)
    assert cm is not None
    assert cm["apiVersion"] == "v1"
    assert cm["kind"] == "ConfigMap"
    # BlueGreen: one per revision, so a candidate's new text never reaches a pod of the serving revision
    assert cm["metadata"]["name"] == f"demo-{revision(pipeline)}-chat-template"
    assert cm["metadata"]["namespace"] == "search"
    assert cm["data"] == {"template.jinja": text}
    assert cm["metadata"]["labels"]["app.kubernetes.io/component"] == "chat-template"


@pytest.mark.parametrize("strategy", ["Surge", "Replace"])
def test_template_configmap_of_a_deployment_rolled_in_place(
    make_pipeline: MakePipeline, strategy: str
) -> None:
    cm = render_chat_template(make_pipeline(model={"chatTemplate": "t"}, rollout={"strategy": strategy}))
    assert cm is not None
    assert cm["metadata"]["name"] == "demo-chat-template"


def test_each_revision_has_its_own_template_configmap(make_pipeline: MakePipeline) -> None:
    a = render_chat_template(make_pipeline(model={"chatTemplate": "A {{ messages }}"}))
    b = render_chat_template(make_pipeline(model={"chatTemplate": "B {{ messages }}"}))
    assert a is not None and b is not None
    assert a["metadata"]["name"] != b["metadata"]["name"]


def test_workload_apply_order(make_pipeline: MakePipeline) -> None:
    """Config and storage before the pods that mount them; BlueGreen (the default): the revision's
    Service before the stable one."""
    pipeline = make_pipeline(replicas=2, model={"chatTemplate": "t"}, modelCache={"pvc": {}})
    rev = revision(pipeline)
    kinds = [(m["kind"], m["metadata"]["name"]) for m in render_workload(pipeline)]
    assert kinds == [
        ("ConfigMap", f"demo-{rev}-chat-template"),
        ("PersistentVolumeClaim", "demo-model-cache"),
        ("Deployment", f"demo-{rev}"),
        ("Service", f"demo-{rev}"),
        ("Service", "demo-reranker"),
        ("PodDisruptionBudget", "demo-reranker"),
    ]
    kinds_without_extras = [m["kind"] for m in render_workload(make_pipeline(replicas=1))]
    assert kinds_without_extras == ["Deployment", "Service", "Service"]  # one pod: no budget to keep


@pytest.mark.parametrize("strategy", ["Surge", "Replace"])
def test_workload_apply_order_when_rolled_in_place(make_pipeline: MakePipeline, strategy: str) -> None:
    pipeline = make_pipeline(
        replicas=2, model={"chatTemplate": "t"}, modelCache={"pvc": {}}, rollout={"strategy": strategy}
    )
    kinds = [(m["kind"], m["metadata"]["name"]) for m in render_workload(pipeline)]
    assert kinds == [
        ("ConfigMap", "demo-chat-template"),
        ("PersistentVolumeClaim", "demo-model-cache"),
        ("Deployment", "demo-reranker"),
        ("Service", "demo-reranker"),
        ("PodDisruptionBudget", "demo-reranker"),
    ]
    kinds_without_extras = [
        m["kind"] for m in render_workload(make_pipeline(replicas=1, rollout={"strategy": strategy}))
    ]
    assert kinds_without_extras == ["Deployment", "Service"]  # one pod: no budget to keep
