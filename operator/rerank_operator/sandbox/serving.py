"""Something that answers for every RerankPipeline in the sandbox: a stand-in, or the real vLLM.

kwok marks reranker pods Running without running anything, and Service names do not resolve on this
machine. So the sandbox looks at the pipelines users apply (level-based: one :meth:`PipelineServer.sync`
per tick) and, for each one, starts

* the real engine (``--engine vllm``, for the pipeline named as the engine's): the container of the
  Deployment the operator rendered, run as a local process (:mod:`rerank_operator.sandbox.podrunner`),
  restarted when the pod template's config hash changes;
* otherwise a loopback stand-in (:mod:`rerank_operator.standin`) serving the pipeline's model name in its
  engine's protocol (TEI's, with the pipeline's batch limit, for ``engine.kind: tei`` and external TEIs)
  and, when it sets ``apiKeySecretRef`` (or ``external.apiKeySecretRef``), requiring that Secret's key.
  An external pipeline's endpoint is answered this way too: the reranker "some other system runs".

It maps the address the operator probes (``endpoint_for``: the Service's cluster DNS name, or
``publish.endpoint``) to that process in the host-override file the operator re-reads
(``RERANK_OPERATOR_HOST_OVERRIDES_FILE``: a test/sandbox-only, loopback-only seam). Deleted pipelines
lose their process and their entry.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rerank_operator.models import InvalidPipeline, RerankPipeline
from rerank_operator.publish import endpoint_for
from rerank_operator.render import child_names
from rerank_operator.render.workload import CONFIG_HASH_ANNOTATION
from rerank_operator.sandbox.cluster import Sandbox
from rerank_operator.sandbox.engine import EngineInstall
from rerank_operator.sandbox.podrunner import PodSpecError, cluster_lookup, local_container
from rerank_operator.sandbox.procs import free_port
from rerank_operator.settings import cluster_domain

log = logging.getLogger("rerank_operator.sandbox")
Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Backend:
    """One running answer for one pipeline."""

    process: str  # the sandbox process name
    kind: str  # "standin" | "vllm"
    signature: str  # what it was started for; a different one restarts it
    authority: str  # host:port the operator probes
    port: int  # loopback port it listens on
    scratch: Path | None = None  # the engine's private directory, removed when it stops
    aliases: tuple[str, ...] = ()  # more override keys: BlueGreen's per-revision Services


def probed_authority(pipeline: RerankPipeline) -> str | None:
    """``host:port`` the operator's canary connects to for this pipeline (None: not servable here)."""
    parts = urlsplit(endpoint_for(pipeline, cluster_domain()))
    if parts.scheme != "http":
        return None  # an https publish.endpoint needs a certificate the sandbox does not have
    return f"{parts.hostname}:{parts.port or 80}"


def revision_hosts(pipeline: RerankPipeline) -> tuple[str, ...]:
    """BlueGreen: an override key for each revision's own Service (``<name>-<revision>``), which the
    canary calls before a switch. One process answers for every revision of a pipeline here."""
    if pipeline.spec.rollout.strategy != "BlueGreen" or pipeline.spec.external is not None:
        return ()
    host = f"{pipeline.name}-*.{pipeline.namespace}.svc.{cluster_domain()}"
    return (f"{host}:{pipeline.spec.engine.port}",)


def _runs_vllm(pipeline: RerankPipeline) -> bool:
    """Only a pipeline whose Deployment runs vLLM can be served by the real engine here."""
    return pipeline.spec.external is None and pipeline.spec.engine.effective_kind == "vllm"


def render_overrides(backends: dict[Key, Backend]) -> str:
    lines = ["# written by rerank-operator sandbox: probed address = loopback process"]
    for _, b in sorted(backends.items()):
        lines += [f"{a}=127.0.0.1:{b.port}" for a in dict.fromkeys((b.authority, *b.aliases))]
    return "\n".join(lines) + "\n"


class PipelineServer:
    """Keeps one backend per pipeline and the override file in step with the cluster."""

    def __init__(
        self,
        sandbox: Sandbox,
        overrides_file: Path,
        *,
        engine: EngineInstall | None = None,
        engine_pipeline: Key | None = None,
        report: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
    ) -> None:
        self.sandbox = sandbox
        self.overrides_file = overrides_file
        self.engine = engine
        self.engine_pipeline = engine_pipeline
        self.report = report
        self.backends: dict[Key, Backend] = {}
        self._reported: set[str] = set()
        self._write_overrides()

    # -- one level-based pass ---------------------------------------------------------------------------

    def sync(self) -> None:
        items = self.sandbox.kubectl_json("get", "rrp", "-A")["items"]
        seen: set[Key] = set()
        for body in items:
            key = (body["metadata"]["namespace"], body["metadata"]["name"])
            seen.add(key)
            try:
                pipeline = RerankPipeline.from_body(body)
            except (InvalidPipeline, ValueError):
                continue  # the operator reports it (Stalled=InvalidSpec)
            self._sync_one(key, pipeline)
        for key in set(self.backends) - seen:
            self._stop(key)
        self._write_overrides()

    def _sync_one(self, key: Key, pipeline: RerankPipeline) -> None:
        authority = probed_authority(pipeline)
        if authority is None:
            return
        if self.engine is not None and key == self.engine_pipeline and _runs_vllm(pipeline):
            wanted = self._engine_signature(key, pipeline)
            kind = "vllm"
        else:
            wanted = self._standin_signature(key, pipeline)
            kind = "standin"
        if wanted is None:
            return  # not startable yet (Deployment not rendered, Secret missing): next pass
        current = self.backends.get(key)
        if current is not None and current.signature == wanted and current.authority == authority:
            return
        if current is not None:
            self._stop(key)
        if kind == "vllm":
            self._start_engine(key, pipeline, wanted, authority)
        else:
            self._start_standin(key, pipeline, wanted, authority)

    # -- stand-ins --------------------------------------------------------------------------------------

    def _api_key(self, key: Key, pipeline: RerankPipeline) -> tuple[bool, str | None]:
        ref = pipeline.spec.effective_api_key_ref
        if ref is None:
            return True, None
        try:
            secret = self.sandbox.kubectl_json("get", "secret", ref.name, "-n", key[0])
        except Exception:
            return False, None
        value = (secret.get("data") or {}).get(ref.key)
        return (True, base64.b64decode(value).decode()) if value else (False, None)

    def _standin_signature(self, key: Key, pipeline: RerankPipeline) -> str | None:
        found, api_key = self._api_key(key, pipeline)
        if not found:
            return None
        digest = "" if api_key is None else base64.b16encode(api_key.encode()).decode()[:8]
        spec = pipeline.spec
        engine = (
            f"{spec.engine_kind}/{spec.publish.max_client_batch_size}"
            if spec.engine_kind == "tei"
            else "vllm"
        )
        return f"standin:{engine}:{spec.model.effective_served_name}:{digest}"

    def _start_standin(self, key: Key, pipeline: RerankPipeline, signature: str, authority: str) -> None:
        port = free_port()
        name = f"standin-{key[0]}-{key[1]}"
        argv = [sys.executable, "-m", "rerank_operator.standin", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--model", pipeline.spec.model.effective_served_name]
        if pipeline.spec.engine_kind == "tei":
            # TEI's protocol, with the batch limit the operator starts TEI with (--max-client-batch-size)
            argv += [
                "--engine",
                "tei",
                "--max-client-batch-size",
                str(pipeline.spec.publish.max_client_batch_size),
            ]
        env: dict[str, str] = {}
        _, api_key = self._api_key(key, pipeline)
        if api_key is not None:
            argv += ["--api-key-env", "STANDIN_API_KEY"]
            env["STANDIN_API_KEY"] = api_key
        self.sandbox.start_process(name, argv, env=env)
        self.backends[key] = Backend(
            name, "standin", signature, authority, port, aliases=revision_hosts(pipeline)
        )
        engine = pipeline.spec.engine_kind
        self.report(
            f"{key[0]}/{key[1]}: stand-in reranker ({engine}) on 127.0.0.1:{port} answers for {authority}"
        )

    # -- the real engine --------------------------------------------------------------------------------

    def _deployment(self, key: Key, pipeline: RerankPipeline) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self.sandbox.kubectl_json(
                "get", "deployment", child_names(pipeline).deployment, "-n", key[0]
            )
        except Exception:
            return None
        return obj

    def _engine_signature(self, key: Key, pipeline: RerankPipeline) -> str | None:
        deployment = self._deployment(key, pipeline)
        if deployment is None:
            return None
        annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
        return f"vllm:{annotations.get(CONFIG_HASH_ANNOTATION, '')}"

    def _start_engine(self, key: Key, pipeline: RerankPipeline, signature: str, authority: str) -> None:
        assert self.engine is not None
        deployment = self._deployment(key, pipeline)
        if deployment is None:
            return
        name = f"vllm-{key[0]}-{key[1]}"
        # In the system temp dir, not the (possibly long) workdir: vLLM's IPC socket paths must stay short.
        scratch = Path(tempfile.mkdtemp(prefix="rerank-vllm-"))
        lookup, config_maps = cluster_lookup(self.sandbox.kubectl_json, key[0])
        try:
            local = local_container(
                deployment,
                lookup=lookup,
                config_map_data=config_maps,
                volume_dirs={"model-cache": self.engine.hf_home},
                scratch=scratch,
            )
            base_env = self.engine.process_env(scratch / "p")
        except (PodSpecError, ValueError) as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            self._report_once(f"{key[0]}/{key[1]}: cannot run its vLLM container here: {exc}")
            return
        port = local.port or pipeline.spec.engine.port
        self.sandbox.start_process(name, local.argv, env={**base_env, **local.env}, cwd=scratch)
        self.backends[key] = Backend(
            name, "vllm", signature, authority, port, scratch, aliases=revision_hosts(pipeline)
        )
        self.report(
            f"{key[0]}/{key[1]}: started the real vLLM ({' '.join(local.argv[:3])} ...) on port {port}; "
            f"loading takes a minute or more (log: {self.sandbox.log_path(name)})"
        )

    # -- bookkeeping ------------------------------------------------------------------------------------

    def _report_once(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            self.report(message)

    def _stop(self, key: Key) -> None:
        backend = self.backends.pop(key)
        if backend.process in self.sandbox.processes:
            self.sandbox.stop_process(backend.process)
        if backend.scratch is not None:
            shutil.rmtree(backend.scratch, ignore_errors=True)

    def close(self) -> None:
        """Remove what the engines left on disk; call after their processes are stopped."""
        for backend in self.backends.values():
            if backend.scratch is not None:
                shutil.rmtree(backend.scratch, ignore_errors=True)

    def _write_overrides(self) -> None:
        text = render_overrides(self.backends)
        if self.overrides_file.exists() and self.overrides_file.read_text() == text:
            return
        tmp = self.overrides_file.with_name(self.overrides_file.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.overrides_file)

    def engine_backend(self) -> Backend | None:
        if self.engine_pipeline is None:
            return None
        backend = self.backends.get(self.engine_pipeline)
        return backend if backend is not None and backend.kind == "vllm" else None
