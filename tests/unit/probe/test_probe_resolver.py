"""Host override parsing: the seam must only ever point at loopback."""

from __future__ import annotations

import pytest

from rerank_operator.probe import HOST_OVERRIDES_ENV, HostResolver
from rerank_operator.probe.resolver import Override, split_host_port


def test_parse_the_documented_example() -> None:
    r = HostResolver.parse("rr-svc.default.svc.cluster.local:8000=127.0.0.1:18000,other:80=127.0.0.1:9")
    assert r.resolve("rr-svc.default.svc.cluster.local", 8000) == Override("127.0.0.1", 18000)
    assert r.resolve("other", 80) == Override("127.0.0.1", 9)
    assert r.resolve("other", 81) is None
    assert r.resolve("unknown", 8000) is None


def test_host_only_key_matches_any_port_and_exact_key_wins() -> None:
    r = HostResolver.parse("svc=127.0.0.2, svc:9000=127.0.0.3:19000")
    assert r.resolve("svc", 9000) == Override("127.0.0.3", 19000)
    assert r.resolve("SVC", 1234) == Override("127.0.0.2", None)
    assert Override("127.0.0.2", None).authority(1234) == "127.0.0.2:1234"


def test_ipv6_loopback_target_and_key() -> None:
    r = HostResolver.parse("[fd00::1]:8000=[::1]:18000")
    override = r.resolve("fd00::1", 8000)
    assert override == Override("::1", 18000)
    assert override.authority(8000) == "[::1]:18000"


@pytest.mark.parametrize("text", ["", "  ", ",", " , ,"])
def test_empty_means_no_overrides(text: str) -> None:
    r = HostResolver.parse(text)
    assert not r
    assert r.resolve("anything", 80) is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("svc:8000=10.0.0.5:8000", "not loopback"),
        ("svc:8000=0.0.0.0:8000", "not loopback"),
        ("svc:8000=[fe80::1]:8000", "not loopback"),
        ("svc:8000=localhost:8000", "IP literal"),
        ("svc:8000=example.com:80", "IP literal"),
        ("svc:8000", "expected 'host"),
        ("=127.0.0.1:1", "expected 'host"),
        ("svc=", "expected 'host"),
        ("svc:8000=127.0.0.1:0", "port must be"),
        ("svc:99999=127.0.0.1:1", "port must be"),
        ("svc:http=127.0.0.1:1", "port must be"),
        ("svc=127.0.0.1:1,svc=127.0.0.1:2", "given twice"),
        ("::1:80=127.0.0.1:1", "brackets"),
        ("[::1=127.0.0.1:1", "unclosed"),
    ],
)
def test_bad_overrides_are_refused(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HostResolver.parse(text)


def test_from_env_reads_the_variable_and_names_it_in_errors() -> None:
    env = {HOST_OVERRIDES_ENV: "svc:1=127.0.0.1:2"}
    assert HostResolver.from_env(env).resolve("svc", 1) == Override("127.0.0.1", 2)
    assert not HostResolver.from_env({})
    with pytest.raises(ValueError, match=HOST_OVERRIDES_ENV):
        HostResolver.from_env({HOST_OVERRIDES_ENV: "svc=8.8.8.8"})


def test_split_host_port() -> None:
    assert split_host_port("Svc.NS:80") == ("svc.ns", 80)
    assert split_host_port("svc") == ("svc", None)
    assert split_host_port("[::1]") == ("::1", None)
    with pytest.raises(ValueError, match="empty host"):
        split_host_port(":80")
