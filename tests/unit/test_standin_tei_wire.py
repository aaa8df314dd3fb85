"""The stand-in's TEI wire format (pure functions of ``standin.tei``), its TEI metrics and its CLI flags."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rerank_operator.standin import tei
from rerank_operator.standin.__main__ import build_parser
from rerank_operator.standin.faults import FaultMode
from rerank_operator.standin.metrics import Metrics
from rerank_operator.standin.scoring import Scored, token_count

QUERY = "what is the capital of france"


def req(texts: list[str], **extra: Any) -> tei.TeiRerankRequest:
    return tei.parse_request({"query": QUERY, "texts": texts, **extra})


# -- parse_request: serde's RerankRequest --------------------------------------------------------------------


def test_parse_defaults_and_ignored_fields() -> None:
    r = tei.parse_request({"query": "q", "texts": ["a", "b"], "model": "ignored", "top_n": 1})
    assert r == tei.TeiRerankRequest(query="q", texts=("a", "b"))
    assert r.truncate is None  # unset: --auto-truncate decides
    assert (r.truncation_direction, r.raw_scores, r.return_text) == ("Right", False, False)
    assert r.documents == ("a", "b")


def test_parse_options() -> None:
    r = req(["a"], truncate=True, truncation_direction="Left", raw_scores=True, return_text=True)
    assert (r.truncate, r.truncation_direction, r.raw_scores, r.return_text) == (True, "Left", True, True)
    assert req(["a"], truncate=None).truncate is None  # Option<bool>: null is None


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ([], "invalid type: sequence, expected struct RerankRequest"),
        ({"texts": ["a"]}, "missing field `query`"),
        ({"query": "q", "documents": ["a"]}, "missing field `texts`"),
        ({"query": 1, "texts": []}, "query: invalid type: integer `1`, expected a string"),
        ({"query": "q", "texts": "a"}, 'texts: invalid type: string "a", expected a sequence'),
        ({"query": "q", "texts": ["a", None]}, "texts[1]: invalid type: null, expected a string"),
        (
            {"query": "q", "texts": [], "truncate": "yes"},
            'truncate: invalid type: string "yes", expected a boolean',
        ),
        (
            {"query": "q", "texts": [], "raw_scores": None},
            "raw_scores: invalid type: null, expected a boolean",
        ),
        (
            {"query": "q", "texts": [], "return_text": 1.5},
            "return_text: invalid type: floating point `1.5`, expected a boolean",
        ),
        (
            {"query": "q", "texts": [], "truncation_direction": "left"},
            "truncation_direction: unknown variant `left`, expected `Left` or `Right`",
        ),
        (
            {"query": "q", "texts": [], "truncation_direction": 0},
            "truncation_direction: invalid type: integer `0`, expected enum TruncationDirection",
        ),
    ],
)
def test_parse_failures_are_axums_422_rejection(data: Any, detail: str) -> None:
    with pytest.raises(tei.JsonRejection) as caught:
        tei.parse_request(data)
    assert caught.value.status == 422
    assert caught.value.message == f"Failed to deserialize the JSON body into the target type: {detail}"
    assert caught.value.body() == caught.value.message.encode()


def test_other_rejections() -> None:
    syntax = tei.syntax_rejection(ValueError("Expecting value: line 1 column 1 (char 0)"))
    assert (syntax.status, syntax.message) == (
        400,
        "Failed to parse the request body as JSON: Expecting value: line 1 column 1 (char 0)",
    )
    typed = tei.content_type_rejection()
    assert (typed.status, typed.message) == (415, "Expected request with `Content-Type: application/json`")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON", True),
        ("application/vnd.api+json", True),
        ("text/json", False),
        ("application/x-www-form-urlencoded", False),
        ("", False),
        (None, False),
    ],
)
def test_json_content_type_like_axum(value: str | None, ok: bool) -> None:
    assert tei.is_json_content_type(value) is ok


# -- the handler's checks ------------------------------------------------------------------------------------


def test_empty_texts() -> None:
    with pytest.raises(tei.TeiError) as caught:
        tei.check_not_empty(req([]))
    err = caught.value
    assert (err.status, err.metric_err) == (400, "validation")
    assert err.body() == {"error": "`texts` cannot be empty", "error_type": "Empty"}
    tei.check_not_empty(req(["a"]))


def test_batch_size_limit_is_inclusive() -> None:
    tei.check_batch_size(req(["a"] * 4), 4)
    with pytest.raises(tei.TeiError) as caught:
        tei.check_batch_size(req(["a"] * 5), 4)
    err = caught.value
    assert (err.status, err.metric_err) == (413, "batch_size")
    assert err.body() == {"error": "batch size 5 > maximum allowed batch size 4", "error_type": "Validation"}


def test_every_error_type_has_teis_status() -> None:
    assert set(tei.TEI_ERROR_STATUS) == set(tei.TeiErrorType)
    statuses = {t.value: s for t, s in tei.TEI_ERROR_STATUS.items()}
    assert statuses == {
        "Unhealthy": 503,
        "Backend": 424,
        "Overloaded": 429,
        "Tokenizer": 422,
        "Validation": 413,
        "Empty": 400,
    }
    assert tei.TeiError(tei.TeiErrorType.OVERLOADED, "Model is overloaded").status == 429
    assert tei.TeiError(tei.TeiErrorType.TOKENIZER, "x", status=500).status == 500
    assert tei.unhealthy_body() == {"error": "unhealthy", "error_type": "Unhealthy"}


def test_prompt_tokens_and_truncation() -> None:
    q = token_count(QUERY)
    texts = ["one two", "one two three four five six seven eight nine ten"]
    exact = (q + 2 + 3) + (q + 10 + 3)
    assert tei.prompt_tokens(req(texts), 512) == exact
    limit = q + 2 + 3 + 1  # the first pair fits, the second does not
    with pytest.raises(tei.TeiError) as caught:
        tei.prompt_tokens(req(texts), limit)
    err = caught.value
    assert (err.status, err.error_type, err.metric_err) == (413, tei.TeiErrorType.VALIDATION, "tokenization")
    assert err.message == (
        f"Input validation error: `inputs` must have less than {limit} tokens. Given: {q + 13}"
    )
    assert tei.prompt_tokens(req(texts, truncate=True), limit) == (q + 5) + limit
    assert tei.prompt_tokens(req(texts), limit, auto_truncate=True) == (q + 5) + limit
    with pytest.raises(tei.TeiError):
        tei.prompt_tokens(req(texts, truncate=False), limit, auto_truncate=True)


def test_compute_headers() -> None:
    r = req(["ab", "cde"])
    headers = tei.compute_headers(r, tokens=17, elapsed_ms=3)
    assert headers["x-compute-characters"] == str(len(QUERY) * 2 + 5)
    assert headers["x-compute-tokens"] == "17"
    assert headers["x-compute-time"] == headers["x-total-time"] == "3"
    assert set(headers) >= {"x-compute-type", "x-tokenization-time", "x-queue-time", "x-inference-time"}


# -- ranking and the answer ----------------------------------------------------------------------------------


def test_rank_is_best_first_with_teis_tie_order() -> None:
    texts = ["cats", "Paris is the capital of France", "dogs"]
    ranked = tei.rank(req(texts))
    assert [r.index for r in ranked] == [1, 2, 0]  # cats and dogs tie: the higher index first
    assert ranked[0].score > ranked[1].score == ranked[2].score


def test_raw_scores_are_logits_in_the_same_order() -> None:
    texts = ["cats", "Paris is the capital of France", "Lyon is in France"]
    squashed = tei.rank(req(texts))
    raw = tei.rank(req(texts, raw_scores=True))
    assert [r.index for r in raw] == [r.index for r in squashed]
    for s, r in zip(squashed, raw, strict=True):
        assert math.isclose(1.0 / (1.0 + math.exp(-r.score)), s.score, rel_tol=1e-9)


def test_body_is_a_bare_list() -> None:
    results = [Scored(1, 0.9), Scored(0, 0.1)]
    assert tei.body(("a", "b"), results, return_text=False) == [
        {"index": 1, "score": 0.9},
        {"index": 0, "score": 0.1},
    ]
    assert tei.body(("a", "b"), results, return_text=True) == [
        {"index": 1, "text": "b", "score": 0.9},
        {"index": 0, "text": "a", "score": 0.1},
    ]
    # an index-out-of-range fault has no text to show
    assert tei.body(("a",), [Scored(1, 0.5)], return_text=True) == [{"index": 1, "score": 0.5}]


def test_inference_faults() -> None:
    backend = tei.inference_fault(FaultMode.HTTP500)
    assert backend is not None
    assert (backend.status, backend.error_type, backend.metric_err) == (
        424,
        tei.TeiErrorType.BACKEND,
        "inference",
    )
    assert backend.message.startswith("Backend error: ")
    nan = tei.inference_fault(FaultMode.NAN)
    assert nan is not None
    assert (nan.status, nan.message, nan.metric_err) == (424, "score is NaN", None)
    for mode in FaultMode:
        if mode not in (FaultMode.HTTP500, FaultMode.NAN):
            assert tei.inference_fault(mode) is None


def test_info() -> None:
    info = tei.info("BAAI/bge-reranker-base", 512, 16, True)
    assert info["model_id"] == info["served_model_name"] == "BAAI/bge-reranker-base"
    assert (info["max_input_length"], info["max_client_batch_size"], info["auto_truncate"]) == (512, 16, True)
    assert list(info["model_type"]) == ["reranker"]
    assert info["model_type"]["reranker"]["id2label"] == {"0": "LABEL_0"}
    assert isinstance(info["version"], str)


# -- metrics -------------------------------------------------------------------------------------------------


def test_tei_metrics_render_teis_names_only() -> None:
    m = Metrics("rr", engine="tei")
    m.te_counted()
    m.te_failed("batch_size")
    m.te_failed("batch_size")
    m.started()
    m.finished("/rerank", 200, 0.25, tokens=9)
    text = m.render("healthy")
    lines = text.splitlines()
    assert 'te_request_count{method="batch"} 1' in lines
    assert 'te_request_success{method="batch"} 1' in lines
    assert 'te_request_failure{err="batch_size"} 2' in lines
    assert "te_request_duration_count 1" in lines
    assert "te_request_duration_sum 0.250000" in lines
    assert "te_batch_current_size 0" in lines
    assert not any(line.startswith("vllm:") for line in lines)
    assert 'standin_requests_total{route="/rerank",code="200"} 1' in lines


def test_vllm_metrics_are_unchanged_by_default() -> None:
    text = Metrics("rr").render("healthy")
    assert 'vllm:num_requests_running{model_name="rr"} 0' in text.splitlines()
    assert "te_request_count" not in text


# -- the CLI -------------------------------------------------------------------------------------------------


def test_cli_defaults_are_vllm() -> None:
    args = build_parser().parse_args([])
    assert (args.engine, args.max_client_batch_size, args.auto_truncate) == ("vllm", 32, False)


def test_cli_tei_flags() -> None:
    args = build_parser().parse_args(["--engine", "tei", "--max-client-batch-size", "4", "--auto-truncate"])
    assert (args.engine, args.max_client_batch_size, args.auto_truncate) == ("tei", 4, True)


@pytest.mark.parametrize(
    "argv", [["--engine", "triton"], ["--max-client-batch-size", "0"], ["--max-client-batch-size", "many"]]
)
def test_cli_rejects_bad_values(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    assert argv[0] in capsys.readouterr().err
