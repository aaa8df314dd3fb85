"""BlueGreen: which revision serves, which one is being checked, and which ones go (pure).

The stable Service (the published endpoint) is the record of the rollout, so a restarted operator
reads it back instead of remembering it:

* its selector names the **active** revision (``rerank.dev/revision``), the only pods Milvus reaches;
* its ``rerank.dev/retiring`` annotation names the Deployments that served before the last switch and
  when their drain ends. The switch writes both in one apply, so no crash can lose a drain.

Every other Deployment of the pipeline is the **candidate** (the current spec's revision, while it is
not active) or a candidate that was replaced before it ever served: deleted at once. A revision with
nothing before it (no stable Service, no other Deployment, nothing ever published) is active from the
start: the gate exists to
keep an older revision's traffic away from an unproven one, and there is none; what is published still
waits for its canary.

A Deployment from before BlueGreen (``<name>-reranker``, rolled in place, selected by the base labels)
is adopted as the active workload: the stable Service is first pinned to its pods' ``pod-template-hash``
so the candidate's pods, which carry the base labels too, never join it; then the same gated switch
replaces it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rerank_operator import ANNOTATION_PREFIX
from rerank_operator.models import RerankPipeline
from rerank_operator.render.naming import (
    REVISION_LABEL,
    legacy_deployment_name,
    revision_name,
    selector_labels,
)
from rerank_operator.render.revision import revision

RETIRING_ANNOTATION = f"{ANNOTATION_PREFIX}/retiring"
POD_TEMPLATE_HASH = "pod-template-hash"  # set by the Deployment controller on every pod it creates
NOTHING = "none"  # a pin that selects no pod: the adopted Deployment had none
PREVIOUS_ROLLOUT = "PreviousRolloutInProgress"


@dataclass(frozen=True)
class Active:
    """The workload the stable Service selects."""

    deployment: str
    revision: str | None  # None: the adopted Deployment from before BlueGreen
    selector: dict[str, str]  # labels beyond the base ones


@dataclass(frozen=True)
class RevisionPlan:
    desired: str  # the current spec's revision
    desired_deployment: str
    active: Active | None
    # labels beyond the base ones the stable Service must select before the canary gate: the active
    # workload's (None: no stable Service yet, or leave it as it is)
    stable: dict[str, str] | None
    retiring: dict[str, datetime]  # Deployment name -> end of its drain
    # Deployments that never served (replaced candidates) or whose drain is over: deleted now
    remove: list[str] = field(default_factory=list)
    # why the candidate cannot even start yet (the adopted Deployment is still rolling)
    waiting: tuple[str, str] | None = None

    @property
    def candidate(self) -> bool:
        return self.active is None or self.active.revision != self.desired

    @property
    def scale_target(self) -> str:
        """The Deployment an autoscaler scales: the one that serves, else the current one."""
        return self.active.deployment if self.active is not None else self.desired_deployment

    def drain_due(self) -> datetime | None:
        return min(self.retiring.values(), default=None)

    def after_switch(self, now: datetime, drain_seconds: float) -> RevisionPlan:
        """The plan once the stable Service selects the candidate: the previous workload drains."""
        retiring = dict(self.retiring)
        if self.active is not None:
            retiring[self.active.deployment] = now + timedelta(seconds=drain_seconds)
        active = Active(self.desired_deployment, self.desired, {REVISION_LABEL: self.desired})
        return RevisionPlan(
            desired=self.desired,
            desired_deployment=self.desired_deployment,
            active=active,
            stable=dict(active.selector),
            retiring=retiring,
        )


def parse_retiring(service: Mapping[str, Any] | None) -> dict[str, datetime]:
    """The drains recorded on the stable Service (an unreadable record counts as none)."""
    annotations = ((service or {}).get("metadata") or {}).get("annotations") or {}
    try:
        raw = json.loads(annotations.get(RETIRING_ANNOTATION) or "{}")
        return {str(k): _parse_time(str(v)) for k, v in dict(raw).items()}
    except (ValueError, TypeError):
        return {}


def format_retiring(retiring: Mapping[str, datetime]) -> str:
    return json.dumps({k: _format_time(v) for k, v in sorted(retiring.items())}, separators=(",", ":"))


def plan_revisions(
    pipeline: RerankPipeline,
    *,
    stable: Mapping[str, Any] | None,
    deployments: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
    fresh: bool,
) -> RevisionPlan:
    """What the stable Service selects and which Deployments go, from what is live.

    ``deployments``: the pipeline's own Deployments (ownership checked by the caller); ``pods``: all of
    its pods (the base selector); ``fresh``: nothing of the pipeline was ever reachable at the stable
    endpoint (no config was ever published, and no object of anyone's has the stable Service's name)."""
    desired = revision(pipeline)
    desired_deployment = revision_name(pipeline.name, desired)
    by_name = {str(d["metadata"]["name"]): d for d in deployments}
    selector = dict(((stable or {}).get("spec") or {}).get("selector") or {})
    base = selector_labels(pipeline)
    extra = {k: v for k, v in selector.items() if base.get(k) != v}
    legacy = legacy_deployment_name(pipeline.name)
    active: Active | None = None
    pin: dict[str, str] | None = None
    waiting: tuple[str, str] | None = None
    if REVISION_LABEL in extra:
        name = revision_name(pipeline.name, extra[REVISION_LABEL])
        if name in by_name:
            active = Active(name, extra[REVISION_LABEL], extra)
    elif POD_TEMPLATE_HASH in extra:
        if legacy in by_name:
            active = Active(legacy, None, extra)
    elif legacy in by_name:  # adoption: pin the Service to the running pods before anything starts
        hashes = _legacy_hashes(pods)
        if len(hashes) > 1:
            waiting = (
                PREVIOUS_ROLLOUT,
                f"Deployment {legacy} is still rolling out ({len(hashes)} pod templates); the new "
                "revision starts once it has finished",
            )
            active = Active(legacy, None, {})
        else:
            pin = {POD_TEMPLATE_HASH: next(iter(hashes), NOTHING)}
            active = Active(legacy, None, pin)
    keep = {desired_deployment, *(a.deployment for a in [active] if a is not None)}
    # a drain ends with its Deployment, and never applies to what serves or to the current spec's own
    # (going back to a revision still draining cancels its drain)
    retiring = {k: v for k, v in parse_retiring(stable).items() if k in by_name and k not in keep}
    remove = []
    for name in sorted(by_name):
        if name in keep:
            continue
        if name in retiring and retiring[name] > now:
            continue
        retiring.pop(name, None)
        remove.append(name)
    if waiting is not None:  # nothing starts or goes while the adopted Deployment rolls
        return RevisionPlan(desired, desired_deployment, active, None, retiring, [], waiting)
    if fresh and set(by_name) <= {desired_deployment}:
        # a first revision: no stable Service, no other Deployment, and no app was ever given the endpoint.
        # The gate protects no traffic, so it takes the stable Service at once (no revision Service, no
        # switch: one write less per pipeline); publishing still waits for its canary.
        active = Active(desired_deployment, desired, {REVISION_LABEL: desired})
    stable_extra = pin if pin is not None else (dict(active.selector) if active is not None else None)
    return RevisionPlan(desired, desired_deployment, active, stable_extra, retiring, remove)


def _legacy_hashes(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """The pod templates of the adopted Deployment's live pods (those without a revision label),
    most ready pods first."""
    counts: Counter[str] = Counter()
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("deletionTimestamp") or REVISION_LABEL in labels or POD_TEMPLATE_HASH not in labels:
            continue
        counts[str(labels[POD_TEMPLATE_HASH])] += 1
    return [h for h, _ in counts.most_common()]


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
