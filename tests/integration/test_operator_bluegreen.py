"""BlueGreen in-process against kmock: revisions, the gated switch, the drain and the autoscaler.

kmock runs no controllers, so the test plays the Deployment controller for each revision's Deployment.
The canary reaches every Service of the pipeline (stable and per revision) through one override key.
The "never two revisions behind the endpoint" property is the real control plane's, with its
EndpointSlices: ``tests/e2e/test_bluegreen_e2e.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kmock_support import (
    CONFIGMAPS,
    DEPLOYMENTS,
    HPAS,
    NAMESPACE,
    SERVICES,
    Harness,
    consistently,
    eventually,
    passes,
    pipeline_spec,
)

from rerank_operator.models import RerankPipeline
from rerank_operator.reconcile.revisions import RETIRING_ANNOTATION
from rerank_operator.render import revision

pytestmark = pytest.mark.timeout(60)

REVISION = "rerank.dev/revision"


def spec(max_model_len: int = 512, **extra: Any) -> dict[str, Any]:
    return pipeline_spec(
        rollout={"strategy": "BlueGreen", "drainSeconds": 1},
        model={"name": "BAAI/bge-reranker-base", "maxModelLen": max_model_len},
        **extra,
    )


def rev(spec: dict[str, Any], name: str = "rr") -> str:
    return revision(
        RerankPipeline.from_body({"metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})
    )


def selected(h: Harness) -> str | None:
    service = h.get(SERVICES, "rr-reranker")
    return None if service is None else service["spec"]["selector"].get(REVISION)


async def test_a_new_revision_takes_the_endpoint_only_after_its_canary(start_operator: Any) -> None:
    h = await start_operator()
    first, second = spec(512), spec(384)
    old, new = rev(first), rev(second)
    await h.create_pipeline("rr", first)
    await h.wait_deployment("rr", deployment=f"rr-{old}")
    # a first revision has no traffic to protect: it takes the stable Service at once, and needs no
    # Service of its own; nothing is published as working before its canary passes
    assert selected(h) == old
    assert h.get(SERVICES, f"rr-{old}") is None
    assert h.published("rr")["ready"] == "false"
    await h.play_deployment_controller("rr", deployment=f"rr-{old}")
    await h.wait_ready("rr")
    assert selected(h) == old
    assert h.status("rr")["revisions"] == {"active": old, "activeDeployment": f"rr-{old}", "retiring": []}

    await h.update_spec("rr", {"model": second["model"]})
    await h.wait_deployment("rr", deployment=f"rr-{new}")

    def waiting() -> None:
        assert selected(h) == old
        assert h.published("rr")["generation"] == "1" and h.published("rr")["ready"] == "true"

    await consistently(waiting, duration=1.5)  # its pods are not ready: no switch, nothing published
    revisions = h.status("rr")["revisions"]
    assert (revisions["active"], revisions["candidate"], revisions["reason"]) == (old, new, "RollingOut")

    await h.play_deployment_controller("rr", deployment=f"rr-{new}")
    await eventually(lambda: h.published("rr")["generation"] == "2", within=10, message="generation 2")
    assert selected(h) == new
    drains = json.loads(h.must(SERVICES, "rr-reranker")["metadata"]["annotations"][RETIRING_ANNOTATION])
    assert list(drains) == [f"rr-{old}"]  # written with the switch
    await eventually(
        lambda: h.get(DEPLOYMENTS, f"rr-{old}") is None and h.get(SERVICES, f"rr-{old}") is None,
        within=10,
        message="the previous revision deleted after its drain",
    )
    await eventually(
        lambda: (
            RETIRING_ANNOTATION not in (h.must(SERVICES, "rr-reranker")["metadata"].get("annotations") or {})
        ),
        within=10,
        message="the drain record cleared",
    )
    await eventually(
        lambda: (
            h.status("rr")["revisions"] == {"active": new, "activeDeployment": f"rr-{new}", "retiring": []}
        ),
        within=10,
        message="status without the candidate and the drain",
    )


async def test_the_autoscaler_follows_the_active_revision(start_operator: Any) -> None:
    h = await start_operator()
    autoscaling = {"minReplicas": 1, "maxReplicas": 4}
    first, second = spec(512, autoscaling=autoscaling), spec(384, autoscaling=autoscaling)
    old, new = rev(first), rev(second)
    await h.create_pipeline("rr", first)
    await h.wait_deployment("rr", deployment=f"rr-{old}")
    await h.play_deployment_controller("rr", deployment=f"rr-{old}")
    await h.wait_ready("rr")
    assert h.must(HPAS, "rr-reranker")["spec"]["scaleTargetRef"]["name"] == f"rr-{old}"
    await h.patch(DEPLOYMENTS, f"rr-{old}", {"spec": {"replicas": 3}})  # the HPA scaled it
    await h.play_deployment_controller("rr", deployment=f"rr-{old}")

    def scaled() -> None:  # the operator has seen the scale (its view is watch-fed) before the spec changes
        assert h.status("rr")["replicas"] == 3

    await passes(scaled, within=10, message="the scale observed")

    await h.update_spec("rr", {"model": second["model"]})
    candidate = await h.wait_deployment("rr", deployment=f"rr-{new}")
    assert candidate["spec"]["replicas"] == 3  # as many pods as the revision it replaces serves with
    assert h.must(HPAS, "rr-reranker")["spec"]["scaleTargetRef"]["name"] == f"rr-{old}"

    async def switched() -> bool:
        # kmock bumps the generation on the replica handover's apply (a real apiserver does not, the
        # value being the same): the controller is played until the candidate counts as rolled out
        await h.play_deployment_controller("rr", deployment=f"rr-{new}")
        return bool(h.must(HPAS, "rr-reranker")["spec"]["scaleTargetRef"]["name"] == f"rr-{new}")

    await eventually(switched, within=10, message="the HPA retargeted at the switch")
    assert selected(h) == new


async def test_each_revision_mounts_its_own_chat_template(start_operator: Any) -> None:
    h = await start_operator()
    first = spec(512)
    first["model"]["chatTemplate"] = "{{ messages }} v1"
    second = {**first, "model": {**first["model"], "chatTemplate": "{{ messages }} v2"}}
    old, new = rev(first), rev(second)
    await h.create_pipeline("rr", first)
    await h.wait_deployment("rr", deployment=f"rr-{old}")
    await h.play_deployment_controller("rr", deployment=f"rr-{old}")
    await h.wait_ready("rr")
    await h.update_spec("rr", {"model": second["model"]})
    await h.wait_deployment("rr", deployment=f"rr-{new}")
    await eventually(
        lambda: h.get(CONFIGMAPS, f"rr-{new}-chat-template"), within=10, message="the new template"
    )
    # the serving revision's template is untouched while it serves
    assert h.must(CONFIGMAPS, f"rr-{old}-chat-template")["data"]["template.jinja"].endswith("v1")
    await h.play_deployment_controller("rr", deployment=f"rr-{new}")
    await eventually(
        lambda: (
            h.get(DEPLOYMENTS, f"rr-{old}") is None and h.get(CONFIGMAPS, f"rr-{old}-chat-template") is None
        ),
        within=10,
        message="the previous revision and its template deleted after the drain",
    )
    assert h.must(CONFIGMAPS, f"rr-{new}-chat-template")["data"]["template.jinja"].endswith("v2")


async def test_foreign_objects_named_or_labelled_like_revisions_are_never_touched(
    start_operator: Any,
) -> None:
    h = await start_operator()
    await h.create(
        SERVICES,
        {
            "metadata": {"name": "rr-reranker", "labels": {"app": "legacy"}},
            "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]},
        },
    )
    # labelled as the pipeline's and named like a revision, but with no ownerReference: not ours
    await h.create(
        DEPLOYMENTS,
        {
            "metadata": {
                "name": "rr-0000abcd",
                "labels": {"rerank.dev/pipeline": "rr", REVISION: "0000abcd"},
            },
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}},
            },
        },
    )
    service_before = h.must(SERVICES, "rr-reranker")
    deployment_before = h.must(DEPLOYMENTS, "rr-0000abcd")
    first = spec(512)
    await h.create_pipeline("rr", first)
    await h.wait_deployment("rr", deployment=f"rr-{rev(first)}")
    await h.play_deployment_controller("rr", deployment=f"rr-{rev(first)}")

    def rejected() -> None:
        cond = h.condition("rr", "Stalled")
        assert cond["status"] == "True" and cond["reason"] == "ApplyRejected", cond
        assert "Service ml/rr-reranker exists and is not this pipeline's" in cond["message"], cond

    await eventually(
        lambda: rejected() is None, within=10, message="the stable Service refused: it is someone else's"
    )

    def untouched() -> None:
        for resource, name, before in (
            (SERVICES, "rr-reranker", service_before),
            (DEPLOYMENTS, "rr-0000abcd", deployment_before),
        ):
            now = h.must(resource, name)
            assert now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], name
            assert "ownerReferences" not in now["metadata"], name

    await consistently(untouched, duration=2.5)
    assert h.published("rr")["ready"] == "false"  # nothing published as working through it
