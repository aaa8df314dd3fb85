"""Endpoint validation, request shape and routing through host overrides."""

from __future__ import annotations

import pytest

from rerank_operator.probe import Canary, HostResolver, ProbeTarget, parse_endpoint, request_body
from rerank_operator.probe.client import route_for


@pytest.mark.parametrize(
    ("url", "host", "port", "netloc"),
    [
        ("http://rr.ns.svc:8000", "rr.ns.svc", 8000, "rr.ns.svc:8000"),
        ("http://RR:8000/", "rr", 8000, "rr:8000"),
        ("https://rr", "rr", 443, "rr"),
        ("http://rr", "rr", 80, "rr"),
        ("http://[::1]:9", "::1", 9, "[::1]:9"),
        (" http://127.0.0.1:18000 ", "127.0.0.1", 18000, "127.0.0.1:18000"),
    ],
)
def test_valid_endpoints(url: str, host: str, port: int, netloc: str) -> None:
    ep = parse_endpoint(url)
    assert (ep.host, ep.port, ep.netloc) == (host, port, netloc)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("rr:8000", "scheme"),
        ("ftp://rr:21", "scheme"),
        ("http://", "no host"),
        ("http://rr:8000/rerank", "Milvus replaces any path"),
        ("http://rr:8000/v2", "Milvus replaces any path"),
        ("http://rr:8000?x=1", "Milvus replaces any path"),
        ("http://rr:port", "not a valid URL"),
        ("http://rr:0", "port 0"),
    ],
)
def test_invalid_endpoints(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_endpoint(url)


def test_credentials_in_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="credentials") as info:
        parse_endpoint("http://user:hunter2@rr:8000")
    assert "hunter2" not in str(info.value)


def test_target_validation_and_secret_repr() -> None:
    t = ProbeTarget("http://rr:8000", api_key="s3cret")
    assert "s3cret" not in repr(t)
    for kw, match in [
        ({"engine": "onnx"}, "engine"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"max_latency_ms": 0}, "max_latency"),
        ({"truncate_prompt_tokens": -2}, "truncate"),
        ({"truncate_prompt_tokens": 256, "engine": "tei"}, "vLLM's; for TEI use truncate"),
        ({"truncate": True}, "TEI's; for vLLM use truncate_prompt_tokens"),
        ({"max_client_batch_size": 0}, "max_client_batch_size"),
        ({"max_client_batch_size": -3, "engine": "tei"}, "max_client_batch_size"),
        ({"max_client_batch_size": True}, "max_client_batch_size"),
        ({"max_client_batch_size": 2.5}, "max_client_batch_size"),
        ({"api_key": ""}, "api_key"),
    ]:
        with pytest.raises(ValueError, match=match):
            ProbeTarget("http://rr:8000", **kw)  # type: ignore[arg-type]


def test_request_body_is_what_milvus_sends() -> None:
    canary = Canary("q", ("a", "b"), 1)
    assert request_body(ProbeTarget("http://rr:1", canary=canary, served_model="m")) == {
        "query": "q",
        "documents": ["a", "b"],
    }  # no model field, like Milvus
    assert request_body(ProbeTarget("http://rr:1", canary=canary, truncate_prompt_tokens=256)) == {
        "query": "q",
        "documents": ["a", "b"],
        "truncate_prompt_tokens": 256,
    }
    assert request_body(ProbeTarget("http://rr:1", canary=canary, engine="tei")) == {
        "query": "q",
        "texts": ["a", "b"],
    }
    for truncate in (True, False):  # Milvus' truncate param, forwarded as TEI's truncate
        tei = ProbeTarget("http://rr:1", canary=canary, engine="tei", truncate=truncate)
        assert request_body(tei) == {"query": "q", "texts": ["a", "b"], "truncate": truncate}


CANARY_5 = Canary("q", ("a", "b", "c", "d", "e"), 2)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (None, [range(0, 5)]),
        (32, [range(0, 5)]),
        (5, [range(0, 5)]),
        (2, [range(0, 2), range(2, 4), range(4, 5)]),
        (1, [range(i, i + 1) for i in range(5)]),
    ],
)
def test_batches_split_the_canary_as_milvus_does(size: int | None, expected: list[range]) -> None:
    target = ProbeTarget("http://rr:1", canary=CANARY_5, engine="tei", max_client_batch_size=size)
    assert target.batches() == expected
    assert [request_body(target, b)["texts"] for b in target.batches()] == [
        list(CANARY_5.documents[b.start : b.stop]) for b in expected
    ]


def test_route_without_override_uses_the_endpoint_as_is() -> None:
    route = route_for(parse_endpoint("http://rr.ns:8000"), HostResolver())
    assert route.url("/rerank") == "http://rr.ns:8000/rerank"
    assert route.host_header is None
    assert route.extensions() == {}


def test_route_with_override_keeps_host_header_and_sni() -> None:
    resolver = HostResolver.parse("rr.ns:8000=127.0.0.1:18000,secure=[::1]:8443")
    route = route_for(parse_endpoint("http://rr.ns:8000"), resolver)
    assert route.url("/rerank") == "http://127.0.0.1:18000/rerank"
    assert route.host_header == "rr.ns:8000"
    assert route.extensions() == {}
    tls = route_for(parse_endpoint("https://secure"), resolver)
    assert tls.url("/v1/models") == "https://[::1]:8443/v1/models"
    assert tls.host_header == "secure"
    assert tls.extensions() == {"sni_hostname": "secure"}
