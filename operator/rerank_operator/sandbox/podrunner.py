"""Run a rendered pod's container as a local process: the honest core of a "process kubelet".

There is no container runtime here, but the engine tier and ``rerank-operator sandbox --engine vllm``
still run what the operator rendered: the container's ``command``, ``args`` and ``env`` exactly as the
Deployment in the cluster has them, with what a kubelet would provide around them:

* ``env`` entries are resolved like the kubelet does: ``value`` as is, ``secretKeyRef`` and
  ``configMapKeyRef`` read from the cluster (a missing, non-optional reference is an error naming it);
* each volume mount is mapped to a local directory: paths in ``args`` and ``env`` values that lie under
  a mount path are rewritten to the local directory (no mount namespace is needed, and nothing outside
  the mapping changes). ``configMap`` volumes are written out like the kubelet projects them (one file
  per key, or the listed ``items``); ``emptyDir`` volumes get a fresh directory, except those the caller
  maps (the model cache); ``/dev/shm`` stays the host's;
* the "image" is the engine venv: its ``bin`` comes first on PATH, with the offline and private-cache
  environment of :meth:`rerank_operator.sandbox.engine.EngineInstall.process_env` under the
  container's own env (container env wins, as over an image's ENV).

The process listens on the container port the spec asked for (``--port``), on the host's loopback; the
operator's canary reaches it through the host-override seam.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHM_PATH = "/dev/shm"

Lookup = Callable[[str, str, str], str | None]  # (kind "secret"|"configmap", name, key) -> value or None


class PodSpecError(ValueError):
    """The container cannot run locally as rendered (an unresolvable env entry, an unmapped volume)."""


@dataclass(frozen=True)
class LocalContainer:
    """What to exec: argv (command + args) and the container's resolved env, paths mapped."""

    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path]  # container mount path -> local directory
    port: int | None


def find_container(deployment: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    if name is None:
        return containers[0]
    for container in containers:
        if container["name"] == name:
            return container
    raise PodSpecError(f"no container {name!r} in {[c['name'] for c in containers]}")


def resolve_env(entries: Sequence[Mapping[str, Any]], lookup: Lookup) -> dict[str, str]:
    """The container's env as the kubelet would set it (``value``, ``secretKeyRef``, ``configMapKeyRef``)."""
    env: dict[str, str] = {}
    for entry in entries:
        name = entry["name"]
        if "valueFrom" not in entry:
            env[name] = _expand(str(entry.get("value", "")), env)
            continue
        source = entry["valueFrom"]
        for kind, field in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
            ref = source.get(field)
            if ref is None:
                continue
            value = lookup(kind, ref["name"], ref["key"])
            if value is None:
                if ref.get("optional"):
                    break
                raise PodSpecError(f"env {name}: {field} {ref['name']}/{ref['key']} not found")
            env[name] = value
            break
        else:
            raise PodSpecError(f"env {name}: only value, secretKeyRef and configMapKeyRef run locally")
    return env


_VAR_REF = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)|\$\$")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of env values and args (``$$`` escapes; unknown refs stay)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


def map_paths(value: str, mounts: Mapping[str, Path]) -> str:
    """Rewrite a container path (a whole value, or after ``=`` as in ``--flag=/path``) under a mount
    path to the local directory it is mapped to; longer mount paths win."""
    for mount in sorted(mounts, key=len, reverse=True):
        pattern = re.compile(r"(^|=)" + re.escape(mount.rstrip("/")) + r"(?=/|$)")
        m = pattern.search(value)
        if m:
            return value[: m.start()] + m.group(1) + str(mounts[mount]) + value[m.end() :]
    return value


def project_config_map(
    data: Mapping[str, str], items: Sequence[Mapping[str, str]] | None, into: Path
) -> None:
    """Write a configMap volume's files (all keys, or the listed items) into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    wanted = [(i["key"], i.get("path", i["key"])) for i in items] if items else [(k, k) for k in data]
    for key, rel in wanted:
        if key not in data:
            raise PodSpecError(f"configMap volume: key {key!r} not found")
        target = into / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[key])


def local_container(
    deployment: Mapping[str, Any],
    *,
    lookup: Lookup,
    config_map_data: Callable[[str], Mapping[str, str] | None],
    volume_dirs: Mapping[str, Path],
    scratch: Path,
    container: str | None = None,
) -> LocalContainer:
    """The container of a (rendered or live) Deployment as a local process description.

    ``volume_dirs`` maps volume names to local directories (e.g. ``{"model-cache": hf_home}``); other
    ``emptyDir`` and ``configMap`` volumes get directories under ``scratch``; any other unmapped
    volume (a PVC) is an error, since its content cannot be known here.
    """
    spec = deployment["spec"]["template"]["spec"]
    c = find_container(deployment, container)
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    mounts: dict[str, Path] = {}
    for mount in c.get("volumeMounts") or []:
        path, name = mount["mountPath"], mount["name"]
        if path == SHM_PATH:
            mounts[path] = Path(SHM_PATH)
            continue
        volume = volumes.get(name)
        if volume is None:
            raise PodSpecError(f"volumeMount {name}: no such volume")
        if name in volume_dirs:
            local = volume_dirs[name]
        elif "emptyDir" in volume:
            local = scratch / "volumes" / name
            local.mkdir(parents=True, exist_ok=True)
        elif "configMap" in volume:
            cm = volume["configMap"]
            data = config_map_data(cm["name"])
            if data is None:
                raise PodSpecError(f"volume {name}: ConfigMap {cm['name']} not found")
            local = scratch / "volumes" / name
            project_config_map(data, cm.get("items"), local)
        else:
            raise PodSpecError(f"volume {name}: map it to a local directory (volume_dirs)")
        mounts[path] = local
    env = {k: map_paths(v, mounts) for k, v in resolve_env(c.get("env") or [], lookup).items()}
    argv = [map_paths(_expand(a, env), mounts) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
    if not argv:
        raise PodSpecError(
            f"container {c['name']}: no command or args (the image's entrypoint is unknown here)"
        )
    ports = [p["containerPort"] for p in c.get("ports") or []]
    return LocalContainer(name=c["name"], argv=argv, env=env, mounts=mounts, port=ports[0] if ports else None)


def cluster_lookup(
    kubectl_json: Callable[..., Any], namespace: str
) -> tuple[Lookup, Callable[[str], Mapping[str, str] | None]]:
    """Secret/ConfigMap readers for :func:`local_container` backed by ``ClusterClient.kubectl_json``."""

    def read(kind: str, name: str) -> dict[str, str] | None:
        try:
            obj = kubectl_json("get", kind, name, "-n", namespace)
        except Exception:  # NotFound and friends: the caller reports the missing reference
            return None
        data: dict[str, str] = dict(obj.get("data") or {})
        if kind == "secret":
            return {k: base64.b64decode(v).decode() for k, v in data.items()}
        return data

    def lookup(kind: str, name: str, key: str) -> str | None:
        data = read(kind, name)
        return None if data is None else data.get(key)

    return lookup, lambda name: read("configmap", name)
