"""Kubernetes Events about a pipeline, posted on condition transitions (not on every pass)."""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

from rerank_operator import FIELD_MANAGER
from rerank_operator.kube import ApiError, KubeApi, resource_path, utcnow

log = logging.getLogger(__name__)


async def post_event(
    kube: KubeApi, body: dict[str, Any], type_: Literal["Normal", "Warning"], reason: str, message: str
) -> None:
    """Best effort: a failed Event must never fail a reconcile."""
    meta = body.get("metadata") or {}
    ns = meta.get("namespace", "default")
    now = utcnow()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name', 'pipeline')}.{uuid.uuid4().hex[:12]}", "namespace": ns},
        "involvedObject": {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "name": meta.get("name"),
            "namespace": ns,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": FIELD_MANAGER,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await kube.request("POST", resource_path("Event", ns), body=event)
    except ApiError as exc:
        log.warning("could not post event %s for %s/%s: %s", reason, ns, meta.get("name"), exc)
