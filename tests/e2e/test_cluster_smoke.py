"""The e2e harness itself: API health, fake GPU nodes, scheduling, garbage collection, CRDs, tokens, teardown.

If these fail, operator e2e failures mean nothing; they also document what the sandbox does and doesn't do.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from operator_support import condition

from rerank_operator.sandbox import (
    GPU_LABEL,
    GPU_RESOURCE,
    GPU_TAINT,
    ClusterClient,
    KubectlError,
    Sandbox,
    default_crds_dir,
)
from rerank_operator.sandbox.build import KUBERNETES_VERSION
from rerank_operator.sandbox.procs import live_group_members

GPU_TOLERATION = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def cluster(bare_cluster: ClusterClient) -> ClusterClient:
    """Overrides conftest's `cluster`: harness checks must not depend on crds/ being valid."""
    return bare_cluster


def gpu_nodes(cluster: ClusterClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.kubectl_json("get", "nodes", "-l", f"{GPU_LABEL}=true")["items"]
    return items


@pytest.fixture(scope="module")
def fake_gpu_nodes(cluster: ClusterClient) -> list[dict[str, Any]]:
    nodes = gpu_nodes(cluster)
    if not nodes:
        pytest.skip(f"no nodes labelled {GPU_LABEL}=true (external cluster without fake GPU nodes)")
    return nodes


def deployment(name: str, *, gpus: int, tolerate: bool, replicas: int = 1) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "registry.invalid/reranker:never-pulled",  # kwok never pulls images
                "resources": {"limits": {GPU_RESOURCE: str(gpus)}, "requests": {"cpu": "100m"}},
            }
        ],
    }
    if tolerate:
        pod_spec["tolerations"] = [GPU_TOLERATION]
        pod_spec["nodeSelector"] = {GPU_LABEL: "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def pods(cluster: ClusterClient, namespace: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")[
        "items"
    ]
    return items


def test_apiserver_healthy(cluster: ClusterClient) -> None:
    assert cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"]
    if isinstance(cluster, Sandbox):
        assert version["serverVersion"]["gitVersion"] == KUBERNETES_VERSION
        assert cluster.server.startswith("https://127.0.0.1:")
    namespaces = {n["metadata"]["name"] for n in cluster.kubectl_json("get", "namespaces")["items"]}
    assert {"default", "kube-system"} <= namespaces


def test_fake_gpu_nodes(cluster: ClusterClient, fake_gpu_nodes: list[dict[str, Any]]) -> None:
    assert len(fake_gpu_nodes) >= 2
    declared = {n.name: n for n in cluster.nodes} if isinstance(cluster, Sandbox) else {}
    for node in fake_gpu_nodes:
        gpus = node["status"]["allocatable"][GPU_RESOURCE]
        assert int(gpus) >= 4
        assert node["status"]["capacity"][GPU_RESOURCE] == gpus
        if node["metadata"]["name"] in declared:
            assert int(gpus) == declared[node["metadata"]["name"]].gpus
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node["spec"]["taints"]
        assert condition(node, "Ready") is not None
        assert condition(node, "Ready")["status"] == "True"  # type: ignore[index]
    all_nodes = cluster.kubectl_json("get", "nodes")["items"]
    cpu_only = [n for n in all_nodes if GPU_RESOURCE not in n["status"].get("allocatable", {})]
    assert cpu_only, "expected at least one CPU-only node"
    assert not [t for n in cpu_only for t in n["spec"].get("taints", []) if t["key"] == GPU_TAINT["key"]]


def test_fake_nodes_renew_leases(cluster: ClusterClient, fake_gpu_nodes: list[dict[str, Any]]) -> None:
    """kwok posts node status only every ~10 min; liveness rides on leases, as with a real kubelet.

    Without renewed leases the node lifecycle controller marks every node Unknown after its grace
    period and their pods NotReady, and kwok never makes those pods Ready again (a CI flake once).
    """

    def leases() -> dict[str, str]:
        items = cluster.kubectl_json("get", "leases", "-n", "kube-node-lease")["items"]
        return {i["metadata"]["name"]: i["spec"].get("renewTime", "") for i in items}

    names = {n["metadata"]["name"] for n in fake_gpu_nodes}
    first = leases()
    assert names <= set(first), f"no Lease in kube-node-lease for {sorted(names - set(first))}"
    cluster.wait_for(
        lambda: all(leases()[n] != first[n] for n in names),
        timeout=60,
        what=f"leases of {sorted(names)} renewed",
    )


def test_gpu_deployment_runs_on_gpu_node(
    cluster: ClusterClient, namespace: str, fake_gpu_nodes: list[dict[str, Any]]
) -> None:
    cluster.apply(deployment("gpu-ok", gpus=1, tolerate=True, replicas=2), namespace=namespace)
    cluster.kubectl("rollout", "status", "deployment/gpu-ok", "-n", namespace, "--timeout=90s", timeout=100)
    gpu_node_names = {n["metadata"]["name"] for n in fake_gpu_nodes}
    running = pods(cluster, namespace, "gpu-ok")
    assert len(running) == 2
    for pod in running:
        assert pod["spec"]["nodeName"] in gpu_node_names
        assert pod["status"]["phase"] == "Running"
        assert condition(pod, "Ready")["status"] == "True"  # type: ignore[index]
        assert pod["status"].get("podIP")


def test_gpu_request_without_toleration_stays_pending(
    cluster: ClusterClient, namespace: str, fake_gpu_nodes: list[dict[str, Any]]
) -> None:
    cluster.apply(deployment("gpu-untolerated", gpus=1, tolerate=False), namespace=namespace)

    def unschedulable() -> dict[str, Any] | None:
        for pod in pods(cluster, namespace, "gpu-untolerated"):
            cond = condition(pod, "PodScheduled")
            if cond and cond["status"] == "False":
                return cond
        return None

    cond = cluster.wait_for(unschedulable, timeout=60, what="a PodScheduled=False condition")
    assert cond["reason"] == "Unschedulable"
    assert "untolerated taint" in cond["message"], cond["message"]
    assert "nvidia.com/gpu" in cond["message"], cond["message"]
    time.sleep(2)  # and it stays that way
    (pod,) = pods(cluster, namespace, "gpu-untolerated")
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")


def test_garbage_collection_follows_owner_references(cluster: ClusterClient, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace, "--from-literal=a=b")
    owner = cluster.kubectl_json("get", "configmap", "owner", "-n", namespace)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "owned",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner["metadata"]["uid"],
                    }
                ],
            },
            "data": {"x": "y"},
        },
        namespace=namespace,
    )
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    cluster.wait_for(
        lambda: cluster.kubectl("get", "configmap", "owned", "-n", namespace, check=False).returncode != 0,
        timeout=60,
        what="the garbage collector to delete configmap 'owned'",
    )


def test_crd_installed(cluster: ClusterClient) -> None:
    crds_dir = default_crds_dir()
    if crds_dir is None:
        pytest.skip("crds/ has no YAML yet")
    # Applying again is idempotent, as for a user re-running the install step.
    names = cluster.install_crds(crds_dir)
    crd_names = [n.split("/", 1)[1] for n in names if n.startswith("customresourcedefinition")]
    assert crd_names
    for name in crd_names:
        crd = cluster.kubectl_json("get", "crd", name)
        assert condition(crd, "Established")["status"] == "True"  # type: ignore[index]
    if "rerankpipelines.rerank.dev" in crd_names:
        cluster.kubectl("get", "rrp", "--all-namespaces", "-o", "wide")  # short name served; raises if not


def test_service_account_token_and_rbac(cluster: ClusterClient, namespace: str, tmp_path: Path) -> None:
    cluster.kubectl("create", "serviceaccount", "robot", "-n", namespace)
    sa_cluster = ClusterClient(
        cluster.service_account_kubeconfig(namespace, "robot", path=tmp_path / "sa.yaml")
    )
    whoami = json.loads(sa_cluster.kubectl("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:robot"
    with pytest.raises(KubectlError, match="forbidden"):
        sa_cluster.kubectl("get", "pods", "-n", namespace)
    cluster.kubectl(
        "create", "rolebinding", "robot-view", "-n", namespace, "--clusterrole=view",
        f"--serviceaccount={namespace}:robot",
    )  # fmt: skip
    cluster.wait_for(
        lambda: sa_cluster.kubectl("get", "pods", "-n", namespace, check=False).returncode == 0,
        timeout=30,
        what="RBAC to allow the ServiceAccount to list pods",
    )


def test_sandbox_teardown_leaves_nothing(sandbox: Sandbox) -> None:
    """A second, node-less sandbox: start_process hook + stop() kills every process group and the workdir."""
    with Sandbox(nodes=[], crds=None) as sb2:
        assert sb2.server != sandbox.server
        extra = sb2.start_process("sleeper", ["sh", "-c", "sleep 300 & sleep 300"])
        pids = [p.pid for p in sb2.processes.values()]
        workdir = sb2.workdir
        assert sb2.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
        assert "sleeper" in sb2.describe()["pids"]
        # Without a path, a ServiceAccount kubeconfig lands in the workdir (and goes with it).
        sa_kubeconfig = sb2.service_account_kubeconfig("default", "default")
        assert workdir in sa_kubeconfig.parents
        whoami = ClusterClient(sa_kubeconfig).kubectl(
            "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
        )
        assert whoami.stdout == "system:serviceaccount:default:default"
    assert not extra.alive()
    for pid in pids:
        assert live_group_members(pid) == []  # nor any child in its process group
    assert not workdir.exists()
    # The session sandbox is unaffected.
    assert sandbox.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
