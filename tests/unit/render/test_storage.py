"""Config and storage children: the model-cache PVC and the chat-template ConfigMap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.manifests import render_all
from rerank_operator.models import RerankPipeline
from rerank_operator.render import render_cache_pvc, render_chat_template, render_workload

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
    cm = render_chat_template(make_pipeline(model={"chatTemplate": text}))
    assert cm is not None
    assert cm["apiVersion"] == "v1"
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "demo-chat-template"
    assert cm["metadata"]["namespace"] == "search"
    assert cm["data"] == {"template.jinja": text}
    assert cm["metadata"]["labels"]["app.kubernetes.io/component"] == "chat-template"


def test_workload_apply_order(make_pipeline: MakePipeline) -> None:
    """Config and storage before the pods that mount them."""
    pipeline = make_pipeline(replicas=2, model={"chatTemplate": "t"}, modelCache={"pvc": {}})
    kinds = [(m["kind"], m["metadata"]["name"]) for m in render_workload(pipeline)]
    assert kinds == [
        ("ConfigMap", "demo-chat-template"),
        ("PersistentVolumeClaim", "demo-model-cache"),
        ("Deployment", "demo-reranker"),
        ("Service", "demo-reranker"),
        ("PodDisruptionBudget", "demo-reranker"),
    ]
    kinds_without_extras = [m["kind"] for m in render_workload(make_pipeline(replicas=1))]
    assert kinds_without_extras == ["Deployment", "Service"]  # one pod: no budget to keep
