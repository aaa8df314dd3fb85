"""Async verbs on raw manifests: get, list, apply (server-side), delete, patch status.

The kubernetes client is synchronous; calls run in a worker thread so kopf's event loop never
blocks. Applies use server-side apply with field manager ``rerank-operator``: re-applying the same
manifest is a no-op (no resourceVersion bump), fields the operator stops setting are removed, and
fields other controllers own (e.g. a Service's clusterIP) are left alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from rerank_operator import FIELD_MANAGER
from rerank_operator.kube.paths import object_path, resource_path

log = logging.getLogger(__name__)

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON = "application/json"


class ApiError(Exception):
    """A non-2xx answer from the apiserver, with its status code and message."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        """Worth retrying as is (as opposed to a rejected object)."""
        return self.status in (0, 409, 429) or self.status >= 500


def load_api_client() -> k8s_client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (``$KUBECONFIG``)."""
    try:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        # $KUBECONFIG read now, not when the kubernetes package was imported
        k8s_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
    return k8s_client.ApiClient()


class KubeApi:
    def __init__(self, api_client: k8s_client.ApiClient, *, timeout: float = 30.0):
        self._api = api_client
        self._timeout = timeout

    # ------------------------------------------------------------------------------ transport
    def _request_sync(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = JSON,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        m, url, hdrs, payload, _ = self._api.param_serialize(
            method,
            path,
            query_params=query or None,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._api.call_api(
                m, url, header_params=hdrs, body=payload, _request_timeout=self._timeout
            )
            data = resp.read()  # type: ignore[no-untyped-call]
            status = resp.status
        except k8s_client.ApiException as exc:  # raised for transport-level failures
            raise ApiError(exc.status or 0, exc.reason or "Error", str(exc.body or exc)) from exc
        except Exception as exc:  # urllib3 connection errors and the like
            raise ApiError(0, type(exc).__name__, str(exc)) from exc
        parsed: dict[str, Any] = {}
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = {"message": data.decode("utf-8", "replace")[:500]}
        if not 200 <= status < 300:
            raise ApiError(status, str(parsed.get("reason", "Error")), str(parsed.get("message", "")))
        return parsed

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._request_sync, method, path, **kwargs)

    # ---------------------------------------------------------------------------------- verbs
    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", object_path(kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        query = [("labelSelector", label_selector)] if label_selector else None
        result = await self.request("GET", resource_path(kind, namespace), query=query)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply; creates the object if missing.

        API emulators without server-side apply answer 404 for a missing object (a real apiserver
        creates it), so a 404 falls back to a plain create; the manifest is the same either way.
        """
        meta = manifest["metadata"]
        path = object_path(manifest["kind"], meta["namespace"], meta["name"])
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        try:
            return await self.request("PATCH", path, body=manifest, query=query, content_type=APPLY)
        except ApiError as exc:
            if exc.status != 404:
                raise
        return await self.request(
            "POST",
            resource_path(manifest["kind"], meta["namespace"]),
            body=manifest,
            query=[("fieldManager", FIELD_MANAGER)],
        )

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete; ``False`` when already gone (idempotent)."""
        try:
            await self.request(
                "DELETE", object_path(kind, namespace, name), body={"propagationPolicy": "Background"}
            )
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the status subresource (with ``null`` for keys to drop)."""
        return await self.request(
            "PATCH",
            object_path(kind, namespace, name, "status"),
            body={"status": status},
            query=[("fieldManager", FIELD_MANAGER)],
            content_type=MERGE,
        )

    async def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        """One key of a Secret, decoded; ``None`` if the Secret or key is missing. Never logged."""
        secret = await self.get("Secret", namespace, name)
        if secret is None:
            return None
        raw = (secret.get("data") or {}).get(key)  # stringData is write-only: reads only have data
        return None if raw is None else base64.b64decode(raw).decode("utf-8").strip()
