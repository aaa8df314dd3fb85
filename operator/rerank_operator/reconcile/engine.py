"""One reconcile pass for one pipeline: apply children, observe, probe, publish, write status.

Level-based and idempotent: every pass recomputes the desired state from the spec and what it
observes, so running it again (after a crash, a restart or a hand edit of a child) converges to the
same result and writes nothing when nothing changed.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from rerank_operator import metrics
from rerank_operator.events import post_event
from rerank_operator.kube import ApiError, KubeApi, secret_value, utcnow
from rerank_operator.kube.discovery import ApiDiscovery
from rerank_operator.models import InvalidPipeline, RerankPipeline, RerankPipelineStatus
from rerank_operator.models.grant import consent_hint, consenting_grant
from rerank_operator.probe import DEFAULT_CANARY, Canary, HostResolver, ProbeTarget, probe_reranker
from rerank_operator.probe.destinations import DestinationPolicy
from rerank_operator.probe.target import parse_endpoint
from rerank_operator.probe.verdict import Reason
from rerank_operator.publish import (
    AWAITING_FIRST_PROBE,
    PublishedConfig,
    initial_config,
    render_published_configmap,
)
from rerank_operator.publish.content import publish_namespaces, revision_endpoint
from rerank_operator.reconcile.autoscaler import (
    OPTIONAL_APIS,
    AutoscalerState,
    keda_hpa_name,
    observe_autoscaler,
    pod_monitor_status,
    stale_children,
)
from rerank_operator.reconcile.conditions import find
from rerank_operator.reconcile.decide import (
    ROLLING_OUT,
    SCALED_TO_ZERO,
    Observation,
    invalid_status,
    valid_status,
)
from rerank_operator.reconcile.drift import contains, needs_write, with_hash
from rerank_operator.reconcile.ownership import Claim, claim
from rerank_operator.reconcile.replicas import HANDOVER_MANAGER, desired_replicas, handover_manifest
from rerank_operator.reconcile.revisions import (
    RETIRING_ANNOTATION,
    RevisionPlan,
    format_retiring,
    plan_revisions,
)
from rerank_operator.reconcile.slots import DEFAULT_LIMIT, PassSlots, released
from rerank_operator.reconcile.status_diff import essential
from rerank_operator.reconcile.tracker import ProbeTracker
from rerank_operator.reconcile.view import ApiReads, ReadMemory, Reads, plain
from rerank_operator.reconcile.workload import EXTERNAL_WORKLOAD, WorkloadState, observe_workload
from rerank_operator.render import child_names, render_autoscaler, render_workload, selector_labels
from rerank_operator.render.autoscaling import HPA_KIND, KEDA_KIND
from rerank_operator.render.monitoring import POD_MONITOR_KIND
from rerank_operator.render.naming import REVISION_LABEL, published_name, revision_selector
from rerank_operator.render.workload import (
    CONFIG_HASH_ANNOTATION,
    blue_green,
    progress_deadline_seconds,
    render_service,
)

log = logging.getLogger(__name__)

NO_READY_REPLICAS = "NoReadyReplicas"
MISSING_SECRET = "MissingSecret"
# What status keeps of a canary's message: it may quote a response body from an address the pipeline
# chose, so only a short excerpt (the probe already strips it to one printable line).
STATUS_MESSAGE_CHARS = 512
# Ready=False reasons of a normal rollout: reported in status, not as Events (a creation posts one
# Event, when the pipeline turns Ready).
SILENT_NOT_READY = frozenset({AWAITING_FIRST_PROBE, ROLLING_OUT})


@dataclass
class PipelineState:
    """Per-pipeline memory between passes (``reconcile.runner`` holds one per pipeline)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tracker: ProbeTracker = field(default_factory=ProbeTracker)
    # Health of the published endpoint while the spec asks for another one (publish.endpoint or the
    # port changed): apps keep using the published address until the new one is verified, so its
    # readiness must follow its own canary, not the new address's.
    published_tracker: ProbeTracker | None = None
    last_probe: dict[str, Any] | None = None
    last_probe_at: float | None = None
    last_probe_generation: int | None = None
    published: PublishedConfig | None = None
    published_time: str | None = None
    status: dict[str, Any] | None = None
    seeded: bool = False
    # a child was rejected or is someone else's: retried on a timer (an unwatched object may change)
    apply_errors: bool = False
    probe_interval_seconds: float = 30.0  # from the last valid spec, for the runner's schedule
    # an autoscaler left from before this process started (status lost) was looked for
    leftovers_checked: bool = False
    memory: ReadMemory = field(default_factory=ReadMemory)
    # children whose apply answer still differs from the manifest (apiserver normalisation the
    # comparison does not know): judged by their applied-hash annotation alone
    hash_only: set[tuple[str, str, str]] = field(default_factory=set)
    # when status was last written (monotonic): per-canary detail is written at most this often
    status_written_at: float | None = None
    # namespaces the pipeline publishes into, for waking it when their consent changes
    publish_targets: frozenset[str] = frozenset()
    # BlueGreen: the revision whose pods ``tracker`` judges (a candidate earns successThreshold itself)
    tracker_revision: str | None = None
    # BlueGreen: when the next drain ends (monotonic), for the runner's schedule
    drain_due: float | None = None

    def probe_due(self, now: float) -> bool:
        """Interval-based part of the schedule; ``Reconciler`` adds rollout-driven checks."""
        return self.last_probe_at is None or now - self.last_probe_at >= self.probe_interval_seconds


@dataclass(frozen=True)
class ReconcilerConfig:
    cluster_domain: str = "cluster.local"
    resync_seconds: float = 600.0
    # per-canary status detail (latency, counters, probe time) alone is written at most this often
    status_heartbeat_seconds: float = 600.0
    # passes doing their work at once, all pipelines together (``reconcile.slots``)
    max_concurrent_passes: int = DEFAULT_LIMIT


class Reconciler:
    def __init__(
        self,
        kube: KubeApi,
        config: ReconcilerConfig,
        resolver: HostResolver | None = None,
        destinations: DestinationPolicy | None = None,
    ):
        self.kube = kube
        self.config = config
        self.resolver = resolver if resolver is not None else HostResolver.from_env()
        self.destinations = destinations if destinations is not None else DestinationPolicy.from_env()
        self._http: httpx.AsyncClient | None = None
        self.discovery = ApiDiscovery(kube)
        self.slots = PassSlots(config.max_concurrent_passes)

    def _http_client(self) -> httpx.AsyncClient:
        """One client for every canary (building one loads the CA bundle: ~50 ms on the event loop).
        No keep-alive: each canary opens its own connection, so the Service spreads them over pods.
        Proxies from the environment are ignored: probes target cluster-internal addresses."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                trust_env=False, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0)
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.kube.aclose()

    # ------------------------------------------------------------------------------ entry
    async def reconcile(
        self,
        body: Mapping[str, Any],
        state: PipelineState,
        *,
        reads: Reads | None = None,
    ) -> None:
        """One pass. ``reads``: where children are read from (the watch-fed view; default: the API).

        It waits for a slot (``reconcile.slots``) before it copies or reads anything."""
        async with self.slots.held():
            await self.run_pass(plain(body), state, reads)

    async def run_pass(self, raw: dict[str, Any], state: PipelineState, reads: Reads | None = None) -> None:
        """One pass over ``raw``, a private copy of the pipeline (the pass may change it), by a caller
        that holds a slot already (``reconcile.runner``, which decodes a fresh copy for every pass)."""
        meta = raw.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return
        async with state.lock:
            self._seed(state, raw)
            try:
                pipeline = RerankPipeline.from_body(raw)
            except InvalidPipeline as exc:
                metrics.RECONCILES.labels("invalid").inc()
                await self._write_invalid(raw, state, exc.problems)
                return
            try:
                await self._reconcile_valid(raw, pipeline, state, reads=reads or ApiReads(self.kube))
            except ApiError:
                metrics.RECONCILES.labels("error").inc()
                raise
            metrics.RECONCILES.labels("ok").inc()

    def _seed(self, state: PipelineState, raw: dict[str, Any]) -> None:
        """After a restart, resume from what status says (counters, last good config)."""
        if state.seeded:
            return
        status = raw.get("status") or {}
        state.status = _compact(status)
        state.tracker = ProbeTracker.from_status(status)
        state.last_probe = status.get("lastProbe")
        published = status.get("published") or {}
        state.published = PublishedConfig.from_status(published, ready=False, reason=AWAITING_FIRST_PROBE)
        state.published_time = published.get("time")
        state.status_written_at = time.monotonic()  # what status says counts as just written
        state.seeded = True

    # ------------------------------------------------------------------------------ invalid
    async def _write_invalid(self, raw: dict[str, Any], state: PipelineState, problems: list[str]) -> None:
        """Report and stop: children and the published config stay as they were (nothing is lost)."""
        generation = int(raw["metadata"].get("generation") or 0)
        status = invalid_status(state.status, generation, problems, now=utcnow())
        await self._write_status(raw, state, status)

    # ------------------------------------------------------------------------------ valid
    async def _reconcile_valid(
        self,
        raw: dict[str, Any],
        pipeline: RerankPipeline,
        state: PipelineState,
        *,
        reads: Reads,
    ) -> None:
        ns = pipeline.namespace
        names = child_names(pipeline)
        generation = pipeline.metadata.generation or 0
        spec = pipeline.spec

        desired = initial_config(pipeline, self.config.cluster_domain)  # what this spec would publish
        state.probe_interval_seconds = spec.probe.interval_seconds
        state.publish_targets = frozenset(publish_namespaces(pipeline))
        plan = await self._plan(pipeline, state, reads) if blue_green(pipeline) else None
        apply_errors: list[str] = []
        stable_refused = False  # the stable Service is not as the plan has it (someone else's, or rejected)
        if plan is not None and plan.stable is not None:  # before a candidate's pods can exist
            problems = await self._apply_stable(pipeline, plan, state, reads)
            apply_errors += problems
            stable_refused = bool(problems)
        manifests, not_installed = await self._installed(self._manifests(pipeline, plan))
        errors, applied, foreign = await self._apply_all(pipeline, manifests, state, reads, plan)
        apply_errors += errors
        await self._remove_stale_children(pipeline, state, reads)
        if plan is not None:
            await self._remove_revisions(pipeline, plan.remove, reads)
        elif not apply_errors:
            await self._remove_revisions(pipeline, await self._revision_deployments(pipeline, reads), reads)

        # the apply answer is the live object, status included; read it only if the apply was rejected,
        # and never judge (or probe through) a Deployment or Service that is someone else's
        deployment = applied.get(("Deployment", names.deployment))
        probe = not foreign  # never judge (or probe through) someone else's Deployment or Service
        if spec.external is not None:  # no pods of ours: the canary alone judges that address
            workload = EXTERNAL_WORKLOAD
        else:
            if deployment is None and ("Deployment", names.deployment) not in foreign:
                deployment = await reads.get("Deployment", ns, names.deployment)
            pod_selector = (
                revision_selector(pipeline, plan.desired) if plan is not None else selector_labels(pipeline)
            )
            pods = await reads.pods(ns, pipeline.name, pod_selector)
            workload = observe_workload(deployment, pods, desired_replicas(pipeline, deployment))
        autoscaler = await self._observe_autoscaler(pipeline, applied, not_installed, reads)

        # BlueGreen: a candidate is checked through its own Service, the serving revision through the
        # stable one (the published endpoint, below)
        candidate = plan is not None and plan.candidate
        probe_endpoint = (
            revision_endpoint(pipeline, self.config.cluster_domain) if candidate else desired.endpoint
        )
        if plan is not None:
            self._judge_revision(state, plan)
        tracker = state.tracker
        verdict_ok = False
        if stable_refused and not candidate:
            probe = False  # the endpoint is not ours to vouch for: nothing goes through it
        if probe and self._probe_due(state, pipeline, workload):
            verdict_ok = await self._probe_round(pipeline, probe_endpoint, workload, state, reads)

        verified = verdict_ok and tracker.healthy and workload.rolled_out
        if verified and plan is not None and candidate:
            switched = plan.after_switch(datetime.now(UTC), spec.rollout.drain_seconds)
            problems = await self._apply_stable(pipeline, switched, state, reads)
            if problems:
                apply_errors += problems
                verified = False
            else:
                log.info(
                    "%s/%s: switched the endpoint's Service to revision %s (%s)",
                    ns,
                    pipeline.name,
                    plan.desired,
                    f"{plan.active.deployment} drains for {spec.rollout.drain_seconds}s"
                    if plan.active is not None
                    else "first revision",
                )
                plan, candidate, probe_endpoint = switched, False, desired.endpoint
                if autoscaler is not None:  # the autoscaler follows the revision that now serves
                    autoscaler = await self._observe_autoscaler(
                        pipeline, await self._apply_autoscaler(pipeline, plan, state, reads), set(), reads
                    )
        if plan is not None:
            due = plan.drain_due()
            state.drain_due = (
                None if due is None else time.monotonic() + (due - datetime.now(UTC)).total_seconds()
            )

        published_note: str | None = None  # told in the Ready Event when both happen in this pass
        if verified and (state.published is None or state.published.to_status() != desired.to_status()):
            first = state.published is None
            state.published = desired
            state.published_time = utcnow()
            metrics.PUBLISH_EVENTS.labels(ns, pipeline.name, "published").inc()
            published_note = (
                f"{'published' if first else 'updated'} ranker config {names.published} for generation "
                f"{generation} (endpoint {desired.endpoint})"
            )

        if state.published is None or state.published.endpoint == probe_endpoint:
            state.published_tracker = None
        published_health = state.published_tracker or tracker
        published_ready = published_health.healthy and workload.desired > 0 and state.published is not None
        reason = self._not_ready_reason(workload.desired, published_health, state)
        config = (state.published or desired).marked(ready=published_ready, reason=reason)
        child_errors, publish_errors = await self._publish(raw, pipeline, config, state, reads)
        apply_errors += child_errors

        obs = Observation(
            generation=generation,
            workload=workload,
            endpoint=desired.endpoint,
            served_model=spec.model.effective_served_name,
            healthy=tracker.healthy,
            published_healthy=published_health.healthy,
            last_probe=state.last_probe,
            latency=tracker.percentiles(),
            successes=tracker.successes,
            failures=tracker.failures,
            published=state.published,
            published_ready=published_ready,
            config_map_name=names.published,
            namespaces=publish_namespaces(pipeline),
            apply_errors=apply_errors,
            publish_errors=publish_errors,
            published_time=state.published_time,
            autoscaler=autoscaler,
            pod_monitor=pod_monitor_status(pipeline, not_installed=POD_MONITOR_KIND in not_installed),
            revisions=await self._revisions_status(pipeline, plan, reads) if plan is not None else None,
            candidate_overdue=self._overdue(pipeline, deployment) if candidate else None,
        )
        status = valid_status(obs, state.status, now=utcnow())
        metrics.PIPELINE_READY.labels(ns, pipeline.name).set(1 if obs.serving else 0)
        state.apply_errors = bool(apply_errors)
        await self._write_status(raw, state, status, published_note=published_note)

    # ------------------------------------------------------------------------------ BlueGreen
    async def _plan(self, pipeline: RerankPipeline, state: PipelineState, reads: Reads) -> RevisionPlan:
        """The rollout as the stable Service and the pipeline's own Deployments record it."""
        ns = pipeline.namespace
        stable = await reads.get("Service", ns, child_names(pipeline).service)
        fresh = stable is None and state.published is None
        if stable is not None and not self._claim(pipeline, stable).ours:
            stable = None  # someone else's: reported by its apply, never read as our record
        deployments = [d for d in await reads.deployments(ns, pipeline.name) if self._claim(pipeline, d).ours]
        pods = await reads.pods(ns, pipeline.name, selector_labels(pipeline))
        return plan_revisions(
            pipeline,
            stable=stable,
            deployments=deployments,
            pods=pods,
            now=datetime.now(UTC),
            fresh=fresh,
        )

    def _manifests(self, pipeline: RerankPipeline, plan: RevisionPlan | None) -> list[dict[str, Any]]:
        """The children to apply. BlueGreen: the stable Service is the switch's to write
        (``_apply_stable``), the autoscaler scales the serving revision, and while the adopted
        Deployment still rolls no candidate starts."""
        manifests = render_workload(pipeline)
        if plan is None:
            return manifests
        names = child_names(pipeline)
        out = []
        for manifest in manifests:
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            if kind == "Service" and name == names.service:
                continue
            if plan.waiting is not None and name in (names.deployment, names.revision_service):
                continue
            if not plan.candidate and kind == "Service" and name == names.revision_service:
                continue  # only a candidate's canary needs its own Service: the active one's is the stable
            if kind in (HPA_KIND, KEDA_KIND):
                manifest = render_autoscaler(pipeline, plan.scale_target) or manifest
            out.append(manifest)
        return out

    async def _apply_stable(
        self, pipeline: RerankPipeline, plan: RevisionPlan, state: PipelineState, reads: Reads
    ) -> list[str]:
        """Write the stable Service as ``plan`` has it: the selector of the active revision and the
        drains still running, in one write (the record a restarted operator reads back)."""
        assert plan.stable is not None
        manifest = render_service(pipeline, plan.stable)
        if plan.retiring:
            manifest["metadata"]["annotations"] = {RETIRING_ANNOTATION: format_retiring(plan.retiring)}
        ns, name = pipeline.namespace, manifest["metadata"]["name"]
        try:
            live = await reads.get("Service", ns, name)
            _, problem = await self._write_child(pipeline, manifest, live, state, reads)
        except ApiError as exc:
            if exc.transient:
                raise
            return [f"Service {name} rejected: {exc.message or exc.reason}"]
        return [problem] if problem is not None else []

    async def _apply_autoscaler(
        self, pipeline: RerankPipeline, plan: RevisionPlan, state: PipelineState, reads: Reads
    ) -> dict[tuple[str, str], dict[str, Any]]:
        manifest = render_autoscaler(pipeline, plan.scale_target)
        if manifest is None:
            return {}
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        live = await reads.get(kind, pipeline.namespace, name)
        written, _ = await self._write_child(pipeline, manifest, live, state, reads)
        return {(kind, name): written} if written is not None else {}

    async def _candidate_replicas(
        self, pipeline: RerankPipeline, manifest: dict[str, Any], plan: RevisionPlan, reads: Reads
    ) -> dict[str, Any]:
        """With an autoscaler the Deployment has no count of ours; a candidate starts with as many pods
        as the revision it replaces serves with, so the switch takes no capacity away."""
        autoscaling = pipeline.spec.autoscaling
        if autoscaling is None or "replicas" in manifest["spec"] or plan.active is None:
            return manifest  # a first revision starts as the autoscaler's own minimum
        active = await reads.get("Deployment", pipeline.namespace, plan.active.deployment)
        live = ((active or {}).get("spec") or {}).get("replicas")
        if live is None:
            return manifest
        count = max(autoscaling.min_replicas, min(int(live), autoscaling.max_replicas))
        out = copy.deepcopy(manifest)
        out["spec"]["replicas"] = count
        return out

    async def _revision_deployments(self, pipeline: RerankPipeline, reads: Reads) -> list[str]:
        """Surge and Replace after BlueGreen: the revision Deployments left to remove, once the one
        Deployment that rolls in place is there (its pods join the stable Service from then on)."""
        live = await reads.deployments(pipeline.namespace, pipeline.name)
        if pipeline.spec.external is not None:  # nothing of ours serves any more: every one goes
            return [str(d["metadata"]["name"]) for d in live if self._claim(pipeline, d).ours]
        out = []
        for deployment in live:
            labels = (deployment.get("metadata") or {}).get("labels") or {}
            if REVISION_LABEL in labels and self._claim(pipeline, deployment).ours:
                out.append(str(deployment["metadata"]["name"]))
        if not out:
            return []
        current = await reads.get("Deployment", pipeline.namespace, child_names(pipeline).deployment)
        ready = int(((current or {}).get("status") or {}).get("readyReplicas") or 0)
        return out if ready >= max(1, desired_replicas(pipeline, current)) else []

    async def _remove_revisions(self, pipeline: RerankPipeline, names: list[str], reads: Reads) -> None:
        """Delete retired revisions: a revision's own Service first, then its Deployment (whose pods get
        their termination grace), so a crash in between leaves nothing the next pass would not see."""
        current_template = child_names(pipeline).chat_template
        for name in names:
            live = await reads.get("Deployment", pipeline.namespace, name)
            if live is None:
                continue
            if REVISION_LABEL in ((live.get("metadata") or {}).get("labels") or {}):
                await self._delete_child(pipeline, "Service", name, reads)
                template = _chat_template_of(live)
                if template is not None and template != current_template:
                    await self._delete_child(pipeline, "ConfigMap", template, reads)
            await self._delete_child(pipeline, "Deployment", name, reads)

    def _judge_revision(self, state: PipelineState, plan: RevisionPlan) -> None:
        """Point ``state.tracker`` at the current revision's pods: a new candidate starts from nothing
        and earns successThreshold itself; going back to the serving revision resumes its record."""
        if state.tracker_revision == plan.desired:
            return
        if plan.candidate:
            if state.published_tracker is None:
                # what the tracker knew (or, after a restart, what status said of the published
                # config) is the serving revision's record: it judges the published endpoint from now
                # on; without it the published config would turn not ready
                state.published_tracker = state.tracker
            state.tracker = ProbeTracker()
        elif state.published_tracker is not None:
            state.tracker = state.published_tracker
        state.tracker_revision = plan.desired

    async def _revisions_status(
        self, pipeline: RerankPipeline, plan: RevisionPlan, reads: Reads
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if plan.active is not None:
            rev = plan.active.revision
            if rev is None:  # the adopted Deployment: named by the serving config it runs
                live = await reads.get("Deployment", pipeline.namespace, plan.active.deployment)
                template = ((live or {}).get("spec") or {}).get("template") or {}
                config = ((template.get("metadata") or {}).get("annotations") or {}).get(
                    CONFIG_HASH_ANNOTATION
                )
                rev = str(config)[:8] if config else "adopted"
            out["active"] = rev
            out["activeDeployment"] = plan.active.deployment
        if plan.candidate:
            out["candidate"] = plan.desired
            out["candidateDeployment"] = plan.desired_deployment
            if plan.waiting is not None:
                out["reason"], out["message"] = plan.waiting
        out["retiring"] = [
            {"revision": name.rsplit("-", 1)[-1], "deployment": name, "until": _rfc3339(until)}
            for name, until in sorted(plan.retiring.items())
        ]
        return out

    @staticmethod
    def _overdue(pipeline: RerankPipeline, deployment: dict[str, Any] | None) -> str | None:
        """A candidate not verified within the progress deadline since its Deployment was created."""
        created = ((deployment or {}).get("metadata") or {}).get("creationTimestamp")
        if not created:
            return None
        limit = progress_deadline_seconds(pipeline)
        since = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        if datetime.now(UTC) - since < timedelta(seconds=limit):
            return None
        return f"revision {child_names(pipeline).deployment} not verified within {limit}s of its creation"

    async def _apply_all(
        self,
        pipeline: RerankPipeline,
        manifests: list[dict[str, Any]],
        state: PipelineState,
        reads: Reads,
        plan: RevisionPlan | None = None,
    ) -> tuple[list[str], dict[tuple[str, str], dict[str, Any]], set[tuple[str, str]]]:
        """Write the children; one that is rejected or not ours is reported (Stalled), a transient
        error retried.

        Returns the problems, the live objects the apiserver answered with, by (kind, name), and the
        (kind, name) of children that exist but are someone else's.
        """
        errors: list[str] = []
        applied: dict[tuple[str, str], dict[str, Any]] = {}
        foreign: set[tuple[str, str]] = set()
        for manifest in manifests:
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            try:
                live = await reads.get(kind, pipeline.namespace, name)
                if kind == "Deployment" and live is not None and self._claim(pipeline, live).ours:
                    live = await self._hand_over_replicas(pipeline, live, reads)
                elif kind == "Deployment" and live is None and plan is not None:
                    manifest = await self._candidate_replicas(pipeline, manifest, plan, reads)
                written, problem = await self._write_child(pipeline, manifest, live, state, reads)
            except ApiError as exc:
                if exc.transient:
                    raise
                errors.append(f"{kind} {name} rejected: {exc.message or exc.reason}")
                continue
            if problem is not None:
                errors.append(problem)
                foreign.add((kind, name))
            elif written is not None:
                applied[kind, name] = written
        return errors, applied, foreign

    async def _installed(self, manifests: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
        """Drop children whose API the cluster does not serve (KEDA, prometheus-operator not installed):
        applying them could only fail. Returns what to apply and the kinds left out."""
        out, missing = [], set()
        for manifest in manifests:
            api = OPTIONAL_APIS.get(manifest["kind"])
            if api is not None and not await self.discovery.serves(*api):
                missing.add(manifest["kind"])
                continue
            out.append(manifest)
        return out, missing

    async def _hand_over_replicas(
        self, pipeline: RerankPipeline, live: dict[str, Any], reads: Reads
    ) -> dict[str, Any]:
        """Before an apply of our Deployment that leaves ``spec.replicas`` out, make sure the apiserver
        keeps the count (``reconcile.replicas``). Returns the Deployment as it is now."""
        manifest = handover_manifest(pipeline, live)
        if manifest is None:
            return live
        # not forced, never a create: on any surprise the pass fails before the count could go
        answer = await self.kube.apply_field(manifest, field_manager=HANDOVER_MANAGER)
        reads.wrote("Deployment", pipeline.namespace, manifest["metadata"]["name"], answer)
        log.info(
            "%s/%s: spec.replicas (%s) handed over to the autoscaler",
            pipeline.namespace,
            pipeline.name,
            manifest["spec"]["replicas"],
        )
        return answer

    async def _remove_stale_children(
        self, pipeline: RerankPipeline, state: PipelineState, reads: Reads
    ) -> None:
        """Delete an autoscaler or PodMonitor the spec no longer asks for (an HPA left behind would
        fight the operator over the replica count). Found from what status recorded, plus, once per
        process, the HPA's name in case status was lost."""
        stale = stale_children(pipeline, state.status)
        names = child_names(pipeline)
        if not state.leftovers_checked and pipeline.spec.autoscaling is None:
            stale.append((HPA_KIND, names.autoscaler))
        if pipeline.spec.external is not None:
            # turned external: what served the model goes (its Deployments in _revision_deployments); the
            # model-cache PVC stays until the pipeline is deleted, so turning back needs no new download
            stale += [("Service", names.service), ("PodDisruptionBudget", names.disruption_budget)]
        for kind, name in dict.fromkeys(stale):
            await self._delete_child(pipeline, kind, name, reads)
        state.leftovers_checked = True

    async def _delete_child(self, pipeline: RerankPipeline, kind: str, name: str, reads: Reads) -> None:
        """Delete a child only if it provably is this pipeline's, and only that very object (UID
        precondition); anything else with the name is left alone."""
        live = await reads.get(kind, pipeline.namespace, name)
        if live is None:
            return
        if not pipeline.metadata.uid or not self._claim(pipeline, live).ours:
            log.warning("%s %s/%s is not this pipeline's: left alone", kind, pipeline.namespace, name)
            return
        try:
            await self.kube.delete(
                kind, pipeline.namespace, name, uid=(live.get("metadata") or {}).get("uid")
            )
        except ApiError as exc:
            if exc.status != 409:  # 409: replaced by someone else since it was read
                raise
            return
        reads.wrote(kind, pipeline.namespace, name, None)
        log.info("deleted %s %s/%s: the spec no longer asks for it", kind, pipeline.namespace, name)

    async def _observe_autoscaler(
        self,
        pipeline: RerankPipeline,
        applied: dict[tuple[str, str], dict[str, Any]],
        not_installed: set[str],
        reads: Reads,
    ) -> AutoscalerState | None:
        """The autoscaler's state from its apply answer (status included); for KEDA also the HPA it
        manages, which carries the desired count."""
        spec = pipeline.spec.autoscaling
        if spec is None:
            return None
        name = child_names(pipeline).autoscaler
        kind = KEDA_KIND if spec.provider == "keda" else HPA_KIND
        live = applied.get((kind, name))
        keda_hpa = None
        hpa_name = keda_hpa_name(live) if kind == KEDA_KIND else None
        if hpa_name is not None:
            keda_hpa = await reads.get(HPA_KIND, pipeline.namespace, hpa_name)
        return observe_autoscaler(pipeline, live, keda_hpa=keda_hpa, not_installed=kind in not_installed)

    async def _write_child(
        self,
        pipeline: RerankPipeline,
        manifest: dict[str, Any],
        live: dict[str, Any] | None,
        state: PipelineState,
        reads: Reads,
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The one way the operator writes a child or a published copy: create what is missing (create
        only), force-apply what is provably this pipeline's and differs from the manifest
        (``reconcile.drift``), and leave anything else untouched.

        ``live`` is the object as last observed (``None``: not there). Returns the object as it now is
        (the apiserver's answer, or ``live`` when nothing had to be written), or a problem naming the
        object and its holder.
        """
        manifest = with_hash(manifest)
        kind, meta = manifest["kind"], manifest["metadata"]
        key = (kind, meta["namespace"], meta["name"])
        if live is None:
            try:
                created = await self.kube.create(manifest)
            except ApiError as exc:
                if exc.status != 409:
                    raise
            else:
                reads.wrote(*key, created)
                return created, None
            # created by someone else since it was observed: judge what is there now
            live = await self.kube.get(kind, meta["namespace"], meta["name"])
            if live is None:
                raise ApiError(409, "Conflict", f"{kind} {meta['name']} appeared and vanished; retrying")
        verdict = self._claim(pipeline, live)
        if not verdict.ours:
            where = f"{kind} {meta['namespace']}/{meta['name']}"
            return None, f"{where} exists and is not this pipeline's ({verdict.holder}); rename or remove it"
        if not needs_write(manifest, live, hash_only=key in state.hash_only):
            return live, None
        answer = await self.kube.apply(manifest, live)
        reads.wrote(*key, answer)
        if not contains(answer, manifest) and key not in state.hash_only:
            log.info("%s %s/%s: the apiserver stores values differently; judged by hash from now", *key)
            state.hash_only.add(key)
        return answer, None

    @staticmethod
    def _claim(pipeline: RerankPipeline, live: Mapping[str, Any]) -> Claim:
        return claim(
            live,
            uid=pipeline.metadata.uid or "",
            pipeline_name=pipeline.name,
            pipeline_namespace=pipeline.namespace,
        )

    # ------------------------------------------------------------------------------ probing
    def _probe_due(self, state: PipelineState, pipeline: RerankPipeline, workload: WorkloadState) -> bool:
        """The interval schedule (``PipelineState.probe_due``) plus rollout-driven checks."""
        if state.last_probe_at is not None:
            generation = pipeline.metadata.generation or 0
            if state.last_probe_generation != generation and workload.rolled_out:
                return True  # a finished rollout is checked at once, not an interval later
            if workload.serving and (state.last_probe or {}).get("reason") == NO_READY_REPLICAS:
                return True  # pods just became ready: no need to wait out the interval
        return state.probe_due(time.monotonic())

    async def _probe_round(
        self,
        pipeline: RerankPipeline,
        desired_endpoint: str,
        workload: WorkloadState,
        state: PipelineState,
        reads: Reads,
    ) -> bool:
        """The canary against the desired endpoint and, while it differs, the published one
        (whose readiness then follows its own tracker). True when the desired endpoint passed."""
        state.last_probe_at = time.monotonic()
        state.last_probe_generation = pipeline.metadata.generation or 0
        api_key = await self._api_key(pipeline, workload, reads)
        ok, reason, message, latency = await self._check(
            pipeline, desired_endpoint, workload, state.tracker, api_key
        )
        if latency is not None:  # None when no request was sent (no ready pod, missing secret, ...)
            metrics.PROBE_LATENCY.labels(pipeline.namespace, pipeline.name).observe(latency / 1000.0)
        if not ok:
            metrics.PROBE_FAILURES.labels(pipeline.namespace, pipeline.name, reason).inc()
        metrics.PROBE_LAST_TIME.labels(pipeline.namespace, pipeline.name).set_to_current_time()
        for outcome, count in (("success", state.tracker.successes), ("failure", state.tracker.failures)):
            metrics.PROBE_CONSECUTIVE.labels(pipeline.namespace, pipeline.name, outcome).set(count)
        state.last_probe = {
            "time": utcnow(),
            "ok": ok,
            "reason": reason,
            "message": message[:STATUS_MESSAGE_CHARS],
            "latencyMs": round(latency, 3) if latency is not None else None,
        }
        published = state.published
        if published is not None and published.endpoint != desired_endpoint:
            if state.published_tracker is None:  # starts from what apps were told
                was_ready = bool(((state.status or {}).get("published") or {}).get("ready"))
                state.published_tracker = ProbeTracker(healthy=was_ready)
            await self._check(pipeline, published.endpoint, workload, state.published_tracker, api_key)
        return ok

    async def _api_key(self, pipeline: RerankPipeline, workload: WorkloadState, reads: Reads) -> str | None:
        """The key from ``apiKeySecretRef``, only when a request will be sent. Secrets are not watched:
        the view reads it again on watch-driven and resync passes, and after the reranker refused it."""
        ref = pipeline.spec.effective_api_key_ref
        if ref is None or workload.desired == 0 or not workload.serving:
            return None
        secret = await reads.get("Secret", pipeline.namespace, ref.name)
        return secret_value(secret, ref.key)

    async def _check(
        self,
        pipeline: RerankPipeline,
        endpoint: str,
        workload: WorkloadState,
        tracker: ProbeTracker,
        api_key: str | None,
    ) -> tuple[bool, str, str, float | None]:
        """One canary against ``endpoint``, recorded in ``tracker`` with the spec's thresholds."""
        ok, reason, message, latency = await self._run_probe(pipeline, endpoint, workload, api_key)
        probe = pipeline.spec.probe
        tracker.record(
            ok,
            reason,
            latency,
            success_threshold=probe.success_threshold,
            failure_threshold=probe.failure_threshold,
        )
        return ok, reason, message, latency

    async def _run_probe(
        self, pipeline: RerankPipeline, endpoint: str, workload: WorkloadState, api_key: str | None
    ) -> tuple[bool, str, str, float | None]:
        spec = pipeline.spec
        if workload.desired == 0:
            where = "the Deployment is scaled to 0" if spec.autoscaling else "spec.replicas is 0"
            return False, SCALED_TO_ZERO, where, None
        if not workload.serving:
            detail = workload.pending_message or workload.failure_message or "no pod is ready yet"
            return False, NO_READY_REPLICAS, detail, None
        ref = spec.effective_api_key_ref
        if ref is not None and not api_key:
            where = "external.apiKeySecretRef" if spec.external is not None else "apiKeySecretRef"
            return False, MISSING_SECRET, f"secret {ref.name} has no key {ref.key} ({where})", None
        # chosen by the pipeline, not our own Service: guarded
        if endpoint in (spec.publish.endpoint, spec.external.endpoint if spec.external else None):
            refusal = self.destinations.refusal(parse_endpoint(endpoint).host)
            if refusal is not None:
                return False, str(Reason.ENDPOINT_NOT_ALLOWED), f"EndpointNotAllowed: {refusal}", None
        target = ProbeTarget(
            endpoint=endpoint,
            canary=_canary(pipeline),
            engine=spec.engine_kind,
            api_key=api_key,
            served_model=spec.model.effective_served_name,
            timeout_s=spec.probe.timeout_seconds,
            max_latency_ms=spec.probe.max_latency_ms,
            truncate_prompt_tokens=spec.model.truncate_prompt_tokens if spec.engine_kind == "vllm" else None,
            # the canary goes in Milvus's batches; for TEI the server's /info must allow that many
            max_client_batch_size=spec.publish.max_client_batch_size,
        )
        async with released():  # the canary's wait is the reranker's, not a reason to hold up others
            verdict = await probe_reranker(target, client=self._http_client(), resolver=self.resolver)
        return verdict.ok, str(verdict.reason), verdict.message, verdict.latency_ms

    @staticmethod
    def _not_ready_reason(replicas: int, tracker: ProbeTracker, state: PipelineState) -> str:
        if replicas == 0:
            return SCALED_TO_ZERO
        if state.last_probe is None:
            return AWAITING_FIRST_PROBE
        return tracker.last_reason or AWAITING_FIRST_PROBE

    # ------------------------------------------------------------------------------ publishing
    async def _publish(
        self,
        raw: dict[str, Any],
        pipeline: RerankPipeline,
        config: PublishedConfig,
        state: PipelineState,
        reads: Reads,
    ) -> tuple[list[str], list[str]]:
        """Write the published ConfigMap into its namespaces. Returns (child problems, copy problems):
        the pipeline's own copy is a child (``ApplyRejected``); a copy elsewhere that cannot be written
        only degrades (``PublishFailed``), and is written only with that namespace's consent."""
        child_errors: list[str] = []
        copy_errors: list[str] = []
        targets = publish_namespaces(pipeline)
        previous_ready = ((state.status or {}).get("published") or {}).get("ready")
        name = child_names(pipeline).published
        for ns in targets:
            errors = child_errors if ns == pipeline.namespace else copy_errors
            try:
                live = await reads.get("ConfigMap", ns, name)
                if ns != pipeline.namespace:
                    refusal = await self._consent(pipeline, ns, reads)
                    if refusal is not None:
                        errors.append(refusal)
                        if live is not None:  # consent revoked (a deliberate act): withdraw the copy
                            await self._withdraw(
                                pipeline.metadata.uid or "", pipeline.name, pipeline.namespace, live, reads
                            )
                        continue
                _, problem = await self._write_child(
                    pipeline, render_published_configmap(pipeline, config, ns), live, state, reads
                )
            except ApiError as exc:
                if exc.transient:
                    raise
                problem = f"cannot publish to namespace {ns}: {exc.message or exc.reason}"
            if problem is not None:
                errors.append(problem)
        await self._remove_stale(state, pipeline, targets, reads)
        if (
            previous_ready is not None
            and bool(previous_ready) != config.ready
            and state.published is not None
        ):
            event = "marked_ready" if config.ready else "marked_not_ready"
            metrics.PUBLISH_EVENTS.labels(pipeline.namespace, pipeline.name, event).inc()
        return child_errors, copy_errors

    async def _consent(self, pipeline: RerankPipeline, namespace: str, reads: Reads) -> str | None:
        """``None`` when ``namespace`` accepts copies from this pipeline (a RerankPublishGrant there
        says so), else why not, in words that tell the pipeline's owner whom to ask."""
        try:
            grants = await reads.grants(namespace)
        except ApiError as exc:
            if exc.transient:
                raise
            what = "not installed" if exc.status == 404 else f"not readable: {exc.message or exc.reason}"
            return f"not publishing to namespace {namespace}: its RerankPublishGrants are {what}"
        if consenting_grant(grants, pipeline.namespace, pipeline.name) is not None:
            return None
        return f"not publishing to namespace {namespace}: " + consent_hint(
            namespace, pipeline.namespace, pipeline.name
        )

    async def _remove_stale(
        self, state: PipelineState, pipeline: RerankPipeline, targets: list[str], reads: Reads
    ) -> None:
        """Withdraw copies the spec no longer asks for (namespace dropped or ConfigMap renamed)."""
        published = (state.status or {}).get("published") or {}
        old_name = published.get("configMapName")
        old_namespaces = published.get("namespaces") or []
        current = child_names(pipeline).published
        for ns in old_namespaces:
            if old_name and (ns not in targets or old_name != current):
                await self._withdraw_named(
                    pipeline.metadata.uid or "", pipeline.name, pipeline.namespace, ns, old_name, reads
                )

    async def _withdraw_named(
        self, uid: str, pipeline_name: str, pipeline_ns: str, ns: str, name: str, reads: Reads
    ) -> None:
        try:
            live = await reads.get("ConfigMap", ns, name)
        except ApiError as exc:
            log.warning("cannot read ConfigMap %s/%s for cleanup: %s", ns, name, exc)
            return
        if live is not None:
            await self._withdraw(uid, pipeline_name, pipeline_ns, live, reads)

    async def _withdraw(
        self, uid: str, pipeline_name: str, pipeline_ns: str, live: dict[str, Any], reads: Reads
    ) -> None:
        """Delete a published ConfigMap only if it provably is this pipeline's, and only that very
        object (UID precondition): never one that merely has our name or labels."""
        meta = live.get("metadata") or {}
        verdict = claim(live, uid=uid, pipeline_name=pipeline_name, pipeline_namespace=pipeline_ns)
        if not uid or not verdict.ours:
            return
        try:
            await self.kube.delete("ConfigMap", meta["namespace"], meta["name"], uid=meta.get("uid"))
        except ApiError as exc:
            if exc.status != 409:  # 409: replaced by someone else since it was read; not ours to delete
                raise
            return
        reads.wrote("ConfigMap", meta["namespace"], meta["name"], None)
        metrics.PUBLISH_EVENTS.labels(pipeline_ns, pipeline_name, "withdrawn").inc()

    async def cleanup(self, body: Mapping[str, Any]) -> None:
        """On deletion: remove what ownerReferences cannot reach (copies in other namespaces)."""
        raw: dict[str, Any] = plain(body)
        meta = raw.get("metadata") or {}
        name, ns, uid = meta.get("name", ""), meta.get("namespace", "default"), meta.get("uid", "")
        spec_publish = ((raw.get("spec") or {}).get("publish")) or {}
        status_published = ((raw.get("status") or {}).get("published")) or {}
        cm_names = {published_name(name, spec_publish.get("configMapName"))}
        if status_published.get("configMapName"):
            cm_names.add(status_published["configMapName"])
        namespaces = set(spec_publish.get("namespaces") or []) | set(status_published.get("namespaces") or [])
        namespaces.discard(ns)
        reads = ApiReads(self.kube)  # deletion is rare: read what is there now
        for other in sorted(namespaces):
            for cm in sorted(cm_names):
                await self._withdraw_named(uid, name, ns, other, cm, reads)
        metrics.forget_pipeline(ns, name)

    # ------------------------------------------------------------------------------ status
    async def _write_status(
        self,
        raw: dict[str, Any],
        state: PipelineState,
        status: dict[str, Any],
        *,
        published_note: str | None = None,
    ) -> None:
        """Patch status only when it differs from what was last seen or written, and, when only the
        per-canary detail differs (``reconcile.status_diff``), at most every status heartbeat.

        The status goes through ``RerankPipelineStatus`` first: a field the CRD does not declare would
        be pruned silently by the apiserver, so here it fails loudly instead.
        """
        new = RerankPipelineStatus.model_validate(_compact(status)).to_api()
        old = state.status or {}
        now = time.monotonic()
        detail_only = essential(new) == essential(old)
        fresh = (
            state.status_written_at is not None
            and now - state.status_written_at < self.config.status_heartbeat_seconds
        )
        if new == old or (detail_only and fresh):
            if published_note is not None:
                await post_event(self.kube, raw, "Normal", "Published", published_note)
            return
        patch = merge_patch(old, new)
        meta = raw["metadata"]
        await self.kube.patch_status("RerankPipeline", meta.get("namespace", "default"), meta["name"], patch)
        state.status = new
        state.status_written_at = now
        await self._events(raw, old, new, published_note)

    async def _events(
        self, raw: dict[str, Any], old: dict[str, Any], new: dict[str, Any], published_note: str | None
    ) -> None:
        """One Event per transition of Ready (status or reason), not per pass, and none for the steps
        of a normal rollout (``SILENT_NOT_READY``): status shows them. A publication in the same pass
        is told in the same Event."""
        before = find(old.get("conditions") or [], "Ready")
        after = find(new.get("conditions") or [], "Ready")
        transition = after is not None and (
            before is None
            or (before.get("status"), before.get("reason")) != (after.get("status"), after.get("reason"))
        )
        if after is None or not transition:
            if published_note is not None:
                await post_event(self.kube, raw, "Normal", "Published", published_note)
            return
        reason = "Ready" if after.get("status") == "True" else str(after.get("reason"))
        message = str(after.get("message", ""))
        if reason in SILENT_NOT_READY:
            if published_note is not None:
                await post_event(self.kube, raw, "Normal", "Published", published_note)
            return
        if published_note is not None:
            message = f"{message}; {published_note}"
        type_: Literal["Normal", "Warning"] = "Normal" if reason in ("Ready", SCALED_TO_ZERO) else "Warning"
        await post_event(self.kube, raw, type_, reason, message)


def _canary(pipeline: RerankPipeline) -> Canary:
    probe = pipeline.spec.probe
    if probe.query is None or probe.documents is None:
        return DEFAULT_CANARY
    return Canary(
        query=probe.query, documents=tuple(probe.documents), expected_top_index=probe.expected_top_index or 0
    )


def _chat_template_of(deployment: Mapping[str, Any]) -> str | None:
    """The ConfigMap a revision's pods mount their chat template from (each revision has its own)."""
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    for volume in pod.get("volumes") or []:
        if volume.get("name") == "chat-template":
            name = (volume.get("configMap") or {}).get("name")
            return str(name) if name else None
    return None


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch from ``old`` to ``new``: a key gone at any depth is sent as null (a merge
    patch leaves keys it does not mention in place, so a nested field would otherwise never go)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    out: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        out[key] = merge_patch(old.get(key), value) if isinstance(value, dict) else value
    return out


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(value: Any) -> Any:
    """Drop ``None`` values recursively so comparisons match what the apiserver stores."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value
