"""The real operator process, authenticated as the chart's ServiceAccount, on a real RBAC apiserver.

This is what proves the chart's RBAC is sufficient (and the narrow-verb claims honest): the operator
(``rerank-operator run -A``) runs with a kubeconfig holding a TokenRequest token of the ServiceAccount
the chart creates, bound only to the chart's ClusterRole. Any missing verb shows up as a 403 in the
operator log, which every failure message here includes.

Reranker pods are kwok-faked; the canary reaches loopback stand-ins through the resolver seam
(``RERANK_OPERATOR_HOST_OVERRIDES``), exactly as production would reach the Service.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import condition, get_json, service_host

from rerank_operator.sandbox import ClusterClient, ManagedProcess, Sandbox, SandboxTimeout, ensure_binaries
from rerank_operator.sandbox.procs import free_port, tail

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "rerank-operator"
EXAMPLE = REPO_ROOT / "examples" / "minimal.yaml"
FINALIZER = "rerank.dev/finalizer"
API_KEY = "e2e-" + uuid.uuid4().hex  # what the keyed stand-in demands and the Secret holds
KEYED = "bge-keyed"


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return int(resp.status) == 200


@dataclass
class Env:
    sandbox: Sandbox
    operator_ns: str
    pipeline_ns: str
    publish_ns: str
    service_account: str
    operator: ManagedProcess

    # ---------------------------------------------------------------------------------------- helpers
    def operator_log(self, lines: int = 200) -> str:
        return tail(self.operator.log_path, lines)

    def forbidden_lines(self) -> list[str]:
        text = self.operator.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if re.search(r"\b403\b|[Ff]orbidden", line)]

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


def _helm() -> Path:
    return ensure_binaries(["helm"])["helm"]


def _start_standin(sandbox: Sandbox, name: str, *, api_key: str | None = None) -> int:
    port = free_port()
    argv = [sys.executable, "-m", "rerank_operator.standin", "--host", "127.0.0.1", "--port", str(port)]
    env = {}
    if api_key:
        argv += ["--api-key-env", "STANDIN_KEY"]
        env["STANDIN_KEY"] = api_key
    sandbox.start_process(
        name, argv, env=env, ready=functools.partial(_http_ok, f"http://127.0.0.1:{port}/health"), timeout=30
    )
    return port


def _overrides(pipeline_ns: str, ports: dict[str, int]) -> str:
    """RERANK_OPERATOR_HOST_OVERRIDES: each pipeline's Service name -> its loopback stand-in."""
    return ",".join(f"{service_host(name, pipeline_ns)}=127.0.0.1:{port}" for name, port in ports.items())


@contextlib.contextmanager
def deployed_operator(
    sandbox: Sandbox,
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
    values: list[str] = []
    if watch:
        values = ["--set-json", f"watchNamespaces={json.dumps(watch)}",
                  "--set-json", f"publishNamespaces={json.dumps(publish or [])}"]  # fmt: skip
    rbac_text = subprocess.run(
        [str(_helm()), "template", release, str(CHART), "--namespace", operator_ns,
         "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml", *values],
        env={**os.environ, "HELM_CACHE_HOME": str(work / "helm-cache"), "HELM_CONFIG_HOME": str(work / "helm-config"),
             "HELM_DATA_HOME": str(work / "helm-data")},
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    operator_name = f"operator-sa-{suffix}"
    sandbox.kubectl("apply", "-f", "-", input=rbac_text)
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
        liveness = free_port()
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


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator-sa")


@pytest.fixture(scope="module")
def env(cluster: ClusterClient, sandbox: Sandbox, work: Path) -> Iterator[Env]:
    """Cluster-wide mode (chart default): ClusterRole, ``run -A``."""
    # `cluster` installs the CRDs; `sandbox` (the same cluster) runs and logs the extra processes.
    suffix = uuid.uuid4().hex[:6]
    operator_ns, pipeline_ns, publish_ns = f"rerank-system-{suffix}", f"rr-e2e-{suffix}", f"rr-apps-{suffix}"
    standins: list[str] = []
    for ns in (operator_ns, pipeline_ns, publish_ns):
        sandbox.kubectl("create", "namespace", ns)
    try:
        # Stand-in rerankers on loopback: one open, one demanding the API key from the Secret.
        ports = {}
        for name, key in (("bge-base", None), (KEYED, API_KEY)):
            standins.append(f"standin-{name}-{suffix}")
            ports[name] = _start_standin(sandbox, standins[-1], api_key=key)
        with deployed_operator(
            sandbox, work, suffix=suffix, operator_ns=operator_ns, overrides=_overrides(pipeline_ns, ports)
        ) as (sa_name, operator):
            yield Env(sandbox, operator_ns, pipeline_ns, publish_ns, sa_name, operator)
    finally:
        for name in standins:
            if name in sandbox.processes:
                sandbox.stop_process(name)
        for ns in (pipeline_ns, publish_ns, operator_ns):
            sandbox.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def _delete_and_wait_gone(env: Env, name: str) -> None:
    env.sandbox.kubectl("delete", "rerankpipeline", name, "-n", env.pipeline_ns, "--wait=false")
    env.wait(
        lambda: env.gone("rerankpipeline", env.pipeline_ns, name),
        timeout=60,
        what=f"pipeline {name} to be gone (finalizer released)",
    )


def test_minimal_example_ready_and_deleted(env: Env) -> None:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    name = manifest["metadata"]["name"]
    manifest["metadata"]["namespace"] = env.pipeline_ns
    env.sandbox.apply(manifest)  # created by a user (admin), reconciled by the ServiceAccount

    obj = env.wait(lambda: env.ready(name), timeout=180, what=f"{name} Ready=True")
    assert FINALIZER in obj["metadata"]["finalizers"]
    status = obj["status"]
    endpoint = f"http://{name}-reranker.{env.pipeline_ns}.svc.cluster.local:8000"
    assert status["endpoint"] == endpoint
    assert status["published"]["ready"] is True
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Stalled"]["status"] == "False"
    assert conds["Degraded"]["status"] == "False"
    assert conds["Reconciling"]["status"] == "False"

    cm = env.configmap(env.pipeline_ns, f"{name}-ranker")
    assert cm is not None, "published ConfigMap missing"
    assert cm["data"]["ready"] == "true", cm["data"]
    assert cm["data"]["endpoint"] == endpoint

    # Events were posted by the operator under the ServiceAccount (events: create).
    events = env.sandbox.kubectl_json(
        "get", "events", "-n", env.pipeline_ns, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    assert "Ready" in {e["reason"] for e in events}, (
        [e["reason"] for e in events],
        env.forbidden_lines()[-5:],
    )

    _delete_and_wait_gone(env, name)
    # Children go through ownerReferences (garbage collector), not by the operator: it has no delete on them.
    env.wait(
        lambda: env.gone("deployment", env.pipeline_ns, f"{name}-reranker"), timeout=60, what="Deployment GC"
    )
    env.wait(
        lambda: env.gone("configmap", env.pipeline_ns, f"{name}-ranker"), timeout=60, what="ConfigMap GC"
    )
    assert env.forbidden_lines() == [], "\n".join(env.forbidden_lines())


def test_api_key_secret_and_cross_namespace_publish(env: Env) -> None:
    """Reads the key by name (secrets: get only) and withdraws the copy in another namespace on delete."""
    env.sandbox.kubectl(
        "create",
        "secret",
        "generic",
        "reranker-key",
        "-n",
        env.pipeline_ns,
        f"--from-literal=api-key={API_KEY}",
    )
    env.sandbox.apply(
        {
            "apiVersion": "rerank.dev/v1alpha1",
            "kind": "RerankPipeline",
            "metadata": {"name": KEYED, "namespace": env.pipeline_ns},
            "spec": {
                "model": {"name": "BAAI/bge-reranker-base", "maxModelLen": 512},
                "apiKeySecretRef": {"name": "reranker-key", "key": "api-key"},
                "probe": {"intervalSeconds": 3},
                "publish": {"namespaces": [env.publish_ns]},
            },
        }
    )
    env.wait(lambda: env.ready(KEYED), timeout=180, what=f"{KEYED} Ready=True")
    for ns in (env.pipeline_ns, env.publish_ns):
        cm = env.configmap(ns, f"{KEYED}-ranker")
        assert cm is not None and cm["data"]["ready"] == "true", (ns, cm)
        assert API_KEY not in yaml.safe_dump(cm)  # the key is never published

    _delete_and_wait_gone(env, KEYED)
    # The copy in the other namespace has no ownerReference: the operator's delete handler removed it.
    assert env.gone("configmap", env.publish_ns, f"{KEYED}-ranker")
    assert env.forbidden_lines() == [], "\n".join(env.forbidden_lines())


def test_namespaced_mode_with_roles_only(cluster: ClusterClient, sandbox: Sandbox, work: Path) -> None:
    """``watchNamespaces``: Roles only (no ClusterRole), ``run -n NS``; publishes into a ConfigMap-only namespace."""
    # One operator per object: the module's cluster-wide operator (the `env` fixture) would also
    # reconcile this pipeline, without the stand-in mapping, and the two would fight over its status.
    for other in [p for p in sandbox.processes if p.startswith("operator-sa-")]:
        sandbox.stop_process(other)
    suffix = uuid.uuid4().hex[:6]
    operator_ns, watched, publish_ns = f"rerank-system-{suffix}", f"rr-team-{suffix}", f"rr-apps-{suffix}"
    name = "bge-team"
    standin = f"standin-{name}-{suffix}"
    for ns in (operator_ns, watched, publish_ns):
        sandbox.kubectl("create", "namespace", ns)
    try:
        port = _start_standin(sandbox, standin)
        with deployed_operator(
            sandbox, work, suffix=suffix, operator_ns=operator_ns, overrides=_overrides(watched, {name: port}),
            watch=[watched], publish=[publish_ns],
        ) as (sa_name, operator):  # fmt: skip
            env = Env(sandbox, operator_ns, watched, publish_ns, sa_name, operator)
            assert not sandbox.kubectl(
                "get", "clusterrolebinding", "-o", "name", "-l", f"app.kubernetes.io/instance=sa-{suffix}"
            ).stdout.strip()
            sandbox.apply(
                {
                    "apiVersion": "rerank.dev/v1alpha1",
                    "kind": "RerankPipeline",
                    "metadata": {"name": name, "namespace": watched},
                    "spec": {
                        "model": {"name": "BAAI/bge-reranker-base", "maxModelLen": 512},
                        "probe": {"intervalSeconds": 3},
                        "publish": {"namespaces": [publish_ns]},
                    },
                }
            )
            env.wait(lambda: env.ready(name), timeout=180, what=f"{name} Ready=True")
            for ns in (watched, publish_ns):
                cm = env.configmap(ns, f"{name}-ranker")
                assert cm is not None and cm["data"]["ready"] == "true", (ns, cm)
            _delete_and_wait_gone(env, name)
            assert env.gone("configmap", publish_ns, f"{name}-ranker")
            assert env.forbidden_lines() == [], "\n".join(env.forbidden_lines())
    finally:
        if standin in sandbox.processes:
            sandbox.stop_process(standin)
        for ns in (watched, publish_ns, operator_ns):
            sandbox.kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
