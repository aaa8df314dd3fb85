"""The operator in namespaced mode (chart value ``watchNamespaces``): Roles only, ``run -n NS``.

Like test_operator_as_serviceaccount.py, the operator runs with the chart's ServiceAccount token; a
module of its own so that the cluster-wide operator of that module is gone (it would also reconcile
this pipeline, without the stand-in mapping, and the two would fight over its status).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from operator_support import (
    Helm,
    ServiceAccountOperator,
    deployed_operator,
    grant_manifest,
    host_overrides,
    pipeline_manifest,
    start_standin,
)

from rerank_operator.sandbox import ClusterClient, Sandbox


def test_namespaced_mode_with_roles_only(
    cluster: ClusterClient, sandbox: Sandbox, helm: Helm, tmp_path: Path
) -> None:
    """``watchNamespaces``: Roles only (no ClusterRole), ``run -n NS``; publishes into a ConfigMap-only namespace."""
    suffix = uuid.uuid4().hex[:6]
    operator_ns, watched, publish_ns = f"rerank-system-{suffix}", f"rr-team-{suffix}", f"rr-apps-{suffix}"
    name = "bge-team"
    standin = f"standin-{name}-{suffix}"
    for ns in (operator_ns, watched, publish_ns):
        sandbox.create_namespace(ns)
    try:
        port = start_standin(sandbox, standin)
        with deployed_operator(
            sandbox, helm, tmp_path, suffix=suffix, operator_ns=operator_ns,
            overrides=host_overrides(watched, {name: port}),
            watch=[watched], publish=[publish_ns],
        ) as (sa_name, operator):  # fmt: skip
            env = ServiceAccountOperator(sandbox, operator_ns, watched, publish_ns, sa_name, operator)
            assert not sandbox.kubectl(
                "get", "clusterrolebinding", "-o", "name", "-l", f"app.kubernetes.io/instance=sa-{suffix}"
            ).stdout.strip()
            sandbox.apply(grant_manifest(publish_ns, watched))  # RBAC lets the operator read it there
            sandbox.apply(pipeline_manifest(name, watched, publish={"namespaces": [publish_ns]}))
            env.wait(lambda: env.ready(name), timeout=180, what=f"{name} Ready=True")
            for ns in (watched, publish_ns):
                cm = env.configmap(ns, f"{name}-ranker")
                assert cm is not None and cm["data"]["ready"] == "true", (ns, cm)
            env.delete_and_wait_gone(name)
            assert env.gone("configmap", publish_ns, f"{name}-ranker")
            assert env.forbidden_lines() == [], "\n".join(env.forbidden_lines())
    finally:
        if standin in sandbox.processes:
            sandbox.stop_process(standin)
        sandbox.delete_namespaces(watched, publish_ns, operator_ns)
