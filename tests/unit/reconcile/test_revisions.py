"""BlueGreen planning (pure): which revision serves, which one is checked, which Deployments go.

The stable Service is the record: its selector names the active revision, its ``rerank.dev/retiring``
annotation the drains still running. Built here as the apiserver would hand them over.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rerank_operator.models import RerankPipeline
from rerank_operator.reconcile.revisions import (
    NOTHING,
    POD_TEMPLATE_HASH,
    PREVIOUS_ROLLOUT,
    RETIRING_ANNOTATION,
    Active,
    RevisionPlan,
    format_retiring,
    parse_retiring,
    plan_revisions,
)
from rerank_operator.render import revision, selector_labels
from rerank_operator.render.naming import REVISION_LABEL

MakePipeline = Callable[..., RerankPipeline]

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
OLD_MODEL = {"name": "BAAI/bge-reranker-large"}
OLDER_MODEL = {"name": "BAAI/bge-reranker-v2-m3"}
LEGACY = "demo-reranker"


def deployment(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "search", "labels": labels}, "spec": {}}


def stable(
    pipeline: RerankPipeline, extra: dict[str, str] | None = None, retiring: dict[str, datetime] | None = None
) -> dict[str, Any]:
    """The stable Service: base selector plus ``extra``, and the drains it records."""
    meta: dict[str, Any] = {"name": "demo-reranker", "namespace": "search"}
    if retiring is not None:
        meta["annotations"] = {RETIRING_ANNOTATION: format_retiring(retiring)}
    return {"metadata": meta, "spec": {"selector": {**selector_labels(pipeline), **(extra or {})}}}


def pod(
    name: str, template_hash: str | None, *, rev: str | None = None, deleting: bool = False
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/instance": "demo"}
    if template_hash is not None:
        labels[POD_TEMPLATE_HASH] = template_hash
    if rev is not None:
        labels[REVISION_LABEL] = rev
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:59:00Z"
    return {"metadata": meta}


def plan(
    pipeline: RerankPipeline,
    *,
    service: dict[str, Any] | None = None,
    deployments: list[dict[str, Any]] | None = None,
    pods: list[dict[str, Any]] | None = None,
    now: datetime = NOW,
    fresh: bool = False,
) -> RevisionPlan:
    """The plan; by default for a pipeline whose endpoint was reachable before (the gated path)."""
    return plan_revisions(
        pipeline, stable=service, deployments=deployments or [], pods=pods or [], now=now, fresh=fresh
    )


def rev_deployment(pipeline: RerankPipeline) -> dict[str, Any]:
    rev = revision(pipeline)
    return deployment(f"demo-{rev}", **{REVISION_LABEL: rev})


# ------------------------------------------------------------------------------ the three states
def test_a_new_pipeline_s_first_revision_takes_the_stable_service_at_once(
    make_pipeline: MakePipeline,
) -> None:
    """Nothing serves, nothing else runs, nothing was published: no traffic for the gate to protect."""
    pipeline = make_pipeline()
    rev = revision(pipeline)
    for deployments in ([], [rev_deployment(pipeline)]):  # before and after its Deployment exists
        p = plan(pipeline, deployments=deployments, fresh=True)
        assert p.active == Active(f"demo-{rev}", rev, {REVISION_LABEL: rev})
        assert p.candidate is False
        assert p.stable == {REVISION_LABEL: rev}  # written before the Deployment: no switch later
        assert p.remove == [] and p.retiring == {}
        assert p.scale_target == p.desired_deployment


@pytest.mark.parametrize("why", ["not-fresh", "another-deployment"])
def test_the_first_revision_shortcut_needs_both(make_pipeline: MakePipeline, why: str) -> None:
    """A stable endpoint apps were given (or someone else's object at its name), or another revision still
    running: the candidate goes through the gate."""
    pipeline = make_pipeline()
    old = make_pipeline(model=OLD_MODEL)
    kwargs: dict[str, Any] = {"deployments": [rev_deployment(pipeline)], "fresh": True}
    if why == "not-fresh":
        kwargs["fresh"] = False
    else:
        kwargs["deployments"].append(rev_deployment(old))
    p = plan(pipeline, **kwargs)
    assert p.candidate is True
    assert p.active is None or p.active.revision != revision(pipeline)


def test_a_gated_first_revision_is_the_candidate(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    p = plan(pipeline)
    assert p.desired == revision(pipeline)
    assert p.desired_deployment == f"demo-{revision(pipeline)}"
    assert p.active is None
    assert p.candidate is True
    assert p.stable is None  # nothing to select yet: the switch writes the stable Service
    assert p.retiring == {}
    assert p.remove == []
    assert p.waiting is None
    assert p.scale_target == p.desired_deployment
    assert p.drain_due() is None


def test_first_revision_already_running_but_not_switched_is_still_the_candidate(
    make_pipeline: MakePipeline,
) -> None:
    pipeline = make_pipeline()
    p = plan(pipeline, deployments=[rev_deployment(pipeline)])
    assert p.active is None
    assert p.candidate is True
    assert p.stable is None
    assert p.remove == []  # the current revision's own Deployment is never removed


def test_steady_state_the_stable_service_selects_the_current_revision(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    rev = revision(pipeline)
    p = plan(
        pipeline, service=stable(pipeline, {REVISION_LABEL: rev}), deployments=[rev_deployment(pipeline)]
    )
    assert p.active == Active(f"demo-{rev}", rev, {REVISION_LABEL: rev})
    assert p.candidate is False
    assert p.stable == {REVISION_LABEL: rev}
    assert p.scale_target == f"demo-{rev}" == p.desired_deployment
    assert p.retiring == {}
    assert p.remove == []
    assert p.waiting is None


def test_a_changed_spec_is_a_candidate_next_to_the_serving_revision(make_pipeline: MakePipeline) -> None:
    old = make_pipeline(model=OLD_MODEL)
    pipeline = make_pipeline()
    old_rev, rev = revision(old), revision(pipeline)
    assert old_rev != rev
    p = plan(
        pipeline,
        service=stable(pipeline, {REVISION_LABEL: old_rev}),
        deployments=[rev_deployment(old), rev_deployment(pipeline)],
    )
    assert p.active == Active(f"demo-{old_rev}", old_rev, {REVISION_LABEL: old_rev})
    assert p.candidate is True
    assert p.stable == {REVISION_LABEL: old_rev}  # the endpoint keeps selecting the old revision
    assert p.scale_target == f"demo-{old_rev}"  # the autoscaler scales what serves
    assert p.desired_deployment == f"demo-{rev}"
    assert p.remove == []
    # before the candidate's Deployment exists, the same
    assert (
        plan(pipeline, service=stable(pipeline, {REVISION_LABEL: old_rev}), deployments=[rev_deployment(old)])
        == p
    )


def test_stable_service_naming_a_revision_without_its_deployment_has_no_active(
    make_pipeline: MakePipeline,
) -> None:
    """Someone deleted the serving Deployment: nothing serves, and the stable Service is left as it is."""
    pipeline = make_pipeline()
    old_rev = revision(make_pipeline(model=OLD_MODEL))
    p = plan(
        pipeline, service=stable(pipeline, {REVISION_LABEL: old_rev}), deployments=[rev_deployment(pipeline)]
    )
    assert p.active is None
    assert p.candidate is True
    assert p.stable is None


def test_a_candidate_replaced_before_it_ever_served_is_removed(make_pipeline: MakePipeline) -> None:
    old = make_pipeline(model=OLD_MODEL)
    replaced = make_pipeline(model=OLDER_MODEL)  # the candidate of the spec before this one
    pipeline = make_pipeline()
    p = plan(
        pipeline,
        service=stable(pipeline, {REVISION_LABEL: revision(old)}),
        deployments=[rev_deployment(old), rev_deployment(replaced), rev_deployment(pipeline)],
    )
    assert p.remove == [f"demo-{revision(replaced)}"]
    assert p.active is not None
    assert p.active.deployment == f"demo-{revision(old)}"
    assert p.retiring == {}


# ------------------------------------------------------------------------------------ draining
def test_a_retiring_revision_stays_until_its_drain_ends(make_pipeline: MakePipeline) -> None:
    retired = make_pipeline(model=OLD_MODEL)
    pipeline = make_pipeline()
    rev = revision(pipeline)
    until = NOW + timedelta(seconds=90)
    name = f"demo-{revision(retired)}"
    service = stable(pipeline, {REVISION_LABEL: rev}, retiring={name: until})
    deployments = [rev_deployment(retired), rev_deployment(pipeline)]

    during = plan(pipeline, service=service, deployments=deployments)
    assert during.retiring == {name: until}
    assert during.remove == []
    assert during.drain_due() == until
    assert during.candidate is False  # draining is not a rollout: the current revision serves

    later = plan(pipeline, service=service, deployments=deployments, now=until - timedelta(seconds=1))
    assert later.remove == []

    for now in (until, until + timedelta(hours=1)):  # the drain is over: removed
        after = plan(pipeline, service=service, deployments=deployments, now=now)
        assert after.remove == [name]
        assert after.retiring == {}
        assert after.drain_due() is None


def test_drains_of_deployments_already_gone_or_serving_are_forgotten(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    rev = revision(pipeline)
    gone = f"demo-{revision(make_pipeline(model=OLDER_MODEL))}"
    until = NOW + timedelta(seconds=60)
    service = stable(pipeline, {REVISION_LABEL: rev}, retiring={gone: until, f"demo-{rev}": until})
    p = plan(pipeline, service=service, deployments=[rev_deployment(pipeline)])
    assert p.retiring == {}  # one no longer exists, the other is the active revision itself
    assert p.remove == []


def test_drains_are_sorted_by_their_end(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    a, b = make_pipeline(model=OLD_MODEL), make_pipeline(model=OLDER_MODEL)
    ends = {
        f"demo-{revision(a)}": NOW + timedelta(seconds=170),
        f"demo-{revision(b)}": NOW + timedelta(seconds=20),
    }
    service = stable(pipeline, {REVISION_LABEL: revision(pipeline)}, retiring=ends)
    p = plan(
        pipeline,
        service=service,
        deployments=[rev_deployment(a), rev_deployment(b), rev_deployment(pipeline)],
    )
    assert p.retiring == ends
    assert p.drain_due() == NOW + timedelta(seconds=20)


def test_after_switch_the_previous_revision_drains(make_pipeline: MakePipeline) -> None:
    old = make_pipeline(model=OLD_MODEL)
    earlier = make_pipeline(model=OLDER_MODEL)
    pipeline = make_pipeline()
    old_rev, rev = revision(old), revision(pipeline)
    earlier_until = NOW + timedelta(seconds=30)
    before = plan(
        pipeline,
        service=stable(
            pipeline, {REVISION_LABEL: old_rev}, retiring={f"demo-{revision(earlier)}": earlier_until}
        ),
        deployments=[rev_deployment(earlier), rev_deployment(old), rev_deployment(pipeline)],
    )
    assert before.candidate is True
    switched = before.after_switch(NOW, 180)
    assert switched.active == Active(f"demo-{rev}", rev, {REVISION_LABEL: rev})
    assert switched.candidate is False
    assert switched.stable == {REVISION_LABEL: rev}
    assert switched.scale_target == f"demo-{rev}"
    assert switched.retiring == {
        f"demo-{revision(earlier)}": earlier_until,  # a drain already running keeps its end
        f"demo-{old_rev}": NOW + timedelta(seconds=180),
    }
    assert switched.drain_due() == earlier_until
    assert switched.remove == []
    assert before.retiring == {f"demo-{revision(earlier)}": earlier_until}  # the plan itself is unchanged

    # what the switch writes is what the next pass reads back
    service = stable(pipeline, switched.stable, retiring=switched.retiring)
    deployments = [rev_deployment(earlier), rev_deployment(old), rev_deployment(pipeline)]
    again = plan(pipeline, service=service, deployments=deployments, now=NOW + timedelta(seconds=1))
    assert again.active == switched.active
    assert again.retiring == switched.retiring
    assert again.remove == []
    done = plan(pipeline, service=service, deployments=deployments, now=NOW + timedelta(seconds=180))
    assert done.remove == [f"demo-{revision(earlier)}", f"demo-{old_rev}"]


def test_after_switch_of_a_first_revision_drains_nothing(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    switched = plan(pipeline).after_switch(NOW, 180)
    assert switched.retiring == {}
    assert switched.active == Active(
        f"demo-{revision(pipeline)}", revision(pipeline), {REVISION_LABEL: revision(pipeline)}
    )
    assert switched.drain_due() is None


def test_zero_drain_ends_at_the_switch(make_pipeline: MakePipeline) -> None:
    old = make_pipeline(model=OLD_MODEL)
    pipeline = make_pipeline()
    before = plan(
        pipeline,
        service=stable(pipeline, {REVISION_LABEL: revision(old)}),
        deployments=[rev_deployment(old), rev_deployment(pipeline)],
    )
    assert before.after_switch(NOW, 0).retiring == {f"demo-{revision(old)}": NOW}


def test_going_back_to_a_draining_revision_cancels_its_drain(make_pipeline: MakePipeline) -> None:
    back = make_pipeline()  # the spec goes back to this revision while it drains
    serving = make_pipeline(model=OLD_MODEL)
    name = f"demo-{revision(back)}"
    service = stable(back, {REVISION_LABEL: revision(serving)}, retiring={name: NOW - timedelta(seconds=5)})
    p = plan(back, service=service, deployments=[rev_deployment(back), rev_deployment(serving)])
    assert p.candidate is True
    assert p.remove == []  # it is the candidate now: kept
    assert name not in p.retiring
    assert p.drain_due() is None


# ------------------------------------------------------------------------- adopting a Deployment
def test_adoption_pins_the_stable_service_to_the_running_pods(make_pipeline: MakePipeline) -> None:
    """A Deployment from before BlueGreen is the active workload; the pin keeps the candidate's pods
    (which carry the base labels too) out of the endpoint."""
    pipeline = make_pipeline()
    rev = revision(pipeline)
    pods = [
        pod("legacy-1", "6d4b9c7f8"),
        pod("legacy-2", "6d4b9c7f8"),
        pod("candidate-1", "7fbc5d9a1", rev=rev),  # the candidate's: never what the pin names
        pod("candidate-2", "7fbc5d9a1", rev=rev),
        pod("candidate-3", "7fbc5d9a1", rev=rev),
        pod("leaving", "55aa11bb2", deleting=True),  # terminating pods of an older template don't count
        pod("bare", None),
    ]
    for service in (stable(pipeline), None):  # the base selector, or the Service not read back
        p = plan(
            pipeline, service=service, deployments=[deployment(LEGACY), rev_deployment(pipeline)], pods=pods
        )
        pin = {POD_TEMPLATE_HASH: "6d4b9c7f8"}
        assert p.active == Active(LEGACY, None, pin)
        assert p.stable == pin
        assert p.candidate is True
        assert p.scale_target == LEGACY
        assert p.waiting is None
        assert p.remove == []


def test_adoption_of_a_deployment_without_pods_pins_to_nothing(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    p = plan(pipeline, service=stable(pipeline), deployments=[deployment(LEGACY)])
    assert p.stable == {POD_TEMPLATE_HASH: NOTHING}
    assert p.active == Active(LEGACY, None, {POD_TEMPLATE_HASH: NOTHING})


def test_a_pinned_stable_service_keeps_the_adopted_deployment_active(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    pin = {POD_TEMPLATE_HASH: "6d4b9c7f8"}
    # the pods have moved on (a new template): the pin read back wins, pods are not looked at again
    pods = [pod("legacy-1", "0000aaaa1")]
    p = plan(
        pipeline,
        service=stable(pipeline, pin),
        deployments=[deployment(LEGACY), rev_deployment(pipeline)],
        pods=pods,
    )
    assert p.active == Active(LEGACY, None, pin)
    assert p.stable == pin
    assert p.candidate is True
    # once the adopted Deployment is gone, nothing serves until the candidate's switch
    gone = plan(pipeline, service=stable(pipeline, pin), deployments=[rev_deployment(pipeline)])
    assert gone.active is None
    assert gone.stable is None


def test_adoption_waits_while_the_adopted_deployment_still_rolls(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    replaced = make_pipeline(model=OLD_MODEL)
    pods = [pod("old-1", "6d4b9c7f8"), pod("new-1", "9e8d7c6b5"), pod("new-2", "9e8d7c6b5")]
    p = plan(
        pipeline,
        service=stable(pipeline),
        deployments=[deployment(LEGACY), rev_deployment(replaced)],
        pods=pods,
    )
    assert p.waiting is not None
    reason, message = p.waiting
    assert reason == PREVIOUS_ROLLOUT
    assert LEGACY in message
    assert "2 pod templates" in message
    assert p.stable is None  # no pin while two templates serve: the Service is left as it is
    assert p.active == Active(LEGACY, None, {})
    assert p.scale_target == LEGACY
    assert p.remove == []  # nothing starts or goes meanwhile


def test_after_switch_the_adopted_deployment_drains_then_goes(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    rev = revision(pipeline)
    deployments = [deployment(LEGACY), rev_deployment(pipeline)]
    adopted = plan(
        pipeline, service=stable(pipeline), deployments=deployments, pods=[pod("legacy-1", "6d4b9c7f8")]
    )
    switched = adopted.after_switch(NOW, 60)
    assert switched.stable == {REVISION_LABEL: rev}
    assert switched.retiring == {LEGACY: NOW + timedelta(seconds=60)}
    service = stable(pipeline, switched.stable, retiring=switched.retiring)
    during = plan(pipeline, service=service, deployments=deployments, now=NOW + timedelta(seconds=59))
    assert during.active == Active(f"demo-{rev}", rev, {REVISION_LABEL: rev})
    assert during.remove == []
    after = plan(pipeline, service=service, deployments=deployments, now=NOW + timedelta(seconds=60))
    assert after.remove == [LEGACY]


# ------------------------------------------------------------------------- the retiring record
def test_format_and_parse_retiring_round_trip() -> None:
    retiring = {
        "demo-3f9c2a71": datetime(2026, 1, 1, 12, 3, 0, tzinfo=UTC),
        "demo-reranker": datetime(2026, 1, 1, 13, 0, 5, tzinfo=UTC),
    }
    text = format_retiring(retiring)
    assert text == '{"demo-3f9c2a71":"2026-01-01T12:03:00Z","demo-reranker":"2026-01-01T13:00:05Z"}'
    service = {"metadata": {"annotations": {RETIRING_ANNOTATION: text}}}
    assert parse_retiring(service) == retiring
    assert RETIRING_ANNOTATION == "rerank.dev/retiring"


def test_format_retiring_writes_utc_whatever_the_zone() -> None:
    paris = datetime(2026, 1, 1, 13, 3, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert json.loads(format_retiring({"d": paris})) == {"d": "2026-01-01T13:03:00Z"}
    assert format_retiring({}) == "{}"


def test_parse_retiring_accepts_offsets() -> None:
    service = {"metadata": {"annotations": {RETIRING_ANNOTATION: '{"d":"2026-01-01T14:00:00+02:00"}'}}}
    assert parse_retiring(service) == {"d": datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)}


@pytest.mark.parametrize(
    "service",
    [
        None,
        {},
        {"metadata": None},
        {"metadata": {"annotations": None}},
        {"metadata": {"annotations": {"other": "x"}}},
        {"metadata": {"annotations": {RETIRING_ANNOTATION: ""}}},
    ],
    ids=["no-service", "empty", "no-metadata", "no-annotations", "other-annotation", "empty-annotation"],
)
def test_no_record_means_no_drains(service: Any) -> None:
    assert parse_retiring(service) == {}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{",
        "null",
        "[1, 2]",
        '"demo-3f9c2a71"',
        "42",
        '{"demo-3f9c2a71": "tomorrow"}',
        '{"demo-3f9c2a71": 1767268980}',
        '{"demo-3f9c2a71": null}',
    ],
)
def test_a_garbage_record_counts_as_none(text: str) -> None:
    assert parse_retiring({"metadata": {"annotations": {RETIRING_ANNOTATION: text}}}) == {}


def test_a_garbage_record_drains_nothing_and_removes_what_never_serves(make_pipeline: MakePipeline) -> None:
    """With the record unreadable, a Deployment that is neither active nor current is removed."""
    old = make_pipeline(model=OLD_MODEL)
    pipeline = make_pipeline()
    service = stable(pipeline, {REVISION_LABEL: revision(pipeline)})
    service["metadata"]["annotations"] = {RETIRING_ANNOTATION: "{garbage"}
    p = plan(pipeline, service=service, deployments=[rev_deployment(old), rev_deployment(pipeline)])
    assert p.retiring == {}
    assert p.remove == [f"demo-{revision(old)}"]
