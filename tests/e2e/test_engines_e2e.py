"""The other engines on the real control plane: a TEI pipeline and an external one reach Ready, and the
apiserver's own admission (the generated CRD's CEL rules) refuses what cannot work, naming the field.

The TEI pipeline's pods are kwok's (nothing runs in them); its canary reaches the stand-in in its faithful
TEI mode through the operator's host-override seam, as Milvus would reach the Service. The external
pipeline's endpoint is an outside name (``reranker.<ns>.example.test``) answered by a vLLM stand-in that
requires an API key: no workload is created for it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from operator_support import OperatorProcess, get_json, names_of, operator_for, service_host, wait_ready

from rerank_operator.models import DEFAULT_TEI_IMAGE
from rerank_operator.sandbox import ClusterClient, KubectlError
from rerank_operator.standin.server import StandinServer

SUFFIX = uuid.uuid4().hex[:6]
NS = f"op-engines-{SUFFIX}"
SERVED = "BAAI/bge-reranker-base"
TEI_BATCH = 16
EXTERNAL_AUTHORITY = f"reranker.{SUFFIX}.example.test:8443"
EXTERNAL = f"http://{EXTERNAL_AUTHORITY}"
API_KEY = f"key-{SUFFIX}"
READY_TIMEOUT = 90
PROBE = {"intervalSeconds": 2, "timeoutSeconds": 5, "failureThreshold": 2}


@pytest.fixture(scope="module")
def tei() -> Iterator[StandinServer]:
    with StandinServer(served_model=SERVED, engine="tei", max_client_batch_size=TEI_BATCH) as server:
        yield server


@pytest.fixture(scope="module")
def external() -> Iterator[StandinServer]:
    with StandinServer(served_model=SERVED, api_key=API_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterClient,
    tei: StandinServer,
    external: StandinServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    overrides = {
        service_host("tei", NS): f"127.0.0.1:{tei.port}",
        EXTERNAL_AUTHORITY: f"127.0.0.1:{external.port}",
    }
    with operator_for(cluster, [NS], overrides, tmp_path_factory.mktemp("operator-logs")) as op:
        yield op


def manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPipeline",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"probe": PROBE, **spec},
    }


def published(cluster: ClusterClient, name: str) -> dict[str, str]:
    cm = get_json(cluster, "configmap", f"{name}-ranker", "-n", NS)
    assert cm is not None, f"{name}-ranker missing"
    return dict(cm.get("data") or {})


def test_a_tei_pipeline_reaches_ready_and_publishes_provider_tei(
    cluster: ClusterClient, operator: OperatorProcess, tei: StandinServer
) -> None:
    spec = {
        "model": {"name": SERVED},
        "engine": {"kind": "tei"},
        "publish": {"maxClientBatchSize": TEI_BATCH},
    }
    cluster.apply(manifest("tei", spec))
    obj = wait_ready(cluster, operator, "tei", NS, timeout=READY_TIMEOUT)

    active = obj["status"]["revisions"]["active"]  # the default rollout: BlueGreen, as for vLLM
    deployment = get_json(cluster, "deployment", f"tei-{active}", "-n", NS)
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == DEFAULT_TEI_IMAGE
    argv = [*container.get("command", []), *container["args"]]
    assert argv[argv.index("--max-client-batch-size") + 1] == str(TEI_BATCH)

    data = published(cluster, "tei")
    assert data["ready"] == "true"
    assert data["endpoint"] == f"http://tei-reranker.{NS}.svc.cluster.local:8000"
    params = json.loads(data["milvus-function.json"])["params"]
    assert params["provider"] == "tei" and params["max_client_batch_size"] == TEI_BATCH
    assert "milvus-lite-function.json" not in data
    canaries = [json.loads(r.body) for r in tei.request_log if r.path == "/rerank"]
    assert canaries and all("texts" in body for body in canaries)


def test_an_external_pipeline_reaches_ready_without_any_workload(
    cluster: ClusterClient, operator: OperatorProcess, external: StandinServer
) -> None:
    cluster.kubectl("create", "secret", "generic", "ext-key", "-n", NS, f"--from-literal=token={API_KEY}")
    spec = {
        "model": {"name": SERVED},
        "external": {"endpoint": EXTERNAL, "apiKeySecretRef": {"name": "ext-key", "key": "token"}},
    }
    cluster.apply(manifest("ext", spec))
    obj = wait_ready(cluster, operator, "ext", NS, timeout=READY_TIMEOUT)

    assert obj["status"]["endpoint"] == EXTERNAL
    assert "replicas" not in obj["status"]
    data = published(cluster, "ext")
    assert data["ready"] == "true" and data["endpoint"] == EXTERNAL
    assert json.loads(data["milvus-function.json"])["params"]["provider"] == "vllm"
    assert API_KEY not in json.dumps(data) and API_KEY not in json.dumps(obj["status"])
    owned = [
        item
        for kind in ("deployments", "services", "pods")
        for item in (get_json(cluster, kind, "-n", NS, "-l", "app.kubernetes.io/instance=ext") or {})["items"]
    ]
    assert names_of(owned) == []
    hosts = {r.headers.get("host") for r in external.request_log if r.path.endswith("rerank")}
    assert hosts == {EXTERNAL_AUTHORITY}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"external": {"endpoint": EXTERNAL}, "engine": {"image": "vllm/vllm-openai:v0.32.0"}},
            "spec.engine.image",
        ),
        (
            {"engine": {"kind": "tei"}, "model": {"name": SERVED, "chatTemplate": "{{ x }}"}},
            "spec.model.chatTemplate",
        ),
        ({"external": {"endpoint": "http://127.0.0.1:8000"}}, "spec.external.endpoint"),
    ],
    ids=["external-with-image", "tei-with-chat-template", "external-loopback"],
)
def test_admission_refuses_what_cannot_work_naming_the_field(
    cluster: ClusterClient, operator: OperatorProcess, spec: dict[str, Any], field: str
) -> None:
    del operator  # the namespace
    body = manifest("refused", {"model": {"name": SERVED}, **spec})
    with pytest.raises(KubectlError) as info:
        cluster.apply(body)
    assert field in info.value.stderr, info.value.stderr
    assert get_json(cluster, "rrp", "refused", "-n", NS) is None
