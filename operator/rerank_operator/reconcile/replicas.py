"""Who owns ``Deployment.spec.replicas``: the operator while it scales, the autoscaler otherwise (pure).

The operator writes its children with server-side apply under one field manager (``rerank-operator``).
Server-side apply removes a field that a manager stops sending while it is the field's only owner: had
the operator simply dropped ``spec.replicas`` from its Deployment when autoscaling is switched on, the
apiserver would delete the count, the default (1) would take its place, and every pod but one would
go. So the switch is a two-step handover:

1. while the operator's manager still owns ``spec.replicas``, a second manager
   (``HANDOVER_MANAGER``) applies *only* ``spec.replicas`` with the live value. Same value, so no
   conflict and no change: the field now has two owners;
2. the operator's apply leaves ``spec.replicas`` out. Its manager gives the field up; the handover
   manager still owns it, so the apiserver keeps the value.

From then on the autoscaler changes the count through the ``scale`` subresource and the operator's
applies never touch it, so no pass and no resync resets it.
Turning autoscaling off is the plain direction: the operator's apply sends ``spec.replicas`` again
(forced) and takes the field back with ``spec.replicas`` as its value.
"""

from __future__ import annotations

from typing import Any

from rerank_operator import FIELD_MANAGER
from rerank_operator.kube.managed_fields import field_tree
from rerank_operator.models import RerankPipeline
from rerank_operator.render import child_names

HANDOVER_MANAGER = "rerank-operator-replicas-handover"


def owns_replicas(deployment: dict[str, Any] | None, manager: str = FIELD_MANAGER) -> bool:
    """Whether ``manager`` owns ``spec.replicas`` on the main resource (its managedFields say so).

    Either operation counts: the operator creates a child with a POST (an ``Update`` entry) and folds
    that entry into its ``Apply`` entry on the next apply (``kube.client.fold_managed_fields``), so a
    count owned through the create is about to be owned, and dropped, by the apply.
    """
    for entry in ((deployment or {}).get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("subresource"):
            continue
        spec = field_tree(entry).get("f:spec") or {}
        if "f:replicas" in spec:
            return True
    return False


def handover_manifest(pipeline: RerankPipeline, deployment: dict[str, Any] | None) -> dict[str, Any] | None:
    """Step 1 of the handover (module docstring): the apply for ``HANDOVER_MANAGER``, or None when
    nothing needs handing over (no autoscaling, no Deployment yet, or the operator owns no count)."""
    if pipeline.spec.autoscaling is None or deployment is None or not owns_replicas(deployment):
        return None
    replicas = (deployment.get("spec") or {}).get("replicas")
    if replicas is None:
        return None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": child_names(pipeline).deployment, "namespace": pipeline.namespace},
        "spec": {"replicas": int(replicas)},
    }


def desired_replicas(pipeline: RerankPipeline, deployment: dict[str, Any] | None) -> int:
    """The pod count readiness, ``ScaledToZero`` and rollouts are judged against: ``spec.replicas``
    while the operator scales, the Deployment's live count while an autoscaler does (before the
    Deployment exists, ``minReplicas``, which the autoscaler enforces first)."""
    autoscaling = pipeline.spec.autoscaling
    if autoscaling is None:
        return pipeline.spec.replicas
    live = ((deployment or {}).get("spec") or {}).get("replicas")
    return int(live) if live is not None else autoscaling.min_replicas
