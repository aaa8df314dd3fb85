"""The real operator against kmock: it never adopts, overwrites or deletes what is not provably its own,
and publishes into another namespace only with that namespace's consent (a RerankPublishGrant).

The same scenarios run on the real control plane, as the chart's ServiceAccount, in
tests/e2e/test_ownership_e2e.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from kmock_support import (
    CONFIGMAPS,
    DEPLOYMENTS,
    GRANTS,
    PIPELINES,
    SERVICES,
    consistently,
    eventually,
    passes,
    pipeline_spec,
)

pytestmark = pytest.mark.timeout(60)


def _absent(h: Any, resource: str, name: str, namespace: str) -> None:
    assert h.get(resource, name, namespace) is None, f"{resource} {namespace}/{name} exists"


def _unchanged(h: Any, resource: str, name: str, namespace: str, before: dict[str, Any]) -> None:
    assert h.must(resource, name, namespace) == before, f"{resource} {namespace}/{name} changed"


def _degraded_by(h: Any, name: str, *needles: str) -> dict[str, Any]:
    cond = h.condition(name, "Degraded")
    assert cond["status"] == "True" and cond["reason"] == "PublishFailed", cond
    for needle in needles:
        assert needle in cond["message"], cond
    return dict(cond)


async def test_no_copy_without_consent_and_a_revoked_grant_withdraws_it(start_operator: Any) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec(publish={"namespaces": ["apps"]}))

    # Ready (the own copy works), Degraded naming the namespace and how to consent; nothing in apps
    assert h.get(CONFIGMAPS, "rr-ranker", "apps") is None
    _degraded_by(h, "rr", "namespace apps", "RerankPublishGrant", "{namespace: ml}")
    assert h.condition("rr", "Ready")["status"] == "True"
    assert h.requests("POST", CONFIGMAPS, namespace="apps") == []

    # a grant for another source namespace, or only for other pipelines, is not consent
    await h.grant("apps", "elsewhere", name="not-us")
    await h.grant("apps", "ml", name="other-pipelines", pipelines=["other"])
    await consistently(lambda: _absent(h, CONFIGMAPS, "rr-ranker", "apps"), duration=2.5)

    await h.grant("apps", "ml", name="for-rr", pipelines=["rr"])
    copy = await eventually(lambda: h.get(CONFIGMAPS, "rr-ranker", "apps"), within=10, message="copy in apps")
    assert copy["metadata"]["annotations"]["rerank.dev/owner-uid"] == h.uids["rr"]
    assert copy["metadata"]["annotations"]["rerank.dev/owner"] == "ml/rr"
    await eventually(lambda: h.condition("rr", "Degraded")["status"] == "False", within=10, message="healed")

    await h.delete(GRANTS, "for-rr", namespace="apps")  # revoking is deliberate: the copy goes
    await passes(
        lambda: _absent(h, CONFIGMAPS, "rr-ranker", "apps"),
        within=10,
        message="copy withdrawn after the grant was deleted",
    )
    await passes(lambda: _degraded_by(h, "rr", "namespace apps"), within=10, message="Degraded again")
    assert h.published("rr")["ready"] == "true"  # the own copy is untouched by all of this


async def test_a_foreign_configmap_in_a_consenting_namespace_is_never_touched(start_operator: Any) -> None:
    """The confused-deputy scenario: the target name is someone else's ConfigMap."""
    h = await start_operator()
    victim = {"metadata": {"name": "victim", "labels": {"team": "other"}}, "data": {"important": "keep-me"}}
    await h.create(CONFIGMAPS, victim, namespace="other")
    before = h.must(CONFIGMAPS, "victim", "other")
    await h.grant("other", "ml")  # even with consent, an existing object that is not ours stays as it is
    await h.create_pipeline("rr", pipeline_spec(publish={"configMapName": "victim", "namespaces": ["other"]}))
    await h.wait_deployment("rr")
    await h.play_deployment_controller("rr")
    await passes(
        lambda: _degraded_by(h, "rr", "ConfigMap other/victim exists and is not this pipeline's"),
        within=10,
        message="PublishFailed naming the victim",
    )
    await eventually(  # the pipeline's own copy works all the same
        lambda: h.must(CONFIGMAPS, "victim", "ml")["data"]["ready"] == "true", within=10, message="own copy"
    )
    await consistently(lambda: _unchanged(h, CONFIGMAPS, "victim", "other", before), duration=2.5)
    assert h.requests("PATCH", CONFIGMAPS, "victim", namespace="other") == []

    await h.delete(PIPELINES, "rr")
    await passes(lambda: _absent(h, PIPELINES, "rr", "ml"), within=15, message="pipeline deleted")
    assert h.must(CONFIGMAPS, "victim", "other") == before
    assert h.requests("DELETE", CONFIGMAPS, "victim", namespace="other") == []


async def test_a_preexisting_child_is_neither_adopted_nor_changed(start_operator: Any) -> None:
    h = await start_operator()
    service = {
        "metadata": {"name": "rr-reranker", "labels": {"app": "legacy"}},
        "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]},
    }
    await h.create(SERVICES, service)
    before = h.must(SERVICES, "rr-reranker")
    await h.create_pipeline("rr", pipeline_spec())

    def rejected() -> None:
        cond = h.condition("rr", "Stalled")
        assert cond["status"] == "True" and cond["reason"] == "ApplyRejected", cond
        assert "Service ml/rr-reranker exists and is not this pipeline's" in cond["message"], cond
        assert "it has no controller" in cond["message"], cond
        assert h.condition("rr", "Ready")["reason"] == "ApplyRejected"

    await passes(rejected, within=10, message="ApplyRejected naming the Service")
    await consistently(lambda: _unchanged(h, SERVICES, "rr-reranker", "ml", before), duration=2.5)
    assert "ownerReferences" not in h.must(SERVICES, "rr-reranker")["metadata"]
    assert h.get(DEPLOYMENTS, "rr-reranker") is not None  # the other children are created as usual
    # a rollout that completes changes nothing: no canary through someone else's Service, nothing
    # published as working
    await h.play_deployment_controller("rr")
    await consistently(lambda: _unchanged(h, SERVICES, "rr-reranker", "ml", before), duration=2.5)
    assert h.canaries() == []
    assert h.published("rr")["ready"] == "false"
    assert h.condition("rr", "Ready")["reason"] == "ApplyRejected"
