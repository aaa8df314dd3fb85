"""A real control plane on 127.0.0.1: kine (SQLite) + kube-apiserver + controller-manager + scheduler + kwok.

Why this and not kind/envtest: no container runtime or downloads are available, and the operator's
behaviour depends on things envtest lacks (garbage collection, Deployments turning into scheduled pods,
GPU taints/allocatable). kwok fakes the kubelets: pods bound to its nodes become Running/Ready.

    with Sandbox(crds=Path("crds")) as sb:
        sb.kubectl("get", "nodes")
        subprocess.run([...], env=sb.env)          # KUBECONFIG points at the admin kubeconfig
        sb.start_process("operator", [...])        # logged + torn down with the sandbox

Every component logs to ``<workdir>/logs/<name>.log``; timeouts quote those logs. Teardown SIGTERMs then
SIGKILLs each component's process group; children also get a parent-death signal, so a killed test run
leaves nothing behind. The workdir is deleted on a clean stop and kept (and printed) after a failure.

Environment:

``RERANK_SANDBOX_TIMEOUT``  seconds allowed for each startup phase (default 90).
``RERANK_SANDBOX_KEEP=1``   keep the workdir (certs, kubeconfigs, logs, SQLite db) after stop.
Binary lookup and building: see :mod:`rerank_operator.sandbox.build`.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import ssl
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from rerank_operator.sandbox.build import KUBERNETES_COMMANDS, ensure_binaries, kwok_stages
from rerank_operator.sandbox.client import ClusterClient
from rerank_operator.sandbox.kubeconfig import write_kubeconfig
from rerank_operator.sandbox.nodes import KWOK_SELECTOR, FakeNode, default_nodes, node_list
from rerank_operator.sandbox.pki import Pki, StaticUser, generate_pki, render_token_file
from rerank_operator.sandbox.procs import (
    ManagedProcess,
    accepts_connections,
    free_port,
    raise_if_interrupted,
    stop_all,
    wait_until,
)

log = logging.getLogger("rerank_operator.sandbox")
T = TypeVar("T")

HOST = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_LEASE_SECONDS = 40  # kubelet default
CLUSTER_BINARIES = ("kine", *KUBERNETES_COMMANDS, "kwok")
STOP_GRACE_SECONDS = 5.0
# Every process the sandbox starts carries this variable (its workdir), so leftovers can be found.
SANDBOX_ID_ENV = "RERANK_SANDBOX_ID"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def default_crds_dir() -> Path | None:
    """./crds if present, else the checkout's crds/ (editable install); None when neither has YAML."""
    here = Path(__file__).resolve()
    for candidate in (Path.cwd() / "crds", here.parents[3] / "crds"):
        if candidate.is_dir() and any(candidate.glob("*.y*ml")):
            return candidate
    return None


def _http_ok(url: str, *, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, context=context, timeout=5) as resp:
        return int(resp.status) == 200


# kwokctl's "unlimited" client rate (consts.DefaultUnlimitedQPS/Burst), for disable_qps_limits
UNLIMITED_QPS = 5000
UNLIMITED_BURST = 10000


class Sandbox(ClusterClient):
    """Context manager owning the whole local cluster. See the module docstring."""

    def __init__(
        self,
        *,
        crds: Path | None = None,
        nodes: Sequence[FakeNode] | None = None,
        workdir: Path | None = None,
        keep_workdir: bool | None = None,
        timeout: float | None = None,
        build: bool | None = None,
        binaries: Mapping[str, Path] | None = None,
        die_with_parent: bool = True,
        disable_qps_limits: bool = False,
    ) -> None:
        """
        crds: file or directory applied with ``kubectl apply -f`` once the cluster is up (None: skip).
        nodes: fake nodes to register (default: 2 GPU nodes with 4 GPUs each, 1 CPU node).
        workdir: where certs/kubeconfigs/logs/db go (default: a fresh temp dir).
        build: compile missing binaries (default: unless RERANK_SANDBOX_NO_BUILD=1).
        binaries: explicit paths, skipping lookup/build for those names.
        die_with_parent: children get SIGKILL when the spawning thread exits (start from a long-lived thread).
        disable_qps_limits: lift the controller-manager's and scheduler's client-side rate limits (20 and 50
            requests/s by default), as ``kwokctl create cluster --disable-qps-limits`` does, for scale
            benchmarks of what runs on top: at 1000 Deployments the controller-manager's 20 requests/s alone
            take minutes to create the pods.
        """
        self.crds = crds
        self.nodes = list(default_nodes() if nodes is None else nodes)
        self._own_workdir = workdir is None
        # A temp workdir is only created by start(), once the binaries are there (no litter on build errors).
        self.workdir = Path(workdir) if workdir else Path(tempfile.gettempdir()) / "rerank-sandbox-unstarted"
        self.keep_workdir = _env_flag("RERANK_SANDBOX_KEEP") if keep_workdir is None else keep_workdir
        self.timeout = float(os.environ.get("RERANK_SANDBOX_TIMEOUT", "90")) if timeout is None else timeout
        self._build = build
        self._binaries = dict(binaries or {})
        self._die_with_parent = die_with_parent
        self._disable_qps_limits = disable_qps_limits
        self.processes: dict[str, ManagedProcess] = {}
        self.timings: dict[str, float] = {}
        self.ports: dict[str, int] = {}
        self.server = ""
        self.pki: Pki | None = None
        self._users: dict[str, StaticUser] = {}
        self._failed = False
        self._started = False
        self._kwok_stages = ""
        super().__init__(self.workdir / "admin.kubeconfig")
        self._set_workdir(self.workdir)

    def _set_workdir(self, workdir: Path) -> None:
        """Derive every path from the workdir (valid once start() has begun)."""
        self.workdir = workdir
        self.logs_dir = workdir / "logs"
        self.kubeconfig = workdir / "admin.kubeconfig"
        self._cache_dir = workdir / "kube-cache"
        self._scratch_dir = workdir / "kubeconfigs"

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt | SystemExit):
            self._failed = True
        self.stop()

    def start(self) -> None:
        """Bring everything up and wait for readiness; on any failure tear down and re-raise."""
        if self._started:
            return
        self._started = True
        atexit.register(self.stop)
        t0 = time.monotonic()
        try:
            self._phase("binaries", self._resolve_binaries)
            if self._own_workdir:
                self._set_workdir(Path(tempfile.mkdtemp(prefix="rerank-sandbox-")))
            self._phase("pki", self._prepare_files)
            self._phase("kine", self._start_kine)
            self._phase("kube-apiserver", self._start_apiserver)
            self._phase("controllers", self._start_controllers)
            self._phase("nodes", self._register_nodes)
            if self.crds is not None:
                crds = self.crds
                self._phase("crds", lambda: self.install_crds(crds, timeout=self.timeout))
        except BaseException as exc:
            self._failed = not isinstance(exc, KeyboardInterrupt)
            self.stop()
            if self._failed and self.logs_dir.exists():
                log.error("sandbox failed to start; logs kept in %s", self.logs_dir)
            raise
        self.timings["total"] = time.monotonic() - t0
        log.info("sandbox ready in %.1fs (kubeconfig %s)", self.timings["total"], self.kubeconfig)

    def stop(self) -> None:
        """Stop all processes (hooks first, then kwok ... kine) and remove the workdir unless kept."""
        atexit.unregister(self.stop)
        # Extra processes (operator, engines, stand-ins) first, then the control plane, each group at
        # once with one grace period: a teardown takes seconds however many processes run.
        control_plane = [self.processes.pop(n) for n in CLUSTER_BINARIES if n in self.processes]
        extras = [self.processes.pop(n) for n in list(self.processes)]
        stop_all(extras, grace=STOP_GRACE_SECONDS)
        stop_all(control_plane, grace=STOP_GRACE_SECONDS)
        if not self._started or not self.workdir.exists():
            return
        if self._failed or self.keep_workdir or not self._own_workdir:
            log.warning("sandbox workdir kept: %s", self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _phase(self, name: str, fn: Callable[[], object]) -> None:
        raise_if_interrupted()
        t = time.monotonic()
        fn()
        raise_if_interrupted()
        self.timings[name] = time.monotonic() - t
        log.info("sandbox: %s ready (%.1fs)", name, self.timings[name])

    # -- hooks for extra processes -------------------------------------------------------------------------

    def start_process(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready: Callable[[], object] | None = None,
        timeout: float | None = None,
    ) -> ManagedProcess:
        """Run an extra process (operator, reranker stand-in...) with `self.env` (+ `env`), logged to
        logs/<name>.log, stopped before the control plane. `ready` is polled until truthy."""
        proc = self._launch(name, argv, env={**self.env, **(env or {})}, cwd=cwd)
        if ready is not None:
            self.wait_for(ready, timeout=timeout or self.timeout, what=f"{name} to become ready")
        return proc

    def stop_process(self, name: str) -> None:
        """Stop one process started with start_process (e.g. to restart the operator in a test)."""
        self.processes.pop(name).stop()

    def wait_for(
        self,
        check: Callable[[], T | None],
        *,
        timeout: float,
        what: str,
        also: Sequence[ManagedProcess] = (),
    ) -> T:
        """Poll `check`; fail early if a sandbox process (or one in `also`) dies; timeouts quote their logs."""
        watch = dict.fromkeys([*self.processes.values(), *also])  # each once, in start order
        return wait_until(check, timeout=timeout, what=what, watch=list(watch))

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _launch(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None, cwd: Path | None
    ) -> ManagedProcess:
        if name in self.processes:
            raise ValueError(f"a sandbox process named {name!r} already runs")
        tagged = {**(os.environ if env is None else env), SANDBOX_ID_ENV: str(self.workdir)}
        proc = ManagedProcess(
            name,
            argv,
            log_path=self.log_path(name),
            env=tagged,
            cwd=cwd,
            die_with_parent=self._die_with_parent,
        )
        self.processes[name] = proc
        return proc

    # -- startup phases ----------------------------------------------------------------------------------

    def _resolve_binaries(self) -> None:
        missing = [b for b in CLUSTER_BINARIES if b not in self._binaries]
        self._binaries.update(ensure_binaries(missing, build=self._build))
        self._kwok_stages = kwok_stages()

    def _spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Start a control-plane component from its resolved binary, in the workdir."""
        self._launch(name, [str(self._binaries[name]), *argv], env=env, cwd=self.workdir)

    def _prepare_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        self.pki = generate_pki(self.workdir / "pki")
        masters = ("system:masters",)
        self._users = {
            "admin": StaticUser.generate("sandbox-admin", masters),
            "kube-controller-manager": StaticUser.generate("system:kube-controller-manager", masters),
            "kube-scheduler": StaticUser.generate("system:kube-scheduler", masters),
            "kwok": StaticUser.generate("system:kwok-controller", masters),
        }
        token_file = self.workdir / "pki" / "tokens.csv"
        token_file.write_text(render_token_file(list(self._users.values())))
        token_file.chmod(0o600)
        self.ports = {name: free_port(HOST) for name in CLUSTER_BINARIES}
        self.server = f"https://{HOST}:{self.ports['kube-apiserver']}"
        ca_pem = self.pki.ca_cert.read_bytes()
        for key, user in self._users.items():
            path = self.kubeconfig if key == "admin" else self.workdir / f"{key}.kubeconfig"
            write_kubeconfig(path, server=self.server, ca_pem=ca_pem, token=user.token, user=user.name)
        (self.workdir / "kwok.yaml").write_text(self._kwok_stages)

    def _start_kine(self) -> None:
        db = self.workdir / "db"
        db.mkdir(exist_ok=True)
        port = self.ports["kine"]
        self._spawn(
            "kine",
            [
                f"--listen-address={HOST}:{port}",
                f"--endpoint=sqlite://{db}/state.db?_journal_mode=WAL&_busy_timeout=30000"
                "&_synchronous=OFF&_txlock=immediate&cache=shared",
                "--metrics-bind-address=0",
            ],
        )
        self.wait_for(lambda: accepts_connections(port, HOST), timeout=self.timeout, what="kine to listen")

    def _start_apiserver(self) -> None:
        assert self.pki is not None
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://{HOST}:{self.ports['kine']}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={self.ports['kube-apiserver']}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                # Published in extension-apiserver-authentication; without it the controller-manager and
                # scheduler log "missing content for CA bundle" errors every few seconds.
                f"--requestheader-client-ca-file={pki.ca_cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--token-auth-file={self.workdir / 'pki' / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SA_ISSUER}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Endpoints validation rejects loopback IPs: don't publish the "kubernetes" endpoints.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                f"--cert-dir={self.workdir / 'pki' / 'apiserver'}",
                "--v=1",
            ],
        )
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        token = self._users["admin"].token
        self.wait_for(
            lambda: _http_ok(f"{self.server}/readyz", context=ctx, token=token),
            timeout=self.timeout,
            what="kube-apiserver /readyz",
        )

    def _start_controllers(self) -> None:
        assert self.pki is not None
        pki = self.pki
        for name in ("kube-controller-manager", "kube-scheduler"):
            kubeconfig = self.workdir / f"{name}.kubeconfig"
            common = [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={HOST}",
                f"--secure-port={self.ports[name]}",
                f"--cert-dir={self.workdir / 'pki' / name}",
                "--leader-elect=false",
                "--v=1",
            ]
            if self._disable_qps_limits:
                common += [f"--kube-api-qps={UNLIMITED_QPS}", f"--kube-api-burst={UNLIMITED_BURST}"]
            if name == "kube-controller-manager":
                common += [
                    "--controllers=*",
                    "--use-service-account-credentials=false",
                    f"--service-account-private-key-file={pki.sa_key}",
                    f"--root-ca-file={pki.ca_cert}",
                    f"--cluster-signing-cert-file={pki.ca_cert}",
                    f"--cluster-signing-key-file={pki.ca_key}",
                    "--cluster-name=rerank-sandbox",
                ]
            self._spawn(name, common)
        kwok_home = self.workdir / "kwok-home"  # keeps a user's ~/.kwok/kwok.yaml out of the sandbox
        kwok_home.mkdir(exist_ok=True)
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
                f"--config={self.workdir / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_SELECTOR}",
                f"--cidr={POD_CIDR}",
                # kwok's stages post node status only every ~10 min and expect leases to carry liveness;
                # without leases (the binary's default is off) the node lifecycle controller marks every
                # node Unknown after 50 s and its pods NotReady, which kwok never undoes.
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
                f"--server-address={HOST}:{self.ports['kwok']}",
            ],
            env={**os.environ, "HOME": str(kwok_home)},
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for name, scheme in (
            ("kube-controller-manager", "https"),
            ("kube-scheduler", "https"),
            ("kwok", "http"),
        ):
            url = f"{scheme}://{HOST}:{self.ports[name]}/healthz"
            check = functools.partial(_http_ok, url, context=insecure if scheme == "https" else None)
            self.wait_for(check, timeout=self.timeout, what=f"{name} {url}")
        self.wait_for_service_account("default", timeout=self.timeout)  # the controller-manager works

    def _register_nodes(self) -> None:
        if not self.nodes:
            return
        self.apply(node_list(self.nodes))
        names = {n.name for n in self.nodes}

        def all_ready() -> bool:
            items = self.kubectl_json("get", "nodes")["items"]
            ready = set()
            for node in items:
                conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
                taints = {t["key"] for t in node.get("spec", {}).get("taints", [])}
                if conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints:
                    ready.add(node["metadata"]["name"])
            return names <= ready

        self.wait_for(all_ready, timeout=self.timeout, what=f"fake nodes {sorted(names)} Ready (kwok)")

    # -- convenience ---------------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Summary for humans and reports: server, kubeconfig, workdir, logs, pids, timings."""
        return {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "workdir": str(self.workdir),
            "logs": {n: str(p.log_path) for n, p in self.processes.items()},
            "pids": {n: p.pid for n, p in self.processes.items()},
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
        }
