"""The real operator process, authenticated as the chart's ServiceAccount, on a real RBAC apiserver.

This is what proves the chart's RBAC is sufficient (and the narrow-verb claims honest): the operator
(``rerank-operator run -A``) runs with a kubeconfig holding a TokenRequest token of the ServiceAccount
the chart creates, bound only to the chart's ClusterRole. Any missing verb shows up as a 403 in the
operator log, which every failure message here includes. Namespaced mode (Roles only) is in
test_operator_namespaced.py: its own module, so the two operators never run at the same time.

Reranker pods are kwok-faked; the canary reaches loopback stand-ins through the resolver seam
(``RERANK_OPERATOR_HOST_OVERRIDES``), exactly as production would reach the Service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from operator_support import (
    REPO,
    Helm,
    ServiceAccountOperator,
    deployed_operator,
    grant_manifest,
    host_overrides,
    pipeline_manifest,
    start_standin,
)

from rerank_operator.sandbox import ClusterClient, Sandbox

EXAMPLE = REPO / "examples" / "minimal.yaml"
FINALIZER = "rerank.dev/finalizer"
API_KEY = "e2e-" + uuid.uuid4().hex  # what the keyed stand-in demands and the Secret holds
KEYED = "bge-keyed"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator-sa")


@pytest.fixture(scope="module")
def env(cluster: ClusterClient, sandbox: Sandbox, helm: Helm, work: Path) -> Iterator[ServiceAccountOperator]:
    """Cluster-wide mode (chart default): ClusterRole, ``run -A``."""
    # `cluster` installs the CRDs; `sandbox` (the same cluster) runs and logs the extra processes.
    suffix = uuid.uuid4().hex[:6]
    operator_ns, pipeline_ns, publish_ns = f"rerank-system-{suffix}", f"rr-e2e-{suffix}", f"rr-apps-{suffix}"
    standins: list[str] = []
    for ns in (operator_ns, pipeline_ns, publish_ns):
        sandbox.create_namespace(ns)
    try:
        # Stand-in rerankers on loopback: one open, one demanding the API key from the Secret.
        ports = {}
        for name, key in (("bge-base", None), (KEYED, API_KEY)):
            standins.append(f"standin-{name}-{suffix}")
            ports[name] = start_standin(sandbox, standins[-1], api_key=key)
        with deployed_operator(
            sandbox,
            helm,
            work,
            suffix=suffix,
            operator_ns=operator_ns,
            overrides=host_overrides(pipeline_ns, ports),
        ) as (sa_name, operator):
            yield ServiceAccountOperator(sandbox, operator_ns, pipeline_ns, publish_ns, sa_name, operator)
    finally:
        for name in standins:
            if name in sandbox.processes:
                sandbox.stop_process(name)
        sandbox.delete_namespaces(pipeline_ns, publish_ns, operator_ns)


def test_minimal_example_ready_and_deleted(env: ServiceAccountOperator) -> None:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    name = manifest["metadata"]["name"]
    manifest["metadata"]["namespace"] = env.pipeline_ns
    env.sandbox.apply(manifest)  # created by a user (admin), reconciled by the ServiceAccount

    obj = env.wait(lambda: env.ready(name), timeout=180, what=f"{name} Ready=True")
    assert FINALIZER in obj["metadata"]["finalizers"]
    status = obj["status"]
    endpoint = f"http://{name}-reranker.{env.pipeline_ns}.svc.cluster.local:8000"
    assert status["endpoint"] == endpoint
    assert status["published"]["ready"] is True
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Stalled"]["status"] == "False"
    assert conds["Degraded"]["status"] == "False"
    assert conds["Reconciling"]["status"] == "False"

    cm = env.configmap(env.pipeline_ns, f"{name}-ranker")
    assert cm is not None, "published ConfigMap missing"
    assert cm["data"]["ready"] == "true", cm["data"]
    assert cm["data"]["endpoint"] == endpoint

    # Events were posted by the operator under the ServiceAccount (events: create).
    events = env.sandbox.kubectl_json(
        "get", "events", "-n", env.pipeline_ns, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    assert "Ready" in {e["reason"] for e in events}, (
        [e["reason"] for e in events],
        env.forbidden_lines()[-5:],
    )

    env.delete_and_wait_gone(name)
    # Children go through ownerReferences (garbage collector), not by the operator: it has no delete on them.
    env.wait(
        lambda: env.gone("deployment", env.pipeline_ns, f"{name}-reranker"), timeout=60, what="Deployment GC"
    )
    env.wait(
        lambda: env.gone("configmap", env.pipeline_ns, f"{name}-ranker"), timeout=60, what="ConfigMap GC"
    )
    assert env.forbidden_lines() == [], "\n".join(env.forbidden_lines())


def test_api_key_secret_and_cross_namespace_publish(env: ServiceAccountOperator) -> None:
    """Reads the key by name (secrets: get only) and withdraws the copy in another namespace on delete."""
    env.sandbox.kubectl(
        "create",
        "secret",
        "generic",
        "reranker-key",
        "-n",
        env.pipeline_ns,
        f"--from-literal=api-key={API_KEY}",
    )
    env.sandbox.apply(grant_manifest(env.publish_ns, env.pipeline_ns))
    env.sandbox.apply(
        pipeline_manifest(
            KEYED,
            env.pipeline_ns,
            apiKeySecretRef={"name": "reranker-key", "key": "api-key"},
            publish={"namespaces": [env.publish_ns]},
        )
    )
    env.wait(lambda: env.ready(KEYED), timeout=180, what=f"{KEYED} Ready=True")
    for ns in (env.pipeline_ns, env.publish_ns):
        cm = env.configmap(ns, f"{KEYED}-ranker")
        assert cm is not None and cm["data"]["ready"] == "true", (ns, cm)
        assert API_KEY not in yaml.safe_dump(cm)  # the key is never published

    env.delete_and_wait_gone(KEYED)
    # The copy in the other namespace has no ownerReference: the operator's delete handler removed it.
    assert env.gone("configmap", env.publish_ns, f"{KEYED}-ranker")
    assert env.forbidden_lines() == [], "\n".join(env.forbidden_lines())
