"""From observations to conditions and status (pure: no I/O, fully unit-testable)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rerank_operator.publish import AWAITING_FIRST_PROBE, PublishedConfig
from rerank_operator.reconcile.autoscaler import AutoscalerState
from rerank_operator.reconcile.conditions import Desired, merge_conditions
from rerank_operator.reconcile.workload import WorkloadState

SCALED_TO_ZERO = "ScaledToZero"
ROLLING_OUT = "RollingOut"
# Not-ready reasons that are part of a normal rollout: Normal Events, not Warnings.
EXPECTED_NOT_READY = frozenset({AWAITING_FIRST_PROBE, ROLLING_OUT, SCALED_TO_ZERO})


@dataclass(frozen=True)
class Observation:
    generation: int
    workload: WorkloadState
    endpoint: str
    served_model: str
    healthy: bool  # the desired endpoint passes its canary (with hysteresis)
    last_probe: dict[str, Any] | None
    latency: dict[str, Any] | None
    successes: int
    failures: int
    published: PublishedConfig | None  # last known good, if any
    published_ready: bool
    config_map_name: str
    namespaces: list[str]
    # the published endpoint passes (differs from ``healthy`` only while the endpoint is changing)
    published_healthy: bool | None = None
    apply_errors: list[str] = field(default_factory=list)
    publish_errors: list[str] = field(default_factory=list)
    published_time: str | None = None
    # spec.autoscaling's autoscaler: the replica count is its to set (workload.desired follows it)
    autoscaler: AutoscalerState | None = None
    pod_monitor: dict[str, Any] | None = None  # status.podMonitor, when one is asked for
    revisions: dict[str, Any] | None = None  # BlueGreen: status.revisions (active, candidate, retiring)
    # BlueGreen: the candidate was not verified within the progress deadline (why, in words)
    candidate_overdue: str | None = None

    @property
    def desired_replicas(self) -> int:
        return self.workload.desired

    @property
    def probed(self) -> bool:
        return self.last_probe is not None

    @property
    def verified(self) -> bool:
        """The *current* generation is rolled out and answered the canary correctly."""
        return self._generation_published and self.healthy and self.workload.rolled_out

    @property
    def replicas_lost(self) -> bool:
        """This generation was rolled out and verified before, every pod runs its template, yet fewer
        are ready than desired (a node drain, a crash): lost capacity, not a rollout. With an
        autoscaler the count moves on its own: see ``scaling``."""
        w = self.workload
        return (
            self.autoscaler is None
            and self._generation_published
            and w.pods_current
            and w.ready < self.desired_replicas
        )

    @property
    def scaling(self) -> bool:
        """Autoscaled, this generation was verified before and no pod of an older template is left,
        but the pods do not match the autoscaler's count yet: pods being added (loading, or Pending
        for GPUs) or removed. Also right after a scale, before the Deployment controller has seen
        it. A scale is not a rollout: the verified pods keep serving."""
        w = self.workload
        return (
            self.autoscaler is not None
            and self._generation_published
            and w.template_current
            and not w.rolled_out
        )

    @property
    def short_of_replicas(self) -> bool:
        """The verified generation runs with other than its desired pods, without a rollout."""
        return self.replicas_lost or self.scaling

    @property
    def serving(self) -> bool:
        """What Ready=True means: the current generation answers its canary, so apps may use it,
        even while it runs short of replicas (Degraded says so) or an autoscaler changes their number."""
        return self.verified or (self.short_of_replicas and self.healthy and self.workload.serving)

    @property
    def scaled_to_zero_message(self) -> str:
        if self.autoscaler is not None:
            return (
                "the Deployment is scaled to 0 (not by the autoscaler: its minReplicas is at least 1, "
                "and it does not scale up from 0): nothing serves the endpoint"
            )
        return "spec.replicas is 0: nothing serves the endpoint"

    @property
    def _generation_published(self) -> bool:
        return (
            not self.apply_errors
            and self.desired_replicas > 0
            and self.published is not None
            and self.published.generation == self.generation
        )


def not_ready_reason(obs: Observation) -> tuple[str, str]:
    w = obs.workload
    if obs.apply_errors:
        return "ApplyRejected", "; ".join(obs.apply_errors)
    if obs.desired_replicas == 0:
        return SCALED_TO_ZERO, obs.scaled_to_zero_message
    if w.failure_message:
        return "ContainerFailing", w.failure_message
    if w.pending_message and w.ready < obs.desired_replicas:
        return "PodsPending", w.pending_message
    if w.stuck_message and not w.rolled_out:
        return "ProgressDeadlineExceeded", f"{w.stuck_message}; {w.ready}/{obs.desired_replicas} pods ready"
    if obs.short_of_replicas and not w.serving:
        return (
            "ReplicasUnavailable",
            f"{w.ready}/{obs.desired_replicas} pods ready; this generation served before",
        )
    if not w.rolled_out and not obs.short_of_replicas:
        return ROLLING_OUT, f"{w.ready}/{obs.desired_replicas} pods ready, {w.updated} updated"
    # rolled out, or short of pods that still serve: the canary's own reason is the headline
    if obs.probed and not obs.healthy:
        message = (obs.last_probe or {}).get("message", "")
        return str((obs.last_probe or {}).get("reason") or "ProbeFailed"), f"canary rerank failed: {message}"
    return AWAITING_FIRST_PROBE, "waiting for a successful canary rerank of this generation"


def stalled_by(obs: Observation) -> tuple[str, str] | None:
    """Why nothing will change without someone acting: a rejected child, or a rollout the
    Deployment controller gave up on (past the startup budget plus a margin). A pipeline that
    serves is never Stalled: what it lacks is reported as Degraded."""
    if obs.apply_errors:
        return "ApplyRejected", "; ".join(obs.apply_errors)
    w = obs.workload
    if obs.candidate_overdue and not obs.serving:
        reason, message = not_ready_reason(obs)
        return "ProgressDeadlineExceeded", f"{obs.candidate_overdue}: {reason}: {message}"
    if w.stuck_message and not w.rolled_out and obs.desired_replicas > 0 and not obs.serving:
        why = w.pending_message or w.failure_message or f"{w.ready}/{obs.desired_replicas} pods ready"
        return "ProgressDeadlineExceeded", f"{w.stuck_message}; {why}"
    return None


def desired_conditions(obs: Observation) -> list[Desired]:
    stall = stalled_by(obs)
    stalled = stall is not None
    where = ", ".join(f"{ns}/{obs.config_map_name}" for ns in obs.namespaces)
    w = obs.workload
    if obs.serving:
        # no latency here: it changes with every canary, and a condition must change only with the state
        # (status.lastProbe.latencyMs and the metrics carry it)
        pods = f"; {w.ready}/{obs.desired_replicas} pods ready" if obs.short_of_replicas else ""
        ready = Desired("Ready", "True", "Healthy", f"canary rerank passed; published to {where}{pods}")
    else:
        reason, message = not_ready_reason(obs)
        ready = Desired("Ready", "False", reason, message)

    if stalled or obs.serving:
        progressing = Desired("Progressing", "False", "Stalled" if stalled else "Reconciled", ready.message)
    else:
        progressing = Desired("Progressing", "True", ready.reason, ready.message)

    # (reason, message) pairs; the first reason names the condition
    degraded_by: list[tuple[str, str]] = []
    published_healthy = obs.healthy if obs.published_healthy is None else obs.published_healthy
    if obs.published is not None and not published_healthy:
        degraded_by.append(("CanaryFailing", f"published reranker failing its canary: {ready.message}"))
    if obs.replicas_lost:
        why = w.pending_message or w.failure_message or w.stuck_message
        degraded_by.append(
            (
                "ReplicasUnavailable",
                f"{w.ready}/{obs.desired_replicas} pods ready" + (f": {why}" if why else ""),
            )
        )
    if obs.scaling and (w.pending_message or w.failure_message):
        # pods loading for a scale-up are normal; pods that cannot start (no free GPU, a crash) are not
        why = w.pending_message or w.failure_message
        degraded_by.append(("ReplicasUnavailable", f"{w.ready}/{obs.desired_replicas} pods ready: {why}"))
    scaler = obs.autoscaler
    if scaler is not None and scaler.problem is not None:
        reason, message = scaler.problem
        degraded_by.append((reason, f"{scaler.kind} {scaler.name} cannot scale: {message}"))
    degraded_by += [("PublishFailed", e) for e in obs.publish_errors]
    degraded = (
        Desired("Degraded", "True", degraded_by[0][0], "; ".join(m for _, m in degraded_by))
        if degraded_by
        else Desired("Degraded", "False", "AsExpected")
    )
    stalled_c = (
        Desired("Stalled", "True", stall[0], stall[1]) if stall else Desired("Stalled", "False", "AsExpected")
    )
    if obs.last_probe is None:
        probed = Desired("Probed", "Unknown", "NotProbedYet", "no canary rerank has run yet")
    else:
        ok = bool(obs.last_probe.get("ok"))
        probed = Desired(
            "Probed",
            "True" if ok else "False",
            str(obs.last_probe.get("reason")),
            str(obs.last_probe.get("message", "")),
        )
    if obs.published is None:
        published = Desired("Published", "False", AWAITING_FIRST_PROBE, "nothing published as working yet")
    else:
        state = "ready" if obs.published_ready else "not ready (last good config kept)"
        published = Desired(
            "Published",
            "True",
            "Published",
            f"generation {obs.published.generation} published to {where}; {state}",
        )
    reconciling = Desired("Reconciling", progressing.status, progressing.reason, progressing.message)
    return [ready, progressing, reconciling, degraded, stalled_c, probed, published]


def invalid_conditions(problems: list[str]) -> list[Desired]:
    msg = "invalid spec: " + "; ".join(problems)
    return [
        Desired("Ready", "False", "InvalidSpec", msg),
        Desired("Progressing", "False", "InvalidSpec", msg),
        Desired("Reconciling", "False", "InvalidSpec", msg),
        Desired("Stalled", "True", "InvalidSpec", msg),
    ]


def status_fields(obs: Observation) -> dict[str, Any]:
    """Every status field except conditions and observedGeneration."""
    # where it is written is recorded from the first pass, so stale copies can always be found
    published: dict[str, Any] = {
        "configMapName": obs.config_map_name,
        "namespaces": list(obs.namespaces),
        "ready": obs.published_ready,
    }
    if obs.published is not None:
        published.update(obs.published.to_status())
        if obs.published_time:
            published["time"] = obs.published_time
    pods: dict[str, Any] = (
        {}
        if obs.workload.external
        else {"replicas": obs.desired_replicas, "readyReplicas": obs.workload.ready}
    )
    out: dict[str, Any] = {
        **pods,
        "endpoint": obs.endpoint,
        "servedModel": obs.served_model,
        "lastProbe": obs.last_probe,
        "latency": obs.latency,
        "consecutiveFailures": obs.failures,
        "consecutiveSuccesses": obs.successes,
        "published": published,
    }
    if obs.autoscaler is not None:
        out["autoscaling"] = obs.autoscaler.to_status()
    if obs.pod_monitor is not None:
        out["podMonitor"] = obs.pod_monitor
    if obs.revisions is not None:
        revisions = dict(obs.revisions)
        if revisions.get("candidate") and "reason" not in revisions:
            # why the candidate is not active yet: what Ready says of the current generation
            revisions["reason"], revisions["message"] = not_ready_reason(obs)
        out["revisions"] = revisions
    return out


def valid_status(obs: Observation, previous: dict[str, Any] | None, *, now: str) -> dict[str, Any]:
    """The whole status a valid pass writes for ``obs`` over the ``previous`` status."""
    conditions = merge_conditions(
        (previous or {}).get("conditions") or [], desired_conditions(obs), generation=obs.generation, now=now
    )
    return {"observedGeneration": obs.generation, "conditions": conditions, **status_fields(obs)}


def invalid_status(
    previous: dict[str, Any] | None, generation: int, problems: list[str], *, now: str
) -> dict[str, Any]:
    """The status for a spec that does not parse: everything else is kept as it was, including the
    conditions only a valid pass can judge (Degraded, Probed, Published), so nothing is lost."""
    prev = (previous or {}).get("conditions") or []
    conditions = merge_conditions(prev, invalid_conditions(problems), generation=generation, now=now)
    written = {c["type"] for c in conditions}
    kept = [c for c in prev if c.get("type") not in written]
    return {**(previous or {}), "observedGeneration": generation, "conditions": conditions + kept}
