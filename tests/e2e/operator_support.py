"""Running the real operator process (``rerank-operator run``) against an e2e cluster.

The operator probes ``http://<name>-reranker.<ns>.svc.cluster.local:8000``. Outside a cluster that
name does not resolve, so the probe's documented resolver seam (``RERANK_OPERATOR_HOST_OVERRIDES``)
maps each pipeline's Service name to a loopback reranker stand-in. Everything else is real:
the apiserver, the controllers, the scheduler, kwok's fake GPU nodes and the operator binary.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rerank_operator.sandbox import ClusterClient, ManagedProcess, Sandbox, SandboxTimeout, procs

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "rerank-operator"
Helm = Callable[..., "subprocess.CompletedProcess[str]"]  # conftest's `helm` fixture


def service_host(name: str, namespace: str, port: int = 8000) -> str:
    """An override key for every Service of a pipeline: the stable one (``<name>-reranker``) and each
    revision's (``<name>-<revision>``, BlueGreen), which its canary calls."""
    return f"{name}-*.{namespace}.svc.cluster.local:{port}"


class OperatorProcess:
    """``rerank-operator run -A`` as a subprocess; restartable; logs kept for failure reports."""

    def __init__(
        self,
        cluster: ClusterClient,
        log_dir: Path,
        overrides: dict[str, str],
    ):
        self.log_dir = log_dir
        self.env = {
            **cluster.env,
            "RERANK_OPERATOR_HOST_OVERRIDES": ",".join(f"{k}={v}" for k, v in overrides.items()),
            "RERANK_OPERATOR_RESYNC_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: ManagedProcess | None = None
        self.starts = 0
        self.metrics_port = procs.free_port()

    def start(self) -> None:
        self.starts += 1
        argv = [
            str(Path(sys.executable).parent / "rerank-operator"),
            "run",
            "-A",
            "--verbose",
            f"--metrics-port={self.metrics_port}",
        ]
        self.proc = ManagedProcess(
            "operator", argv, log_path=self.log_dir / f"operator-{self.starts}.log", env=self.env, cwd=REPO
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def kill(self) -> None:
        """Abrupt stop (SIGKILL), as when a node dies mid-reconcile."""
        if self.proc is not None:
            self.proc.stop(grace=0)
            self.proc = None

    def metrics(self) -> str:
        """The operator's Prometheus exposition, scraped over loopback."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text: str = resp.read().decode()
            return text


def wait_until(
    check: Callable[[], Any], *, timeout: float, what: str, operator: OperatorProcess | None = None
) -> Any:
    """The sandbox's bounded poll, failing fast (with its log) if the operator process dies."""
    watch = [operator.proc] if operator is not None and operator.proc is not None else []
    return procs.wait_until(check, timeout=timeout, what=what, interval=0.5, watch=watch)


def wait_ready(
    cluster: ClusterClient,
    operator: OperatorProcess,
    name: str,
    namespace: str,
    *,
    timeout: float,
    describe: Callable[[], str] | None = None,
) -> dict[str, Any]:
    """The pipeline once ``Ready=True``; on a timeout, fail with its last status (and ``describe()``)."""
    seen: list[dict[str, Any] | None] = [None]

    def ready() -> dict[str, Any] | None:
        obj = seen[0] = get_json(cluster, "rrp", name, "-n", namespace)
        c = condition(obj, "Ready")
        return obj if c and c["status"] == "True" else None

    try:
        result: dict[str, Any] = wait_until(
            ready, timeout=timeout, what=f"{namespace}/{name} Ready=True", operator=operator
        )
    except SandboxTimeout as exc:
        status = json.dumps((seen[0] or {}).get("status"), indent=1)
        extra = f"\n{describe()}" if describe is not None else ""
        raise AssertionError(f"{namespace}/{name} status at timeout:\n{status}{extra}\n{exc}") from None
    return result


@contextlib.contextmanager
def operator_for(
    cluster: ClusterClient, namespaces: Iterable[str], overrides: dict[str, str], log_dir: Path
) -> Iterator[OperatorProcess]:
    """A started operator for a module's own namespaces (created first); at the end its pipelines are
    deleted, the operator stopped and the namespaces removed."""
    names = list(namespaces)
    for ns in names:
        cluster.create_namespace(ns)
    op = OperatorProcess(cluster, log_dir, overrides)
    op.start()
    try:
        yield op
    finally:
        for ns in names:
            cluster.kubectl("delete", "rrp", "--all", "-n", ns, "--wait=false", check=False)
        op.stop()
        cluster.delete_namespaces(*names)


def get_json(cluster: ClusterClient, *args: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", *args, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def pipeline_manifest(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"name": "BAAI/bge-reranker-base", "maxModelLen": 512},
        "probe": {"intervalSeconds": 2, "timeoutSeconds": 5, "failureThreshold": 2},
        # one Deployment rolled in place (<name>-reranker): what these scenarios are about; the
        # BlueGreen ones (test_bluegreen_e2e) pass rollout themselves
        "rollout": {"strategy": "Surge"},
    }
    base.update(spec)
    return {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": base,
    }


def grant_manifest(namespace: str, source: str, *, name: str | None = None, **extra: Any) -> dict[str, Any]:
    """A RerankPublishGrant: ``namespace`` accepts copies from pipelines in ``source``."""
    return {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPublishGrant",
        "metadata": {"name": name or f"from-{source}", "namespace": namespace},
        "spec": {"from": [{"namespace": source, **extra}]},
    }


def printed_columns(table: str) -> dict[str, str]:
    """``kubectl get`` output (one object) as column -> value, cut at the header's offsets, so an
    empty cell stays empty instead of shifting the columns after it."""
    header, row = table.splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    ends = [*starts[1:], None]
    return {name: row[start:end].strip() for name, start, end in zip(names, starts, ends, strict=True)}


def names_of(items: Iterable[dict[str, Any]]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)


def namespaced_values(watch: list[str], publish: list[str]) -> list[str]:
    """Chart values for namespaced mode: Roles in ``watch``, ConfigMap-only Roles in ``publish``."""
    return [
        "--set-json",
        f"watchNamespaces={json.dumps(watch)}",
        "--set-json",
        f"publishNamespaces={json.dumps(publish)}",
    ]


# ---------------------------------------------------------------- the operator as the chart's ServiceAccount
def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return int(resp.status) == 200


def start_standin(sandbox: Sandbox, name: str, *, api_key: str | None = None) -> int:
    """A loopback reranker stand-in run as a sandbox process (logged, stopped with the sandbox)."""
    port = procs.free_port()
    argv = [sys.executable, "-m", "rerank_operator.standin", "--host", "127.0.0.1", "--port", str(port)]
    env = {}
    if api_key:
        argv += ["--api-key-env", "STANDIN_KEY"]
        env["STANDIN_KEY"] = api_key
    sandbox.start_process(
        name, argv, env=env, ready=functools.partial(_http_ok, f"http://127.0.0.1:{port}/health"), timeout=30
    )
    return port


def host_overrides(pipeline_ns: str, ports: dict[str, int]) -> str:
    """RERANK_OPERATOR_HOST_OVERRIDES: each pipeline's Service name -> its loopback stand-in."""
    return ",".join(f"{service_host(name, pipeline_ns)}=127.0.0.1:{port}" for name, port in ports.items())


@dataclass
class ServiceAccountOperator:
    """An operator running with the chart's ServiceAccount token, and the namespaces it serves."""

    sandbox: Sandbox
    operator_ns: str
    pipeline_ns: str
    publish_ns: str
    service_account: str
    operator: ManagedProcess

    def operator_log(self, lines: int = 200) -> str:
        return procs.tail(self.operator.log_path, lines)

    def forbidden_lines(self) -> list[str]:
        text = self.operator.log_path.read_text(errors="replace")
        # not the milliseconds of a log timestamp ("12:58:31,403")
        return [line for line in text.splitlines() if re.search(r"(?<![,.:\d])\b403\b|[Ff]orbidden", line)]

    def wait(self, check: Callable[[], Any], *, timeout: float, what: str) -> Any:
        """Poll; on timeout fail with the operator's log (403s there mean the RBAC is too narrow)."""
        try:
            return self.sandbox.wait_for(check, timeout=timeout, what=what, also=[self.operator])
        except SandboxTimeout as exc:
            pytest.fail(
                f"{exc}\n\n---- operator log ({self.operator.log_path}), last 200 lines ----\n"
                f"{self.operator_log()}\n---- 403/Forbidden lines ----\n"
                + "\n".join(self.forbidden_lines()[-20:]),
                pytrace=False,
            )

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return get_json(self.sandbox, "configmap", name, "-n", namespace)

    def gone(self, kind: str, namespace: str, name: str) -> bool:
        proc = self.sandbox.kubectl("get", kind, name, "-n", namespace, check=False)
        return proc.returncode != 0 and "NotFound" in proc.stderr

    def ready(self, name: str) -> dict[str, Any] | None:
        """The pipeline once Ready=True for its current generation, else None."""
        obj = get_json(self.sandbox, "rerankpipeline", name, "-n", self.pipeline_ns)
        ready = condition(obj, "Ready")
        if obj is None or ready is None or ready["status"] != "True":
            return None
        return obj if obj["status"].get("observedGeneration") == obj["metadata"]["generation"] else None

    def delete_and_wait_gone(self, name: str) -> None:
        self.sandbox.kubectl("delete", "rerankpipeline", name, "-n", self.pipeline_ns, "--wait=false")
        self.wait(
            lambda: self.gone("rerankpipeline", self.pipeline_ns, name),
            timeout=60,
            what=f"pipeline {name} to be gone (finalizer released)",
        )


@contextlib.contextmanager
def deployed_operator(
    sandbox: Sandbox,
    helm: Helm,
    work: Path,
    *,
    suffix: str,
    operator_ns: str,
    overrides: str,
    watch: list[str] | None = None,
    publish: list[str] | None = None,
) -> Iterator[tuple[str, ManagedProcess]]:
    """The chart's ServiceAccount + RBAC really applied, and the operator running as that ServiceAccount.

    ``watch=None``: cluster-wide (``-A``, ClusterRole); else ``-n`` per namespace and Roles (chart values
    ``watchNamespaces`` / ``publishNamespaces``).
    """
    release = f"sa-{suffix}"
    values = namespaced_values(watch, publish or []) if watch else []
    rbac_text = helm(
        "template", release, str(CHART), "--namespace", operator_ns,
        "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml",
        "--show-only", "templates/aggregated-roles.yaml", *values,
    ).stdout  # fmt: skip
    operator_name = f"operator-sa-{suffix}"
    sandbox.apply(rbac_text)
    try:
        sa_name = f"{release}-rerank-operator"
        kubeconfig = sandbox.service_account_kubeconfig(
            operator_ns, sa_name, path=work / f"sa-{suffix}.kubeconfig"
        )
        who = sandbox.kubectl(
            "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
        )
        assert who.stdout == f"system:serviceaccount:{operator_ns}:{sa_name}"
        scope = [arg for ns in watch for arg in ("-n", ns)] if watch else ["-A"]
        liveness = procs.free_port()
        operator = sandbox.start_process(
            operator_name,
            [str(Path(sys.executable).parent / "rerank-operator"), "run", *scope,
             f"--liveness=http://127.0.0.1:{liveness}/healthz"],
            env={
                "KUBECONFIG": str(kubeconfig),  # the ServiceAccount, not the sandbox admin
                "RERANK_OPERATOR_HOST_OVERRIDES": overrides,
                "RERANK_OPERATOR_RESYNC_SECONDS": "5",
            },
            ready=functools.partial(_http_ok, f"http://127.0.0.1:{liveness}/healthz"),
            timeout=60,
        )  # fmt: skip
        yield sa_name, operator
    finally:
        if operator_name in sandbox.processes:
            sandbox.stop_process(operator_name)
        sandbox.kubectl(
            "delete", "-f", "-", "--ignore-not-found", "--wait=false", input=rbac_text, check=False
        )
