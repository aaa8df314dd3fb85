"""Fake nodes that kwok keeps Ready and whose pods it marks Running.

GPU nodes advertise ``nvidia.com/gpu`` and carry the taint the NVIDIA device-plugin/GPU-operator convention
uses, so scheduling behaves as on a real GPU pool: pods need both the resource request and a toleration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
KWOK_SELECTOR = f"{KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}"

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
GPU_LABEL = "nvidia.com/gpu.present"


@dataclass(frozen=True)
class FakeNode:
    """Shape of one fake node; `gpus` == 0 means a CPU-only node without the GPU taint."""

    name: str
    gpus: int = 0
    cpu: str = "32"
    memory: str = "128Gi"
    pods: str = "110"
    gpu_product: str = "NVIDIA-L4"
    labels: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """Node object including status (the apiserver keeps a Node's status on create, like a kubelet's)."""
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": self.pods, "ephemeral-storage": "100Gi"}
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            **self.labels,
        }
        spec: dict[str, Any] = {}
        if self.gpus:
            resources[GPU_RESOURCE] = str(self.gpus)
            labels[GPU_LABEL] = "true"
            labels["nvidia.com/gpu.product"] = self.gpu_product
            labels["nvidia.com/gpu.count"] = str(self.gpus)
            spec["taints"] = [dict(GPU_TAINT)]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE, "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": spec,
            "status": {"capacity": dict(resources), "allocatable": dict(resources)},
        }


def default_nodes(gpu_nodes: int = 2, cpu_nodes: int = 1, gpus_per_node: int = 4) -> list[FakeNode]:
    """kwok-gpu-0..N (4 GPUs each) and kwok-cpu-0..M."""
    return [FakeNode(f"kwok-gpu-{i}", gpus=gpus_per_node) for i in range(gpu_nodes)] + [
        FakeNode(f"kwok-cpu-{i}") for i in range(cpu_nodes)
    ]


def node_list(nodes: list[FakeNode]) -> dict[str, Any]:
    """A v1 List that `kubectl apply -f -` accepts in one call."""
    return {"apiVersion": "v1", "kind": "List", "items": [n.manifest() for n in nodes]}
