"""The probe against a real (stand-in) reranker on loopback, in every fault mode, vLLM's and TEI's."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymilvus import Function

from rerank_operator.client import RankerConfigError, load_ranker
from rerank_operator.models import RerankPipeline
from rerank_operator.probe import (
    DEFAULT_CANARY,
    HOST_OVERRIDES_ENV,
    REASONS,
    Canary,
    HostResolver,
    ProbeTarget,
    ProbeVerdict,
    Reason,
    probe_reranker,
)
from rerank_operator.publish import PublishedConfig, milvus_function, milvus_lite_function
from rerank_operator.standin import DEFAULT_MODEL, FaultMode, StandinServer

Factory = Callable[..., StandinServer]

# Every fault mode and the verdict reason it must produce (slow is covered by two dedicated tests).
EXPECTED: dict[FaultMode, Reason] = {
    FaultMode.HEALTHY: Reason.HEALTHY,
    FaultMode.HTTP500: Reason.HTTP_STATUS,
    FaultMode.WRONG_COUNT: Reason.WRONG_RESULT_COUNT,
    FaultMode.NAN: Reason.NON_FINITE_SCORE,
    FaultMode.SHUFFLED: Reason.WRONG_TOP_DOCUMENT,
    FaultMode.DUPLICATE_INDEX: Reason.DUPLICATE_INDEX,
    FaultMode.INDEX_OUT_OF_RANGE: Reason.INDEX_OUT_OF_RANGE,
    FaultMode.INVALID_JSON: Reason.INVALID_JSON,
    FaultMode.MALFORMED: Reason.MALFORMED_RESPONSE,
    FaultMode.NOT_FOUND: Reason.HTTP_STATUS,
    FaultMode.DROP: Reason.CONNECTION_ERROR,
    FaultMode.LOADING: Reason.CONNECTION_REFUSED,
}


async def probe(server: StandinServer, **kw: Any) -> ProbeVerdict:
    return await probe_reranker(ProbeTarget(server.url, **kw), resolver=HostResolver())


def test_every_fault_mode_has_an_expected_reason() -> None:
    assert set(EXPECTED) | {FaultMode.SLOW} == set(FaultMode)


async def test_healthy_standin_passes_and_sees_a_milvus_shaped_request(standin: StandinServer) -> None:
    v = await probe(standin)
    assert v.ok, v.message
    assert v.reason == "Healthy"
    assert v.status_code == 200
    assert v.ranking[0] == DEFAULT_CANARY.expected_top_index
    assert len(v.scores) == len(DEFAULT_CANARY.documents)
    assert v.latency_ms is not None
    assert v.latency_ms > 0
    assert v.model_listed is None  # no served model given: not checked
    (req,) = standin.request_log
    assert (req.method, req.path) == ("POST", "/rerank")
    assert req.json() == {"query": DEFAULT_CANARY.query, "documents": list(DEFAULT_CANARY.documents)}
    assert req.header("authorization") is None


@pytest.mark.parametrize("mode", list(EXPECTED), ids=str)
async def test_fault_modes_give_specific_reasons(standin: StandinServer, mode: FaultMode) -> None:
    standin.set_fault(mode)
    v = await probe(standin, timeout_s=3.0)
    assert v.reason == EXPECTED[mode], v.message
    assert v.ok is (mode is FaultMode.HEALTHY)
    if not v.ok:
        assert v.message.startswith(v.reason)
    json.dumps(v.to_dict(), allow_nan=False)  # verdicts are strict JSON in every mode


async def test_http_status_messages_carry_the_code(standin: StandinServer) -> None:
    standin.set_fault("not_found")
    assert (await probe(standin)).message == "HTTPStatus 404: Not Found"
    standin.set_fault("http500")
    v = await probe(standin)
    assert v.status_code == 500
    assert v.message.startswith("HTTPStatus 500: ")


async def test_slow_but_correct_is_slow_response(standin: StandinServer) -> None:
    standin.set_fault("slow", delay_s=0.3)
    v = await probe(standin, max_latency_ms=100, timeout_s=5.0)
    assert v.reason == Reason.SLOW_RESPONSE
    assert v.latency_ms is not None
    assert v.latency_ms >= 300
    assert v.ranking[0] == DEFAULT_CANARY.expected_top_index
    assert (await probe(standin, max_latency_ms=5000)).ok


async def test_slower_than_the_timeout_is_timeout(standin: StandinServer) -> None:
    standin.set_fault("slow", delay_s=3.0)
    started = time.monotonic()
    v = await probe(standin, timeout_s=0.3)
    assert v.reason == Reason.TIMEOUT
    assert time.monotonic() - started < 2.0


async def test_nothing_listening_is_connection_refused(closed_port: int) -> None:
    target = ProbeTarget(f"http://127.0.0.1:{closed_port}")
    v = await probe_reranker(target, resolver=HostResolver())
    assert v.reason == Reason.CONNECTION_REFUSED
    assert v.status_code is None


async def test_loading_comes_back_on_the_same_port_even_for_pooled_connections(
    standin: StandinServer,
) -> None:
    url = standin.url
    async with httpx.AsyncClient() as client:  # keeps connections alive between probes
        target = ProbeTarget(url)
        assert (await probe_reranker(target, client=client, resolver=HostResolver())).ok
        standin.set_fault("loading")
        assert not standin.running
        v = await probe_reranker(target, client=client, resolver=HostResolver())
        assert v.reason == Reason.CONNECTION_REFUSED
        standin.set_fault("healthy")
        assert standin.url == url
        assert (await probe_reranker(target, client=client, resolver=HostResolver())).ok


async def test_loading_with_duration_recovers_by_itself(standin: StandinServer) -> None:
    standin.set_fault("loading", duration_s=0.5)
    assert (await probe(standin)).reason == Reason.CONNECTION_REFUSED
    assert await asyncio.to_thread(standin.wait_listening, 5.0)
    assert (await probe(standin)).ok


async def test_concurrent_probes_while_faults_flip_never_raise(standin: StandinServer) -> None:
    """Bounded chaos: 40 probes over a shared client while 12 fault switches happen (incl. loading)."""
    modes = [
        FaultMode.HTTP500,
        FaultMode.DROP,
        FaultMode.LOADING,
        FaultMode.NAN,
        FaultMode.HEALTHY,
        FaultMode.SHUFFLED,
    ] * 2

    async def flip() -> None:
        for mode in modes:
            await asyncio.to_thread(standin.set_fault, mode)
            await asyncio.sleep(0.02)
        await asyncio.to_thread(standin.set_fault, FaultMode.HEALTHY)

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=8)) as client:
        target = ProbeTarget(standin.url, timeout_s=3.0)
        probes = [probe_reranker(target, client=client, resolver=HostResolver()) for _ in range(40)]
        verdicts = await asyncio.wait_for(asyncio.gather(flip(), *probes), timeout=30)
        # every verdict is one the flipped faults explain (a dropped or refused connection mid-flip
        # included), never e.g. InvalidEndpoint or MalformedResponse from a confused client
        explained = {
            Reason.HEALTHY,
            Reason.HTTP_STATUS,
            Reason.CONNECTION_ERROR,
            Reason.CONNECTION_REFUSED,
            Reason.TIMEOUT,
            Reason.NON_FINITE_SCORE,
            Reason.WRONG_TOP_DOCUMENT,
        }
        assert {v.reason for v in verdicts[1:]} <= explained, [v.reason for v in verdicts[1:]]
        assert all(v.reason in REASONS for v in verdicts[1:])
        assert (await probe_reranker(target, client=client, resolver=HostResolver())).ok


async def test_admin_route_switches_faults(standin: StandinServer) -> None:
    async with httpx.AsyncClient(base_url=standin.url) as admin:
        r = await admin.post("/__standin/fault", json={"mode": "shuffled"})
        assert r.json()["mode"] == "shuffled"
        assert (await probe(standin)).reason == Reason.WRONG_TOP_DOCUMENT
        assert (await admin.post("/__standin/fault", json={"mode": "bogus"})).status_code == 400
        assert (await admin.post("/__standin/fault", json={"mode": "loading"})).status_code == 400
        r = await admin.post("/__standin/fault", json={"mode": "loading", "duration_s": 0.5})
        assert r.json() == {"mode": "loading", "delay_s": 0.0, "listening": False}
    assert (await probe(standin)).reason == Reason.CONNECTION_REFUSED
    assert await asyncio.to_thread(standin.wait_listening, 5.0)
    assert (await probe(standin)).ok


@pytest.mark.parametrize(
    ("given", "reason"),
    [("s3cret-key", Reason.HEALTHY), ("wrong-key-123", Reason.UNAUTHORIZED), (None, Reason.UNAUTHORIZED)],
    ids=["right", "wrong", "missing"],
)
async def test_api_key(standin_factory: Factory, given: str | None, reason: Reason) -> None:
    server = standin_factory(api_key="s3cret-key")
    v = await probe(server, api_key=given)
    assert v.reason == reason, v.message
    if given:
        assert server.request_log[-1].header("authorization") == f"Bearer {given}"
        assert given not in v.message
        assert given not in json.dumps(v.to_dict())
    if reason == Reason.UNAUTHORIZED:
        assert v.status_code == 401


async def test_served_model_listed(standin_factory: Factory) -> None:
    server = standin_factory(served_model="rr-bge", api_key="k")
    v = await probe(server, served_model="rr-bge", api_key="k")
    assert v.ok, v.message
    assert v.model_listed is True
    paths = [r.path for r in server.request_log]
    assert paths == ["/rerank", "/v1/models"]
    assert all(r.header("authorization") == "Bearer k" for r in server.request_log)


async def test_served_model_not_listed(standin: StandinServer) -> None:
    v = await probe(standin, served_model="Qwen/Qwen3-Reranker-0.6B")
    assert v.reason == Reason.MODEL_NOT_LISTED
    assert v.model_listed is False
    assert v.ranking[0] == DEFAULT_CANARY.expected_top_index  # the rerank itself was fine
    assert "Qwen/Qwen3-Reranker-0.6B" in v.message


async def test_unreadable_model_list_does_not_fail_the_probe(standin_factory: Factory) -> None:
    # Many vLLM releases guard /v1 with --api-key but leave /rerank open: Milvus works without a key.
    server = standin_factory(api_key="k", key_protects_bare_rerank=False)
    v = await probe(server, served_model=DEFAULT_MODEL)
    assert v.ok, v.message
    assert v.model_listed is None


async def test_tei_engine(standin: StandinServer) -> None:
    v = await probe(standin, engine="tei", truncate=True)
    assert v.ok, v.message
    body = standin.request_log[-1].json()
    assert body == {"query": DEFAULT_CANARY.query, "texts": list(DEFAULT_CANARY.documents), "truncate": True}
    standin.set_fault("nan")
    assert (await probe(standin, engine="tei")).reason == Reason.NON_FINITE_SCORE
    standin.set_fault("healthy")
    assert (await probe(standin, engine="vllm")).ok  # the stand-in answers in the shape it was asked in


async def test_truncate_prompt_tokens_is_forwarded(standin: StandinServer) -> None:
    assert (await probe(standin, truncate_prompt_tokens=256)).ok
    assert standin.request_log[-1].json()["truncate_prompt_tokens"] == 256
    v = await probe(standin, truncate_prompt_tokens=100_000)  # above max_model_len: vLLM answers 400
    assert v.reason == Reason.HTTP_STATUS
    assert "max_model_len" in v.message


async def test_resolver_seam_reaches_the_standin_with_the_original_host(standin: StandinServer) -> None:
    cluster = "rr-svc.default.svc.cluster.local:8000"
    resolver = HostResolver.parse(f"{cluster}=127.0.0.1:{standin.port},other:80=127.0.0.1:9")
    v = await probe_reranker(ProbeTarget(f"http://{cluster}"), resolver=resolver)
    assert v.ok, v.message
    assert standin.request_log[-1].header("host") == cluster


async def test_resolver_seam_from_the_environment(
    standin: StandinServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOST_OVERRIDES_ENV, f"rr-svc.ns.svc=127.0.0.1:{standin.port}")
    v = await probe_reranker(ProbeTarget("http://rr-svc.ns.svc:8000", served_model=DEFAULT_MODEL))
    assert v.ok, v.message
    assert v.model_listed is True
    assert {r.header("host") for r in standin.request_log} == {"rr-svc.ns.svc:8000"}
    monkeypatch.setenv(HOST_OVERRIDES_ENV, "rr-svc.ns.svc=10.1.2.3")
    v = await probe_reranker(ProbeTarget("http://rr-svc.ns.svc:8000"))
    assert v.reason == Reason.INVALID_ENDPOINT
    assert HOST_OVERRIDES_ENV in v.message


async def test_invalid_endpoint_is_a_verdict_not_an_exception(standin: StandinServer) -> None:
    v = await probe_reranker(ProbeTarget(f"{standin.url}/v2"), resolver=HostResolver())
    assert v.reason == Reason.INVALID_ENDPOINT
    assert standin.request_log == []


# The stand-in must look like vLLM to the other clients the project cares about, or a green probe
# against it proves nothing.


async def test_standin_answers_cohere_style_requests_like_vllm(standin_factory: Factory) -> None:
    server = standin_factory(served_model="rr-bge")
    body = {
        "model": "rr-bge",
        "query": "capital of France",
        "top_n": 2,
        "documents": ["bananas", "Paris is the capital of France", "trees"],
    }
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": "Bearer any"}) as c:
        r = await c.post("/v2/rerank", json=body)
        assert r.status_code == 200
        data = r.json()
        assert set(data) == {"id", "model", "usage", "results"}
        assert data["model"] == "rr-bge"
        assert [x["index"] for x in data["results"]] == [1, 0]
        assert data["results"][0]["document"] == {"text": "Paris is the capital of France"}
        scores = [x["relevance_score"] for x in data["results"]]
        assert scores == sorted(scores, reverse=True)
        assert all(0 < s < 1 for s in scores)
        r = await c.post("/v1/rerank", json={**body, "model": "other"})
        assert r.status_code == 404
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        r = await c.post("/rerank", json={"query": 1, "documents": []})
        assert r.status_code == 400
        assert (await c.get("/health")).content == b""


async def test_standin_health_and_metrics_stay_up_while_inference_is_broken(standin: StandinServer) -> None:
    assert (await probe(standin)).ok
    standin.set_fault("http500")
    async with httpx.AsyncClient(base_url=standin.url) as c:
        assert (await c.get("/health")).status_code == 200  # like vLLM issue 36960
        metrics = (await c.get("/metrics")).text
    assert f'vllm:request_success_total{{finished_reason="stop",model_name="{DEFAULT_MODEL}"}} 1' in metrics
    assert "vllm:num_requests_running" in metrics
    assert 'standin_fault_mode{mode="http500"} 1' in metrics


@pytest.mark.milvus
def test_milvus_lite_reranks_through_the_standin(standin_factory: Factory, tmp_path: Path) -> None:
    pymilvus = pytest.importorskip("pymilvus")
    server = standin_factory(served_model="rr-bge")
    client = pymilvus.MilvusClient(str(tmp_path / "lite.db"))
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
        schema.add_field("document", pymilvus.DataType.VARCHAR, max_length=512)
        schema.add_field("vec", pymilvus.DataType.FLOAT_VECTOR, dim=2)
        index = client.prepare_index_params()
        index.add_index("vec", metric_type="L2", index_type="FLAT")
        client.create_collection("docs", schema=schema, index_params=index)
        docs = list(DEFAULT_CANARY.documents)
        client.insert("docs", [{"id": i, "document": d, "vec": [float(i), 0.0]} for i, d in enumerate(docs)])
        client.load_collection("docs")
        ranker = pymilvus.Function(
            name="rr",
            function_type=pymilvus.FunctionType.RERANK,
            input_field_names=["document"],
            params={
                "reranker": "model",
                "provider": "cohere",
                "queries": [DEFAULT_CANARY.query],
                "base_url": f"{server.url}/v2",
                "model_name": "rr-bge",
                "api_key": "unused",
            },
        )
        hits = client.search(
            "docs",
            data=[[0.0, 0.0]],
            anns_field="vec",
            limit=len(docs),
            output_fields=["document"],
            ranker=ranker,
        )[0]
    finally:
        client.close()
    assert hits[0]["id"] == DEFAULT_CANARY.expected_top_index
    (req,) = server.request_log
    assert req.path == "/v2/rerank"
    assert req.header("authorization") == "Bearer unused"
    assert req.json()["model"] == "rr-bge"


async def test_standin_reports_a_queue_when_told_to(standin: StandinServer) -> None:
    """The vLLM queue gauge an autoscaler reads: 0 at rest, what the admin route sets otherwise."""
    metric = f'vllm:num_requests_waiting{{model_name="{DEFAULT_MODEL}"}}'
    async with httpx.AsyncClient(base_url=standin.url, trust_env=False) as c:
        assert f"{metric} 0\n" in (await c.get("/metrics")).text
        answer = await c.post("/__standin/queue", json={"waiting": 7})
        assert answer.status_code == 200 and answer.json() == {"waiting": 7}
        assert f"{metric} 7\n" in (await c.get("/metrics")).text
        for bad in ({"waiting": -1}, {"waiting": "7"}, {"waiting": True}, [7]):
            refused = await c.post("/__standin/queue", json=bad)
            assert refused.status_code == 400, bad
        assert f"{metric} 7\n" in (await c.get("/metrics")).text
    standin.metrics.set_waiting(0)
    assert standin.metrics.waiting == 0


# --- TEI: the stand-in's faithful text-embeddings-inference mode -------------------------------------------

# In TEI mode the faults surface as TEI surfaces them: an engine failure and a NaN score are TEI's 424.
EXPECTED_TEI: dict[FaultMode, Reason] = {
    **EXPECTED,
    FaultMode.HTTP500: Reason.HTTP_STATUS,
    FaultMode.NAN: Reason.HTTP_STATUS,
}


def published_tei_config(server: StandinServer, max_client_batch_size: int) -> dict[str, str]:
    """A TEI pipeline's published data, with the reranker at the stand-in (as test_milvus_lite_e2e builds
    its config: in a cluster the endpoint is the Service's DNS name)."""
    pipeline = RerankPipeline.from_body(
        {
            "apiVersion": "rerank.dev/v1alpha1",
            "kind": "RerankPipeline",
            "metadata": {"name": "tei-bge", "namespace": "search", "generation": 1},
            "spec": {
                "model": {"name": DEFAULT_MODEL},
                "engine": {"kind": "tei"},
                "publish": {"maxClientBatchSize": max_client_batch_size},
            },
        }
    )
    assert milvus_lite_function(pipeline, server.url) is None
    config = PublishedConfig(
        endpoint=server.url,
        model=pipeline.spec.model.effective_served_name,
        generation=1,
        function_json=json.dumps(milvus_function(pipeline, server.url)),
    )
    return config.marked(ready=True, reason="Healthy").data()


def target_of(function: Function, **kw: Any) -> ProbeTarget:
    """The canary as the published Function configures Milvus: same endpoint, protocol and batch size."""
    params = function.params
    return ProbeTarget(
        params["endpoint"],
        engine=params["provider"],
        max_client_batch_size=params["max_client_batch_size"],
        **kw,
    )


@pytest.mark.parametrize("mode", list(EXPECTED_TEI), ids=str)
async def test_tei_fault_modes_give_specific_reasons(standin_factory: Factory, mode: FaultMode) -> None:
    server = standin_factory(engine="tei")
    server.set_fault(mode)
    v = await probe(server, engine="tei", max_client_batch_size=32, timeout_s=3.0)
    assert v.reason == EXPECTED_TEI[mode], v.message
    assert v.ok is (mode is FaultMode.HEALTHY)
    if not v.ok:
        assert v.message.startswith(v.reason)
    json.dumps(v.to_dict(), allow_nan=False)


async def test_tei_canary_passes_and_is_what_milvus_sends(standin_factory: Factory) -> None:
    server = standin_factory(engine="tei", served_model="bge", api_key="tei-key-1")
    v = await probe(server, engine="tei", max_client_batch_size=32, served_model="bge", api_key="tei-key-1")
    assert v.ok, v.message
    assert v.ranking[0] == DEFAULT_CANARY.expected_top_index
    assert v.model_listed is None  # /v1/models is vLLM's: not asked of TEI
    assert v.message.endswith("; /info allows 32 documents per request")
    info, rerank = server.request_log
    assert (info.method, info.path, rerank.method, rerank.path) == ("GET", "/info", "POST", "/rerank")
    assert rerank.json() == {"query": DEFAULT_CANARY.query, "texts": list(DEFAULT_CANARY.documents)}
    assert rerank.header("content-type") == "application/json"
    assert {r.header("authorization") for r in server.request_log} == {"Bearer tei-key-1"}


async def test_tei_batch_limit_below_the_published_size(standin_factory: Factory) -> None:
    server = standin_factory(engine="tei", max_client_batch_size=16)
    v = await probe(server, engine="tei", max_client_batch_size=32)
    assert (v.ok, v.reason) == (False, Reason.BATCH_LIMIT_EXCEEDED)
    assert v.message.startswith("BatchLimitExceeded: the TEI server accepts at most 16 documents per request")
    assert "GET /info: max_client_batch_size 16" in v.message
    assert "up to 32" in v.message
    assert "Lower spec.publish.maxClientBatchSize to 16 or less" in v.message
    assert "raise the server's --max-client-batch-size to 32 or more" in v.message
    assert [(r.method, r.path) for r in server.request_log] == [("GET", "/info")]  # no canary needed
    # what Milvus would then see: its 32-document batches refused
    async with httpx.AsyncClient(base_url=server.url, trust_env=False) as c:
        refused = await c.post("/rerank", json={"query": "q", "texts": ["doc"] * 32})
    assert refused.status_code == 413


async def test_tei_batch_limit_equal_to_the_published_size_passes(standin_factory: Factory) -> None:
    server = standin_factory(engine="tei", max_client_batch_size=16)
    v = await probe(server, engine="tei", max_client_batch_size=16)
    assert v.ok, v.message
    assert "/info allows 16" in v.message
    assert (await probe(server, engine="tei", max_client_batch_size=8)).ok  # below the limit: fine too


async def test_tei_canary_is_split_like_milvus_below_its_size(standin_factory: Factory) -> None:
    """publish.maxClientBatchSize 2 < 4 canary documents: TEI runs with --max-client-batch-size 2, and the
    canary goes out in requests of 2, as Milvus' would; one request of 4 would be refused."""
    server = standin_factory(engine="tei", max_client_batch_size=2)
    v = await probe(server, engine="tei", max_client_batch_size=2)
    assert v.ok, v.message
    assert v.ranking[0] == DEFAULT_CANARY.expected_top_index
    assert len(v.scores) == len(DEFAULT_CANARY.documents)
    assert "(2 requests, as Milvus splits them)" in v.message
    posts = [r.json()["texts"] for r in server.request_log if r.method == "POST"]
    assert posts == [list(DEFAULT_CANARY.documents[:2]), list(DEFAULT_CANARY.documents[2:])]


async def test_tei_413_on_the_canary_itself_is_batch_limit_exceeded(standin_factory: Factory) -> None:
    server = standin_factory(engine="tei", max_client_batch_size=2)
    v = await probe(server, engine="tei")  # no published size: no /info check, one request of 4
    assert v.reason == Reason.BATCH_LIMIT_EXCEEDED, v.message
    assert v.status_code == 413
    assert "at most 2 documents per request (it refused 4 with 413)" in v.message
    assert [r.path for r in server.request_log] == ["/rerank"]


async def test_tei_without_a_readable_info_is_judged_by_the_canary(standin_factory: Factory) -> None:
    """A gateway in front of TEI may expose /rerank only: the limit is then unverified, not a failure.
    (The vLLM-mode stand-in answers TEI-shaped bodies on /rerank and 404 on /info.)"""
    gateway = standin_factory()
    v = await probe(gateway, engine="tei", max_client_batch_size=32)
    assert v.ok, v.message
    assert v.message.endswith("; batch limit not verified (GET /info answered 404)")
    unauthorized = standin_factory(engine="tei", api_key="right")
    v = await probe(unauthorized, engine="tei", max_client_batch_size=32, api_key="wrong")
    assert v.reason == Reason.UNAUTHORIZED  # /info's 401 is not what the verdict reports: the canary's is


async def test_tei_truncation(standin_factory: Factory) -> None:
    """An overlong document fails TEI without truncation (413, not a batch error); --auto-truncate on the
    server or truncate in the request fixes it, which is why the operator publishes no truncate param."""
    long_doc = " ".join(["filler"] * 600)
    canary = Canary("capital of France", ("bananas", "Paris is the capital of France", long_doc), 1)
    strict = standin_factory(engine="tei")
    v = await probe(strict, engine="tei", canary=canary, max_client_batch_size=32)
    assert v.reason == Reason.HTTP_STATUS, v.message
    assert "413" in v.message and "tokens" in v.message
    assert (await probe(strict, engine="tei", canary=canary, truncate=True)).ok
    assert strict.request_log[-1].json()["truncate"] is True
    auto = standin_factory(engine="tei", auto_truncate=True)
    assert (await probe(auto, engine="tei", canary=canary, max_client_batch_size=32)).ok
    assert "truncate" not in auto.request_log[-1].json()


async def test_published_tei_function_is_what_the_canary_checks(standin_factory: Factory) -> None:
    """The app's TEI Function (load_ranker) and the canary agree: Milvus' batches fit the server's limit,
    or the probe says BatchLimitExceeded; and Milvus Lite is refused a TEI config."""
    server = standin_factory(engine="tei", max_client_batch_size=16)
    fits = load_ranker(published_tei_config(server, 16), ["what is the capital of France"])
    assert fits.params["provider"] == "tei"
    assert set(fits.params) == {"reranker", "provider", "endpoint", "max_client_batch_size", "queries"}
    assert (await probe_reranker(target_of(fits), resolver=HostResolver())).ok
    too_big = load_ranker(published_tei_config(server, 32), ["q"])
    v = await probe_reranker(target_of(too_big), resolver=HostResolver())
    assert v.reason == Reason.BATCH_LIMIT_EXCEEDED
    with pytest.raises(RankerConfigError, match="Milvus Lite cannot call a TEI reranker"):
        load_ranker(published_tei_config(server, 16), ["q"], target="milvus-lite")
