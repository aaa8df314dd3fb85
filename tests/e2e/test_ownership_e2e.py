"""Ownership and consent on the real control plane, with the operator running as the chart's ServiceAccount
(cluster-wide, the chart's default) and a tenant who may only manage RerankPipelines in one namespace.

* The confused-deputy scenario: a tenant names someone else's ConfigMap in another namespace; it stays
  untouched while the pipeline lives and after it is deleted, and the pipeline says why.
* Consent: a copy goes into another namespace only while a RerankPublishGrant there admits it.
* A pre-existing Service or Deployment with a child's name is neither modified nor garbage-collected.
* Migration: what the previous release wrote (children with our controller reference, copies in other
  namespaces with labels only, all server-side applied by our field manager) is adopted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import (
    REPO,
    Helm,
    ServiceAccountOperator,
    condition,
    deployed_operator,
    get_json,
    grant_manifest,
    host_overrides,
    pipeline_manifest,
    start_standin,
)

from rerank_operator import FIELD_MANAGER
from rerank_operator.models import RerankPipeline
from rerank_operator.publish import initial_config, render_published_configmap
from rerank_operator.render import render_workload
from rerank_operator.sandbox import ClusterClient, Sandbox

NAMES = ("tenant", "consent", "squatted", "legacy")


@dataclass
class Env:
    op: ServiceAccountOperator
    other_ns: str  # another team's namespace
    tenant_kubeconfig: Path

    @property
    def sandbox(self) -> Sandbox:
        return self.op.sandbox

    def as_tenant(self, *args: str, input: str | None = None, check: bool = True) -> Any:
        return self.sandbox.kubectl(
            "--kubeconfig", str(self.tenant_kubeconfig), *args, input=input, check=check
        )

    def pipeline(self, name: str) -> dict[str, Any] | None:
        return get_json(self.sandbox, "rerankpipeline", name, "-n", self.op.pipeline_ns)

    def cond(self, name: str, type_: str) -> dict[str, Any] | None:
        return condition(self.pipeline(name), type_)

    def grant(self, name: str, namespace: str, source: str, **extra: Any) -> None:
        self.sandbox.apply(grant_manifest(namespace, source, name=name, **extra))


@pytest.fixture(scope="module")
def env(
    cluster: ClusterClient, sandbox: Sandbox, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("ownership")
    suffix = uuid.uuid4().hex[:6]
    operator_ns, pipeline_ns = f"rerank-system-{suffix}", f"tenant-{suffix}"
    publish_ns, other_ns = f"apps-{suffix}", f"other-{suffix}"
    for ns in (operator_ns, pipeline_ns, publish_ns, other_ns):
        sandbox.create_namespace(ns)
    # The tenant: may manage RerankPipelines in its namespace, nothing else anywhere.
    sandbox.kubectl("create", "serviceaccount", "tenant", "-n", pipeline_ns)
    sandbox.kubectl(
        "create", "role", "pipelines", "-n", pipeline_ns, "--resource=rerankpipelines.rerank.dev",
        "--verb=get,list,watch,create,update,patch,delete",
    )  # fmt: skip
    sandbox.kubectl(
        "create", "rolebinding", "tenant-pipelines", "-n", pipeline_ns, "--role=pipelines",
        f"--serviceaccount={pipeline_ns}:tenant",
    )  # fmt: skip
    tenant = sandbox.service_account_kubeconfig(pipeline_ns, "tenant", path=work / "tenant.kubeconfig")
    standin = f"standin-ownership-{suffix}"
    try:
        port = start_standin(sandbox, standin)
        with deployed_operator(
            sandbox,
            helm,
            work,
            suffix=f"own-{suffix}",
            operator_ns=operator_ns,
            overrides=host_overrides(pipeline_ns, dict.fromkeys(NAMES, port)),
        ) as (sa_name, operator):
            op = ServiceAccountOperator(sandbox, operator_ns, pipeline_ns, publish_ns, sa_name, operator)
            yield Env(op, other_ns, tenant)
            assert op.forbidden_lines() == [], "\n".join(op.forbidden_lines())
    finally:
        if standin in sandbox.processes:
            sandbox.stop_process(standin)
        sandbox.delete_namespaces(pipeline_ns, publish_ns, other_ns, operator_ns)


def _fingerprint(obj: dict[str, Any] | None) -> tuple[Any, ...]:
    """What must not change on an object that is not ours (resourceVersion moves on any write)."""
    assert obj is not None
    meta = obj["metadata"]
    return (
        meta["uid"],
        meta["resourceVersion"],
        obj.get("data"),
        obj.get("spec"),
        meta.get("ownerReferences"),
    )


def test_a_tenant_cannot_make_the_operator_touch_another_teams_configmap(env: Env, tmp_path: Path) -> None:
    op, other = env.op, env.other_ns
    env.sandbox.kubectl("create", "configmap", "victim", "-n", other, "--from-literal=important=keep-me")
    before = _fingerprint(op.configmap(other, "victim"))
    manifest = pipeline_manifest(
        "tenant", op.pipeline_ns, publish={"configMapName": "victim", "namespaces": [other]}
    )
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(manifest))
    # offline validation and admission accept it: naming a namespace is not a crime, writing there is
    assert RerankPipeline.from_body(manifest).spec.publish.namespaces == [other]
    env.as_tenant("apply", "-f", str(path))

    def refused() -> dict[str, Any] | None:
        degraded = env.cond("tenant", "Degraded")
        ready = env.cond("tenant", "Ready")
        if not degraded or degraded["status"] != "True" or not ready or ready["status"] != "True":
            return None
        return degraded

    degraded = op.wait(refused, timeout=180, what="tenant pipeline Ready (own copy) and Degraded (the other)")
    assert degraded["reason"] == "PublishFailed"
    assert f"not publishing to namespace {other}" in degraded["message"]
    assert "RerankPublishGrant" in degraded["message"]
    assert _fingerprint(op.configmap(other, "victim")) == before

    # even if the other team consents to copies from the tenant, its own ConfigMap stays its own
    env.grant("from-tenant", other, op.pipeline_ns)
    op.wait(
        lambda: (
            "exists and is not this pipeline's"
            in ((env.cond("tenant", "Degraded") or {}).get("message") or "")
        ),
        timeout=60,
        what="PublishFailed naming the foreign ConfigMap",
    )
    assert _fingerprint(op.configmap(other, "victim")) == before

    env.as_tenant("delete", "rerankpipeline", "tenant", "-n", op.pipeline_ns, "--wait=false")
    op.wait(lambda: op.gone("rerankpipeline", op.pipeline_ns, "tenant"), timeout=60, what="pipeline gone")
    assert _fingerprint(op.configmap(other, "victim")) == before
    assert op.configmap(other, "victim")["data"] == {"important": "keep-me"}  # type: ignore[index]


def test_copies_follow_consent(env: Env) -> None:
    op = env.op
    env.sandbox.apply(pipeline_manifest("consent", op.pipeline_ns, publish={"namespaces": [op.publish_ns]}))
    op.wait(lambda: op.ready("consent"), timeout=180, what="consent Ready")
    assert op.configmap(op.publish_ns, "consent-ranker") is None  # no grant, nothing written

    env.grant("search-team", op.publish_ns, op.pipeline_ns, pipelines=["consent"])
    copy = op.wait(lambda: op.configmap(op.publish_ns, "consent-ranker"), timeout=60, what="copy published")
    uid = env.pipeline("consent")["metadata"]["uid"]  # type: ignore[index]
    assert copy["metadata"]["annotations"]["rerank.dev/owner-uid"] == uid
    op.wait(
        lambda: (env.cond("consent", "Degraded") or {}).get("status") == "False",
        timeout=60,
        what="not Degraded",
    )

    env.sandbox.kubectl("delete", "rerankpublishgrant", "search-team", "-n", op.publish_ns)
    op.wait(lambda: op.gone("configmap", op.publish_ns, "consent-ranker"), timeout=60, what="copy withdrawn")
    assert op.configmap(op.pipeline_ns, "consent-ranker")["data"]["ready"] == "true"  # type: ignore[index]
    op.delete_and_wait_gone("consent")


def test_preexisting_children_are_neither_modified_nor_collected(env: Env) -> None:
    op = env.op
    ns = op.pipeline_ns
    env.sandbox.kubectl("create", "deployment", "squatted-reranker", "-n", ns, "--image=example.test/web:1")
    env.sandbox.kubectl("create", "service", "clusterip", "squatted-reranker", "-n", ns, "--tcp=80:8080")
    before = {
        kind: _fingerprint(get_json(env.sandbox, kind, "squatted-reranker", "-n", ns))
        for kind in ("deployment", "service")
    }

    env.sandbox.apply(pipeline_manifest("squatted", ns))

    def rejected() -> dict[str, Any] | None:
        stalled = env.cond("squatted", "Stalled")
        return stalled if stalled and stalled["status"] == "True" else None

    stalled = op.wait(rejected, timeout=60, what="squatted Stalled")
    assert stalled["reason"] == "ApplyRejected"
    for kind in ("Deployment", "Service"):
        assert f"{kind} {ns}/squatted-reranker exists and is not this pipeline's" in stalled["message"]
    assert "kubectl-create" in stalled["message"]  # who wrote them, from their managedFields
    assert (env.cond("squatted", "Ready") or {}).get("reason") == "ApplyRejected"

    op.delete_and_wait_gone("squatted")
    # not garbage-collected with the pipeline (it never got our ownerReference), and never modified
    op.wait(lambda: op.gone("poddisruptionbudget", ns, "squatted-reranker"), timeout=60, what="our PDB GC")
    for kind in ("deployment", "service"):
        assert _fingerprint(get_json(env.sandbox, kind, "squatted-reranker", "-n", ns)) == before[kind]


def test_what_the_previous_release_wrote_is_adopted(env: Env) -> None:
    """Migration rule: children carrying our controller reference are ours as they are; a copy in another
    namespace that only our field manager ever wrote, with our labels and keys, is adopted (it gains the
    UID annotation); both keep their identity (no delete and re-create)."""
    op = env.op
    ns, apps = op.pipeline_ns, op.publish_ns
    env.grant("legacy", apps, ns, pipelines=["legacy"])
    stopped = op.operator
    env.sandbox.stop_process(stopped.name)  # the old release wrote these; the new one is not running yet
    try:
        env.sandbox.apply(pipeline_manifest("legacy", ns, publish={"namespaces": [apps]}))
        body = env.pipeline("legacy")
        pipeline = RerankPipeline.from_body(body)  # type: ignore[arg-type]
        old_copy = render_published_configmap(pipeline, initial_config(pipeline), apps)
        del old_copy["metadata"]["annotations"]  # the previous release wrote labels only
        for manifest in [*render_workload(pipeline), old_copy]:
            env.sandbox.kubectl(
                "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-",
                input=yaml.safe_dump(manifest),
            )  # fmt: skip
        uids = {
            kind: get_json(env.sandbox, kind, name, "-n", where)["metadata"]["uid"]  # type: ignore[index]
            for kind, name, where in (
                ("deployment", "legacy-reranker", ns),
                ("service", "legacy-reranker", ns),
                ("configmap", "legacy-ranker", apps),
            )
        }
    finally:
        op.operator = env.sandbox.start_process(stopped.name, stopped.argv, env=stopped.env, cwd=stopped.cwd)

    ready = op.wait(lambda: op.ready("legacy"), timeout=180, what="legacy Ready after the upgrade")
    assert (condition(ready, "Stalled") or {}).get("status") == "False"
    copy = op.wait(
        lambda: (
            (c := op.configmap(apps, "legacy-ranker"))
            and "rerank.dev/owner-uid" in (c["metadata"].get("annotations") or {})
            and c
        ),
        timeout=60,
        what="the old copy adopted (UID annotation added)",
    )
    assert copy["metadata"]["uid"] == uids["configmap"]
    assert copy["metadata"]["annotations"]["rerank.dev/owner-uid"] == ready["metadata"]["uid"]
    for kind, name in (("deployment", "legacy-reranker"), ("service", "legacy-reranker")):
        assert get_json(env.sandbox, kind, name, "-n", ns)["metadata"]["uid"] == uids[kind]  # type: ignore[index]
    op.delete_and_wait_gone("legacy")
    assert op.gone("configmap", apps, "legacy-ranker")


def test_chart_roles_aggregate_into_view_edit_and_admin(env: Env) -> None:
    """The built-in roles gain exactly the rights their names imply (the aggregation controller folds
    our labelled ClusterRoles in)."""
    ns = env.op.pipeline_ns
    for role in ("view", "edit", "admin"):
        env.sandbox.kubectl("create", "serviceaccount", f"as-{role}", "-n", ns)
        env.sandbox.kubectl(
            "create",
            "rolebinding",
            f"as-{role}",
            "-n",
            ns,
            f"--clusterrole={role}",
            f"--serviceaccount={ns}:as-{role}",
        )
    expected = {
        ("view", "list", "rerankpipelines.rerank.dev"): "yes",
        ("view", "create", "rerankpipelines.rerank.dev"): "no",
        ("edit", "create", "rerankpipelines.rerank.dev"): "yes",
        ("edit", "delete", "rerankpipelines.rerank.dev"): "yes",
        ("edit", "create", "rerankpublishgrants.rerank.dev"): "no",
        ("edit", "list", "rerankpublishgrants.rerank.dev"): "yes",
        ("admin", "create", "rerankpublishgrants.rerank.dev"): "yes",
        ("admin", "create", "rerankpipelines.rerank.dev"): "yes",
    }

    def answers() -> dict[tuple[str, str, str], str] | None:
        got = {
            key: env.sandbox.kubectl(
                "auth",
                "can-i",
                key[1],
                key[2],
                "-n",
                ns,
                f"--as=system:serviceaccount:{ns}:as-{key[0]}",
                check=False,
            ).stdout.strip()
            for key in expected
        }
        return got if got == expected else None

    env.sandbox.wait_for(answers, timeout=30, what="aggregated roles in effect")
    assert REPO.joinpath("SECURITY.md").is_file()
