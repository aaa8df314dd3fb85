"""Running the real operator process (``rerank-operator run``) against an e2e cluster.

The operator probes ``http://<name>-reranker.<ns>.svc.cluster.local:8000``. Outside a cluster that
name does not resolve, so the probe's documented resolver seam (``RERANK_OPERATOR_HOST_OVERRIDES``)
maps each pipeline's Service name to a loopback reranker stand-in. Everything else is real:
the apiserver, the controllers, the scheduler, kwok's fake GPU nodes and the operator binary.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rerank_operator.sandbox import ClusterClient, ManagedProcess, procs

REPO = Path(__file__).resolve().parents[2]


def service_host(name: str, namespace: str, port: int = 8000) -> str:
    return f"{name}-reranker.{namespace}.svc.cluster.local:{port}"


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
    }
    base.update(spec)
    return {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPipeline",
        "metadata": {"name": name, "namespace": namespace},
        "spec": base,
    }


def names_of(items: Iterable[dict[str, Any]]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)
