"""Support for running the real operator in-process against kmock's Kubernetes emulator.

The pieces, all real except the API server itself:

* kmock's ``KubernetesEmulator`` on 127.0.0.1 (subclassed as :class:`Emulator` to add the apiserver
  bookkeeping kmock leaves out), taught the builtin resources (kmock's bundled discovery data) and
  our CRD ``rerank.dev/v1alpha1 rerankpipelines``;
* a kubeconfig pointing at it (plain http, no auth) in ``$KUBECONFIG``, so that our ``KubeApi``
  (``load_api_client``) and kopf, logged in with the same credentials, both talk to it;
* the operator: ``kopf.operator()`` with the handlers of ``rerank_operator.handlers`` in a thread
  with its own event loop (the emulator keeps serving on the test's loop);
* a reranker stand-in on loopback, reached through ``RERANK_OPERATOR_HOST_OVERRIDES`` (the probe's
  resolver seam), so the canary goes over real HTTP with the in-cluster ``Host`` header.

kmock emulates storage, not controllers: the test plays the Deployment controller (status of the
Deployment, Pods) itself. There is no garbage collection and no admission either.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import inspect
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import kmock
import kopf

from rerank_operator import GROUP, KIND, PLURAL, VERSION
from rerank_operator.sandbox.procs import free_port
from rerank_operator.standin import StandinServer

# kmock resource keys ("group/version/plural"; the core group is written "v1/<plural>")
PIPELINES = f"{GROUP}/{VERSION}/{PLURAL}"
GRANTS = f"{GROUP}/{VERSION}/rerankpublishgrants"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
CONFIGMAPS = "v1/configmaps"
PVCS = "v1/persistentvolumeclaims"
PDBS = "policy/v1/poddisruptionbudgets"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
PODS = "v1/pods"
SECRETS = "v1/secrets"
EVENTS = "v1/events"

NAMESPACE = "ml"
MODEL = "BAAI/bge-reranker-base"  # the stand-in's default served model
CLUSTER_DOMAIN = "cluster.local"
SERVICE_PORT = 8000

# Names of the pipelines the tests may create; the host overrides (read once, at operator startup)
# map each one's Service DNS name to the stand-in.
PIPELINE_NAMES = ("rr", "other", "bad", "bad-model", "gpu", "secured")

_API_PREFIX = {
    PIPELINES: f"/apis/{GROUP}/{VERSION}",
    GRANTS: f"/apis/{GROUP}/{VERSION}",
    DEPLOYMENTS: "/apis/apps/v1",
    SERVICES: "/api/v1",
    CONFIGMAPS: "/api/v1",
    PVCS: "/api/v1",
    PODS: "/api/v1",
    HPAS: "/apis/autoscaling/v2",
    SECRETS: "/api/v1",
    EVENTS: "/api/v1",
}


def api_path(resource: str, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    plural = resource.rsplit("/", 1)[-1]
    path = f"{_API_PREFIX[resource]}/namespaces/{namespace}/{plural}"
    if name is not None:
        path += f"/{name}"
    if subresource is not None:
        path += f"/{subresource}"
    return path


def service_host(name: str, namespace: str = NAMESPACE) -> str:
    return f"{name}-reranker.{namespace}.svc.{CLUSTER_DOMAIN}"


def endpoint_of(name: str, namespace: str = NAMESPACE) -> str:
    return f"http://{service_host(name, namespace)}:{SERVICE_PORT}"


# What Milvus outside the cluster would use (spec.publish.endpoint): routed to the stand-in as well.
EXTERNAL_HOST = "reranker.example.test:9000"
# An outside address where nothing answers: a loopback port nobody listens on (connection refused).
DEAD_HOST = "dead.example.test:9000"


def pipeline_hosts(name: str, namespace: str = NAMESPACE) -> str:
    """An override key for every Service of a pipeline: the stable one and each revision's (BlueGreen)."""
    return f"{name}-*.{namespace}.svc.{CLUSTER_DOMAIN}:{SERVICE_PORT}"


def host_overrides(standin: StandinServer, names: tuple[str, ...] = PIPELINE_NAMES) -> str:
    hosts = [pipeline_hosts(n) for n in names] + [EXTERNAL_HOST]
    routes = [f"{host}=127.0.0.1:{standin.port}" for host in hosts]
    return ",".join([*routes, f"{DEAD_HOST}=127.0.0.1:{free_port()}"])


# ------------------------------------------------------------------------------------ emulator
class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the apiserver bookkeeping the operator and kopf rely on.

    kmock stores objects and merges patches; it leaves out what a real apiserver adds on writes.
    The gaps that matter here are filled in on the way in, before kmock stores the object:

    * ``metadata.resourceVersion`` bumped on every write (kopf matches its own patches to the watch
      events by it; with a constant version it treats stale events as consistent and re-runs handlers);
    * ``metadata.uid``/``creationTimestamp`` on create; ``metadata.generation`` 1 on create and +1
      when a write changes ``spec`` (so Deployment rollouts and pipeline updates bump it as in a cluster);
    * status subresource isolation: ``/status`` writes change only ``status``, main-resource writes
      and creates never do (for resources that declare a status subresource);
    * a failed JSON-patch ``test`` op answers 422 (kopf's optimistic-concurrency retry), not 500;
    * equality-based ``labelSelector`` on lists (``k=v`` terms, what the operator sends);
    * the part of server-side apply that matters for a sole field manager: an apply PATCH removes
      the fields that the same ``fieldManager`` applied last time but no longer applies (kmock alone
      merges, so e.g. a dropped ConfigMap key would linger). Lists are atomic, as with ``atomic``
      list types. Conflicts with other managers are not modelled (the operator applies with force).
      An apply to a missing object still answers 404, as kmock does (``KubeApi`` then creates).

    Still missing (not needed here): set-based and ``!=`` label selectors, field selectors, selectors
    on watches, garbage collection through ownerReferences, admission (defaulting, validation, CEL).
    """

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._version = 1000
        self._write_lock = asyncio.Lock()
        self._applied: dict[tuple[Any, ...], dict[str, Any]] = {}  # last applied config per manager

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _has_status_subresource(self, resource: Any) -> bool:
        try:
            return "status" in self.resources[resource].subresources
        except KeyError:
            return False

    def _current(self, request: Any) -> dict[str, Any] | None:
        try:
            obj = self.objects[request.resource, request.namespace, request.name]
        except KeyError:
            return None
        return None if obj.deleted else obj.raw

    async def _handle(self, request: Any) -> Any:
        if request.resource is None or request.action not in (kmock.action.CREATE, kmock.action.UPDATE):
            return await super()._handle(request)
        async with self._write_lock:  # read-compute-store without interleaving writes
            if request.action == kmock.action.CREATE and isinstance(request.data, dict):
                self._on_create(request)
            elif request.action == kmock.action.UPDATE and request.name is not None:
                self._on_update(request)
            return await super()._handle(request)

    def _on_create(self, request: Any) -> None:
        body = request.data
        meta = body.setdefault("metadata", {})
        meta["resourceVersion"] = self._next_version()
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if "spec" in body:
            meta["generation"] = 1
        if self._has_status_subresource(request.resource):
            body.pop("status", None)
        manager = (request.params or {}).get("fieldManager")
        if manager:
            ns = request.namespace or meta.get("namespace")
            self._applied[request.resource, ns, meta.get("name"), manager] = _owned(body)

    def _on_update(self, request: Any) -> None:
        current = self._current(request)
        if current is None:
            return  # kmock answers 404
        status_only = request.subresource == "status"
        isolate = self._has_status_subresource(request.resource)
        patch = request.data
        if isinstance(patch, dict):
            if isolate and status_only:
                for key in [k for k in patch if k != "status"]:
                    del patch[key]
            elif isolate:
                patch.pop("status", None)
            if "apply-patch" in request.headers.get("Content-Type", ""):
                self._apply(request, patch)
            after = merge_patch(current, patch)
        elif isinstance(patch, list):
            if isolate:

                def is_status(op: dict[str, Any]) -> bool:
                    return str(op.get("path", "")).startswith("/status")

                patch[:] = [op for op in patch if op.get("op") == "test" or is_status(op) == status_only]
            try:
                after = jsonpatch.apply_patch(copy.deepcopy(current), patch)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                raise kmock.KubernetesError(status=422, reason="Invalid", message=str(exc)) from exc
        else:
            return
        bookkeeping = {"resourceVersion": self._next_version()}
        if (
            not status_only
            and after.get("spec") != current.get("spec")
            and "generation" in current["metadata"]
        ):
            bookkeeping["generation"] = int(current["metadata"]["generation"]) + 1
        if isinstance(patch, list):
            patch += [{"op": "add", "path": f"/metadata/{k}", "value": v} for k, v in bookkeeping.items()]
            return
        meta_patch = patch.setdefault("metadata", {})
        if not isinstance(meta_patch, dict):
            raise kmock.KubernetesError(status=422, reason="Invalid", message="metadata must be an object")
        meta_patch.update(bookkeeping)

    def _apply(self, request: Any, patch: dict[str, Any]) -> None:
        """Server-side apply by one manager: drop what it applied before and applies no more."""
        manager = (request.params or {}).get("fieldManager", "")
        key = (request.resource, request.namespace, request.name, manager)
        previous = self._applied.get(key, {})
        applied = _owned(patch)
        for path in _removed_paths(previous, applied):
            node = patch
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = None  # merge-patch null: removes the field
        self._applied[key] = applied

    async def _serve_list(self, request: Any) -> Any:
        payload = await super()._serve_list(request)
        selector = (request.params or {}).get("labelSelector")
        if selector:
            payload["items"] = [item for item in payload["items"] if selector_matches(selector, item)]
        payload["metadata"]["resourceVersion"] = str(self._version)
        return payload


def _owned(body: dict[str, Any]) -> dict[str, Any]:
    """The fields an apply manages (identity and bookkeeping fields excluded)."""
    owned = copy.deepcopy({k: v for k, v in body.items() if k not in ("apiVersion", "kind", "status")})
    meta = owned.get("metadata")
    if isinstance(meta, dict):
        for key in ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp"):
            meta.pop(key, None)
    return owned


def _removed_paths(before: Any, after: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of dict fields present in ``before`` but not in ``after`` (lists are atomic)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    out: list[tuple[str, ...]] = []
    for key, value in before.items():
        if key not in after:
            out.append((*prefix, key))
        else:
            out.extend(_removed_paths(value, after[key], (*prefix, key)))
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what kmock applies for dict patches), on copies."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def selector_matches(selector: str, obj: dict[str, Any]) -> bool:
    """Equality-based ``k=v,k2=v2`` selectors, the only kind the operator sends.

    Anything else (``!=``, ``in``, existence) raises (not NotImplementedError: kmock takes that for
    "no reaction" and answers 404), so kmock answers 500 and the ``k8s_emulator`` fixture fails the
    test instead of the emulator silently listing the wrong objects.
    """
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep or not key.strip() or any(c in key + value for c in "!=()"):
            raise AssertionError(f"label selector {selector!r}: only k=v terms are emulated")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def configure_emulator(emulator: kmock.KubernetesEmulator) -> None:
    """Builtin resources (discovery) plus our CRDs: RerankPipeline (status subresource), RerankPublishGrant."""
    with warnings.catch_warnings():  # kmock 0.8 reads its bundle with a deprecated importlib API
        warnings.simplefilter("ignore", DeprecationWarning)
        emulator.resources.load_bundled()
    emulator.resources[PIPELINES] = kmock.ResourceInfo(
        kind=KIND,
        singular="rerankpipeline",
        namespaced=True,
        shortnames={"rrp"},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        subresources={"status"},
    )
    emulator.resources[GRANTS] = kmock.ResourceInfo(
        kind="RerankPublishGrant",
        singular="rerankpublishgrant",
        namespaced=True,
        shortnames={"rpg"},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
    )


def write_kubeconfig(path: Path, server_url: str) -> Path:
    path.write_text(
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: kmock\n  cluster:\n    server: {server_url}\n"
        "users:\n"
        "- name: kmock\n  user: {}\n"
        "contexts:\n"
        "- name: kmock\n  context:\n    cluster: kmock\n    user: kmock\n    namespace: default\n"
        "current-context: kmock\n"
    )
    return path


# ------------------------------------------------------------------------------------ polling
async def eventually(
    check: Callable[[], Any],
    *,
    within: float = 15.0,
    interval: float = 0.1,
    message: str = "",
    truthy: bool = True,
) -> Any:
    """Poll ``check`` (sync or async) until it passes; return its value.

    It passes when it raises no AssertionError/KeyError/... and, with ``truthy`` (the default), returns
    a truthy value; assertion-style checks returning ``None`` use ``passes()``. On timeout the last
    failure is chained to the AssertionError.
    """
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value or not truthy:
                return value
            last = AssertionError(f"{message or 'condition'} still false: {value!r}")
        except (AssertionError, KeyError, IndexError, TypeError, ValueError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {within}s: {message}: {last}") from last
        await asyncio.sleep(interval)


async def passes(check: Callable[[], Any], *, within: float = 15.0, message: str = "") -> Any:
    """``eventually`` for assertion-style checks: passing means raising nothing."""
    return await eventually(check, within=within, message=message, truthy=False)


async def consistently(check: Callable[[], Any], *, duration: float, interval: float = 0.1) -> None:
    """``check`` must hold (no AssertionError) for the whole ``duration``."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        check()
        await asyncio.sleep(interval)
    check()


# ------------------------------------------------------------------------------------ operator
class OperatorThread:
    """``kopf.operator()`` in its own thread and event loop, stopped through its stop flag."""

    def __init__(self) -> None:
        import rerank_operator.handlers  # noqa: F401  (registers the handlers)

        self.registry = kopf.get_default_registry()
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kopf-operator", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    standalone=True,
                    clusterwide=True,
                    stop_flag=self.stop_flag,
                    ready_flag=self.ready_flag,
                    memo=kopf.Memo(),
                )
            )
        except BaseException as exc:  # surfaced by start()/stop()
            self.error = exc

    async def start(self, within: float = 15.0) -> None:
        self._thread.start()
        ready = await asyncio.to_thread(self.ready_flag.wait, within)
        if self.error is not None:
            raise RuntimeError("the operator failed to start") from self.error
        if not ready:
            raise RuntimeError(f"the operator was not ready within {within}s")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    async def stop(self, within: float = 20.0) -> None:
        self.stop_flag.set()
        await asyncio.to_thread(self._thread.join, within)
        if self._thread.is_alive():
            raise RuntimeError(f"the operator did not stop within {within}s")
        if self.error is not None:
            raise RuntimeError("the operator crashed") from self.error


# ------------------------------------------------------------------------------------ harness
def pipeline_spec(**overrides: Any) -> dict[str, Any]:
    """A valid spec with fast probing; ``overrides`` replace top-level spec keys."""
    spec: dict[str, Any] = {
        "model": {"name": MODEL},
        "replicas": 1,
        "probe": {"intervalSeconds": 1, "failureThreshold": 2, "timeoutSeconds": 5},
        # one Deployment rolled in place (<name>-reranker): what these scenarios are about; the
        # BlueGreen ones (test_operator_bluegreen) pass rollout themselves
        "rollout": {"strategy": "Surge"},
    }
    spec.update(overrides)
    return spec


@dataclass
class Harness:
    """What a test drives: the emulator (storage + HTTP), the stand-in and the operator thread."""

    kmock: kmock.KubernetesEmulator
    standin: StandinServer
    operator: OperatorThread
    namespace: str = NAMESPACE
    uids: dict[str, str] = field(default_factory=dict)

    # -- HTTP against the emulator (mutations must go over HTTP to produce watch events) ---------
    async def _call(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
        headers = {"Content-Type": content_type} if content_type else {}
        async with self.kmock.request(method, path, json=body, headers=headers) as resp:
            payload = await resp.json(content_type=None)
            if resp.status >= 300:
                raise AssertionError(f"{method} {path}: {resp.status} {payload}")
            return payload

    async def create(self, resource: str, body: dict[str, Any], namespace: str | None = None) -> Any:
        ns = namespace or body.get("metadata", {}).get("namespace") or self.namespace
        body = copy.deepcopy(body)
        body.setdefault("metadata", {}).setdefault("namespace", ns)
        return await self._call("POST", api_path(resource, ns), body)

    async def patch(
        self,
        resource: str,
        name: str,
        patch: dict[str, Any],
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Any:
        path = api_path(resource, namespace or self.namespace, name, subresource)
        return await self._call("PATCH", path, patch, "application/merge-patch+json")

    async def delete(self, resource: str, name: str, namespace: str | None = None) -> Any:
        return await self._call("DELETE", api_path(resource, namespace or self.namespace, name))

    # -- reading the stored state ------------------------------------------------------------------
    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        key = (resource, namespace or self.namespace, name)
        try:
            obj = self.kmock.objects[key]
        except KeyError:
            return None
        return None if obj.deleted else copy.deepcopy(obj.raw)

    def must(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        obj = self.get(resource, name, namespace)
        assert obj is not None, f"{resource} {namespace or self.namespace}/{name} does not exist"
        return obj

    def names(self, resource: str, namespace: str | None = None) -> list[str]:
        ns = namespace or self.namespace
        out = []
        for (res, obj_ns, name), obj in self.kmock.objects.items():
            if res == resource and obj_ns == ns and not obj.deleted:
                out.append(name)
        return sorted(out)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.must(PIPELINES, name).get("status") or {})

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        for cond in self.status(name).get("conditions") or []:
            if cond.get("type") == type_:
                return dict(cond)
        raise AssertionError(f"no {type_} condition on {name}: {self.status(name)}")

    def published(self, name: str, namespace: str | None = None) -> dict[str, str]:
        cm = self.must(CONFIGMAPS, f"{name}-ranker", namespace)
        return dict(cm.get("data") or {})

    def events(self, name: str | None = None, namespace: str | None = None) -> list[dict[str, Any]]:
        ns = namespace or self.namespace
        out = []
        for (res, obj_ns, _), obj in self.kmock.objects.items():
            if res == EVENTS and obj_ns == ns and not obj.deleted:
                raw = obj.raw
                if name is None or raw.get("involvedObject", {}).get("name") == name:
                    out.append(copy.deepcopy(raw))
        return out

    def canaries(self) -> list[Any]:
        """The rerank requests the stand-in received (the operator's canaries)."""
        return [r for r in self.standin.request_log if r.method == "POST" and r.path.endswith("rerank")]

    def requests(
        self,
        method: str,
        resource: str,
        name: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
    ) -> list[kmock.Request]:
        """Requests the emulator received, filtered (kmock records every request)."""
        wanted = (method, resource, namespace or self.namespace, subresource)
        return [
            req
            for req in list(self.kmock)
            if (req.method, req.resource, req.namespace, req.subresource) == wanted
            and (name is None or req.name == name)
        ]

    # -- scenario steps ----------------------------------------------------------------------------
    async def create_pipeline(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Create a pipeline as a client would (no admission in kmock: anything is stored)."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        created = await self.create(PIPELINES, body)
        self.uids[name] = created["metadata"]["uid"]
        return dict(created)

    async def grant(self, namespace: str, source: str, name: str = "from-source", **extra: Any) -> Any:
        """A RerankPublishGrant in ``namespace`` accepting copies from pipelines in ``source``."""
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RerankPublishGrant",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"from": [{"namespace": source, **extra}]},
        }
        return await self.create(GRANTS, body, namespace=namespace)

    async def update_spec(self, name: str, spec_patch: dict[str, Any]) -> int:
        """Merge-patch the spec; returns the new metadata.generation (the emulator bumps it)."""
        patched = await self.patch(PIPELINES, name, {"spec": spec_patch})
        return int(patched["metadata"]["generation"])

    async def wait_deployment(
        self, name: str, within: float = 10.0, *, deployment: str | None = None
    ) -> dict[str, Any]:
        """The pipeline's Deployment (default: the in-place one), once the operator has created it."""
        dep_name = deployment or f"{name}-reranker"
        found: dict[str, Any] = await eventually(
            lambda: self.get(DEPLOYMENTS, dep_name), within=within, message=f"Deployment {dep_name}"
        )
        return found

    async def converge(self, name: str, spec: dict[str, Any]) -> None:
        """Create a pipeline, play its rollout to the end and wait until it is Ready and published."""
        await self.create_pipeline(name, spec)
        await self.wait_deployment(name)
        await self.play_deployment_controller(name)
        await self.wait_ready(name)

    async def restart_operator(self) -> None:
        """Stop the operator and start a new one (fresh memo, no in-memory state): a pod restart."""
        await self.operator.stop()
        self.operator = OperatorThread()
        await self.operator.start()

    async def play_deployment_controller(
        self,
        name: str,
        *,
        ready: int | None = None,
        updated: int | None = None,
        deployment: str | None = None,
    ) -> None:
        """What the Deployment controller reports once ``ready`` of ``updated`` pods of the current
        template run (``updated`` defaults to ``ready``: a rollout; more than ``ready``: pods lost).
        ``deployment``: a BlueGreen revision's (default: the in-place ``<name>-reranker``)."""
        dep_name = deployment or f"{name}-reranker"
        dep = self.must(DEPLOYMENTS, dep_name)
        desired = int(dep["spec"].get("replicas", 1))
        ready = desired if ready is None else ready
        updated = ready if updated is None else updated
        await self.patch(
            DEPLOYMENTS,
            dep_name,
            {
                "status": {
                    "observedGeneration": int(dep["metadata"]["generation"]),
                    "replicas": desired,
                    "updatedReplicas": updated,
                    "readyReplicas": ready,
                    "availableReplicas": ready,
                }
            },
            subresource="status",
        )

    async def create_secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        await self.create(
            SECRETS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "type": "Opaque",
                "data": encoded,
            },
        )

    async def wait_ready(self, name: str, within: float = 15.0) -> dict[str, Any]:
        def ready() -> dict[str, Any]:
            cond = self.condition(name, "Ready")
            assert cond["status"] == "True", cond
            assert self.published(name)["ready"] == "true"
            return cond

        return await eventually(ready, within=within, message=f"{name} Ready=True and published")
