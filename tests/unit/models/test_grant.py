"""RerankPublishGrant: the target namespace's consent, matched by namespace and optionally pipeline."""

from __future__ import annotations

from typing import Any

import pytest

from rerank_operator.models.grant import consent_hint, consenting_grant, grant_problems


def grant(name: str, *sources: dict[str, Any], namespace: str = "apps") -> dict[str, Any]:
    return {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPublishGrant",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"from": list(sources)},
    }


def test_a_namespace_wide_grant_admits_every_pipeline_of_it() -> None:
    assert consenting_grant([grant("g", {"namespace": "ml"})], "ml", "rr") == "g"
    assert consenting_grant([grant("g", {"namespace": "ml"})], "ml", "other") == "g"


def test_a_pipeline_list_limits_the_grant() -> None:
    grants = [grant("only-other", {"namespace": "ml", "pipelines": ["other"]})]
    assert consenting_grant(grants, "ml", "rr") is None
    grants.append(grant("rr-too", {"namespace": "search"}, {"namespace": "ml", "pipelines": ["rr"]}))
    assert consenting_grant(grants, "ml", "rr") == "rr-too"


def test_other_source_namespaces_and_unparsable_grants_are_no_consent() -> None:
    broken = grant("broken", {"namespace": "ml"})
    broken["spec"] = {"from": "ml"}  # bypassed admission: never read as consent
    assert consenting_grant([grant("g", {"namespace": "mlx"}), broken], "ml", "rr") is None
    assert consenting_grant([], "ml", "rr") is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"from": []}, "spec.from"),
        ({}, "spec.from"),
        ({"from": [{"namespace": "ML"}]}, "spec.from[0].namespace"),
        ({"from": [{"namespace": "ml", "pipelines": ["rr", "rr"]}]}, "spec.from[0].pipelines"),
        ({"from": [{"namespace": "ml", "pipelines": []}]}, "spec.from[0].pipelines"),
        ({"from": [{"namespace": "ml", "extra": 1}]}, "spec.from[0].extra"),
    ],
)
def test_validation_names_the_field(spec: dict[str, Any], field: str) -> None:
    body = grant("g")
    body["spec"] = spec
    problems = grant_problems(body)
    assert problems and all(p.startswith(field) for p in problems), problems


def test_consent_hint_says_who_and_how() -> None:
    hint = consent_hint("apps", "ml", "rr")
    assert "namespace apps" in hint and "ml/rr" in hint and "RerankPublishGrant" in hint
