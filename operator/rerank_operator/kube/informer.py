"""One kind of object, listed and then watched, every change handed to a callback: an informer.

It is what controller-runtime's informers do, and what the operator's own children need: their current
state in memory, and a call per change. kopf offers the same through its indexes and event handlers,
but with its machinery per event (a worker task and a queue per object, causes, handler invocation):
at N=1000 that was a quarter of the operator's CPU, and when a thousand pods turned ready at once the
operator's memory jumped by 25 MB (17 MB without it). Here a watch event is handled as it is read.

* The list is paginated; the watch starts at the list's resourceVersion, asks for bookmarks, and
  starts again from the last version seen whenever the server ends it (``timeout_seconds``).
* A version the server no longer has (410 Gone, as a status or an ERROR event) lists again; what
  changed or went away in the gap is reported as if watched.
* Objects not matching the label selector are skipped even if the server sends them (API emulators
  may ignore selectors on watches); one that stops matching is reported deleted.
* Errors back off from 1 to 30 seconds; a 403 says which permission is missing.
* ``synced`` is set once the first list is handled: readers of the callback's state may wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from rerank_operator.kube.client import ApiError, KubeApi

log = logging.getLogger(__name__)

MIN_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
WATCH_TIMEOUT_SECONDS = 300

# (event type: ADDED, MODIFIED or DELETED; the object, or for a deletion seen only by a relist, its
# namespace, name and last resourceVersion: the caller knows the rest from what it kept)
OnChange = Callable[[str, dict[str, Any]], None]


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


def selector_terms(selector: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` as a dict: the only kind of selector an informer takes."""
    terms: dict[str, str] = {}
    for term in (selector or "").split(","):
        if not term.strip():
            continue
        key, sep, value = term.partition("=")
        if not sep or "!" in key or "=" in value:
            raise ValueError(f"label selector {selector!r}: only k=v terms are supported")
        terms[key.strip()] = value.strip()
    return terms


class Informer:
    def __init__(
        self,
        kube: KubeApi,
        kind: str,
        on_change: OnChange,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout_seconds: int = WATCH_TIMEOUT_SECONDS,
    ):
        self.kube = kube
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.timeout_seconds = timeout_seconds
        self.synced = asyncio.Event()
        self._on_change = on_change
        self._terms = selector_terms(label_selector)
        # what was reported, by (namespace, name): its resourceVersion
        self._known: dict[tuple[str, str], str] = {}

    @property
    def where(self) -> str:
        scope = f"in {self.namespace}" if self.namespace else "in all namespaces"
        selector = f" ({self.label_selector})" if self.label_selector else ""
        return f"{self.kind} {scope}{selector}"

    async def run(self) -> None:
        """List and watch until cancelled."""
        version = ""
        backoff = MIN_BACKOFF_SECONDS
        while True:
            try:
                if not version:
                    version = await self._list()
                started, events = time.monotonic(), 0
                async for event in self.kube.watch(
                    self.kind,
                    self.namespace,
                    label_selector=self.label_selector,
                    resource_version=version,
                    timeout_seconds=self.timeout_seconds,
                ):
                    version = self._handle(event) or version
                    events += 1
                    backoff = MIN_BACKOFF_SECONDS
                if not events and time.monotonic() - started < MIN_BACKOFF_SECONDS:
                    await asyncio.sleep(backoff)  # a server that ends every watch at once: do not spin
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except _Gone:
                log.info("watching %s: resourceVersion %s is gone, listing again", self.where, version)
                version = ""
            except ApiError as exc:
                if exc.status == 410:
                    version = ""
                    continue
                self._complain(exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the watch for good: log it, back off, go on
                log.exception("watching %s failed, retrying in %.0fs", self.where, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    def _complain(self, exc: ApiError, backoff: float) -> None:
        if exc.status == 403:
            log.error(
                "cannot list/watch %s (403 Forbidden: the operator's RBAC needs list and watch on it), "
                "retrying in %.0fs: %s",
                self.where,
                backoff,
                exc.message,
            )
        elif exc.status == 0 and self.synced.is_set():
            log.debug("watch of %s ended (%s), resuming in %.0fs", self.where, exc.reason, backoff)
        else:
            log.warning("watching %s failed, retrying in %.0fs: %s", self.where, backoff, exc)

    async def _list(self) -> str:
        items, version = await self.kube.list_all(self.kind, self.namespace, self.label_selector)
        seen: set[tuple[str, str]] = set()
        for item in items:
            if not self._matches(item):
                continue
            key = _key(item)
            seen.add(key)
            known = self._known.get(key)
            if known != _version(item):
                self._report("ADDED" if known is None else "MODIFIED", item)
        for key in [k for k in self._known if k not in seen]:  # gone while nobody watched
            meta = {"namespace": key[0], "name": key[1], "resourceVersion": self._known[key]}
            self._report("DELETED", {"metadata": meta})
        self.synced.set()
        return version

    def _handle(self, event: Mapping[str, Any]) -> str | None:
        """One watch event; returns the resourceVersion it carries."""
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise ApiError(
                int(obj.get("code") or 0), str(obj.get("reason") or "Error"), str(obj.get("message"))
            )
        version = _version(obj) or None
        if kind == "BOOKMARK":
            return version
        key = _key(obj)
        if kind == "DELETED":
            if key in self._known:
                self._report("DELETED", obj)
        elif kind in ("ADDED", "MODIFIED"):
            if not self._matches(obj):
                if key in self._known:  # it lost the label: no longer one of ours
                    self._report("DELETED", obj)
            elif self._known.get(key) != _version(obj):  # a replay is not a change
                self._report(kind, obj)
        return version

    def _report(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self._known.pop(key, None)
        else:
            self._known[key] = _version(obj)
        self._on_change(kind, obj)

    def _matches(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in self._terms.items())


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
