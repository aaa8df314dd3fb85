"""evaluate_response and evaluate_answers: every check, on literal response bodies (vLLM's and TEI's)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from rerank_operator.probe import DEFAULT_CANARY, Answer, Canary, Reason, evaluate_answers, evaluate_response

CANARY = Canary("capital of france", ("bananas", "paris is the capital of france", "trees"), 1)
GOOD_SCORES = {0: 0.1, 1: 0.9, 2: 0.2}


def vllm(scores: dict[int, Any] | list[tuple[Any, Any]], **extra: Any) -> bytes:
    pairs = list(scores.items()) if isinstance(scores, dict) else scores
    results = [{"index": i, "document": {"text": "x"}, "relevance_score": s} for i, s in pairs]
    return json.dumps({"id": "rerank-1", "model": "m", "results": results, **extra}).encode()


def tei(scores: dict[int, Any] | list[tuple[Any, Any]]) -> bytes:
    pairs = list(scores.items()) if isinstance(scores, dict) else scores
    return json.dumps([{"index": i, "score": s} for i, s in pairs]).encode()


def judge(body: bytes, status: int = 200, **kw: Any) -> Any:
    return evaluate_response(status, body, CANARY, kw.pop("engine", "vllm"), **kw)


def test_healthy_verdict_carries_ranking_scores_and_timing() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    v = judge(vllm(GOOD_SCORES), latency_ms=12.5, max_latency_ms=100, checked_at=when)
    assert v.ok
    assert v.reason == Reason.HEALTHY == "Healthy"
    assert v.ranking == (1, 2, 0)
    assert v.scores == (0.1, 0.9, 0.2)  # by document index
    assert (v.status_code, v.latency_ms, v.checked_at) == (200, 12.5, when)
    assert "document 1" in v.message


def test_order_of_results_is_not_trusted_only_scores() -> None:
    listed_worst_first = [(0, 0.1), (2, 0.2), (1, 0.9)]
    assert judge(vllm(listed_worst_first)).ok
    claims_order_but_scores_disagree = [(1, 0.1), (0, 0.9), (2, 0.2)]
    v = judge(vllm(claims_order_but_scores_disagree))
    assert v.reason == Reason.WRONG_TOP_DOCUMENT
    assert v.ranking[0] == 0


@pytest.mark.parametrize("scores", [{0: -7.5, 1: 3.25, 2: -1.0}, {0: 2, 1: 15, 2: 3}, {0: 0, 1: 1, 2: 0}])
def test_logits_and_integer_scores_are_fine(scores: dict[int, Any]) -> None:
    assert judge(vllm(scores)).ok


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures(status: int) -> None:
    v = judge(b'{"error": "Unauthorized"}', status)
    assert (v.ok, v.reason, v.status_code) == (False, Reason.UNAUTHORIZED, status)
    assert v.message == f"Unauthorized {status}: Unauthorized"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, b'{"detail": "Not Found"}', "HTTPStatus 404: Not Found"),
        (
            404,
            b'{"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", '
            b'"param": "model", "code": 404}}',
            "HTTPStatus 404: The model `x` does not exist.",
        ),
        (
            400,
            b'{"object": "error", "message": "too long", "type": "BadRequestError"}',
            "HTTPStatus 400: too long",
        ),
        (
            413,
            b'{"error": "batch size 64 > maximum allowed batch size 32", "error_type": "Validation"}',
            "HTTPStatus 413: batch size 64 > maximum allowed batch size 32",
        ),
        (500, b"Internal\n   Server Error", "HTTPStatus 500: Internal Server Error"),
        (503, b"", "HTTPStatus 503: <empty body>"),
        (302, b"", "HTTPStatus 302: <empty body>"),
        (200 + 1, b"{}", "HTTPStatus 201: {}"),
    ],
)
def test_non_200_is_http_status_with_short_body(status: int, body: bytes, message: str) -> None:
    v = judge(body, status)
    assert (v.ok, v.reason, v.status_code, v.message) == (False, Reason.HTTP_STATUS, status, message)


def test_long_error_bodies_are_cut() -> None:
    v = judge(b"x" * 5000, 500)
    assert len(v.message) < 250
    assert v.message.endswith("...")


@pytest.mark.parametrize("body", [b"", b"<html>oops</html>", b'{"results": [', b"\xff\xfe\x00", b"NaNa"])
def test_invalid_json(body: bytes) -> None:
    assert judge(body).reason == Reason.INVALID_JSON


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[]", "not a JSON object"),
        (b'"ok"', "not a JSON object"),
        (b"{}", "no 'results'"),
        (b'{"results": {"0": 1}}', "no 'results'"),
        (b'{"data": []}', "no 'results'"),
        (b'{"results": [1, 2, 3]}', "not an object"),
        (b'{"results": [{"index": 0}]}', "lacks"),
        (b'{"results": [{"relevance_score": 0.5}]}', "lacks"),
        (b'{"results": [{"index": 0, "score": 0.5}]}', "lacks"),
        (vllm([("0", 0.1), (1, 0.9), (2, 0.2)]), "not an integer"),
        (vllm([(0.0, 0.1), (1, 0.9), (2, 0.2)]), "not an integer"),
        (vllm([(True, 0.1), (1, 0.9), (2, 0.2)]), "not an integer"),
        (vllm([(0, "0.1"), (1, 0.9), (2, 0.2)]), "is a string"),
        (vllm([(0, "high"), (1, 0.9), (2, 0.2)]), "not a number"),
        (vllm([(0, None), (1, 0.9), (2, 0.2)]), "NoneType"),
        (vllm([(0, True), (1, 0.9), (2, 0.2)]), "boolean"),
        (vllm([(0, [0.1]), (1, 0.9), (2, 0.2)]), "list"),
    ],
)
def test_malformed_responses(body: bytes, detail: str) -> None:
    v = judge(body)
    assert v.reason == Reason.MALFORMED_RESPONSE, v.message
    assert detail in v.message
    assert v.ranking == ()
    assert v.scores == ()


@pytest.mark.parametrize(
    "scores",
    [{0: 0.1, 1: 0.9}, {0: 0.1, 1: 0.9, 2: 0.2, 3: 0.3}, {}],
    ids=["fewer", "more", "none"],
)
def test_wrong_result_count(scores: dict[int, float]) -> None:
    v = judge(vllm(scores))
    assert v.reason == Reason.WRONG_RESULT_COUNT
    assert f"got {len(scores)} results" in v.message


@pytest.mark.parametrize("bad", [3, -1, 1000])
def test_index_out_of_range(bad: int) -> None:
    v = judge(vllm([(0, 0.1), (1, 0.9), (bad, 0.2)]))
    assert v.reason == Reason.INDEX_OUT_OF_RANGE
    assert str(bad) in v.message


def test_duplicate_index() -> None:
    v = judge(vllm([(1, 0.9), (0, 0.1), (1, 0.2)]))
    assert v.reason == Reason.DUPLICATE_INDEX
    assert "index 1" in v.message


@pytest.mark.parametrize(
    "body",
    [
        vllm({0: math.nan, 1: 0.9, 2: 0.2}),  # json.dumps emits the bare NaN literal
        vllm({0: 0.1, 1: math.inf, 2: 0.2}),
        vllm({0: 0.1, 1: 0.9, 2: -math.inf}),
        vllm({0: "NaN", 1: 0.9, 2: 0.2}),
        vllm({0: "Infinity", 1: 0.9, 2: 0.2}),
        b'{"results": [{"index": 0, "relevance_score": 1e999}, {"index": 1, "relevance_score": 0.9},'
        b' {"index": 2, "relevance_score": 0.2}]}',
    ],
)
def test_non_finite_scores(body: bytes) -> None:
    v = judge(body)
    assert v.reason == Reason.NON_FINITE_SCORE, v.message
    assert v.to_dict()["scores"] == []  # nothing half-read leaks into the verdict


def test_wrong_top_document_names_the_winner() -> None:
    v = judge(vllm({0: 0.95, 1: 0.9, 2: 0.2}))
    assert v.reason == Reason.WRONG_TOP_DOCUMENT
    assert v.ranking == (0, 1, 2)
    assert "expected document 1" in v.message
    assert "top was 0" in v.message


def test_a_tie_for_first_place_is_not_good_enough() -> None:
    # Constant scores are what a broken classifier head produces.
    v = judge(vllm({0: 0.5, 1: 0.5, 2: 0.5}))
    assert v.reason == Reason.WRONG_TOP_DOCUMENT


@pytest.mark.parametrize(
    ("latency", "limit", "ok"),
    [(150.0, 100, False), (100.0, 100, True), (5.0, 100, True), (1e6, None, True), (None, 100, True)],
)
def test_slow_response(latency: float | None, limit: int | None, ok: bool) -> None:
    v = judge(vllm(GOOD_SCORES), latency_ms=latency, max_latency_ms=limit)
    assert v.ok is ok
    if not ok:
        assert v.reason == Reason.SLOW_RESPONSE
        assert "150 ms" in v.message
        assert "100 ms" in v.message


def test_correctness_is_reported_before_slowness() -> None:
    v = judge(vllm({0: 0.1, 1: 0.9}), latency_ms=500.0, max_latency_ms=100)
    assert v.reason == Reason.WRONG_RESULT_COUNT


def test_tei_bare_array() -> None:
    assert judge(tei(GOOD_SCORES), engine="tei").ok
    assert judge(tei({0: 0.9, 1: 0.1, 2: 0.2}), engine="tei").reason == Reason.WRONG_TOP_DOCUMENT
    assert judge(vllm(GOOD_SCORES), engine="tei").reason == Reason.MALFORMED_RESPONSE
    assert judge(tei(GOOD_SCORES), engine="vllm").reason == Reason.MALFORMED_RESPONSE


def test_default_canary_with_a_cross_encoder_like_answer() -> None:
    n = len(DEFAULT_CANARY.documents)
    scores = {i: (0.998 if i == DEFAULT_CANARY.expected_top_index else 1e-4 * (i + 1)) for i in range(n)}
    v = evaluate_response(200, vllm(scores), DEFAULT_CANARY)
    assert v.ok
    assert v.ranking[0] == DEFAULT_CANARY.expected_top_index


def test_error_bodies_lose_control_and_escape_characters() -> None:
    """An answer from an address the pipeline chose is not status material: one printable line."""
    v = judge(b"bad\x1b[31m red\x00 \x07bell\r\nnext\tline\x7f", 502)
    assert v.message == "HTTPStatus 502: bad[31m red bell next line"


# --- TEI's bare array gets every check vLLM's results get: they protect Milvus, which scores by position ---


@pytest.mark.parametrize(
    ("pairs", "reason", "detail"),
    [
        (
            [(1, 0.9), (0, 0.1)],
            Reason.WRONG_RESULT_COUNT,
            "sent 3 documents but got 2 results",
        ),  # shifts scores
        ([(1, 0.9), (0, 0.1), (2, 0.2), (2, 0.3)], Reason.WRONG_RESULT_COUNT, "got 4"),  # panics Milvus
        ([(1, 0.9), (1, 0.1), (2, 0.2)], Reason.DUPLICATE_INDEX, "document index 1"),
        ([(1, 0.9), (0, 0.1), (3, 0.2)], Reason.INDEX_OUT_OF_RANGE, "index 3 is outside 0..2"),
        ([(1, 0.9), (0, 0.1), (-1, 0.2)], Reason.INDEX_OUT_OF_RANGE, "index -1"),
        ([(1, 0.9), (0, 0.1), ("2", 0.2)], Reason.MALFORMED_RESPONSE, "not an integer"),
        ([(1, "0.9"), (0, 0.1), (2, 0.2)], Reason.MALFORMED_RESPONSE, "string"),
        ([(1, math.inf), (0, 0.1), (2, 0.2)], Reason.NON_FINITE_SCORE, "[1]"),
    ],
)
def test_tei_answers_are_checked_like_vllm_ones(
    pairs: list[tuple[Any, Any]], reason: Reason, detail: str
) -> None:
    v = judge(tei(pairs), engine="tei")
    assert v.reason == reason, v.message
    assert detail in v.message
    assert judge(vllm(pairs)).reason == reason  # the same verdict for the same answer in vLLM's shape


def test_tei_items_without_score() -> None:
    body = json.dumps([{"index": 0, "relevance_score": 0.1}]).encode()
    assert judge(body, engine="tei").reason == Reason.MALFORMED_RESPONSE
    assert (
        judge(b'{"results": []}', engine="tei").message
        == "MalformedResponse: TEI response is not a JSON array"
    )


def test_tei_batch_over_the_limit_is_batch_limit_exceeded() -> None:
    body = b'{"error": "batch size 3 > maximum allowed batch size 2", "error_type": "Validation"}'
    v = judge(body, 413, engine="tei")
    assert (v.ok, v.reason, v.status_code) == (False, Reason.BATCH_LIMIT_EXCEEDED, 413)
    assert v.message.startswith("BatchLimitExceeded: ")
    assert "at most 2 documents per request (it refused 3 with 413)" in v.message
    assert "spec.publish.maxClientBatchSize" in v.message
    assert "--max-client-batch-size" in v.message
    published = evaluate_answers([Answer(413, body, range(3))], CANARY, "tei", max_client_batch_size=32)
    assert "send up to 32" in published.message
    assert "to 32 or more" in published.message
    # the lower-case spelling of TEI's OpenAPI examples too
    lower = b'{"error": "batch size 3 > maximum allowed batch size 2", "error_type": "validation"}'
    assert judge(lower, 413, engine="tei").reason == Reason.BATCH_LIMIT_EXCEEDED


@pytest.mark.parametrize(
    ("body", "engine"),
    [
        (
            b'{"error": "Input validation error: `inputs` must have less than 512 tokens", "error_type": "Validation"}',
            "tei",
        ),
        (b"payload too large", "tei"),
        (b'{"error": "batch size 3 > maximum allowed batch size 2"}', "vllm"),  # only TEI speaks that way
    ],
)
def test_other_413s_are_http_status(body: bytes, engine: Any) -> None:
    v = judge(body, 413, engine=engine)
    assert v.reason == Reason.HTTP_STATUS
    assert v.message.startswith("HTTPStatus 413: ")


# --- a canary split as Milvus splits it ------------------------------------------------------------------

FOUR = Canary("capital of france", ("bananas", "trees", "paris is the capital of france", "rivers"), 2)


def test_split_answers_are_merged_by_canary_index() -> None:
    answers = [
        Answer(200, tei({1: 0.2, 0: 0.1}), range(0, 2)),  # each request indexes its own documents from 0
        Answer(200, tei({0: 0.9, 1: 0.05}), range(2, 4)),
    ]
    v = evaluate_answers(answers, FOUR, "tei", latency_ms=7.0)
    assert v.ok, v.message
    assert v.scores == (0.1, 0.2, 0.9, 0.05)
    assert v.ranking == (2, 1, 0, 3)
    assert "(2 requests, as Milvus splits them)" in v.message


def test_each_request_is_checked_against_the_documents_it_carried() -> None:
    short = [Answer(200, tei({1: 0.2, 0: 0.1}), range(0, 2)), Answer(200, tei({0: 0.9}), range(2, 4))]
    v = evaluate_answers(short, FOUR, "tei")
    assert v.reason == Reason.WRONG_RESULT_COUNT
    assert v.message == "WrongResultCount: sent 2 documents (canary documents 2..3) but got 1 results"
    # an index valid for the whole canary but not for the request that carried two documents
    wide = [Answer(200, tei({1: 0.2, 0: 0.1}), range(0, 2)), Answer(200, tei({2: 0.9, 1: 0.05}), range(2, 4))]
    v = evaluate_answers(wide, FOUR, "tei")
    assert v.reason == Reason.INDEX_OUT_OF_RANGE
    assert "outside 0..1 (canary documents 2..3)" in v.message


def test_a_failing_request_ends_the_evaluation() -> None:
    answers = [Answer(200, vllm({1: 0.2, 0: 0.1}), range(0, 2)), Answer(500, b"boom", range(2, 4))]
    v = evaluate_answers(answers, FOUR)
    assert (v.reason, v.status_code, v.message) == (Reason.HTTP_STATUS, 500, "HTTPStatus 500: boom")


def test_answers_must_cover_the_canary() -> None:
    with pytest.raises(ValueError, match="cover"):
        evaluate_answers([Answer(200, tei({1: 0.2, 0: 0.1}), range(0, 2))], FOUR, "tei")
