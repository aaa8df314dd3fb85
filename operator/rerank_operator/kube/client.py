"""Async verbs on raw manifests: get, list, apply (server-side), delete, patch status.

Requests go out on aiohttp (kopf's own HTTP client, so nothing more is loaded), on the operator's event
loop: no thread per request, and no client library between the manifests from ``render`` and the wire.
(httpx, which the canary uses, cost about 2.5 ms of CPU per API request at N=1000 in its connection
pool's bookkeeping: a fifth of the operator's CPU during creation, measured with py-spy.) Applies use server-side apply with field manager
``rerank-operator``: re-applying the same manifest is a no-op (no resourceVersion bump), fields the
operator stops setting are removed, and fields other controllers own (e.g. a Service's clusterIP) are
left alone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from rerank_operator import FIELD_MANAGER, __version__
from rerank_operator.kube.credentials import Credentials, CredentialsError, load_credentials
from rerank_operator.kube.managed_fields import covered, fold_managed_fields, managed_fields, ours, unpacked
from rerank_operator.kube.paths import object_path, resource_path

log = logging.getLogger(__name__)

# Requests in flight at once (connections to the apiserver): a burst of passes queues for these
# rather than opening a connection each.
CONCURRENT_REQUESTS = 32

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JSON = "application/json"

Objects = list[dict[str, Any]]
# who is asking, in the apiserver's audit log and metrics: the reconcile passes, or the informers
USER_AGENT = f"rerank-operator/{__version__}"
WATCH_USER_AGENT = f"{USER_AGENT} informer"  # (``KubeApi.list`` shadows the builtin in the class body)


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


def load_api_client() -> Credentials:
    """In-cluster credentials when running in a pod, else the kubeconfig (``$KUBECONFIG``); an
    ``ApiError`` (status 0) when there are none, naming what was looked for."""
    try:
        return load_credentials()
    except CredentialsError as exc:
        raise ApiError(0, "NoCredentials", str(exc)) from exc


class KubeApi:
    def __init__(self, credentials: Credentials, *, timeout: float = 30.0):
        self.credentials = credentials
        self._timeout = timeout
        self._ssl = credentials.ssl_context()
        # one session per event loop: a pooled connection belongs to the loop that opened it
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------------------ transport
    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                # with a trailing slash, a server URL's path (a proxy's /k8s/clusters/<id>) is kept
                base_url=self.credentials.server.rstrip("/") + "/",
                connector=aiohttp.TCPConnector(
                    limit=CONCURRENT_REQUESTS, ssl=self._ssl if self._ssl is not None else True
                ),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                # the apiserver is reached directly, never through $HTTPS_PROXY; its large lists come
                # gzipped (aiohttp asks for it, and decompresses)
                trust_env=False,
            )
            self._loop = loop
        return self._session

    async def _authorization(self) -> dict[str, str]:
        creds = self.credentials
        try:
            token = await asyncio.to_thread(creds.bearer_token) if creds.must_ask else creds.bearer_token()
        except CredentialsError as exc:
            raise ApiError(0, "NoCredentials", str(exc)) from exc
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = JSON,
        user_agent: str = USER_AGENT,
    ) -> dict[str, Any]:
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Accept": "application/json", "Content-Type": content_type, "User-Agent": user_agent}
        for attempt in (1, 2):
            headers.update(await self._authorization())
            try:
                async with self._http().request(
                    method, path.lstrip("/"), params=query, data=content, headers=headers
                ) as resp:
                    status, data = resp.status, await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:  # refused, reset, timed out, TLS
                raise ApiError(0, type(exc).__name__, str(exc) or type(exc).__name__) from exc
            if method != "GET":
                log.debug("%s %s -> %s", method, path, status)
            if status == 401 and attempt == 1 and self.credentials.renews:
                self.credentials.forget_token()  # rotated or expired: read or ask for it once more
                continue
            break
        parsed: dict[str, Any] = {}
        if data:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = {"message": data.decode("utf-8", "replace")[:500]}
        if not 200 <= status < 300:
            raise ApiError(status, str(parsed.get("reason", "Error")), str(parsed.get("message", "")))
        return parsed

    async def aclose(self) -> None:
        """Close the pooled connections (those of another, finished loop are simply dropped)."""
        session, self._session = self._session, None
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()

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

    async def list_all(
        self, kind: str, namespace: str | None, label_selector: str | None = None, *, page: int = 500
    ) -> tuple[Objects, str]:
        """Every object (``namespace`` None: in all namespaces), a page at a time, and the collection's
        resourceVersion: where a watch that misses nothing starts. For informers (their user agent).
        Each item gets its apiVersion and kind, as a watch event's object has them."""
        items: Objects = []
        query = [("limit", str(page))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        token = ""
        while True:
            result = await self.request(
                "GET",
                resource_path(kind, namespace),
                query=query + ([("continue", token)] if token else []),
                user_agent=WATCH_USER_AGENT,
            )
            for item in result.get("items") or []:  # a list's items carry no apiVersion or kind of their own
                item.setdefault("apiVersion", result.get("apiVersion"))
                item.setdefault("kind", kind)
                items.append(item)
            meta = result.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def watch(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None,
        resource_version: str,
        timeout_seconds: int,
    ) -> AsyncIterator[dict[str, Any]]:
        """The watch events of a collection from ``resource_version``, with bookmarks, until the
        server ends the stream (after about ``timeout_seconds``). A stream silent for longer than
        that plus a minute is taken as stalled and ends too (``ApiError`` 0)."""
        query = [("watch", "true"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", str(timeout_seconds))]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        if label_selector:
            query.append(("labelSelector", label_selector))
        headers = {
            "Accept": "application/json",
            "User-Agent": WATCH_USER_AGENT,
            **(await self._authorization()),
        }
        stalled = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=timeout_seconds + 60
        )
        try:
            async with self._http().get(
                resource_path(kind, namespace).lstrip("/"), params=query, headers=headers, timeout=stalled
            ) as resp:
                if resp.status == 401 and self.credentials.renews:
                    self.credentials.forget_token()
                if resp.status != 200:
                    data = await resp.read()
                    try:
                        status = json.loads(data)
                    except ValueError:
                        status = {"message": data.decode("utf-8", "replace")[:500]}
                    raise ApiError(
                        resp.status, str(status.get("reason", "Error")), str(status.get("message", ""))
                    )
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(0, type(exc).__name__, str(exc) or type(exc).__name__) from exc

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create only: a 409 AlreadyExists when the object is there, so creating can never be the way an
        existing object (someone else's) is taken over. Recorded under our field manager."""
        meta = manifest["metadata"]
        return await self.request(
            "POST",
            resource_path(manifest["kind"], meta["namespace"]),
            body=manifest,
            query=[("fieldManager", FIELD_MANAGER)],
        )

    async def apply(self, manifest: dict[str, Any], live: dict[str, Any] | None = None) -> dict[str, Any]:
        """Forced server-side apply of an object that is already ours (the caller has checked).

        ``live``, when given, is the object as last seen: if it still carries the ``Update`` entry that
        ``create`` left in its managedFields, that entry is first folded into our ``Apply`` entry, so that a
        field the operator stops setting is removed instead of kept by a second entry of our own name.

        API emulators without server-side apply answer 404 for a missing object (a real apiserver
        creates it), so a 404 falls back to ``create``; the manifest is the same either way.
        """
        meta = manifest["metadata"]
        path = object_path(manifest["kind"], meta["namespace"], meta["name"])
        if live is not None:
            await self._fold_update_entry(path, live, manifest)
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        try:
            return await self.request("PATCH", path, body=manifest, query=query, content_type=APPLY)
        except ApiError as exc:
            if exc.status != 404:
                raise
        return await self.create(manifest)

    async def apply_field(self, manifest: dict[str, Any], *, field_manager: str) -> dict[str, Any]:
        """Unforced server-side apply of a partial manifest (a few fields of an existing object) under
        another field manager: a conflict with another manager's value is a 409, a missing object a 404,
        never a takeover or a create."""
        meta = manifest["metadata"]
        path = object_path(manifest["kind"], meta["namespace"], meta["name"])
        query = [("fieldManager", field_manager)]
        return await self.request("PATCH", path, body=manifest, query=query, content_type=APPLY)

    async def served_resources(self, group_version: str) -> set[str] | None:
        """Resource names (plurals) the cluster serves in ``group_version`` (e.g. ``keda.sh/v1alpha1``),
        or None when it serves no such API: how add-on CRDs are found without reading CRDs (which
        needs cluster-wide rights). Discovery is readable by every authenticated user."""
        prefix = "/api" if "/" not in group_version else "/apis"
        try:
            result = await self.request("GET", f"{prefix}/{group_version}")
        except ApiError as exc:
            if exc.status in (404, 503):  # 503: an aggregated API that is registered but down
                return None
            raise
        return {str(r.get("name")) for r in result.get("resources") or [] if "/" not in str(r.get("name"))}

    async def _fold_update_entry(self, path: str, live: dict[str, Any], manifest: dict[str, Any]) -> None:
        """Turn our create-time ``Update`` managedFields entry into (part of) our ``Apply`` entry, as
        ``kubectl``'s client-side-to-server-side upgrade does; guarded by the resourceVersion seen.

        Only when it matters: if the apply sets every field the entry owns, the apply takes them all
        over and the write would change nothing."""
        meta = live.get("metadata") or {}
        entries = [unpacked(e) for e in managed_fields(live)]  # a watched copy's trees are packed
        if all(covered(e.get("fieldsV1") or {}, manifest) for e in entries if ours(e, "Update")):
            return
        folded = fold_managed_fields(entries)
        if folded is None:
            return
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
            {"op": "replace", "path": "/metadata/managedFields", "value": folded},
        ]
        await self.request("PATCH", path, body=patch, content_type=JSON_PATCH)

    async def delete(self, kind: str, namespace: str, name: str, *, uid: str | None = None) -> bool:
        """Delete; ``False`` when already gone (idempotent). With ``uid``, only that very object: one
        deleted and recreated by someone else since it was checked is left alone (409)."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid is not None:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", object_path(kind, namespace, name), body=body)
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


def secret_value(secret: dict[str, Any] | None, key: str) -> str | None:
    """One key of a Secret as read, decoded; ``None`` if the Secret or key is missing. Never logged."""
    if secret is None:
        return None
    raw = (secret.get("data") or {}).get(key)  # stringData is write-only: reads only have data
    return None if raw is None else base64.b64decode(raw).decode("utf-8").strip()
