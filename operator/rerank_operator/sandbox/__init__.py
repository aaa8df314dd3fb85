"""Local Kubernetes sandbox for e2e tests and demos: a real control plane plus kwok-faked GPU nodes.

Public API::

    from rerank_operator.sandbox import Sandbox, ClusterClient
    with Sandbox(crds=Path("crds")) as sb:      # builds/caches binaries on first use
        sb.kubectl("get", "nodes", "-o", "wide")

Modules: ``build`` (pinned binaries, kwok's stages, cache, env overrides), ``cluster`` (Sandbox),
``client`` (kubectl-driven ClusterClient, also for kind/k3d clusters), ``nodes`` (fake node shapes),
``pki`` (openssl certs, static tokens), ``kubeconfig``, ``procs`` (process groups, bounded waits, long
commands with progress), ``engine`` (the real vLLM's CPU build and a packaged model, installed and
cached), ``podrunner`` (a rendered container as a local process), ``serving`` (something answering
for every pipeline in the sandbox).
Importing this package starts nothing and needs no binaries.
"""

from rerank_operator.sandbox.build import BuildError, ensure_binaries
from rerank_operator.sandbox.client import ClusterClient, KubectlError, find_kubectl
from rerank_operator.sandbox.cluster import CLUSTER_BINARIES, Sandbox, default_crds_dir
from rerank_operator.sandbox.nodes import GPU_LABEL, GPU_RESOURCE, GPU_TAINT, FakeNode, default_nodes
from rerank_operator.sandbox.procs import ManagedProcess, SandboxTimeout

__all__ = [
    "CLUSTER_BINARIES",
    "GPU_LABEL",
    "GPU_RESOURCE",
    "GPU_TAINT",
    "BuildError",
    "ClusterClient",
    "FakeNode",
    "KubectlError",
    "ManagedProcess",
    "Sandbox",
    "SandboxTimeout",
    "default_crds_dir",
    "default_nodes",
    "ensure_binaries",
    "find_kubectl",
]
