"""The real operator against kmock with the other engines: a TEI pipeline (the stand-in's faithful TEI
mode) and ``spec.external`` (a reranker nobody here deploys, reached at an outside address).

What is proven on the wire: the canary speaks the engine's protocol (TEI's ``texts`` body, which the TEI
stand-in alone accepts), the published Milvus params name the engine's provider, an external server
whose batch limit is below the published batch size is never published as working, and an external
pipeline owns no workload (turning a served one external removes it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kmock_support import (
    DEAD_HOST,
    DEPLOYMENTS,
    EXTERNAL_HOST,
    MODEL,
    PDBS,
    SERVICES,
    Harness,
    consistently,
    passes,
    pipeline_spec,
)

from rerank_operator.models import DEFAULT_TEI_IMAGE

pytestmark = pytest.mark.timeout(60)

EXTERNAL = f"http://{EXTERNAL_HOST}"


def external_spec(**overrides: Any) -> dict[str, Any]:
    """An external pipeline: only the model, the endpoint, the canary's pace and what ``overrides`` add."""
    spec: dict[str, Any] = {
        "model": {"name": MODEL},
        "external": {"endpoint": EXTERNAL},
        "probe": {"intervalSeconds": 1, "failureThreshold": 2, "timeoutSeconds": 5},
    }
    spec.update(overrides)
    return spec


OWNED_LABELS = {"app.kubernetes.io/managed-by": "rerank-operator", "rerank.dev/pipeline": "rr"}


def function_params(h: Harness, name: str) -> dict[str, Any]:
    params: dict[str, Any] = json.loads(h.published(name)["milvus-function.json"])["params"]
    return params


def canary_bodies(h: Harness) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in h.canaries()]


# ------------------------------------------------------------------------------------------ TEI
async def test_a_tei_pipeline_runs_tei_is_probed_in_its_protocol_and_publishes_provider_tei(
    start_operator: Any,
) -> None:
    h = await start_operator(engine="tei", max_client_batch_size=16)
    await h.converge("rr", pipeline_spec(engine={"kind": "tei"}, publish={"maxClientBatchSize": 16}))

    container = h.must(DEPLOYMENTS, "rr-reranker")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == DEFAULT_TEI_IMAGE
    command = [*container.get("command", []), *container["args"]]
    assert command[command.index("--model-id") + 1] == MODEL
    assert command[command.index("--max-client-batch-size") + 1] == "16"  # the server's limit

    bodies = canary_bodies(h)
    assert bodies and all("texts" in b and "documents" not in b for b in bodies), bodies
    params = function_params(h, "rr")
    assert params["provider"] == "tei"
    assert params["max_client_batch_size"] == 16
    assert "truncate_prompt_tokens" not in params
    data = h.published("rr")
    assert "milvus-lite-function.json" not in data  # Milvus Lite cannot call TEI
    assert h.status("rr")["replicas"] == 1


# ------------------------------------------------------------------------------------- external
async def test_an_external_pipeline_deploys_nothing_and_publishes_the_endpoint_that_passed(
    start_operator: Any,
) -> None:
    h = await start_operator(api_key="ext-key")
    await h.create_secret("ext-key", {"token": "ext-key"})
    spec = external_spec()
    spec["external"]["apiKeySecretRef"] = {"name": "ext-key", "key": "token"}
    await h.create_pipeline("rr", spec)
    await h.wait_ready("rr")

    data = h.published("rr")
    assert data["endpoint"] == EXTERNAL
    assert function_params(h, "rr")["provider"] == "vllm"
    assert "milvus-lite-function.json" in data
    status = h.status("rr")
    assert status["endpoint"] == EXTERNAL
    assert "replicas" not in status and "readyReplicas" not in status
    reranks = h.canaries()
    assert reranks and {r.header("host") for r in reranks} == {EXTERNAL_HOST}
    assert {r.header("authorization") for r in reranks} == {"Bearer ext-key"}
    assert "ext-key" not in json.dumps(data)
    for resource in (DEPLOYMENTS, SERVICES, PDBS):
        assert h.names(resource) == [], resource


async def test_an_external_tei_whose_batch_limit_is_below_the_published_size_is_never_published_as_working(
    start_operator: Any,
) -> None:
    h = await start_operator(engine="tei", max_client_batch_size=8)
    await h.create_pipeline("rr", external_spec(external={"endpoint": EXTERNAL, "engine": "tei"}))

    def refused() -> None:
        ready = h.condition("rr", "Ready")
        assert ready["status"] == "False" and ready["reason"] == "BatchLimitExceeded", ready

    await passes(refused, within=10, message="BatchLimitExceeded")
    assert h.published("rr")["ready"] == "false"
    message = str(h.condition("rr", "Ready").get("message"))
    assert "8" in message and "32" in message, message  # the server's limit and the published size

    await h.update_spec("rr", {"publish": {"maxClientBatchSize": 8}})
    await h.wait_ready("rr")
    params = function_params(h, "rr")
    assert params["provider"] == "tei" and params["max_client_batch_size"] == 8


async def test_an_external_endpoint_that_does_not_answer_is_not_ready_and_keeps_the_last_good_config(
    start_operator: Any,
) -> None:
    h = await start_operator()
    await h.create_pipeline("rr", external_spec())
    await h.wait_ready("rr")
    good = h.published("rr")

    await h.update_spec("rr", {"external": {"endpoint": f"http://{DEAD_HOST}"}})

    def not_ready() -> None:
        ready = h.condition("rr", "Ready")
        assert ready["status"] == "False" and ready["observedGeneration"] == 2, ready

    await passes(not_ready, within=10, message="Ready=False for the dead endpoint")
    kept = h.published("rr")
    assert kept["endpoint"] == good["endpoint"] == EXTERNAL  # never published unproven
    assert kept["milvus-function.json"] == good["milvus-function.json"]


async def test_turning_a_served_pipeline_external_removes_its_workload(start_operator: Any) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec())
    assert h.get(DEPLOYMENTS, "rr-reranker") is not None

    await h.update_spec("rr", {"external": {"endpoint": EXTERNAL}})

    def moved() -> None:
        assert h.published("rr")["endpoint"] == EXTERNAL
        assert h.published("rr")["ready"] == "true"
        assert h.get(DEPLOYMENTS, "rr-reranker") is None
        assert h.get(SERVICES, "rr-reranker") is None
        assert h.condition("rr", "Ready")["observedGeneration"] == 2

    await passes(moved, within=15, message="external, workload removed")
    assert "replicas" not in h.status("rr")

    def still_gone() -> None:
        assert h.get(DEPLOYMENTS, "rr-reranker") is None, "recreated"
        assert h.condition("rr", "Ready")["status"] == "True"

    await consistently(still_gone, duration=2)


async def test_an_external_endpoint_outside_the_allowlist_is_never_contacted(
    start_operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SSRF guard covers external.endpoint as it covers publish.endpoint: no canary, no /info."""
    monkeypatch.setenv("RERANK_OPERATOR_ENDPOINT_ALLOWLIST", ".allowed.example.test")
    h = await start_operator(engine="tei")
    await h.create_pipeline("rr", external_spec(external={"endpoint": EXTERNAL, "engine": "tei"}))

    def refused() -> None:
        assert h.condition("rr", "Ready")["reason"] == "EndpointNotAllowed"
        assert "outside the operator's endpoint allowlist" in h.status("rr")["lastProbe"]["message"]

    await passes(refused, within=10, message="EndpointNotAllowed")
    await consistently(lambda: h.standin.request_log == [] or pytest.fail("contacted"), duration=1.5)
    assert h.published("rr")["ready"] == "false"


async def test_a_pipeline_that_moves_from_vllm_to_tei_publishes_tei_and_drops_the_lite_file(
    start_operator: Any,
) -> None:
    """The published ConfigMap follows the verified engine: the Lite file goes with the move to TEI (an
    app must not be handed a Milvus Lite function that calls a server which no longer speaks it)."""
    h = await start_operator()  # the vLLM stand-in answers TEI's body too; its /info is a 404 (unverified)
    await h.converge("rr", pipeline_spec())
    assert "milvus-lite-function.json" in h.published("rr")
    assert function_params(h, "rr")["provider"] == "vllm"

    generation = await h.update_spec("rr", {"engine": {"kind": "tei"}})

    def tei_rendered() -> None:
        container = h.must(DEPLOYMENTS, "rr-reranker")["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["text-embeddings-router"], container

    await passes(tei_rendered, within=10, message="the Deployment runs TEI")
    kept = h.published("rr")
    assert kept["generation"] == "1" and "milvus-lite-function.json" in kept  # nothing unverified published
    await h.play_deployment_controller("rr")

    def moved() -> None:
        data = h.published("rr")
        assert data["generation"] == str(generation) and data["ready"] == "true", data
        assert "milvus-lite-function.json" not in data
        assert function_params(h, "rr")["provider"] == "tei"
        assert "liteFunctionJson" not in h.status("rr")["published"]

    await passes(moved, within=15, message="TEI published")


async def test_an_external_pipeline_never_deletes_foreign_objects_named_or_labelled_like_its_workload(
    start_operator: Any,
) -> None:
    """Turning external removes only what is provably this pipeline's (its UID): a Service named like its
    Service and a Deployment labelled like its revisions, both without its ownerReference, stay untouched."""
    h = await start_operator()
    service = await h.create(
        SERVICES,
        {
            # labelled as the operator labels its own (so it is in the operator's view), but not its own
            "metadata": {"name": "rr-reranker", "labels": {**OWNED_LABELS, "app": "legacy"}},
            "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80}]},
        },
    )
    deployment = await h.create(
        DEPLOYMENTS,
        {
            "metadata": {
                "name": "rr-0000abcd",
                "labels": {**OWNED_LABELS, "rerank.dev/revision": "0000abcd"},
            },
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"metadata": {"labels": {"app": "x"}}},
            },
        },
    )
    await h.create_pipeline("rr", external_spec())
    await h.wait_ready("rr")

    def untouched() -> None:
        for resource, name, before in (
            (SERVICES, "rr-reranker", service),
            (DEPLOYMENTS, "rr-0000abcd", deployment),
        ):
            now = h.must(resource, name)
            assert now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], name
            assert "ownerReferences" not in now["metadata"], name

    await consistently(untouched, duration=2.5)
    assert h.requests("DELETE", SERVICES) == [] and h.requests("DELETE", DEPLOYMENTS) == []
