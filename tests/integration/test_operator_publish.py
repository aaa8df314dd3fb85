"""The real operator against kmock: canary probing, publishing, failure handling, quiet steady state, secrets.

The canary goes over real HTTP to a loopback stand-in, reached via RERANK_OPERATOR_HOST_OVERRIDES
with the in-cluster Host header (the Service DNS name does not resolve outside a cluster).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from kmock_support import (
    CONFIGMAPS,
    DEAD_HOST,
    DEPLOYMENTS,
    EXTERNAL_HOST,
    MODEL,
    PDBS,
    PIPELINES,
    SECRETS,
    SERVICES,
    Harness,
    consistently,
    endpoint_of,
    eventually,
    passes,
    pipeline_spec,
    service_host,
)

from rerank_operator import metrics

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------------------------ 2. probe + publish
async def test_passing_canary_publishes_a_ready_milvus_config(start_operator: Any) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec(publish={"maxClientBatchSize": 16}))

    data = h.published("rr")
    assert data["ready"] == "true"
    assert data["reason"] == "Healthy"
    assert data["endpoint"] == endpoint_of("rr") == "http://rr-reranker.ml.svc.cluster.local:8000"
    assert data["model"] == MODEL
    assert data["generation"] == "1"
    function = json.loads(data["milvus-function.json"])
    assert function["type"] == 3
    assert function["input_field_names"] == ["document"]
    params = function["params"]
    assert params["reranker"] == "model"
    assert params["provider"] == "vllm"
    assert params["endpoint"] == endpoint_of("rr")
    assert params["max_client_batch_size"] == 16
    assert "maxBatch" not in data["milvus-function.json"]  # pre-2.6.1 spelling is never published
    lite = json.loads(data["milvus-lite-function.json"])
    assert lite["params"]["provider"] == "cohere"
    assert lite["params"]["base_url"] == f"{endpoint_of('rr')}/v2"

    status = h.status("rr")
    assert status["lastProbe"]["ok"] is True
    assert status["lastProbe"]["reason"] == "Healthy"
    assert status["latency"]["p50Ms"] > 0 and status["latency"]["p95Ms"] >= status["latency"]["p50Ms"]
    assert status["readyReplicas"] == 1
    assert status["published"]["ready"] is True
    assert status["published"]["generation"] == 1
    published = h.condition("rr", "Published")
    assert published["status"] == "True"
    assert h.condition("rr", "Probed")["status"] == "True"
    for type_ in ("Progressing", "Reconciling", "Degraded", "Stalled"):
        assert h.condition("rr", type_)["status"] == "False", type_

    # the canary really went to the stand-in, addressed as the in-cluster Service
    reranks = h.canaries()
    assert reranks
    assert reranks[-1].header("host") == f"{service_host('rr')}:8000"
    body = reranks[-1].json()
    assert "model" not in body and body["query"] and len(body["documents"]) >= 2  # as Milvus sends it

    def events_posted() -> None:
        events = h.events("rr")
        # a normal creation tells one story in one Event: Ready, and what was published
        [ready] = [(e["type"], e["reason"]) for e in events]
        assert ready == ("Normal", "Ready"), events
        assert "published ranker config rr-ranker for generation 1" in events[0]["message"], events
        for event in events:
            assert event["involvedObject"]["uid"] == h.uids["rr"]
            assert event["involvedObject"]["kind"] == "RerankPipeline"

    await passes(events_posted, within=5, message="Ready and Published Events")


async def test_publish_endpoint_override_is_what_gets_probed_and_published(start_operator: Any) -> None:
    """Milvus outside the cluster: apps get the address it uses, and that address answered the canary."""
    h = await start_operator()
    external = f"http://{EXTERNAL_HOST}"
    await h.converge("rr", pipeline_spec(publish={"endpoint": external}))

    data = h.published("rr")
    assert data["endpoint"] == external
    assert json.loads(data["milvus-function.json"])["params"]["endpoint"] == external
    assert json.loads(data["milvus-lite-function.json"])["params"]["base_url"] == f"{external}/v2"
    assert h.status("rr")["endpoint"] == external
    reranks = h.canaries()
    assert reranks and {r.header("host") for r in reranks} == {EXTERNAL_HOST}
    assert h.get(SERVICES, "rr-reranker") is not None  # in-cluster clients keep the Service


async def test_an_endpoint_outside_the_allowlist_is_never_contacted(
    start_operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator-level SSRF guard: the canary sends nothing (and no API key) to a refused address."""
    monkeypatch.setenv("RERANK_OPERATOR_ENDPOINT_ALLOWLIST", "10.20.0.0/16,.allowed.example.test")
    h = await start_operator()
    await h.create_pipeline("rr", pipeline_spec(publish={"endpoint": f"http://{EXTERNAL_HOST}"}))
    await h.wait_deployment("rr")
    await h.play_deployment_controller("rr")

    def refused() -> None:
        probe = h.status("rr")["lastProbe"]
        assert probe["reason"] == "EndpointNotAllowed", probe
        assert "reranker.example.test is outside the operator's endpoint allowlist" in probe["message"]
        assert h.condition("rr", "Ready")["reason"] == "EndpointNotAllowed"

    await passes(refused, within=10, message="EndpointNotAllowed")
    await consistently(lambda: h.canaries() == [] or pytest.fail("a canary was sent"), duration=1.5)
    assert h.published("rr")["ready"] == "false"


async def test_a_new_endpoint_that_fails_does_not_unpublish_the_working_one(start_operator: Any) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec())  # intervalSeconds 1, failureThreshold 2
    good = h.published("rr")

    await h.update_spec("rr", {"publish": {"endpoint": f"http://{DEAD_HOST}"}})

    def new_endpoint_failing() -> None:
        ready = h.condition("rr", "Ready")
        assert ready["status"] == "False" and ready["reason"] == "ConnectionRefused", ready
        assert h.status("rr")["consecutiveFailures"] >= 2  # past failureThreshold

    await passes(new_endpoint_failing, within=10, message="the new endpoint fails its canary")

    def still_published() -> None:  # the old address keeps passing its own canary
        assert h.published("rr") == good
        assert h.condition("rr", "Degraded")["status"] == "False"

    await consistently(still_published, duration=3)  # three more probe intervals

    # the route comes up: the new endpoint is verified and replaces the old one
    await h.update_spec("rr", {"publish": {"endpoint": f"http://{EXTERNAL_HOST}"}})
    await eventually(
        lambda: h.published("rr")["endpoint"] == f"http://{EXTERNAL_HOST}", within=10, message="new endpoint"
    )
    assert h.published("rr")["ready"] == "true"
    await h.wait_ready("rr", within=10)


# ------------------------------------------------------------------------------------ 3. failure
@pytest.mark.parametrize(("fault", "reason"), [("shuffled", "WrongTopDocument"), ("http500", "HTTPStatus")])
async def test_failing_canary_keeps_the_last_good_config_and_recovers(
    start_operator: Any, fault: str, reason: str
) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec())  # intervalSeconds 1, failureThreshold 2
    good = h.published("rr")

    h.standin.set_fault(fault)

    def marked_not_ready() -> None:
        data = h.published("rr")
        assert data["ready"] == "false", data
        assert data["reason"] == reason
        status = h.status("rr")
        assert status["lastProbe"]["reason"] == reason
        assert status["consecutiveFailures"] >= 2

    await passes(marked_not_ready, within=10, message=f"{fault}: ready=false")
    data = h.published("rr")
    for key in ("endpoint", "model", "generation", "milvus-function.json", "milvus-lite-function.json"):
        assert data[key] == good[key], key  # the last good config stays
    ready = h.condition("rr", "Ready")
    assert ready["status"] == "False" and ready["reason"] == reason
    assert h.condition("rr", "Degraded")["status"] == "True"
    assert h.condition("rr", "Published")["status"] == "True"  # still published, marked not ready

    # hysteresis: one failure alone did not flip the published config
    versions = [v for v in h.kmock.objects[PIPELINES, "ml", "rr"].history if v is not None]
    one_failure = [
        v["status"]
        for v in versions
        if (v.get("status") or {}).get("consecutiveFailures") == 1
        and v["status"]["lastProbe"]["reason"] == reason
    ]
    assert one_failure, "the first failure was written on its own"
    assert all(s["published"]["ready"] is True for s in one_failure)

    h.standin.set_fault("healthy")
    await h.wait_ready("rr", within=10)
    assert h.published("rr") == good


# ------------------------------------------------------------------------------------ 4. lost replicas
async def test_lost_replica_keeps_serving_reports_degraded_and_recovers(start_operator: Any) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec(replicas=2))
    good = h.published("rr")

    # a node drain takes one of two pods; the replacement is not ready yet
    await h.play_deployment_controller("rr", ready=1, updated=2)

    def short() -> None:
        degraded = h.condition("rr", "Degraded")
        assert degraded["status"] == "True" and degraded["reason"] == "ReplicasUnavailable", degraded
        assert "1/2 pods ready" in degraded["message"]

    await passes(short, within=5, message="Degraded=ReplicasUnavailable")
    ready = h.condition("rr", "Ready")
    assert ready["status"] == "True" and "1/2 pods ready" in ready["message"]
    assert h.status("rr")["readyReplicas"] == 1
    assert h.published("rr") == good  # apps keep using it: the canary still passes
    assert h.condition("rr", "Progressing")["status"] == "False"  # nothing is rolling out

    await h.play_deployment_controller("rr")
    await eventually(
        lambda: h.condition("rr", "Degraded")["status"] == "False",
        within=5,
        message="Degraded cleared once both pods are ready",
    )
    assert "pods ready" not in h.condition("rr", "Ready")["message"]
    assert h.published("rr") == good


# ------------------------------------------------------------------------------------ 9. quiet steady state
def successes_metric(name: str) -> float:
    """The operator's consecutive-successes gauge (it runs in this process)."""
    for family in metrics.PROBE_CONSECUTIVE.collect():
        for sample in family.samples:
            if sample.labels == {"namespace": "ml", "pipeline": name, "outcome": "success"}:
                return float(sample.value)
    return 0.0


def api_calls(h: Harness, since: int = 0) -> list[tuple[str, Any, str | None, str | None]]:
    """Every request the emulator received after the first ``since``, watches left out (one stays
    open per watched kind), as (method, resource, name, subresource)."""
    out = []
    for req in list(h.kmock)[since:]:
        if (req.params or {}).get("watch") in ("true", "1", True):
            continue
        method = str(getattr(req.method, "value", req.method)).upper()
        out.append((method, req.resource, req.name, req.subresource))  # kmock resources == "group/v/plural"
    return out


async def test_an_idle_pipeline_makes_no_api_request_while_the_canary_keeps_its_schedule(
    start_operator: Any,
) -> None:
    h = await start_operator()
    await h.create_pipeline("rr", pipeline_spec())  # canary every second
    # the first canary found no ready pod ...
    await eventually(
        lambda: h.status("rr").get("lastProbe", {}).get("reason") == "NoReadyReplicas",
        within=10,
        message="first canary: NoReadyReplicas",
    )
    await h.play_deployment_controller("rr")
    await h.wait_ready("rr", within=5)
    await eventually(lambda: any(e["reason"] == "Ready" for e in h.events("rr")), within=5)
    await asyncio.sleep(1.0)  # the passes woken by the operator's own last writes

    since, canaries = len(list(h.kmock)), len(h.canaries())
    counted, status = successes_metric("rr"), h.status("rr")
    await asyncio.sleep(3.5)  # more than three canary intervals
    assert api_calls(h, since) == [], "an idle pipeline read or wrote through the API"
    assert len(h.canaries()) - canaries >= 3, "the canary kept its schedule"
    # the per-canary detail goes on in the metrics; status keeps it for its heartbeat
    assert successes_metric("rr") >= counted + 3
    assert h.status("rr") == status

    operator_writes = [
        (str(getattr(r.method, "value", r.method)).upper(), r.resource, r.name, r.subresource)
        for r in list(h.kmock)
        if str(getattr(r.method, "value", r.method)).upper() in ("POST", "PUT", "PATCH", "DELETE")
        and not (r.headers or {}).get("User-Agent", "").startswith("kmock")  # the test's own writes
    ]
    # finalizer; Deployment, Service, ConfigMap (one pod: no disruption budget); status Ready=False;
    # ConfigMap and status when Ready; one Event. (kopf may send its finalizer patch twice; the second
    # finds it there.)
    assert len(operator_writes) <= 9, operator_writes
    assert not [w for w in operator_writes if w[1] == PDBS], "a budget for a single pod"
    assert not [w for w in operator_writes if w[1] == PIPELINES and w[3] is None and w[0] == "PATCH"][2:], (
        "kopf annotated the pipeline (diff-base) besides its finalizer"
    )
    creates = [c for c in api_calls(h) if c[0] == "POST" and c[1] in (DEPLOYMENTS, SERVICES, CONFIGMAPS)]
    assert len(creates) == 3, "one create each for Deployment, Service and ConfigMap"
    engine_lists = [
        (req.method, req.resource)
        for req in list(h.kmock)
        if req.name is None
        and str(getattr(req.method, "value", req.method)).upper() == "GET"
        # the watches list first: kopf's (pipelines) and the operator's informers (children)
        and not (req.headers or {}).get("User-Agent", "").startswith("kopf/")
        and not (req.headers or {}).get("User-Agent", "").endswith(" informer")
    ]
    assert engine_lists == [], "a pass listed something instead of reading its watches"
    assert h.names(DEPLOYMENTS) == ["rr-reranker"]
    assert h.names(SERVICES) == ["rr-reranker"]
    assert h.names(CONFIGMAPS) == ["rr-ranker"]
    assert h.condition("rr", "Ready")["status"] == "True"


async def test_restart_writes_nothing_and_republishes_nothing(start_operator: Any) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec())
    await asyncio.sleep(1.0)  # the passes woken by the operator's own last writes
    published = h.must(CONFIGMAPS, "rr-ranker")
    await h.restart_operator()
    since, canaries = len(list(h.kmock)), len(h.canaries())
    await eventually(lambda: len(h.canaries()) >= canaries + 2, within=10, message="canaries after restart")
    writes = [c for c in api_calls(h, since) if c[0] not in ("GET",)]
    assert writes == [], "the restarted operator wrote (its first pass found everything in place)"
    assert (
        h.must(CONFIGMAPS, "rr-ranker")["metadata"]["resourceVersion"]
        == published["metadata"]["resourceVersion"]
    )


async def test_restart_resumes_counters_and_latency_without_dropping_them(
    start_operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await start_operator()
    await h.converge("rr", pipeline_spec(probe={"intervalSeconds": 3600, "failureThreshold": 2}))
    before = h.status("rr")
    assert before["latency"]["samples"] >= 1
    writes = len(h.kmock.objects[PIPELINES, "ml", "rr"].history)

    # a heartbeat of 0: per-canary detail is written with every canary, as it is every 10 minutes
    monkeypatch.setenv("RERANK_OPERATOR_STATUS_HEARTBEAT_SECONDS", "0")
    await h.restart_operator()
    # the new process probes at once (it has no schedule yet) and counts on from what status said
    await eventually(
        lambda: h.status("rr")["consecutiveSuccesses"] > before["consecutiveSuccesses"],
        within=10,
        message="a probe after the restart",
    )
    after = [v for v in h.kmock.objects[PIPELINES, "ml", "rr"].history[writes:] if v is not None]
    assert after, "the restarted operator wrote status"
    for version in after:  # never a status without the latency it had before the restart
        assert "latency" in version["status"], version["status"]
        assert version["status"]["published"]["ready"] is True
    assert h.condition("rr", "Ready")["status"] == "True"
    assert h.published("rr")["ready"] == "true"


# ------------------------------------------------------------------------------------ 10. secrets
async def test_api_key_is_read_from_the_secret_and_never_leaks(
    start_operator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = "sk-rerank-7f3c9a1e5b2d4c6e"
    h = await start_operator(api_key=key)
    await h.create_secret("reranker-api-key", {"token": key})
    spec = pipeline_spec(apiKeySecretRef={"name": "reranker-api-key", "key": "token"})
    await h.converge("secured", spec)

    reranks = h.canaries()
    assert reranks and reranks[-1].header("authorization") == f"Bearer {key}"

    # the pods get the key by reference, never by value
    env = h.must(DEPLOYMENTS, "secured-reranker")["spec"]["template"]["spec"]["containers"][0]["env"]
    api_env = [e for e in env if e["name"] == "VLLM_API_KEY"]
    assert api_env == [
        {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "reranker-api-key", "key": "token"}}}
    ]

    encoded = base64.b64encode(key.encode()).decode()
    for (resource, ns, name), obj in h.kmock.objects.items():
        if resource == SECRETS:
            continue
        for version in obj.history:  # every version ever stored, not only the last
            text = json.dumps(version.raw if version is not None else None)
            assert key not in text and encoded not in text, (resource, ns, name)
    for request in list(h.kmock):
        if request.resource == SECRETS:
            continue
        assert key not in request.text and encoded not in request.text, (request.method, request.url)
    assert any(r.name.startswith("kopf.objects") for r in caplog.records), "the operator's logs were captured"
    assert key not in caplog.text and encoded not in caplog.text
    for record in caplog.records:
        assert key not in record.getMessage()


async def test_missing_secret_is_reported_without_probing(start_operator: Any) -> None:
    h = await start_operator(api_key="sk-never-used-00000000")
    spec = pipeline_spec(apiKeySecretRef={"name": "absent", "key": "token"})
    await h.create_pipeline("secured", spec)
    await h.wait_deployment("secured")
    await h.play_deployment_controller("secured")

    def reported() -> None:
        status = h.status("secured")
        assert status["lastProbe"]["reason"] == "MissingSecret", status["lastProbe"]
        assert "absent" in status["lastProbe"]["message"]
        assert h.published("secured")["ready"] == "false"

    await passes(reported, within=10, message="MissingSecret")
    assert not h.canaries()
