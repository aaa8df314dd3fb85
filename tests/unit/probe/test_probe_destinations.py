"""The endpoint allowlist: CIDRs for IP literals, dot-suffixes for names, nothing resolved."""

from __future__ import annotations

import pytest

from rerank_operator.probe.destinations import ENV_VAR, DestinationPolicy

POLICY = DestinationPolicy.parse("10.20.0.0/16, .rerank.example.com,fd00:1::/64")


def test_empty_allowlist_allows_everything_admission_accepts() -> None:
    assert not DestinationPolicy.parse("")
    assert DestinationPolicy.from_env({}).refusal("anything.example.org") is None


@pytest.mark.parametrize(
    "host", ["10.20.3.4", "rerank.example.com", "eu.rerank.example.com", "FD00:1::5", "[fd00:1::5]"]
)
def test_allowed(host: str) -> None:
    assert POLICY.refusal(host) is None


@pytest.mark.parametrize(
    "host",
    [
        "10.21.0.1",  # outside the CIDR
        "evil-rerank.example.com",  # a suffix match must be on a label boundary
        "rerank.example.com.evil.org",
        "example.com",
        "fd00:2::1",
    ],
)
def test_refused_with_the_list_named(host: str) -> None:
    refusal = POLICY.refusal(host)
    assert refusal is not None
    assert ENV_VAR in refusal and "10.20.0.0/16" in refusal and ".rerank.example.com" in refusal


def test_names_are_never_matched_against_cidrs() -> None:
    """A name is not resolved: DNS could answer differently when the request goes out."""
    assert DestinationPolicy.parse("0.0.0.0/0").refusal("anything.example.org") is not None


@pytest.mark.parametrize("entry", ["example.com", "10.0.0.1/8", ".", "..x", "10.0.0.0/33"])
def test_bad_entries_are_named(entry: str) -> None:
    with pytest.raises(ValueError, match="allowlist entry"):
        DestinationPolicy.parse(entry)
    with pytest.raises(ValueError, match=ENV_VAR):
        DestinationPolicy.from_env({ENV_VAR: entry})
