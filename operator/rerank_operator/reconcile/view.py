"""What a pass reads: the children as the operator's watches last saw them, not a GET per pass.

The operator watches the kinds it owns (selected by its ``managed-by`` label) and keeps them in memory
(:class:`KeptIndex`, fed by informers and listed before any pass runs; see ``reconcile.watches``), each
as :class:`Kept`, the slimmed object's JSON text. A pass reads that memory through :class:`CachedReads`; only what is not
watched is read from the API, and then only on passes that may need a fresh copy (a watch event or a
resync), never on a canary-only pass:

* kinds without a watch (Secrets, KEDA's objects, PodMonitors);
* namespaces the operator does not watch (``run --namespace``: copies published elsewhere).

A watch event for the operator's own write can arrive after the next pass has started, so each write's
answer is kept in a small per-pipeline overlay that wins while it is at least as new as the watched
copy (by resourceVersion); without it that pass would create or apply the same object again.

:class:`ApiReads` is the same interface straight on the API (a GET or LIST per read): for one-off
callers without watches, e.g. tests that drive a single pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rerank_operator.kube import KubeApi
from rerank_operator.kube.managed_fields import packed
from rerank_operator.render.naming import PIPELINE_LABEL, PIPELINE_NAMESPACE_LABEL

Key = tuple[str, str, str]  # kind, namespace, name


class Index(Protocol):
    """What a pass looks up in: the objects kept under a key (``index_key``, ``pipeline_key``)."""

    def get(self, key: Any, /) -> Collection[Kept] | None: ...


def index_key(kind: str, namespace: str, name: str, labels: Mapping[str, str]) -> Any:
    """How each kind is looked up: pods by their pipeline (a pass wants all of them), grants by
    namespace (consent is per namespace), everything else by name."""
    if kind == "Pod":
        return (namespace, labels.get(PIPELINE_LABEL, ""))
    if kind == "RerankPublishGrant":
        return namespace
    return (namespace, name)


def pipeline_key(namespace: str, pipeline: str) -> tuple[str, str, str]:
    """Second key of Deployments in their index: all Deployments of one pipeline (BlueGreen runs one
    per revision; a pass must see every one, including those it did not create in this process)."""
    return ("by-pipeline", namespace, pipeline)


def owning_pipeline(namespace: str, labels: Mapping[str, str]) -> tuple[str, str] | None:
    """(namespace, name) of the pipeline a labelled child or copy belongs to, if it says."""
    name = labels.get(PIPELINE_LABEL)
    if not name:
        return None
    return labels.get(PIPELINE_NAMESPACE_LABEL) or namespace, name


# What a pass reads of a pod (the pods are the Deployment controller's, never written by the operator):
# its identity, labels and annotations (revision, config hash), whether it is going away, and its status
# (phase, conditions, why a container waits).
_POD_METADATA = ("name", "namespace", "uid", "resourceVersion", "labels", "annotations", "deletionTimestamp")
_POD_CONTAINER_STATUS = ("name", "ready", "state", "restartCount")


def slim(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """What the index keeps of an object: everything a pass reads. Pods, the most numerous, keep only
    what the pass reads of them (no spec, no managedFields); other kinds are kept whole (the drift check
    compares the spec; ownership and the replica handover read managedFields), with each managedFields
    entry's field tree packed into one string (``kube.managed_fields``).

    The result shares its values with ``body`` (no copy is made of what only goes on to be serialised,
    as :class:`Kept` does at once): read it, or serialise it, but do not change it."""
    meta = body.get("metadata") or {}
    if kind != "Pod":
        out: dict[str, Any] = {k: v for k, v in body.items() if k != "metadata"}
        if "metadata" in body:
            out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
            if "managedFields" in meta:
                out["metadata"]["managedFields"] = [packed(e) for e in meta["managedFields"] or ()]
        return out
    status = body.get("status") or {}
    kept_status: dict[str, Any] = {k: status[k] for k in ("phase", "conditions") if k in status}
    if "containerStatuses" in status:
        kept_status["containerStatuses"] = [
            {k: cs[k] for k in _POD_CONTAINER_STATUS if k in cs} for cs in status["containerStatuses"]
        ]
    return {"metadata": {k: meta[k] for k in _POD_METADATA if k in meta}, "status": kept_status}


_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """kopf hands out live Mapping views; work on plain, detached data. (Leaves first: most values
    are, and an ``isinstance`` check against ``Mapping`` is an ABC lookup.)"""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if kind is list or isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def jsonable(value: Any) -> Any:
    """For ``json.dumps``: a live Mapping view (kopf's) as a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def resource_version(body: Mapping[str, Any] | None) -> int | None:
    raw = ((body or {}).get("metadata") or {}).get("resourceVersion")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Kept:
    """An object as an index keeps it: its (slimmed) compact JSON text, decoded afresh on every read.

    A decoded object costs several times its text (a dict or list per level, a string object per
    value), and the indexes hold every child of every pipeline; a pass reads a few objects, and
    decoding one takes tens of microseconds. Decoding also hands each pass a private copy, so no pass
    can change what the next one reads. Name and resourceVersion stay outside the text: the overlay
    and the Deployments-of-a-pipeline lookup compare them without decoding."""

    name: str
    version: int | None
    text: str

    @classmethod
    def of(cls, kind: str, body: Mapping[str, Any]) -> Kept:
        data = slim(kind, body)
        name = (data.get("metadata") or {}).get("name")
        text = json.dumps(data, separators=(",", ":"), default=jsonable)
        return cls(str(name or ""), resource_version(data), text)

    def body(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.text)
        return decoded


class KeptIndex:
    """The watched objects of one kind, each under every key it is looked up by. An object's keys are
    given with it (its labels may change them), so an update or removal drops it from the old ones."""

    def __init__(self) -> None:
        self._by_key: dict[Any, dict[tuple[str, str], Kept]] = {}
        self._keys: dict[tuple[str, str], tuple[Any, ...]] = {}

    def get(self, key: Any, /) -> Collection[Kept] | None:
        found = self._by_key.get(key)
        return found.values() if found else None

    def put(self, ident: tuple[str, str], keys: Collection[Any], kept: Kept) -> None:
        """Keep ``kept`` (the object ``ident``: namespace, name) under ``keys``, replacing its last copy."""
        self.remove(ident)
        for key in keys:
            self._by_key.setdefault(key, {})[ident] = kept
        self._keys[ident] = tuple(keys)

    def find(self, ident: tuple[str, str]) -> Kept | None:
        """The kept copy of the object ``ident`` (namespace, name)."""
        keys = self._keys.get(ident)
        return self._by_key[keys[0]].get(ident) if keys else None

    def remove(self, ident: tuple[str, str]) -> None:
        for key in self._keys.pop(ident, ()):
            found = self._by_key.get(key)
            if found is not None:
                found.pop(ident, None)
                if not found:
                    del self._by_key[key]

    def __len__(self) -> int:
        return len(self._keys)


class Reads(Protocol):
    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def pods(self, namespace: str, pipeline: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        """The pods of ``pipeline`` that match ``selector`` (the Deployment's)."""

    async def grants(self, namespace: str) -> list[dict[str, Any]]: ...

    async def deployments(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        """Every Deployment in ``namespace`` labelled as ``pipeline``'s (ownership is the caller's)."""

    def wrote(self, kind: str, namespace: str, name: str, answer: dict[str, Any] | None) -> None:
        """Record the operator's own write (``None``: deleted), as the apiserver answered it."""


def _selector(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in selector.items())


class ApiReads:
    """Every read a request (no watches): what the engine did before it had a cache."""

    def __init__(self, kube: KubeApi):
        self.kube = kube

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.kube.get(kind, namespace, name)

    async def pods(self, namespace: str, pipeline: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        return await self.kube.list("Pod", namespace, _selector(selector))

    async def grants(self, namespace: str) -> list[dict[str, Any]]:
        return await self.kube.list("RerankPublishGrant", namespace)

    async def deployments(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        return await self.kube.list("Deployment", namespace, f"{PIPELINE_LABEL}={pipeline}")

    def wrote(self, kind: str, namespace: str, name: str, answer: dict[str, Any] | None) -> None:
        return None


@dataclass
class ReadMemory:
    """Per-pipeline memory of reads and writes between passes."""

    # the operator's own writes, newer than the watch may have delivered: (resourceVersion, body|None)
    overlay: dict[Key, tuple[int | None, dict[str, Any] | None]] = field(default_factory=dict)
    # unwatched objects as last read (or written)
    remembered: dict[Key, dict[str, Any] | None] = field(default_factory=dict)
    remembered_grants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def deleted(self, key: Key, version: int | None) -> None:
        """The watch saw ``key`` deleted at ``version``: a write of ours before that is history."""
        written = self.overlay.get(key)
        if written is None:
            return
        if written[0] is None or version is None or written[0] <= version:
            del self.overlay[key]

    def seen(self, key: Key, version: int | None) -> bool:
        """The watch delivered ``key`` at ``version``: a write of ours up to that version is in the index
        now, and its copy here is dropped at once (not at the next read, which for an idle pipeline comes
        only at its resync: until then every object it wrote last would be held twice).

        True when the event is exactly our own write coming back: the pass that wrote it already had
        the apiserver's answer, so there is nothing new to react to."""
        written = self.overlay.get(key)
        if written is None or written[1] is None:
            return False  # nothing, or our delete: only the DELETED event settles that
        if written[0] is not None and version is not None and version >= written[0]:
            del self.overlay[key]
            return version == written[0]
        return False


class CachedReads:
    """Reads from the watch-fed indexes, the overlay and the remembered unwatched objects.

    ``refresh``: unwatched objects are read from the API again (a watch-driven or resync pass); when
    false (a canary-only pass) what was last read is used and the pass makes no read request at all.
    """

    def __init__(
        self,
        indexes: Mapping[str, Index],
        kube: KubeApi,
        memory: ReadMemory,
        *,
        covers: Callable[[str], bool] = lambda _ns: True,
        refresh: bool = True,
    ):
        self.indexes = indexes
        self.kube = kube
        self.memory = memory
        self.covers = covers
        self.refresh = refresh

    def _watched(self, kind: str, namespace: str) -> bool:
        return kind in self.indexes and self.covers(namespace)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        key = (kind, namespace, name)
        if not self._watched(kind, namespace):
            if self.refresh or key not in self.memory.remembered:
                self.memory.remembered[key] = await self.kube.get(kind, namespace, name)
            return self.memory.remembered[key]
        store = self.indexes[kind].get((namespace, name)) or ()
        watched = next(iter(store), None)
        written = self.memory.overlay.get(key)
        if written is None:
            return watched.body() if watched is not None else None
        version, body = written
        seen = watched.version if watched is not None else None
        if version is not None and seen is not None and seen >= version:
            del self.memory.overlay[key]  # the watch has caught up with our write
            return watched.body() if watched is not None else None
        return body

    async def pods(self, namespace: str, pipeline: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
        if not self._watched("Pod", namespace):
            return await self.kube.list("Pod", namespace, _selector(selector))
        store = self.indexes["Pod"].get((namespace, pipeline)) or ()
        out = []
        for kept in store:
            pod = kept.body()
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if all(labels.get(k) == v for k, v in selector.items()):
                out.append(pod)
        return out

    async def grants(self, namespace: str) -> list[dict[str, Any]]:
        if self._watched("RerankPublishGrant", namespace):
            return [g.body() for g in self.indexes["RerankPublishGrant"].get(namespace) or ()]
        if self.refresh or namespace not in self.memory.remembered_grants:
            self.memory.remembered_grants[namespace] = await self.kube.list("RerankPublishGrant", namespace)
        return self.memory.remembered_grants[namespace]

    async def deployments(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        if not self._watched("Deployment", namespace):
            return await self.kube.list("Deployment", namespace, f"{PIPELINE_LABEL}={pipeline}")
        names = {d.name for d in self.indexes["Deployment"].get(pipeline_key(namespace, pipeline)) or ()}
        names |= {  # our own writes the watch has not delivered yet
            key[2]
            for key, (_, body) in self.memory.overlay.items()
            if key[0] == "Deployment"
            and key[1] == namespace
            and body is not None
            and ((body.get("metadata") or {}).get("labels") or {}).get(PIPELINE_LABEL) == pipeline
        }
        out = []
        for name in sorted(names):
            live = await self.get("Deployment", namespace, name)
            if live is not None:
                out.append(live)
        return out

    def wrote(self, kind: str, namespace: str, name: str, answer: dict[str, Any] | None) -> None:
        key = (kind, namespace, name)
        if not self._watched(kind, namespace):
            self.memory.remembered[key] = answer
            return
        if answer is None:  # deleted: hide the watched copy until the watch drops it
            watched = next(iter(self.indexes[kind].get((namespace, name)) or ()), None)
            version = watched.version if watched is not None else None
            self.memory.overlay[key] = (None if version is None else version + 1, None)
            return
        self.memory.overlay[key] = (resource_version(answer), answer)
