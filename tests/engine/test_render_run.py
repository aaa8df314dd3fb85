"""Render -> run, for real: the operator's Deployment runs as a vLLM process, the canary and Milvus Lite use it.

On the engine tier's own control plane, the real ``rerank-operator run`` reconciles the CPU example
(``sentence-transformers/all-MiniLM-L6-v2``) with ``engine.port`` set to a free port. The test then runs
the container of the Deployment the operator rendered, taken from the cluster, as a local process: its
``command``/``args``/``env`` unmodified, secretKeyRefs read from the cluster, the model-cache mount
mapped to the engine's Hugging Face cache (see :mod:`rerank_operator.sandbox.podrunner`). The canary
reaches it through the host-override seam (the Service name does not resolve here); Milvus Lite reaches
it on loopback with the published function (``load_ranker(..., endpoint=...)``, as through a
port-forward). An external pipeline (``spec.external``) is then pointed at the same real vLLM under an
outside name: a real server that nothing in the cluster runs. Then the process is killed and restarted.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymilvus import DataType, MilvusClient

from rerank_operator.client import load_ranker
from rerank_operator.render import child_names
from rerank_operator.sandbox import ManagedProcess, Sandbox, SandboxTimeout, procs
from rerank_operator.sandbox.engine import MODEL_ID, EngineInstall
from rerank_operator.sandbox.podrunner import LocalContainer, cluster_lookup, local_container

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "cpu-minilm.yaml"
# vLLM on CPU is ready in 45-90 s on an idle machine; CI shares 2 cores with the rest of the suite.
ENGINE_START_TIMEOUT = 900
CANARY_TIMEOUT = 120
QUERY = "what is the capital of france?"
DOCS = [
    "Bananas are a good source of potassium.",
    "The Eiffel Tower was finished in 1889.",
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "Photosynthesis turns light into chemical energy.",
]
PARIS = 2
DIM = 4
QUERY_VECTOR = [1.0, 0.0, 0.0, 0.0]


def external_authority(namespace: str, port: int) -> str:
    """The outside name the external pipeline uses for the real vLLM (mapped to it by the seam)."""
    return f"vllm.{namespace}.example.test:{port}"


@dataclass
class Run:
    cluster: Sandbox
    engine: EngineInstall
    namespace: str
    name: str
    port: int
    service: str  # host:port the canary probes (and apps are given)
    operator: ManagedProcess
    workdir: Path
    vllm: ManagedProcess | None = None
    starts: int = 0

    def rrp(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.cluster.kubectl_json("get", "rrp", self.name, "-n", self.namespace)
        return obj

    def condition(self, type_: str) -> dict[str, Any]:
        for c in (self.rrp().get("status") or {}).get("conditions") or []:
            if c["type"] == type_:
                return dict(c)
        return {}

    def published(self) -> dict[str, str]:
        cm_name = self.rrp()["metadata"]["name"] + "-ranker"
        cm = self.cluster.kubectl_json("get", "configmap", cm_name, "-n", self.namespace)
        return dict(cm.get("data") or {})

    def deployment(self) -> dict[str, Any]:
        name = child_names_of(self.rrp()).deployment  # the current revision's (BlueGreen)
        obj: dict[str, Any] = self.cluster.kubectl_json("get", "deployment", name, "-n", self.namespace)
        return obj

    def container(self) -> LocalContainer:
        lookup, config_maps = cluster_lookup(self.cluster.kubectl_json, self.namespace)
        return local_container(
            self.deployment(),
            lookup=lookup,
            config_map_data=config_maps,
            volume_dirs={"model-cache": self.engine.hf_home},
            scratch=self.workdir / "pod",
        )

    def start_vllm(self) -> None:
        """Run the Deployment's container as the kubelet would start it (a new process each time)."""
        local = self.container()
        self.starts += 1
        private = self.workdir / f"vllm-{self.starts}"
        self.vllm = ManagedProcess(
            "vllm",
            local.argv,
            log_path=self.workdir / f"vllm-{self.starts}.log",
            env={**self.engine.process_env(private), **local.env},
            cwd=private,
        )

    def kill_vllm(self) -> None:
        assert self.vllm is not None
        self.vllm.stop(grace=0)  # SIGKILL to the whole process group: the engine core dies with it

    def wait(self, check: Any, *, timeout: float, what: str) -> Any:
        watch = [self.operator, *([self.vllm] if self.vllm is not None and self.vllm.alive() else [])]
        try:
            return procs.wait_until(check, timeout=timeout, what=what, interval=1.0, watch=watch)
        except SandboxTimeout as exc:
            status = json.dumps(self.rrp().get("status"), indent=1)
            pytest.fail(f"{exc}\n\nstatus:\n{status}", pytrace=False)


def _pipeline_body(namespace: str, port: int) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d))
    body["metadata"] = {"name": body["metadata"]["name"], "namespace": namespace}
    body["spec"]["engine"]["port"] = port
    body["spec"]["probe"] = {"intervalSeconds": 2, "timeoutSeconds": 10, "failureThreshold": 2}
    return body


@pytest.fixture(scope="module")
def run(
    engine: EngineInstall, engine_cluster: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("render-run")
    namespace = engine_cluster.create_namespace(f"engine-{uuid.uuid4().hex[:6]}")
    port = procs.free_port()
    body = _pipeline_body(namespace, port)
    name = body["metadata"]["name"]
    service = f"{child_names_of(body).service}.{namespace}.svc.cluster.local:{port}"
    # every Service of the pipeline: the stable one and its revision's (BlueGreen, the example's default)
    services = f"{name}-*.{namespace}.svc.cluster.local:{port}"
    operator = ManagedProcess(
        "operator",
        [str(Path(sys.executable).parent / "rerank-operator"), "run", "-A", "--verbose"],
        log_path=workdir / "operator.log",
        env={
            **engine_cluster.env,
            "RERANK_OPERATOR_HOST_OVERRIDES": (
                f"{services}=127.0.0.1:{port},{external_authority(namespace, port)}=127.0.0.1:{port}"
            ),
            "RERANK_OPERATOR_RESYNC_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        },
        cwd=REPO,
    )
    r = Run(engine_cluster, engine, namespace, name, port, service, operator, workdir)
    try:
        engine_cluster.apply(body)
        yield r
    finally:
        if r.vllm is not None:
            r.vllm.stop()
        engine_cluster.kubectl("delete", "rrp", "--all", "-n", namespace, "--wait=false", check=False)
        operator.stop()
        engine_cluster.delete_namespaces(namespace)


def child_names_of(body: dict[str, Any]) -> Any:
    from rerank_operator.models import RerankPipeline

    return child_names(RerankPipeline.from_body(body))


def vllm_rerank(port: int, query: str, documents: list[str]) -> list[dict[str, Any]]:
    """Ask the running vLLM directly (Cohere-style /v2/rerank) for its ranking of ``documents``."""
    resp = httpx.post(
        f"http://127.0.0.1:{port}/v2/rerank",
        json={"model": MODEL_ID, "query": query, "documents": documents},
        timeout=30,
    )
    resp.raise_for_status()
    results: list[dict[str, Any]] = resp.json()["results"]
    return results


def test_rendered_deployment_runs_unmodified_and_reaches_ready(run: Run) -> None:
    deployment = run.wait(lambda: run.deployment(), timeout=60, what="the operator to render the Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    local = run.container()
    # unmodified: the same argv and env names; only the model-cache path is mapped to a local directory
    assert local.argv == [*container["command"], *container["args"]]
    assert local.argv[:3] == ["vllm", "serve", MODEL_ID]
    assert f"--port={run.port}" in " ".join(local.argv).replace("--port ", "--port=")
    assert sorted(local.env) == sorted(e["name"] for e in container["env"])
    assert local.env["HF_HOME"] == str(run.engine.hf_home)
    assert local.port == run.port

    run.start_vllm()
    ready = run.wait(
        lambda: run.condition("Ready").get("status") == "True",
        timeout=ENGINE_START_TIMEOUT,
        what="vLLM to load and the canary to pass (Ready=True)",
    )
    assert ready
    status = run.rrp()["status"]
    assert status["lastProbe"]["ok"] is True and status["lastProbe"]["reason"] == "Healthy"
    assert status["servedModel"] == MODEL_ID
    latency = status["lastProbe"]["latencyMs"]
    assert 0 < latency < 10_000  # a real model's round trip, measured by the canary
    assert (status.get("latency") or {}).get("samples", 0) >= 1
    data = run.published()
    assert data["ready"] == "true"
    assert data["endpoint"] == f"http://{run.service}"


def test_milvus_lite_searches_through_the_published_function_against_real_vllm(
    run: Run, tmp_path: Path
) -> None:
    assert run.condition("Ready").get("status") == "True"
    data = run.published()
    expected = vllm_rerank(run.port, QUERY, DOCS)
    assert expected[0]["index"] == PARIS  # the model itself puts Paris first

    client = MilvusClient(str(tmp_path / "milvus.db"))
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("document", DataType.VARCHAR, max_length=1024)
        index = client.prepare_index_params()
        index.add_index("embedding", index_type="AUTOINDEX", metric_type="COSINE")
        client.create_collection("docs", schema=schema, index_params=index)
        # The vector order puts Paris last: only the reranker can bring it to the top.
        vectors = [[math.cos(0.2 * i), math.sin(0.2 * i), 0.0, 0.0] for i in range(len(DOCS))]
        vectors[PARIS] = [0.0, 0.0, 1.0, 0.0]
        rows = [
            {"id": i, "embedding": v, "document": d}
            for i, (v, d) in enumerate(zip(vectors, DOCS, strict=True))
        ]
        client.insert("docs", rows)
        client.load_collection("docs")
        search = {
            "data": [QUERY_VECTOR],
            "anns_field": "embedding",
            "limit": len(DOCS),
            "output_fields": ["document"],
        }
        plain = client.search("docs", **search)[0]
        assert int(plain[-1]["id"]) == PARIS

        ranker = load_ranker(data, QUERY, target="milvus-lite", endpoint=f"http://127.0.0.1:{run.port}")
        hits = client.search("docs", ranker=ranker, **search)[0]
    finally:
        client.close()
    assert [int(h["id"]) for h in hits] == [r["index"] for r in expected]
    for hit, want in zip(hits, expected, strict=True):
        assert hit["distance"] == pytest.approx(want["relevance_score"], rel=1e-4)
        assert hit["entity"]["document"] == DOCS[want["index"]]


def test_an_external_pipeline_is_verified_against_the_real_vllm_and_deploys_nothing(run: Run) -> None:
    assert run.condition("Ready").get("status") == "True"  # the real vLLM is up
    endpoint = f"http://{external_authority(run.namespace, run.port)}"
    body = {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPipeline",
        "metadata": {"name": "elsewhere", "namespace": run.namespace},
        "spec": {
            "model": {"name": MODEL_ID},
            "external": {"endpoint": endpoint},
            "probe": {"intervalSeconds": 2, "timeoutSeconds": 10, "failureThreshold": 2},
        },
    }
    run.cluster.apply(body)
    try:

        def ready() -> dict[str, Any] | None:
            obj: dict[str, Any] = run.cluster.kubectl_json("get", "rrp", "elsewhere", "-n", run.namespace)
            conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
            return obj if conditions.get("Ready", {}).get("status") == "True" else None

        obj = run.wait(ready, timeout=CANARY_TIMEOUT, what="the external pipeline to pass its canary")
        status = obj["status"]
        assert status["endpoint"] == endpoint and "replicas" not in status
        assert status["lastProbe"]["reason"] == "Healthy" and status["lastProbe"]["latencyMs"] > 0
        cm = run.cluster.kubectl_json("get", "configmap", "elsewhere-ranker", "-n", run.namespace)
        data = cm["data"]
        assert data["ready"] == "true" and data["endpoint"] == endpoint
        params = json.loads(data["milvus-function.json"])["params"]
        assert params["provider"] == "vllm" and params["endpoint"] == endpoint
        deployments = run.cluster.kubectl_json(
            "get", "deployments", "-n", run.namespace, "-l", "app.kubernetes.io/instance=elsewhere"
        )
        assert deployments["items"] == []
    finally:
        run.cluster.kubectl("delete", "rrp", "elsewhere", "-n", run.namespace, "--wait=false", check=False)


def test_killing_vllm_fails_the_canary_and_keeps_the_last_good_params_until_it_is_back(run: Run) -> None:
    assert run.condition("Ready").get("status") == "True"
    good = run.published()
    run.kill_vllm()

    def flipped() -> dict[str, str] | None:
        data = run.published()
        return data if data.get("ready") == "false" else None

    down = run.wait(flipped, timeout=CANARY_TIMEOUT, what="the published config to flip to ready=false")
    assert down["reason"] == "ConnectionRefused"  # the real reason: nothing listens on the port any more
    for key in ("endpoint", "model", "milvus-function.json", "milvus-lite-function.json"):
        assert down[key] == good[key], key
    status = run.rrp()["status"]
    assert status["lastProbe"]["reason"] == "ConnectionRefused"

    run.start_vllm()
    run.wait(
        lambda: run.published().get("ready") == "true",
        timeout=ENGINE_START_TIMEOUT,
        what="the restarted vLLM to pass the canary again",
    )
    back = run.published()
    assert {k: v for k, v in back.items() if k != "reason"} == {
        k: v for k, v in good.items() if k != "reason"
    }
    assert run.condition("Ready").get("status") == "True"
