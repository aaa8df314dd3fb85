"""The stand-in's TEI mode (``engine="tei"``) over real HTTP on loopback, in-process and as a process."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from rerank_operator.probe import HostResolver, ProbeTarget, Reason, probe_reranker
from rerank_operator.sandbox.procs import free_port
from rerank_operator.standin import FaultMode, StandinServer

Factory = Callable[..., StandinServer]
LIMIT = 4  # max_client_batch_size of the `tei` fixture
QUERY = "what is the capital of france"
TEXTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "Bananas are yellow.",
]
BEST = 1  # TEXTS[BEST] answers QUERY


@pytest.fixture
def tei(standin_factory: Factory) -> StandinServer:
    return standin_factory(engine="tei", max_client_batch_size=LIMIT)


@pytest.fixture
def client(tei: StandinServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tei.url, timeout=5.0) as c:
        yield c


def rerank(client: httpx.Client, texts: list[str] | None = None, **extra: Any) -> httpx.Response:
    return client.post("/rerank", json={"query": QUERY, "texts": TEXTS if texts is None else texts, **extra})


def is_tei_error(response: httpx.Response, status: int, error_type: str, error: str | None = None) -> bool:
    """TEI's error answer: JSON ``{"error", "error_type"}`` and nothing else, with the given status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == error_type
    if error is not None:
        assert body["error"] == error
    return True


def metric(text: str, sample: str) -> float | None:
    """The value of one exposition line ``<sample> <value>`` (None if the sample is absent)."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return None


# -- the rerank answer ------------------------------------------------------------------------------------


def test_rerank_answers_a_bare_list_best_first(tei: StandinServer, client: httpx.Client) -> None:
    r = rerank(client)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    ranks = r.json()
    assert isinstance(ranks, list)
    assert all(set(rank) == {"index", "score"} for rank in ranks)
    assert sorted(rank["index"] for rank in ranks) == list(range(len(TEXTS)))
    scores = [rank["score"] for rank in ranks]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)  # sigmoid-squashed, like TEI without raw_scores
    assert ranks[0]["index"] == BEST
    # TEI's ResponseMetadata headers
    assert r.headers["x-compute-type"] == "gpu+optimized"
    assert int(r.headers["x-compute-characters"]) == len(QUERY) * len(TEXTS) + sum(map(len, TEXTS))
    assert int(r.headers["x-compute-tokens"]) > 0
    (req,) = tei.request_log
    assert (req.method, req.path) == ("POST", "/rerank")


def test_return_text_and_raw_scores(client: httpx.Client) -> None:
    plain = rerank(client).json()
    with_text = rerank(client, return_text=True).json()
    assert [(r["index"], r["score"]) for r in with_text] == [(r["index"], r["score"]) for r in plain]
    assert all(r["text"] == TEXTS[r["index"]] for r in with_text)
    raw = rerank(client, raw_scores=True).json()
    assert [r["index"] for r in raw] == [r["index"] for r in plain]  # same order, logits instead
    assert min(r["score"] for r in raw) < 0.0


def test_equal_scores_come_out_highest_index_first(client: httpx.Client) -> None:
    # TEI sorts ascending and reverses: ties end up with the higher index first (vLLM: lower first).
    ranks = rerank(client, ["cats", "dogs", "Paris is the capital of France.", "birds"]).json()
    assert [r["index"] for r in ranks] == [2, 3, 1, 0]


@pytest.mark.parametrize("path", ["/", "/invocations"])
def test_tei_default_rerank_routes(client: httpx.Client, path: str) -> None:
    r = client.post(path, json={"query": QUERY, "texts": TEXTS})
    assert r.status_code == 200
    assert r.json()[0]["index"] == BEST


async def test_the_probe_passes_against_tei_mode(tei: StandinServer) -> None:
    target = ProbeTarget(tei.url, engine="tei")
    verdict = await probe_reranker(target, resolver=HostResolver())
    assert verdict.ok, verdict.message
    tei.set_fault(FaultMode.HTTP500)
    assert (await probe_reranker(target, resolver=HostResolver())).reason == Reason.HTTP_STATUS


# -- validation, in TEI's order -----------------------------------------------------------------------------


def test_batch_over_the_limit_is_413_and_the_limit_itself_is_fine(client: httpx.Client) -> None:
    over = rerank(client, ["doc"] * (LIMIT + 1))
    assert is_tei_error(
        over, 413, "Validation", f"batch size {LIMIT + 1} > maximum allowed batch size {LIMIT}"
    )
    assert over.json() == {
        "error": f"batch size {LIMIT + 1} > maximum allowed batch size {LIMIT}",
        "error_type": "Validation",
    }
    at_limit = rerank(client, [f"doc {i}" for i in range(LIMIT)])
    assert at_limit.status_code == 200
    assert len(at_limit.json()) == LIMIT


def test_default_limit_is_teis_32(standin_factory: Factory) -> None:
    server = standin_factory(engine="tei")
    assert server.max_client_batch_size == 32
    with httpx.Client(base_url=server.url, timeout=5.0) as c:
        assert rerank(c, ["doc"] * 32).status_code == 200
        assert is_tei_error(
            rerank(c, ["doc"] * 33), 413, "Validation", "batch size 33 > maximum allowed batch size 32"
        )


def test_empty_texts_is_400(client: httpx.Client) -> None:
    assert is_tei_error(rerank(client, []), 400, "Empty", "`texts` cannot be empty")


def test_overlong_pair_is_413_unless_truncated(standin_factory: Factory) -> None:
    strict = standin_factory(engine="tei", max_model_len=16)
    lenient = standin_factory(engine="tei", max_model_len=16, auto_truncate=True)
    long_text = " ".join(["word"] * 10)
    with httpx.Client(base_url=strict.url, timeout=5.0) as c:
        r = rerank(c, ["short", long_text])
        given = len(QUERY.split()) + 10 + 3
        error = f"Input validation error: `inputs` must have less than 16 tokens. Given: {given}"
        assert is_tei_error(r, 413, "Validation", error)
        assert rerank(c, ["short", long_text], truncate=True).status_code == 200
    with httpx.Client(base_url=lenient.url, timeout=5.0) as c:
        assert rerank(c, [long_text]).status_code == 200  # --auto-truncate: "truncate" unset means true
        assert rerank(c, [long_text], truncate=None).status_code == 200
        assert rerank(c, [long_text], truncate=False).status_code == 413


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"query": QUERY, "documents": TEXTS},  # vLLM's body: TEI needs `texts`
            422,
            "Failed to deserialize the JSON body into the target type: missing field `texts`",
        ),
        (
            {"query": QUERY, "texts": ["a", 1]},
            422,
            "Failed to deserialize the JSON body into the target type: texts[1]: invalid type: "
            "integer `1`, expected a string",
        ),
        (
            {"query": QUERY, "texts": TEXTS, "truncation_direction": "Up"},
            422,
            "Failed to deserialize the JSON body into the target type: truncation_direction: "
            "unknown variant `Up`, expected `Left` or `Right`",
        ),
        (
            {"query": QUERY, "texts": TEXTS, "raw_scores": None},
            422,
            "Failed to deserialize the JSON body into the target type: raw_scores: invalid type: "
            "null, expected a boolean",
        ),
    ],
    ids=["vllm-body", "non-string-text", "bad-direction", "null-raw-scores"],
)
def test_bodies_axum_rejects_are_plain_text(
    client: httpx.Client, body: dict[str, Any], status: int, message: str
) -> None:
    r = client.post("/rerank", json=body)
    assert r.status_code == status
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.text == message


def test_unparseable_body_and_missing_content_type(client: httpx.Client) -> None:
    bad = client.post("/rerank", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "text/plain; charset=utf-8"
    assert bad.text.startswith("Failed to parse the request body as JSON: ")
    untyped = client.post("/rerank", content=json.dumps({"query": QUERY, "texts": TEXTS}).encode())
    assert untyped.status_code == 415
    assert untyped.text == "Expected request with `Content-Type: application/json`"
    assert rerank(client, truncation_direction="Left").status_code == 200


# -- the other routes --------------------------------------------------------------------------------------


def test_info_reports_teis_limits(standin_factory: Factory) -> None:
    server = standin_factory(
        engine="tei", served_model="rr-model", max_model_len=256, max_client_batch_size=7
    )
    info = httpx.get(f"{server.url}/info", timeout=5.0).json()
    assert info["max_client_batch_size"] == 7
    assert info["model_id"] == "rr-model"
    assert info["max_input_length"] == 256
    assert info["auto_truncate"] is False
    assert set(info["model_type"]) == {"reranker"}
    assert isinstance(info["version"], str)
    assert {"max_concurrent_requests", "max_batch_tokens", "max_batch_requests", "model_dtype"} <= set(info)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/rerank"), ("POST", "/v2/rerank"), ("GET", "/v1/models"), ("POST", "/score")],
)
def test_vllm_only_routes_are_404_with_no_body(
    tei: StandinServer, client: httpx.Client, method: str, path: str
) -> None:
    r = client.request(method, path, json={"query": QUERY, "texts": TEXTS, "documents": TEXTS})
    assert r.status_code == 404
    assert r.content == b""
    assert "content-type" not in r.headers
    assert tei.request_log[-1].path == path  # received and recorded, just not a TEI route


def test_wrong_method_is_405_with_allow(client: httpx.Client) -> None:
    r = client.get("/rerank")
    assert (r.status_code, r.headers["allow"], r.content) == (405, "POST", b"")
    assert client.post("/info").status_code == 405
    assert client.post("/health").status_code == 405


def test_api_key_guards_rerank_and_info_with_an_empty_401(standin_factory: Factory) -> None:
    server = standin_factory(engine="tei", api_key="s3cret")
    body = {"query": QUERY, "texts": TEXTS}
    with httpx.Client(base_url=server.url, timeout=5.0) as c:
        for headers in ({"Authorization": "Bearer wrong"}, {}, {"Authorization": "s3cret"}):
            for r in (c.post("/rerank", json=body, headers=headers), c.get("/info", headers=headers)):
                assert r.status_code == 401
                assert r.content == b""
        # the empty-texts check runs behind the key too
        assert c.post("/rerank", json={"query": QUERY, "texts": []}).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert c.post("/rerank", json=body, headers=good).status_code == 200
        assert c.get("/info", headers=good).status_code == 200
        # health and metrics are public in TEI
        assert c.get("/health").status_code == 200
        assert c.get("/metrics").status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ping", "/"])
def test_health_is_an_empty_200(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert (r.status_code, r.content) == (200, b"")


def test_metrics_use_teis_names(client: httpx.Client) -> None:
    assert rerank(client).status_code == 200
    assert rerank(client, ["doc"] * (LIMIT + 1)).status_code == 413
    assert rerank(client, []).status_code == 400
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "vllm:" not in text
    assert metric(text, 'te_request_count{method="batch"}') == 2  # the empty request is not counted
    assert metric(text, 'te_request_success{method="batch"}') == 1
    assert metric(text, 'te_request_failure{err="batch_size"}') == 1
    assert metric(text, 'te_request_failure{err="validation"}') == 1
    assert metric(text, "te_request_duration_count") == 1
    assert metric(text, "te_queue_size") == 0
    assert "# TYPE te_request_duration histogram" in text
    assert metric(text, 'standin_requests_total{route="/rerank",code="413"}') == 1


def test_admin_config_names_the_engine(tei: StandinServer) -> None:
    config = httpx.get(f"{tei.url}/__standin/config", timeout=5.0).json()
    assert config["engine"] == "tei"
    assert config["max_client_batch_size"] == LIMIT
    assert config["api_key"] is False


# -- faults -------------------------------------------------------------------------------------------------


def test_http500_is_a_failing_backend(tei: StandinServer, client: httpx.Client) -> None:
    tei.set_fault(FaultMode.HTTP500)
    health = client.get("/health")
    assert is_tei_error(health, 503, "Unhealthy", "unhealthy")
    r = rerank(client)
    assert is_tei_error(r, 424, "Backend")
    assert r.json()["error"].startswith("Backend error: ")
    assert metric(client.get("/metrics").text, 'te_request_failure{err="inference"}') == 1
    tei.set_fault(FaultMode.HEALTHY)
    assert client.get("/health").status_code == 200
    assert rerank(client).status_code == 200


def test_nan_is_teis_424_not_a_nan_score(tei: StandinServer, client: httpx.Client) -> None:
    tei.set_fault(FaultMode.NAN)
    assert is_tei_error(rerank(client), 424, "Backend", "score is NaN")
    assert client.get("/health").status_code == 200


def test_validation_still_comes_first_under_a_backend_fault(tei: StandinServer, client: httpx.Client) -> None:
    tei.set_fault(FaultMode.HTTP500)
    assert rerank(client, []).status_code == 400
    assert rerank(client, ["doc"] * (LIMIT + 1)).status_code == 413


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        (FaultMode.WRONG_COUNT, lambda ranks: len(ranks) == len(TEXTS) - 1),
        (FaultMode.SHUFFLED, lambda ranks: ranks[-1]["index"] == BEST),
        (FaultMode.DUPLICATE_INDEX, lambda ranks: ranks[0]["index"] == ranks[-1]["index"]),
        (FaultMode.INDEX_OUT_OF_RANGE, lambda ranks: max(r["index"] for r in ranks) == len(TEXTS)),
        (FaultMode.MALFORMED, lambda body: isinstance(body, dict)),
    ],
    ids=str,
)
def test_body_faults_corrupt_the_bare_list(
    tei: StandinServer, client: httpx.Client, mode: FaultMode, check: Callable[[Any], bool]
) -> None:
    tei.set_fault(mode)
    r = rerank(client)
    assert r.status_code == 200
    assert check(r.json()), r.text


def test_transport_faults(tei: StandinServer, client: httpx.Client) -> None:
    tei.set_fault(FaultMode.INVALID_JSON)
    r = rerank(client)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()
    tei.set_fault(FaultMode.NOT_FOUND)
    r = rerank(client)
    assert (r.status_code, r.content) == (404, b"")
    tei.set_fault(FaultMode.DROP)
    with pytest.raises(httpx.TransportError):
        rerank(client)
    tei.set_fault(FaultMode.SLOW, delay_s=0.3)
    started = time.monotonic()
    assert rerank(client).status_code == 200
    assert time.monotonic() - started >= 0.3
    tei.set_fault(FaultMode.LOADING)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tei.url}/health", timeout=2.0)
    tei.set_fault(FaultMode.HEALTHY)
    assert tei.wait_listening(5.0)
    assert httpx.get(f"{tei.url}/health", timeout=5.0).status_code == 200


# -- construction and the vLLM default ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"engine": "triton"}, {"engine": "tei", "max_client_batch_size": 0}, {"max_client_batch_size": True}],
)
def test_bad_construction_is_a_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"engine|max_client_batch_size"):
        StandinServer(**kwargs)


def test_vllm_stays_the_default(standin: StandinServer) -> None:
    assert standin.engine == "vllm"
    body = {"query": QUERY, "documents": TEXTS}
    r = httpx.post(f"{standin.url}/v1/rerank", json=body, timeout=5.0)
    assert r.status_code == 200
    assert r.json()["results"][0]["index"] == BEST
    info = httpx.get(f"{standin.url}/info", timeout=5.0)
    assert (info.status_code, info.json()) == (404, {"detail": "Not Found"})
    assert "vllm:num_requests_running" in httpx.get(f"{standin.url}/metrics", timeout=5.0).text


# -- the CLI ------------------------------------------------------------------------------------------------


def read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The process's first stdout line, waiting at most ``timeout_s``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            return ""
    return proc.stdout.readline().strip()


@pytest.fixture
def tei_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m rerank_operator.standin --engine tei ...`` on a chosen loopback port."""
    port = free_port()
    env = {**os.environ, "TEI_KEY": "proc-key"}
    argv = [sys.executable, "-m", "rerank_operator.standin", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--engine", "tei", "--max-client-batch-size", "4", "--auto-truncate", "--api-key-env", "TEI_KEY"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_cli_runs_a_tei_standin(tei_process: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = tei_process
    url = read_line(proc, 30.0)
    assert url == f"http://127.0.0.1:{port}", (
        proc.stderr.read() if proc.poll() is not None and proc.stderr else url
    )
    with httpx.Client(base_url=url, timeout=5.0, headers={"Authorization": "Bearer proc-key"}) as c:
        info = c.get("/info").json()
        assert (info["max_client_batch_size"], info["auto_truncate"]) == (4, True)
        assert rerank(c, [f"doc {i}" for i in range(4)]).status_code == 200
        assert is_tei_error(
            rerank(c, ["doc"] * 5), 413, "Validation", "batch size 5 > maximum allowed batch size 4"
        )
        assert c.post("/v1/rerank", json={"query": QUERY, "documents": TEXTS}).status_code == 404
        assert httpx.get(f"{url}/info", timeout=5.0).status_code == 401
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_cli_rejects_a_bad_engine_or_batch_size() -> None:
    for extra in (["--engine", "triton"], ["--max-client-batch-size", "0"], ["--max-client-batch-size", "x"]):
        proc = subprocess.run(
            [sys.executable, "-m", "rerank_operator.standin", *extra],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert extra[0] in proc.stderr
