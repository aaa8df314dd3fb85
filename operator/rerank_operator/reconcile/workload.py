"""What the Deployment and its pods say about the serving workload (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rerank_operator.render.workload import CONFIG_HASH_ANNOTATION


@dataclass(frozen=True)
class WorkloadState:
    desired: int
    ready: int
    updated: int
    # Every pod runs the current template: the Deployment saw its latest generation, all replicas
    # are updated and no old pod is left. Ready or not: that is what tells a rollout (not current)
    # from lost capacity (current, but fewer pods ready than desired).
    pods_current: bool
    pending_message: str | None = None
    failure_message: str | None = None
    # The Deployment controller gave up waiting (Progressing=False, ProgressDeadlineExceeded).
    stuck_message: str | None = None
    # The Deployment's status counts no pod of an older template, whatever their number: with an
    # autoscaler the count moves on its own, and a shortfall of current pods is a scale in progress,
    # not a rollout.
    template_current: bool = True
    # The Deployment controller has seen the latest Deployment spec (observedGeneration). Right after
    # a scale through the scale subresource it has not yet: the counts above are a moment old.
    status_current: bool = True
    # spec.external: no pods of ours. Readiness is the canary's verdict on that address alone, and
    # status reports no replica counts.
    external: bool = False

    @property
    def serving(self) -> bool:
        return self.ready > 0

    @property
    def rolled_out(self) -> bool:
        return self.pods_current and self.ready >= self.desired


# An external reranker as a workload: "one" server, always there; whether it answers is the canary's to say.
EXTERNAL_WORKLOAD = WorkloadState(desired=1, ready=1, updated=1, pods_current=True, external=True)


def observe_workload(
    deployment: dict[str, Any] | None, pods: list[dict[str, Any]], desired: int
) -> WorkloadState:
    """Summarise rollout progress; surface why pods wait (e.g. ``Insufficient nvidia.com/gpu``)."""
    if deployment is None:
        return WorkloadState(
            desired=desired,
            ready=0,
            updated=0,
            pods_current=False,
            pending_message="Deployment not found",
            template_current=False,
        )
    status = deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    observed = int(status.get("observedGeneration") or 0)
    generation = int(meta.get("generation") or 0)
    status_current = observed >= generation
    template_current = updated >= total
    pods_current = status_current and template_current and updated >= desired and total <= desired
    # before the controller has seen a new spec, pods of the config hash may still be the old
    # template's; a first generation has no old pods. Checked even when the status already counts
    # the pods as current: its ready count lags too, and must not take back what the pods showed.
    if (status_current or generation <= 1) and _pods_rolled_out(deployment, pods, desired):
        # the pods themselves say the rollout is done before the Deployment's status does (the
        # controllers update it one object after another, seconds later under load)
        ready, updated, pods_current, template_current = (
            max(ready, desired),
            max(updated, desired),
            True,
            True,
        )
    return WorkloadState(
        desired=desired,
        ready=ready,
        updated=updated,
        pods_current=pods_current,
        template_current=template_current,
        status_current=status_current,
        pending_message=_pending(pods),
        failure_message=_container_failure(pods),
        # a deadline of an older generation says nothing about the template just applied
        stuck_message=_deadline_exceeded(status) if status_current else None,
    )


def _pods_rolled_out(deployment: dict[str, Any], pods: list[dict[str, Any]], desired: int) -> bool:
    """Exactly ``desired`` pods, none terminating, all Ready and all of the Deployment's current
    serving configuration (its config-hash annotation): what the Deployment's status will say once
    the ReplicaSet and Deployment controllers have caught up."""
    template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    wanted = (template.get("annotations") or {}).get(CONFIG_HASH_ANNOTATION)
    if wanted is None or desired <= 0:
        return False
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if len(live) != desired:
        return False
    for pod in live:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if annotations.get(CONFIG_HASH_ANNOTATION) != wanted or not _ready(pod):
            return False
    return True


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _deadline_exceeded(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "Progressing"
            and cond.get("status") == "False"
            and cond.get("reason") == "ProgressDeadlineExceeded"
        ):
            return str(cond.get("message") or "the Deployment made no progress within its deadline")
    return None


def _pending(pods: list[dict[str, Any]]) -> str | None:
    """The scheduler's own words for the first unschedulable pod, e.g. ``0/3 nodes are available: ...``."""
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        if (pod.get("status") or {}).get("phase") != "Pending":
            continue
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                name = (pod.get("metadata") or {}).get("name", "?")
                reason = cond.get("reason") or "Unschedulable"
                return f"pod {name} {reason}: {cond.get('message') or 'not scheduled'}"
    return None


_BAD_WAITING = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
}


def _container_failure(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in _BAD_WAITING:
                name = (pod.get("metadata") or {}).get("name", "?")
                detail = f"{waiting['reason']}: {waiting.get('message', '')}".strip()
                return f"pod {name} container {cs.get('name')}: {detail}"
    return None
