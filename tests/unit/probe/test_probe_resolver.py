"""Host override parsing: the seam must only ever point at loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_operator.probe import HOST_OVERRIDES_ENV, HostResolver
from rerank_operator.probe.resolver import FILE_ENV_VAR, Override, split_host_port


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


def test_overrides_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "overrides"
    resolver = HostResolver.from_env({HOST_OVERRIDES_ENV: "a:80=127.0.0.1:1", FILE_ENV_VAR: str(path)})
    assert resolver  # configured, even while the file does not exist yet
    assert resolver.resolve("b", 80) is None
    assert resolver.resolve("a", 80) == Override("127.0.0.1", 1)
    path.write_text("# written by the sandbox\nb:80=127.0.0.2:2\na:80=127.0.0.3:3, c=127.0.0.1\n")
    assert resolver.resolve("b", 80) == Override("127.0.0.2", 2)
    assert resolver.resolve("a", 80) == Override("127.0.0.3", 3)  # the file wins over the variable
    assert resolver.resolve("c", 9) == Override("127.0.0.1", None)
    path.write_text("b:80=127.0.0.2:2222\n")  # a different size: re-read even within one mtime tick
    assert resolver.resolve("b", 80) == Override("127.0.0.2", 2222)
    assert resolver.resolve("a", 80) == Override("127.0.0.1", 1)  # gone from the file: the variable's


def test_overrides_file_that_stops_parsing_keeps_its_last_good_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "overrides"
    path.write_text("b:80=127.0.0.2:2\n")
    resolver = HostResolver.from_env({FILE_ENV_VAR: str(path)})
    assert resolver.resolve("b", 80) == Override("127.0.0.2", 2)
    path.write_text("b:80=10.0.0.1:2\n")  # not loopback: refused, never used
    assert resolver.resolve("b", 80) == Override("127.0.0.2", 2)
    assert "is not loopback" in caplog.text
    assert FILE_ENV_VAR in caplog.text


# -------------------------------------------------------------------------------- wildcard keys
STABLE = "rr-reranker.default.svc.cluster.local"
REVISION = "rr-0a1b2c3d.default.svc.cluster.local"


def test_wildcard_covers_the_stable_and_every_revision_service() -> None:
    r = HostResolver.parse("rr-*.default.svc.cluster.local:8000=127.0.0.1:18000")
    assert r.resolve(STABLE, 8000) == Override("127.0.0.1", 18000)
    assert r.resolve(REVISION, 8000) == Override("127.0.0.1", 18000)
    assert r.resolve("RR-0A1B2C3D.default.svc.cluster.local", 8000) == Override("127.0.0.1", 18000)
    assert r.resolve("rr-.default.svc.cluster.local", 8000) == Override("127.0.0.1", 18000)  # empty run
    assert r.resolve(REVISION, 8001) is None  # the key's port still counts
    assert r.resolve("other-reranker.default.svc.cluster.local", 8000) is None  # the fixed prefix too


@pytest.mark.parametrize(
    "host",
    [
        "rr-a.b.default.svc.cluster.local",  # '*' never crosses a dot
        "rr-x.other.svc.cluster.local",  # the rest must match literally
        "rr-x.default.svc.cluster.local.evil",  # and in full, not as a prefix
        "xrr-x.default.svc.cluster.local",  # nor as a suffix
    ],
)
def test_wildcard_matches_within_one_label_only(host: str) -> None:
    r = HostResolver.parse("rr-*.default.svc.cluster.local=127.0.0.1:18000")
    assert r.resolve(host, 8000) is None


def test_wildcard_is_not_a_regular_expression() -> None:
    r = HostResolver.parse("rr.*.ns=127.0.0.1")
    assert r.resolve("rr.x.ns", 80) == Override("127.0.0.1", None)
    assert r.resolve("rrax.ns", 80) is None  # the '.' is a dot, not "any character"


def test_host_only_wildcard_matches_any_port_but_not_across_the_port() -> None:
    r = HostResolver.parse("rr-*=127.0.0.2")
    assert r.resolve("rr-abc", 8000) == Override("127.0.0.2", None)
    assert r.resolve("rr-abc", 9) == Override("127.0.0.2", None)
    assert r.resolve("rr-abc.ns", 8000) is None


def test_exact_key_beats_a_pattern() -> None:
    for text in (
        f"rr-*.default.svc.cluster.local:8000=127.0.0.1:1,{REVISION}:8000=127.0.0.1:2",
        f"{REVISION}:8000=127.0.0.1:2,rr-*.default.svc.cluster.local:8000=127.0.0.1:1",  # order irrelevant
    ):
        r = HostResolver.parse(text)
        assert r.resolve(REVISION, 8000) == Override("127.0.0.1", 2)
        assert r.resolve(STABLE, 8000) == Override("127.0.0.1", 1)
    # a host-only exact key beats a pattern even when the pattern names the port
    r = HostResolver.parse(f"rr-*.default.svc.cluster.local:8000=127.0.0.1:1,{REVISION}=127.0.0.1:3")
    assert r.resolve(REVISION, 8000) == Override("127.0.0.1", 3)


def test_longer_pattern_beats_a_shorter_one() -> None:
    for text in (
        "*.default.svc.cluster.local=127.0.0.1:1,rr-*.default.svc.cluster.local=127.0.0.1:2",
        "rr-*.default.svc.cluster.local=127.0.0.1:2,*.default.svc.cluster.local=127.0.0.1:1",
    ):
        r = HostResolver.parse(text)
        assert r.resolve(REVISION, 8000) == Override("127.0.0.1", 2)
        assert r.resolve("other-reranker.default.svc.cluster.local", 8000) == Override("127.0.0.1", 1)


def test_wildcards_in_the_overrides_file(tmp_path: Path) -> None:
    path = tmp_path / "overrides"
    path.write_text("rr-*.default.svc.cluster.local:8000=127.0.0.4:4\n")
    resolver = HostResolver.from_env({FILE_ENV_VAR: str(path)})
    assert resolver.resolve(REVISION, 8000) == Override("127.0.0.4", 4)
    assert resolver.resolve("rr-a.b.default.svc.cluster.local", 8000) is None
