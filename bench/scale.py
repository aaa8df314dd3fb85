"""What N pipelines cost the apiserver and the operator: creation, steady state, exact attribution.

Starts the sandbox control plane (kube-apiserver + kine + kwok fake GPU nodes + scheduler +
controller-manager), runs ``rerank-operator run -A`` as a process, applies N copies of
``examples/minimal.yaml`` with a loopback stand-in answering every canary, and reads the apiserver's own
``/metrics`` before creation, when all pipelines are Ready, and around an idle window.

Why the operator gets its own identity: ``apiserver_request_total`` has no user label, and in the sandbox
kube-controller-manager, the scheduler, kwok and this script's kubectl all write too (pod and Deployment
status, node Leases). So the operator runs as a ServiceAccount (bound to cluster-admin, so RBAC never
changes what it does) and a set of FlowSchemas matches only that ServiceAccount, one per (verb,
resource), all feeding one PriorityLevelConfiguration. A request matches exactly one FlowSchema, so
``apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`` counts the operator's requests
exactly, by verb and resource; per-verb catch-alls and a final catch-all keep the total exact for
resources outside the list. ``apiserver_request_total`` is reported next to it for all clients.

Pod Ready -> pipeline Ready latency is measured from local receive times of watch events (pods and
RerankPipelines, watched with the kubernetes client from before the apply), because Kubernetes'
``lastTransitionTime`` has one-second resolution; the ``lastTransitionTime`` difference is reported too.

Bounded: every wait has a timeout, the idle window is capped, and only 127.0.0.1 is contacted.

    .venv/bin/python bench/scale.py --pipelines 100 --idle-seconds 120 --json /tmp/scale.json
"""

from __future__ import annotations

import argparse
import base64
import copy
import functools
import hashlib
import importlib
import json
import math
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from prometheus_client.parser import text_string_to_metric_families

import rerank_operator
from rerank_operator.models import RerankPipeline
from rerank_operator.sandbox import Sandbox, default_crds_dir, default_nodes
from rerank_operator.sandbox.build import cache_root
from rerank_operator.sandbox.client import manifest_text
from rerank_operator.sandbox.procs import ManagedProcess, accepts_connections, free_port
from rerank_operator.sandbox.serving import Backend, probed_authority, render_overrides, revision_hosts

GROUP, VERSION, PLURAL = "rerank.dev", "v1alpha1", "rerankpipelines"
OPERATOR_NAMESPACE = "rerank-bench-system"
OPERATOR_SA = "rerank-operator"
PRIORITY_LEVEL = "rerank-bench-operator"
FS_PREFIX = "rrb-op."
OVERRIDES_FILE = "host-overrides"
MAX_PIPELINES = 5000
MAX_IDLE_SECONDS = 3600.0
CREATE_CHUNK = 100  # objects per `kubectl create -f -`

# Every verb the apiserver's RequestInfo gives a resource request (what FlowSchema resourceRules match).
APF_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
APF_WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# apiserver_request_total's verb label: POST/PUT on the REST side; APPLY is a server-side-apply PATCH.
METRIC_WRITES = frozenset({"POST", "PUT", "CREATE", "UPDATE", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})

# Resources the operator (or kopf) plausibly touches, each counted per verb. Anything else still lands
# in a per-verb catch-all ("*"), so totals stay exact even if a rewrite starts using something new.
RESOURCES: tuple[tuple[str, str], ...] = (
    ("rerank.dev", "rerankpipelines"),
    ("rerank.dev", "rerankpipelines/status"),
    ("rerank.dev", "rerankpublishgrants"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("", "services"),
    ("", "configmaps"),
    ("", "persistentvolumeclaims"),
    ("", "pods"),
    ("", "secrets"),
    ("", "events"),
    ("", "namespaces"),
    ("", "endpoints"),
    ("events.k8s.io", "events"),
    ("discovery.k8s.io", "endpointslices"),
    ("policy", "poddisruptionbudgets"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("coordination.k8s.io", "leases"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("kopf.dev", "kopfpeerings"),
    ("kopf.dev", "clusterkopfpeerings"),
    ("keda.sh", "scaledobjects"),
    ("monitoring.coreos.com", "podmonitors"),
)

Key = tuple[str, str]  # (namespace, name)
RequestKey = tuple[str, str, str, str]  # (verb, group, resource, subresource)


def kubernetes() -> Any:
    """The kubernetes client package, typed as Any: its functions carry no annotations (mypy strict)."""
    return importlib.import_module("kubernetes")


def log(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


# -- attribution: FlowSchemas that only the operator's ServiceAccount matches -----------------------------


@dataclass(frozen=True)
class FlowBucket:
    """What one FlowSchema counts: the operator's requests with this verb on this resource."""

    name: str
    verb: str  # an APF verb, or "*"
    group: str  # "*" for the catch-alls
    resource: str  # "resource" or "resource/subresource", "*" for the catch-alls

    @property
    def is_write(self) -> bool:
        return self.verb in APF_WRITES


def flow_buckets() -> list[FlowBucket]:
    buckets = [
        FlowBucket(f"{FS_PREFIX}{verb}.{res.replace('/', '.')}.{group or 'core'}", verb, group, res)
        for group, res in RESOURCES
        for verb in APF_VERBS
    ]
    buckets += [FlowBucket(f"{FS_PREFIX}{verb}.other", verb, "*", "*") for verb in APF_VERBS]
    buckets.append(FlowBucket(f"{FS_PREFIX}other", "*", "*", "*"))  # non-resource URLs (discovery, /version)
    return buckets


def attribution_manifests(buckets: Sequence[FlowBucket]) -> list[dict[str, Any]]:
    """The ServiceAccount, its cluster-admin binding, one priority level and a FlowSchema per bucket.

    Precedence 1000 is after every built-in schema that could match a ServiceAccount of another namespace
    (exempt=1 is system:masters only; the ones up to 500 name kube-system or nodes) and before
    ``service-accounts`` (9000), which would otherwise take it. The level has many shares and queues so
    that measuring does not throttle the operator; rejections and queue wait are reported anyway.
    """
    subject = {
        "kind": "ServiceAccount",
        "serviceAccount": {"name": OPERATOR_SA, "namespace": OPERATOR_NAMESPACE},
    }
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": OPERATOR_SA, "namespace": OPERATOR_NAMESPACE},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "rerank-bench-operator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": OPERATOR_NAMESPACE}],
        },
        {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "PriorityLevelConfiguration",
            "metadata": {"name": PRIORITY_LEVEL},
            "spec": {
                "type": "Limited",
                "limited": {
                    "nominalConcurrencyShares": 100,
                    "lendablePercent": 0,
                    "limitResponse": {
                        "type": "Queue",
                        "queuing": {"queues": 64, "handSize": 6, "queueLengthLimit": 50},
                    },
                },
            },
        },
    ]
    for b in buckets:
        rule: dict[str, Any] = {"subjects": [subject]}
        if b.verb == "*":
            rule["nonResourceRules"] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
            rule["resourceRules"] = [
                {
                    "verbs": ["*"],
                    "apiGroups": ["*"],
                    "resources": ["*"],
                    "clusterScope": True,
                    "namespaces": ["*"],
                }
            ]
            precedence = 1002
        else:
            rule["resourceRules"] = [
                {
                    "verbs": [b.verb],
                    "apiGroups": [b.group],
                    "resources": [b.resource],
                    "clusterScope": True,
                    "namespaces": ["*"],
                }
            ]
            precedence = 1001 if b.resource == "*" else 1000
        objs.append(
            {
                "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                "kind": "FlowSchema",
                "metadata": {"name": b.name},
                "spec": {
                    "priorityLevelConfiguration": {"name": PRIORITY_LEVEL},
                    "matchingPrecedence": precedence,
                    "rules": [rule],
                },
            }
        )
    return objs


# -- reading the apiserver's /metrics ---------------------------------------------------------------------


class MetricsReader:
    """GET /metrics as the sandbox admin (system:masters: its requests fall in the ``exempt`` schema)."""

    def __init__(self, kubeconfig: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        cluster = cfg["clusters"][0]["cluster"]
        self.server: str = cluster["server"]
        if urlsplit(self.server).hostname != "127.0.0.1":
            raise SystemExit(f"refusing a non-loopback apiserver: {self.server}")
        self.token: str = cfg["users"][0]["user"]["token"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.context = ssl.create_default_context(cadata=ca)

    def text(self) -> str:
        req = urllib.request.Request(
            f"{self.server}/metrics", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, context=self.context, timeout=30) as resp:
            body: bytes = resp.read()
        return body.decode()


WANTED = (
    "apiserver_request_total{",
    "apiserver_flowcontrol_dispatched_requests_total{",
    "apiserver_flowcontrol_rejected_requests_total{",
    "apiserver_flowcontrol_request_wait_duration_seconds_sum{",
    "apiserver_flowcontrol_request_wait_duration_seconds_count{",
)


@dataclass
class ProcStat:
    """CPU seconds (utime+stime) and memory of one process, from /proc (no psutil needed)."""

    cpu_seconds: float = 0.0
    rss_bytes: int = 0
    peak_rss_bytes: int = 0  # VmHWM: the high-water mark over the process' life

    @classmethod
    def read(cls, pid: int) -> ProcStat:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return cls()
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"; utime, stime are fields 14, 15
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        mem = {}
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                mem[key] = int(value.split()[0]) * 1024
        return cls(cpu, mem.get("VmRSS", 0), mem.get("VmHWM", 0))


@dataclass
class Snapshot:
    """One reading of the counters this benchmark diffs."""

    label: str
    wall: float
    requests: dict[RequestKey, float]  # apiserver_request_total, all clients, summed over code/scope/...
    dispatched: dict[str, float]  # flow_schema -> requests
    rejected: dict[str, float]
    wait_sum: float  # seconds the operator's requests queued in APF (its priority level)
    operator: ProcStat
    apiserver: ProcStat
    # CPU seconds of every process the sandbox runs (control plane, stand-ins, the operator): on a
    # 2-core machine they share the cores, so this says where the time to Ready goes
    cpu: dict[str, float] = field(default_factory=dict)


def take_snapshot(
    label: str,
    reader: MetricsReader,
    operator: ManagedProcess,
    apiserver: ManagedProcess,
    processes: Mapping[str, ManagedProcess] | None = None,
) -> Snapshot:
    wall = time.time()
    text = reader.text()
    lines = "\n".join(line for line in text.splitlines() if line.startswith(WANTED))
    requests: dict[RequestKey, float] = defaultdict(float)
    dispatched: dict[str, float] = defaultdict(float)
    rejected: dict[str, float] = defaultdict(float)
    wait_sum = 0.0
    for family in text_string_to_metric_families(lines):
        for s in family.samples:
            lb = s.labels
            if s.name == "apiserver_request_total":
                key = (
                    lb.get("verb", ""),
                    lb.get("group", ""),
                    lb.get("resource", ""),
                    lb.get("subresource", ""),
                )
                requests[key] += s.value
            elif s.name == "apiserver_flowcontrol_dispatched_requests_total":
                dispatched[lb.get("flow_schema", "")] += s.value
            elif s.name == "apiserver_flowcontrol_rejected_requests_total":
                rejected[lb.get("flow_schema", "")] += s.value
            elif (
                s.name == "apiserver_flowcontrol_request_wait_duration_seconds_sum"
                and lb.get("priority_level") == PRIORITY_LEVEL
            ):
                wait_sum += s.value
    return Snapshot(
        label,
        wall,
        dict(requests),
        dict(dispatched),
        dict(rejected),
        wait_sum,
        ProcStat.read(operator.pid),
        ProcStat.read(apiserver.pid),
        {name: ProcStat.read(proc.pid).cpu_seconds for name, proc in (processes or {}).items()},
    )


def diff(after: Mapping[Any, float], before: Mapping[Any, float]) -> dict[Any, float]:
    out = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: v for k, v in out.items() if v > 0}


@dataclass
class Phase:
    """The difference between two snapshots."""

    name: str
    seconds: float
    all_clients: dict[RequestKey, float]
    operator: dict[FlowBucket, float]
    operator_rejected: float
    operator_queue_wait_seconds: float
    operator_cpu_seconds: float
    apiserver_cpu_seconds: float
    other_flow_schemas: dict[str, float]  # everyone else, by the built-in schema that matched them
    cpu_by_process: dict[str, float] = field(default_factory=dict)

    @property
    def operator_total(self) -> float:
        return sum(self.operator.values())

    @property
    def operator_writes(self) -> float:
        return sum(v for b, v in self.operator.items() if b.is_write)

    @property
    def all_total(self) -> float:
        return sum(self.all_clients.values())

    @property
    def all_writes(self) -> float:
        return sum(v for k, v in self.all_clients.items() if k[0] in METRIC_WRITES)


def phase(name: str, a: Snapshot, b: Snapshot, buckets: Mapping[str, FlowBucket]) -> Phase:
    dispatched = diff(b.dispatched, a.dispatched)
    rejected = diff(b.rejected, a.rejected)
    return Phase(
        name=name,
        seconds=b.wall - a.wall,
        all_clients=diff(b.requests, a.requests),
        operator={buckets[n]: v for n, v in dispatched.items() if n in buckets},
        operator_rejected=sum(v for n, v in rejected.items() if n in buckets),
        operator_queue_wait_seconds=b.wait_sum - a.wait_sum,
        operator_cpu_seconds=b.operator.cpu_seconds - a.operator.cpu_seconds,
        apiserver_cpu_seconds=b.apiserver.cpu_seconds - a.apiserver.cpu_seconds,
        other_flow_schemas={n: v for n, v in dispatched.items() if n not in buckets},
        cpu_by_process={k: round(v - a.cpu.get(k, 0.0), 2) for k, v in b.cpu.items()},
    )


# -- watching readiness -----------------------------------------------------------------------------------


def ready_condition(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return dict(cond)
    return None


@dataclass
class FirstReady:
    """When this script first saw an object Ready (local wall clock) and what its condition said."""

    received: float
    last_transition: str
    owners: list[dict[str, Any]] = field(default_factory=list)


class ReadyWatcher(threading.Thread):
    """Records the first Ready sighting of every object one watch stream reports.

    Each watch call ends after 20 s and resumes from the last resourceVersion (a fresh list after 410
    Gone), so the thread notices ``stop`` in bounded time; it is a daemon, so it never blocks exit.
    """

    def __init__(self, what: str, lister: Callable[..., Any], namespaces: set[str]) -> None:
        super().__init__(name=f"watch-{what}", daemon=True)
        self.what = what
        self.lister = lister
        self.namespaces = namespaces
        self.first_ready: dict[Key, FirstReady] = {}
        self.errors: list[str] = []
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        kube = kubernetes()
        rv: str | None = None
        while not self.stop_flag.is_set():
            w = kube.watch.Watch()
            try:
                kwargs: dict[str, Any] = {"timeout_seconds": 20, "_request_timeout": 40}
                if rv:
                    kwargs["resource_version"] = rv
                    kwargs["allow_watch_bookmarks"] = True
                for event in w.stream(self.lister, **kwargs):
                    raw = event.get("raw_object") or {}
                    meta = raw.get("metadata") or {}
                    rv = meta.get("resourceVersion") or rv
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._see(raw, meta)
                    if self.stop_flag.is_set():
                        break
            except kube.client.exceptions.ApiException as exc:
                if exc.status == 410:
                    rv = None
                else:
                    self._error(exc)
            except Exception as exc:  # connection reset etc.: note it, retry shortly
                self._error(exc)
            finally:
                w.stop()

    def _error(self, exc: BaseException) -> None:
        self.errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
        self.stop_flag.wait(1.0)

    def _see(self, raw: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if key[0] not in self.namespaces or key in self.first_ready:
            return
        cond = ready_condition(raw)
        if cond is None:
            return
        with self.lock:
            self.first_ready[key] = FirstReady(
                time.time(), str(cond.get("lastTransitionTime", "")), list(meta.get("ownerReferences") or [])
            )

    def count(self) -> int:
        with self.lock:
            return len(self.first_ready)


def rfc3339(value: str) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (q in [0, 100])."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def owner(refs: Iterable[Mapping[str, Any]], kind: str) -> str | None:
    for ref in refs:
        if ref.get("kind") == kind and ref.get("controller"):
            return str(ref.get("name"))
    return None


def pipeline_of_pods(
    sb: Sandbox, namespaces: Iterable[str], pods: Mapping[Key, FirstReady]
) -> dict[Key, list[Key]]:
    """Pipeline -> its pods, through the controller ownerReferences pod -> ReplicaSet -> Deployment ->
    RerankPipeline (the ownership the operator documents), not through label conventions."""
    rs_owner: dict[Key, str] = {}
    deploy_owner: dict[Key, str] = {}
    for ns in namespaces:
        for rs in sb.kubectl_json("get", "replicasets", "-n", ns)["items"]:
            name = owner(rs["metadata"].get("ownerReferences") or [], "Deployment")
            if name:
                rs_owner[(ns, rs["metadata"]["name"])] = name
        for d in sb.kubectl_json("get", "deployments", "-n", ns)["items"]:
            name = owner(d["metadata"].get("ownerReferences") or [], "RerankPipeline")
            if name:
                deploy_owner[(ns, d["metadata"]["name"])] = name
    out: dict[Key, list[Key]] = defaultdict(list)
    for (ns, pod), seen in pods.items():
        rs = owner(seen.owners, "ReplicaSet")
        deploy = rs_owner.get((ns, rs)) if rs else None
        pipeline = deploy_owner.get((ns, deploy)) if deploy else None
        if pipeline:
            out[(ns, pipeline)].append((ns, pod))
    return dict(out)


@dataclass
class Latency:
    method: str
    samples: list[float]

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "n": len(self.samples),
            "p50": percentile(self.samples, 50),
            "p95": percentile(self.samples, 95),
            "max": max(self.samples) if self.samples else None,
        }


def ready_latencies(
    pipelines: Mapping[Key, FirstReady], pods: Mapping[Key, FirstReady], owned: Mapping[Key, list[Key]]
) -> tuple[Latency, Latency]:
    """(watch receive times, lastTransitionTime) differences: the pipeline's first Ready sighting minus
    the first of its pods' Ready sightings."""
    by_watch, by_ltt = [], []
    for key, p in pipelines.items():
        mine = [pods[k] for k in owned.get(key, []) if k in pods]
        if not mine:
            continue
        first = min(mine, key=lambda f: f.received)
        by_watch.append(p.received - first.received)
        a, b = rfc3339(p.last_transition), min((rfc3339(f.last_transition) or math.inf) for f in mine)
        if a is not None and b != math.inf:
            by_ltt.append(a - b)
    return (
        Latency("watch events' local receive times (sub-second)", by_watch),
        Latency("conditions' lastTransitionTime (1 s resolution)", by_ltt),
    )


# -- the run ------------------------------------------------------------------------------------------------


def pipeline_bodies(example: Path, count: int, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    template = next(d for d in docs if d.get("kind") == "RerankPipeline")
    width = max(4, len(str(count - 1)))
    bodies = []
    for i in range(count):
        body = copy.deepcopy(template)
        body["metadata"]["name"] = f"{template['metadata']['name']}-{i:0{width}d}"
        body["metadata"]["namespace"] = namespaces[i % len(namespaces)]
        bodies.append(body)
    return bodies


def start_standins(sb: Sandbox, pipelines: Sequence[RerankPipeline], count: int, overrides: Path) -> int:
    """A few shared loopback stand-ins instead of one process per pipeline (1000 Python processes would
    not fit this machine): round-robin over the pipelines serving each model name, written into the
    operator's host-override file before the operator starts. Returns the number started."""
    by_model: dict[str, list[RerankPipeline]] = defaultdict(list)
    for p in pipelines:
        by_model[p.spec.model.effective_served_name].append(p)
    backends: dict[Key, Backend] = {}
    started = 0
    for model, group in sorted(by_model.items()):
        ports = []
        for _ in range(max(1, min(count, len(group)))):
            port = free_port()
            name = f"standin-{started}"
            argv = [
                sys.executable,
                "-m",
                "rerank_operator.standin",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
            sb.start_process(
                name,
                [*argv, "--model", model],
                ready=functools.partial(accepts_connections, port),
                timeout=60,
            )
            ports.append((name, port))
            started += 1
        for i, p in enumerate(group):
            authority = probed_authority(p)
            if authority is None:
                raise SystemExit(f"{p.namespace}/{p.name}: its endpoint cannot be served on loopback")
            name, port = ports[i % len(ports)]
            backends[(p.namespace, p.name)] = Backend(
                process=name,
                kind="standin",
                signature=model,
                authority=authority,
                port=port,
                aliases=revision_hosts(p),
            )
    overrides.write_text(render_overrides(backends))
    return started


def wait_quiet(
    reader: MetricsReader,
    op: ManagedProcess,
    api: ManagedProcess,
    buckets: Mapping[str, FlowBucket],
    *,
    quiet: float,
    timeout: float,
) -> None:
    """Until the operator has started its watches and made no request for `quiet` seconds (bounded):
    the creation phase should not include its startup."""
    deadline = time.monotonic() + timeout
    last_total, since = -1.0, time.monotonic()
    watching = f"{FS_PREFIX}watch.rerankpipelines.rerank.dev"
    while time.monotonic() < deadline:
        if not op.alive():
            raise SystemExit("the operator exited:\n" + op.describe_failure())
        snap = take_snapshot("poll", reader, op, api)
        total = sum(v for n, v in snap.dispatched.items() if n in buckets)
        if total != last_total:
            last_total, since = total, time.monotonic()
        elif snap.dispatched.get(watching, 0) > 0 and time.monotonic() - since >= quiet:
            return
        time.sleep(1.0)
    log(f"the operator did not go quiet within {timeout:.0f}s; measuring anyway")


def verify_attribution(sb: Sandbox, sa_kubeconfig: Path, reader: MetricsReader, timeout: float) -> None:
    """One request as the operator's identity must show up in its bucket: proves the apiserver has taken
    the FlowSchemas (APF picks up config changes asynchronously) before anything is measured."""
    bucket = f"{FS_PREFIX}list.rerankpipelines.rerank.dev"
    deadline = time.monotonic() + timeout
    before = -1.0
    while time.monotonic() < deadline:
        text = reader.text()
        count = 0.0
        for line in text.splitlines():
            if (
                line.startswith("apiserver_flowcontrol_dispatched_requests_total{")
                and f'flow_schema="{bucket}"' in line
            ):
                count += float(line.rsplit(" ", 1)[1])
        if before >= 0 and count > before:
            return
        before = count
        sb.kubectl("--kubeconfig", str(sa_kubeconfig), "get", PLURAL, "-A")
        time.sleep(1.0)
    raise SystemExit(f"the apiserver never counted the operator identity's requests in FlowSchema {bucket}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.pipelines
    namespaces = [f"bench-{i}" for i in range(args.namespaces)]
    bodies = pipeline_bodies(args.example, n, namespaces)
    pipelines = [RerankPipeline.from_body(b) for b in bodies]
    gpus = sum(max(p.spec.resources.gpus, 0) for p in pipelines)
    gpu_nodes = max(1, math.ceil(gpus / args.gpus_per_node))
    nodes = default_nodes(gpu_nodes=gpu_nodes, cpu_nodes=1, gpus_per_node=args.gpus_per_node)
    buckets = {b.name: b for b in flow_buckets()}
    operator_env = dict(kv.split("=", 1) for kv in args.operator_env)
    log(
        f"{n} pipelines in {len(namespaces)} namespace(s); {gpu_nodes} fake GPU nodes x {args.gpus_per_node} GPUs"
        + ("; controller-manager and scheduler without client rate limits" if args.disable_qps_limits else "")
    )
    sandbox_timeout = max(90.0, 60.0 + 0.2 * len(nodes))
    with Sandbox(
        crds=default_crds_dir(),
        nodes=nodes,
        keep_workdir=args.keep or None,
        timeout=sandbox_timeout,
        disable_qps_limits=args.disable_qps_limits,
    ) as sb:
        log(f"sandbox up in {sb.timings.get('total', 0):.1f}s (workdir {sb.workdir})")
        sb.apply(attribution_manifests(list(buckets.values())))
        for ns in namespaces:
            sb.create_namespace(ns)
        sa_kubeconfig = sb.service_account_kubeconfig(OPERATOR_NAMESPACE, OPERATOR_SA, duration="24h")
        reader = MetricsReader(sb.kubeconfig)
        verify_attribution(sb, sa_kubeconfig, reader, timeout=60)
        log("attribution verified: the operator's identity is counted in its own FlowSchemas")

        overrides = sb.workdir / OVERRIDES_FILE
        standins = start_standins(sb, pipelines, args.standins, overrides)
        env = {
            "KUBECONFIG": str(sa_kubeconfig),
            "RERANK_OPERATOR_HOST_OVERRIDES_FILE": str(overrides),
            **operator_env,
        }
        t_operator = time.time()
        op = sb.start_process(
            "operator", [str(args.operator_python), "-m", "rerank_operator", "run", "-A"], env=env
        )
        api = sb.processes["kube-apiserver"]
        s_launch = take_snapshot("operator launched", reader, op, api, sb.processes)
        s_launch.wall = t_operator
        wait_quiet(reader, op, api, buckets, quiet=5.0, timeout=90.0)

        kube = kubernetes()
        api_client = kube.config.new_client_from_config(config_file=str(sb.kubeconfig))
        ns_set = set(namespaces)
        pod_watch = ReadyWatcher(
            "pods", kube.client.CoreV1Api(api_client).list_pod_for_all_namespaces, ns_set
        )
        custom = kube.client.CustomObjectsApi(api_client)
        rrp_watch = ReadyWatcher(
            "rerankpipelines",
            lambda **kw: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw),
            ns_set,
        )
        pod_watch.start()
        rrp_watch.start()
        time.sleep(2.0)  # both watches established before anything is created
        s_before = take_snapshot("before creation", reader, op, api, sb.processes)

        log(f"creating {n} pipelines")
        t_apply = time.time()
        for i in range(0, n, CREATE_CHUNK):
            sb.kubectl("create", "-f", "-", input=manifest_text(bodies[i : i + CREATE_CHUNK]), timeout=300)
        t_created = time.time()
        deadline = time.monotonic() + args.ready_timeout
        last_log = 0.0
        while rrp_watch.count() < n and time.monotonic() < deadline:
            if not op.alive():
                raise SystemExit("the operator exited:\n" + op.describe_failure())
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                log(f"{rrp_watch.count()}/{n} pipelines Ready, {pod_watch.count()} pods Ready")
            time.sleep(0.25)
        all_ready = rrp_watch.count() >= n
        s_ready = take_snapshot("all Ready", reader, op, api, sb.processes)
        if not all_ready:
            log(f"timed out after {args.ready_timeout:.0f}s: {rrp_watch.count()}/{n} pipelines Ready")

        s_idle_start = s_idle_end = None
        if all_ready and args.idle_seconds > 0:
            time.sleep(args.settle_seconds)
            s_idle_start = take_snapshot("idle start", reader, op, api, sb.processes)
            log(f"idle window: {args.idle_seconds:.0f}s")
            end = time.monotonic() + args.idle_seconds
            while time.monotonic() < end:
                if not op.alive():
                    raise SystemExit("the operator exited:\n" + op.describe_failure())
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            s_idle_end = take_snapshot("idle end", reader, op, api, sb.processes)

        for w in (pod_watch, rrp_watch):
            w.stop_flag.set()
        with rrp_watch.lock, pod_watch.lock:
            rrp_seen, pod_seen = dict(rrp_watch.first_ready), dict(pod_watch.first_ready)
        owned = pipeline_of_pods(sb, namespaces, pod_seen)
        by_watch, by_ltt = ready_latencies(rrp_seen, pod_seen, owned)
        final_op = ProcStat.read(op.pid)

        phases = [
            phase("operator startup", s_launch, s_before, buckets),
            phase("creation", s_before, s_ready, buckets),
        ]
        if s_idle_start is not None and s_idle_end is not None:
            phases.append(phase("settle", s_ready, s_idle_start, buckets))
            phases.append(phase("idle", s_idle_start, s_idle_end, buckets))
        return report_dict(
            args,
            n=n,
            namespaces=namespaces,
            gpu_nodes=gpu_nodes,
            standins=standins,
            operator_env=operator_env,
            complete=all_ready,
            ready_count=len(rrp_seen),
            t_apply=t_apply,
            t_created=t_created,
            rrp_seen=rrp_seen,
            pod_seen=pod_seen,
            latencies=(by_watch, by_ltt),
            phases=phases,
            operator_final=final_op,
            watch_errors=pod_watch.errors + rrp_watch.errors,
        )


# -- reporting ------------------------------------------------------------------------------------------


def resource_name(group: str, resource: str) -> str:
    res, _, sub = resource.partition("/")
    full = f"{res}.{group}" if group and group != "*" else res
    return f"{full}/{sub}" if sub else full


def per_hour(count: float, pipelines: int, seconds: float) -> float:
    return count / pipelines * 3600.0 / seconds if seconds > 0 else 0.0


def phase_dict(p: Phase, n: int) -> dict[str, Any]:
    rates = {}
    if p.name == "idle":  # extrapolating a burst (startup, creation) to an hour would mean nothing
        rates = {
            "requests_per_pipeline_hour": per_hour(p.operator_total, n, p.seconds),
            "writes_per_pipeline_hour": per_hour(p.operator_writes, n, p.seconds),
            "all_clients_requests_per_pipeline_hour": per_hour(p.all_total, n, p.seconds),
            "all_clients_writes_per_pipeline_hour": per_hour(p.all_writes, n, p.seconds),
        }
    return {
        "seconds": round(p.seconds, 3),
        **rates,
        "operator_only": {
            "source": "apiserver_flowcontrol_dispatched_requests_total of the operator's FlowSchemas (exact)",
            "requests": p.operator_total,
            "writes": p.operator_writes,
            "requests_per_pipeline": p.operator_total / n,
            "writes_per_pipeline": p.operator_writes / n,
            "by_verb_resource": [
                {
                    "verb": b.verb,
                    "resource": resource_name(b.group, b.resource),
                    "flow_schema": b.name,
                    "count": v,
                }
                for b, v in sorted(p.operator.items(), key=lambda kv: (-kv[1], kv[0].name))
            ],
            "rejected": p.operator_rejected,
            "apf_queue_wait_seconds": round(p.operator_queue_wait_seconds, 6),
            "cpu_seconds": round(p.operator_cpu_seconds, 3),
        },
        "all_clients": {
            "source": "apiserver_request_total (operator + kube-controller-manager + kube-scheduler + kwok + "
            "this benchmark's kubectl, watches and /metrics reads)",
            "requests": p.all_total,
            "writes": p.all_writes,
            "writes_per_pipeline": p.all_writes / n,
            "by_verb_resource": [
                {
                    "verb": k[0],
                    "resource": resource_name(k[1], f"{k[2]}/{k[3]}" if k[3] else k[2]),
                    "count": v,
                }
                for k, v in sorted(p.all_clients.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "other_flow_schemas": dict(sorted(p.other_flow_schemas.items())),
        },
        "apiserver_cpu_seconds": round(p.apiserver_cpu_seconds, 3),
        "cpu_seconds_by_process": dict(sorted(p.cpu_by_process.items(), key=lambda kv: -kv[1])),
    }


def report_dict(args: argparse.Namespace, **r: Any) -> dict[str, Any]:
    n: int = r["n"]
    by_watch, by_ltt = r["latencies"]
    ready_times = [f.received for f in r["rrp_seen"].values()]
    pod_times = [f.received for f in r["pod_seen"].values()]
    final: ProcStat = r["operator_final"]
    return {
        "benchmark": "bench/scale.py",
        "command": sys.argv,
        "operator_package": str(Path(rerank_operator.__file__).parent),
        "operator_python": str(args.operator_python),
        "operator_env": r["operator_env"],
        "pipelines": n,
        "namespaces": r["namespaces"],
        "gpu_nodes": r["gpu_nodes"],
        "gpus_per_node": args.gpus_per_node,
        "standins": r["standins"],
        "complete": r["complete"],
        "ready_pipelines": r["ready_count"],
        "kubectl_create_seconds": round(r["t_created"] - r["t_apply"], 3),
        "apply_to_all_ready_seconds": round(max(ready_times) - r["t_apply"], 3) if r["complete"] else None,
        # kubectl creates one object after another, each a request that shares the 2 cores with
        # everything it sets in motion: at N=1000 that alone takes a minute
        "create_returned_to_all_ready_seconds": round(max(ready_times) - r["t_created"], 3)
        if r["complete"]
        else None,
        "apply_to_all_pods_ready_seconds": round(max(pod_times) - r["t_apply"], 3) if pod_times else None,
        "pod_ready_to_pipeline_ready_seconds": {
            "watch": by_watch.summary(),
            "last_transition_time": by_ltt.summary(),
        },
        "operator_process": {
            "peak_rss_bytes": final.peak_rss_bytes,
            "rss_bytes_at_end": final.rss_bytes,
            "cpu_seconds_total": round(final.cpu_seconds, 3),
            "source": "/proc/<pid>/status VmHWM, VmRSS; /proc/<pid>/stat utime+stime",
        },
        "phases": {p.name: phase_dict(p, n) for p in r["phases"]},
        "watch_errors": r["watch_errors"][:20],
        "settle_seconds": args.settle_seconds,
    }


def fmt(v: float | None, unit: str = "s") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def print_report(rep: dict[str, Any]) -> None:
    n = rep["pipelines"]
    out: list[str] = []
    add = out.append
    add(f"rerank-operator scale benchmark: {n} pipelines in {len(rep['namespaces'])} namespace(s)")
    add(
        f"  {rep['gpu_nodes']} kwok GPU nodes x {rep['gpus_per_node']} GPUs, {rep['standins']} shared loopback "
        f"stand-in(s); operator from {rep['operator_package']}, extra env {rep['operator_env'] or 'none'}"
    )
    add(f"  operator's Python: {rep['operator_python']}")
    if not rep["complete"]:
        add(f"  INCOMPLETE: only {rep['ready_pipelines']}/{n} pipelines became Ready before the timeout")
    add("")
    add(f"apply -> all pipelines Ready      {fmt(rep['apply_to_all_ready_seconds'])}")
    add(
        f"  (kubectl create took {fmt(rep['kubectl_create_seconds'])}, all Ready "
        f"{fmt(rep['create_returned_to_all_ready_seconds'])} after it returned; "
        f"all pods Ready after {fmt(rep['apply_to_all_pods_ready_seconds'])})"
    )
    for key, lat in rep["pod_ready_to_pipeline_ready_seconds"].items():
        add(
            f"pod Ready -> pipeline Ready [{key}]  p50 {fmt(lat['p50'])}  p95 {fmt(lat['p95'])}  "
            f"max {fmt(lat['max'])}  (n={lat['n']}; {lat['method']})"
        )
    proc = rep["operator_process"]
    add(
        f"operator process: peak RSS {proc['peak_rss_bytes'] / 2**20:.1f} MiB, "
        f"CPU {proc['cpu_seconds_total']:.1f}s in total"
    )
    phases = rep["phases"]
    add("")
    add(
        f"{'phase':<18}{'seconds':>9}{'op reqs':>9}{'op writes':>10}{'op CPU s':>9}{'all reqs':>10}{'all writes':>11}{'apisrv CPU s':>13}"
    )
    for name, p in phases.items():
        o, a = p["operator_only"], p["all_clients"]
        add(
            f"{name:<18}{p['seconds']:>9.1f}{o['requests']:>9.0f}{o['writes']:>10.0f}{o['cpu_seconds']:>9.2f}"
            f"{a['requests']:>10.0f}{a['writes']:>11.0f}{p['apiserver_cpu_seconds']:>13.2f}"
        )
    if "creation" in phases:
        c = phases["creation"]["operator_only"]
        cpu = phases["creation"]["cpu_seconds_by_process"]
        add("")
        add(
            "creation, CPU seconds by process: "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if v >= 0.05)
        )
        add(
            f"creation, per pipeline: operator {c['requests_per_pipeline']:.2f} requests, "
            f"{c['writes_per_pipeline']:.2f} writes; all clients "
            f"{phases['creation']['all_clients']['writes_per_pipeline']:.2f} writes"
        )
    if "idle" in phases:
        idle = phases["idle"]
        add(
            f"idle, per pipeline per hour (extrapolated from {idle['seconds']:.0f}s): operator "
            f"{idle['requests_per_pipeline_hour']:.1f} requests, {idle['writes_per_pipeline_hour']:.1f} writes "
            f"(all clients {idle['all_clients_requests_per_pipeline_hour']:.1f}, "
            f"{idle['all_clients_writes_per_pipeline_hour']:.1f}); operator CPU "
            f"{idle['operator_only']['cpu_seconds'] / idle['seconds'] * 100:.1f}% of one core"
        )
    for name in ("creation", "idle"):
        if name not in phases:
            continue
        o = phases[name]["operator_only"]
        add("")
        add(f"{name}: OPERATOR ONLY (exact, its own FlowSchemas; patch includes server-side apply)")
        add(f"  {'verb':<18}{'resource':<44}{'count':>8}{'per pipeline':>14}")
        for row in o["by_verb_resource"]:
            add(f"  {row['verb']:<18}{row['resource']:<44}{row['count']:>8.0f}{row['count'] / n:>14.2f}")
        add(f"  APF: rejected {o['rejected']:.0f}, total queue wait {o['apf_queue_wait_seconds']:.3f}s")
        a = phases[name]["all_clients"]
        add(
            f"{name}: ALL CLIENTS (apiserver_request_total: operator + controller-manager + scheduler + kwok + this script)"
        )
        add(f"  {'verb':<18}{'resource':<44}{'count':>8}")
        for row in a["by_verb_resource"][:40]:
            add(f"  {row['verb']:<18}{row['resource']:<44}{row['count']:>8.0f}")
        if len(a["by_verb_resource"]) > 40:
            add(f"  ... {len(a['by_verb_resource']) - 40} more rows in --json")
        others = ", ".join(f"{k} {v:.0f}" for k, v in a["other_flow_schemas"].items())
        add(f"  other clients by FlowSchema: {others}")
    if rep["watch_errors"]:
        add("")
        add(f"watch errors (retried): {rep['watch_errors'][:3]}")
    print("\n".join(out), flush=True)


def runtime_python(repo: Path) -> Path:
    """A venv with the operator installed as the image installs it (``pip install .``: its runtime
    dependencies, no extras), editable so it runs this checkout's code. Rebuilt when pyproject.toml
    changes. Why not the dev venv: kopf imports the kubernetes client library (12 MiB of models, for
    isinstance checks) and pykube whenever they are installed, and the image has neither."""
    venv_dir = cache_root().parent / "bench-operator-venv"
    stamp = venv_dir / "pyproject.sha256"
    wanted = hashlib.sha256((repo / "pyproject.toml").read_bytes()).hexdigest() + f" {repo}"
    python = venv_dir / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"installing the operator's runtime dependencies into {venv_dir} (once)")
    if venv_dir.exists():
        shutil.rmtree(venv_dir)
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True, timeout=300)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", str(repo)],
        check=True,
        timeout=900,
    )
    stamp.write_text(wanted)
    return python


def main(argv: Sequence[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pipelines", type=int, default=100, help=f"RerankPipelines to create (1..{MAX_PIPELINES})"
    )
    parser.add_argument("--namespaces", type=int, default=1, help="spread them over this many namespaces")
    parser.add_argument("--example", type=Path, default=repo / "examples" / "minimal.yaml")
    parser.add_argument(
        "--gpus-per-node", type=int, default=4, help="nvidia.com/gpu per fake node (sandbox: 4)"
    )
    parser.add_argument("--standins", type=int, default=4, help="shared stand-in processes per model name")
    parser.add_argument(
        "--idle-seconds", type=float, default=120.0, help=f"idle window (0..{MAX_IDLE_SECONDS:.0f})"
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=10.0, help="pause between all Ready and the idle window"
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=None,
        help="seconds to wait for all Ready (default 300 + 1.5 s per pipeline)",
    )
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the operator, e.g. RERANK_OPERATOR_RESYNC_SECONDS=10 (default: its own defaults)",
    )
    parser.add_argument(
        "--disable-qps-limits",
        action="store_true",
        help="lift the sandbox controller-manager's and scheduler's client rate limits (20 and 50 requests/s), "
        "as kwokctl --disable-qps-limits does: at N=1000 they, not the operator, bound the time to Ready",
    )
    parser.add_argument(
        "--operator-python",
        type=Path,
        default=None,
        help="the Python that runs the operator (default: a venv with only the operator's runtime "
        "dependencies, as the image installs them, built once in the cache and again when pyproject.toml "
        "changes; the dev venv has the test tools' libraries too, which kopf imports when present)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox workdir (logs) afterwards")
    args = parser.parse_args(argv)
    if not 1 <= args.pipelines <= MAX_PIPELINES:
        parser.error(f"--pipelines must be in 1..{MAX_PIPELINES}")
    if not 1 <= args.namespaces <= args.pipelines:
        parser.error("--namespaces must be in 1..--pipelines")
    if not 0 <= args.idle_seconds <= MAX_IDLE_SECONDS:
        parser.error(f"--idle-seconds must be in 0..{MAX_IDLE_SECONDS:.0f}")
    if args.gpus_per_node < 1 or args.standins < 1 or not 0 <= args.settle_seconds <= 600:
        parser.error("--gpus-per-node and --standins must be >= 1, --settle-seconds in 0..600")
    if any("=" not in kv for kv in args.operator_env):
        parser.error("--operator-env takes KEY=VALUE")
    if args.ready_timeout is None:
        args.ready_timeout = 300.0 + 1.5 * args.pipelines
    args.ready_timeout = min(args.ready_timeout, 7200.0)
    if args.operator_python is None:
        args.operator_python = runtime_python(repo)
    rep = run(args)
    print_report(rep)
    if args.json:
        args.json.write_text(json.dumps(rep, indent=1, default=str) + "\n")
        log(f"results written to {args.json}")
    return 0 if rep["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
