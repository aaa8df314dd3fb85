"""The Helm chart: lint, render both RBAC modes, server-side dry-run, and RBAC checked by the apiserver.

helm is the sandbox's pinned, cached build (``rerank_operator.sandbox.build``, component ``helm``);
its first build happens inside the ``helm`` fixture.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_support import CHART, Helm, namespaced_values

from rerank_operator.sandbox import ClusterClient

REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTH_KEY = "resource.customizations.health.rerank.dev_RerankPipeline"


def render(helm: Helm, *set_args: str, release: str = "rr", namespace: str = "rerank-system") -> str:
    return helm("template", release, str(CHART), "--namespace", namespace, *set_args).stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = by_kind(objs, "Deployment")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(c)


def rules_of(role: dict[str, Any]) -> dict[str, set[str]]:
    """'group/resource' -> verbs."""
    out: dict[str, set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault(f"{group}/{resource}", set()).update(rule["verbs"])
    return out


EXPECTED_RULES = {
    "rerank.dev/rerankpipelines": {"get", "list", "watch", "patch"},
    "rerank.dev/rerankpipelines/status": {"get", "patch"},
    "rerank.dev/rerankpipelines/finalizers": {"update"},
    "apps/deployments": {"get", "list", "watch", "create", "patch", "delete"},
    "/services": {"get", "list", "watch", "create", "patch", "delete"},
    "/persistentvolumeclaims": {"get", "list", "watch", "create", "patch"},
    "policy/poddisruptionbudgets": {"get", "list", "watch", "create", "patch"},
    "autoscaling/horizontalpodautoscalers": {"get", "list", "watch", "create", "patch", "delete"},
    "/configmaps": {"get", "list", "watch", "create", "patch", "delete"},
    "rerank.dev/rerankpublishgrants": {"list", "watch"},
    "/pods": {"list", "watch"},
    "/secrets": {"get"},
    "/events": {"create"},
}
PUBLISH_RULES = {
    "/configmaps": {"get", "create", "patch", "delete"},
    "rerank.dev/rerankpublishgrants": {"list"},
}
# ClusterRoles for people, aggregated into the built-in roles; they grant the operator nothing.
AGGREGATED = {
    "rr-rerank-operator-view": (
        {"view", "edit", "admin"},
        {
            "rerank.dev/rerankpipelines": {"get", "list", "watch"},
            "rerank.dev/rerankpipelines/status": {"get", "list", "watch"},
            "rerank.dev/rerankpublishgrants": {"get", "list", "watch"},
        },
    ),
    "rr-rerank-operator-edit": (
        {"edit", "admin"},
        {"rerank.dev/rerankpipelines": {"create", "update", "patch", "delete", "deletecollection"}},
    ),
    "rr-rerank-operator-admin": (
        {"admin"},
        {"rerank.dev/rerankpublishgrants": {"create", "update", "patch", "delete", "deletecollection"}},
    ),
}


def check_aggregated_roles(objs: list[dict[str, Any]]) -> None:
    roles = {
        r["metadata"]["name"]: r for r in by_kind(objs, "ClusterRole") if r["metadata"]["name"] in AGGREGATED
    }
    assert set(roles) == set(AGGREGATED)
    for name, (targets, rules) in AGGREGATED.items():
        labels = roles[name]["metadata"]["labels"]
        aggregated = {
            k.rsplit("-", 1)[-1]
            for k, v in labels.items()
            if k.startswith("rbac.authorization.k8s.io/aggregate-to-") and v == "true"
        }
        assert aggregated == targets, name
        assert rules_of(roles[name]) == rules, name


# granted with rbac.keda / rbac.podMonitors (off by default)
ADDON_RULES = {
    "keda.sh/scaledobjects": {"get", "create", "patch", "delete"},
    "monitoring.coreos.com/podmonitors": {"get", "create", "patch", "delete"},
}


# ------------------------------------------------------------------------------------------ offline


def test_lint_strict(helm: Helm) -> None:
    out = helm("lint", "--strict", str(CHART)).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    helm("lint", "--strict", str(CHART), *namespaced_values(["search", "team-a"], ["apps"]))
    helm("lint", "--strict", str(CHART), "--set", "metrics.serviceMonitor.enabled=true",
         "--set", "argocd.healthCheckConfigMap.enabled=true")  # fmt: skip


def test_kube_version_constraint(helm: Helm) -> None:
    """helm's own default (stamped at build: 1.37) passes; a cluster older than the floor is refused."""
    render(helm)
    proc = helm("template", "rr", str(CHART), "--kube-version", "1.28.9", check=False)
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr and "1.28.9" in proc.stderr, proc.stderr
    render(helm, "--kube-version", "1.29.0")


@pytest.mark.parametrize(
    "args",
    [
        ["--set-json", 'watchNamespace=["a"]'],  # typo of watchNamespaces
        ["--set", "image.tga=1"],
        ["--set-json", 'watchNamespaces=["team-*"]'],  # kopf globs cannot be RBAC namespaces
        ["--set", "metrics.serviceMonitor.enabled=yes"],
        ["--set-json", 'endpointAllowlist=["example.com"]'],  # a suffix starts with a dot
        ["--set", "aggregatedRoles.create=1"],
    ],
)
def test_schema_rejects_bad_values(helm: Helm, args: list[str]) -> None:
    proc = helm("template", "rr", str(CHART), *args, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr.lower(), proc.stderr


def test_template_clusterwide(helm: Helm) -> None:
    objs = docs(render(helm))
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == ["ClusterRole"] * 4 + ["ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"]
    check_aggregated_roles(objs)
    (role,) = [r for r in by_kind(objs, "ClusterRole") if r["metadata"]["name"] not in AGGREGATED]
    assert rules_of(role) == EXPECTED_RULES
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
    (binding,) = by_kind(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rr-rerank-operator", "namespace": "rerank-system"}
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]

    (deployment,) = by_kind(objs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "rr-rerank-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(objs)
    assert c["image"] == "rerank-operator:0.1.0"
    assert c["command"] == ["rerank-operator", "run"]
    assert c["args"] == ["--liveness=http://0.0.0.0:8080/healthz", "--metrics-port", "9090", "-A"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"healthz": 8080, "metrics": 9090}
    assert {"name": "RERANK_OPERATOR_CLUSTER_DOMAIN", "value": "cluster.local"} in c["env"]
    assert {"name": "RERANK_OPERATOR_RESYNC_SECONDS", "value": "600"} in c["env"]
    assert {"name": "RERANK_OPERATOR_MAX_CONCURRENT_PASSES", "value": "32"} in c["env"]
    assert {"name": "RERANK_OPERATOR_STATUS_HEARTBEAT_SECONDS", "value": "600"} in c["env"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]

    (service,) = by_kind(objs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize(
    ("set_args", "extra"),
    [
        (["--set", "rbac.keda=true"], {"keda.sh/scaledobjects"}),
        (["--set", "rbac.podMonitors=true"], {"monitoring.coreos.com/podmonitors"}),
        (["--set", "rbac.keda=true", "--set", "rbac.podMonitors=true"], set(ADDON_RULES)),
    ],
)
def test_template_addon_rules(helm: Helm, set_args: list[str], extra: set[str]) -> None:
    objs = docs(render(helm, *set_args))
    (role,) = [r for r in by_kind(objs, "ClusterRole") if r["metadata"]["name"] not in AGGREGATED]
    assert rules_of(role) == EXPECTED_RULES | {k: ADDON_RULES[k] for k in extra}
    namespaced = docs(render(helm, *set_args, *namespaced_values(["search"], [])))
    (role,) = by_kind(namespaced, "Role")
    assert rules_of(role) == EXPECTED_RULES | {k: ADDON_RULES[k] for k in extra}


def test_template_namespaced(helm: Helm) -> None:
    objs = docs(render(helm, *namespaced_values(["search", "team-a"], ["apps", "search"]),
                       "--set", "clusterDomain=corp.example", "--set", "image.tag=9.9.9"))  # fmt: skip
    # no cluster-wide rights for the operator; the only ClusterRoles are the ones for people
    assert not by_kind(objs, "ClusterRoleBinding")
    assert {r["metadata"]["name"] for r in by_kind(objs, "ClusterRole")} == set(AGGREGATED)
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in by_kind(objs, "Role")}
    assert set(roles) == {
        ("search", "rr-rerank-operator"),
        ("team-a", "rr-rerank-operator"),
        ("apps", "rr-rerank-operator-publish"),  # "search" is watched already: no second Role there
    }
    assert rules_of(roles[("search", "rr-rerank-operator")]) == EXPECTED_RULES
    assert rules_of(roles[("apps", "rr-rerank-operator-publish")]) == PUBLISH_RULES
    bindings = {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in by_kind(objs, "RoleBinding")}
    assert bindings == {(ns, name) for ns, name in roles}
    for b in by_kind(objs, "RoleBinding"):
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": "rr-rerank-operator", "namespace": "rerank-system"}
        ]
    c = container(objs)
    assert c["args"][-4:] == ["-n", "search", "-n", "team-a"]
    assert "-A" not in c["args"]
    assert c["image"] == "rerank-operator:9.9.9"
    assert {"name": "RERANK_OPERATOR_CLUSTER_DOMAIN", "value": "corp.example"} in c["env"]


def test_template_endpoint_allowlist_and_no_aggregated_roles(helm: Helm) -> None:
    objs = docs(render(helm, "--set-json", 'endpointAllowlist=["10.20.0.0/16",".rerank.example.com"]',
                       "--set", "aggregatedRoles.create=false"))  # fmt: skip
    env = {e["name"]: e.get("value") for e in container(objs)["env"]}
    assert env["RERANK_OPERATOR_ENDPOINT_ALLOWLIST"] == "10.20.0.0/16,.rerank.example.com"
    assert [r["metadata"]["name"] for r in by_kind(objs, "ClusterRole")] == ["rr-rerank-operator"]
    assert "RERANK_OPERATOR_ENDPOINT_ALLOWLIST" not in {
        e["name"] for e in container(docs(render(helm)))["env"]
    }


def test_template_optional_objects(helm: Helm) -> None:
    objs = docs(render(helm, "--set", "metrics.serviceMonitor.enabled=true",
                       "--set", "argocd.healthCheckConfigMap.enabled=true",
                       "--set", "image.digest=sha256:" + "b" * 64))  # fmt: skip
    (monitor,) = by_kind(objs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    (service,) = by_kind(objs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (cm,) = by_kind(objs, "ConfigMap")
    lua = (CHART / "files" / "argocd-health.lua").read_text()
    assert cm["data"][HEALTH_KEY].strip() == lua.strip()
    assert container(objs)["image"] == "rerank-operator@sha256:" + "b" * 64


def test_crds_ship_with_the_chart(helm: Helm) -> None:
    objs = docs(helm("template", "rr", str(CHART), "--include-crds").stdout)
    crds = by_kind(objs, "CustomResourceDefinition")
    assert [c["metadata"]["name"] for c in crds] == [
        "rerankpipelines.rerank.dev",
        "rerankpublishgrants.rerank.dev",
    ]


# -------------------------------------------------------------------------------- against the cluster


def test_server_dry_run_clusterwide(helm: Helm, cluster: ClusterClient, namespace: str) -> None:
    """Everything the chart installs, CRD included, passes the apiserver's validation and admission."""
    text = render(helm, "--include-crds", "--set", "argocd.healthCheckConfigMap.enabled=true",
                  release=f"dry-{uuid.uuid4().hex[:6]}", namespace=namespace)  # fmt: skip
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", "-o", "name", input=text).stdout.split()
    assert len(out) == len(docs(text))
    assert "customresourcedefinition.apiextensions.k8s.io/rerankpipelines.rerank.dev" in out
    assert "customresourcedefinition.apiextensions.k8s.io/rerankpublishgrants.rerank.dev" in out


def test_documented_network_policy_is_accepted(cluster: ClusterClient, namespace: str) -> None:
    policy = yaml.safe_load((REPO_ROOT / "docs" / "networkpolicy.yaml").read_text())
    policy["metadata"]["namespace"] = namespace
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", "-o", "name", input=json.dumps(policy))
    assert out.stdout.strip() == "networkpolicy.networking.k8s.io/bge-m3-private-reranker-ingress"


def test_server_dry_run_namespaced(
    helm: Helm, cluster: ClusterClient, namespace: str, namespaces: Callable[[str], str]
) -> None:
    watch = [namespaces("watch"), namespaces("watch")]
    publish = [namespaces("publish")]
    text = render(
        helm, *namespaced_values(watch, publish), release=f"dry-{uuid.uuid4().hex[:6]}", namespace=namespace
    )
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", "-o", "name", input=text).stdout.split()
    # SA, Service, Deployment + (Role, RoleBinding) x 3 + the three aggregated ClusterRoles
    assert len(out) == len(docs(text)) == 3 + 2 * 3 + 3


def _can_i(cluster: ClusterClient, sa: str, *args: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", *args, f"--as={sa}", check=False)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"kubectl auth can-i {' '.join(args)}: {proc.stderr}")
    return proc.returncode == 0


def _reviewed(cluster: ClusterClient, sa: str, verb: str, group: str, resource: str, namespace: str) -> bool:
    """RBAC's own answer (a SubjectAccessReview) for a resource the cluster need not serve: ``kubectl
    auth can-i`` resolves names through discovery and says "no" to any type it does not know, so it
    cannot check rules for KEDA or prometheus-operator objects where those are not installed."""
    sa_namespace = sa.split(":")[2]
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": sa,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{sa_namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": group,
                "resource": resource,
            },
        },
    }
    answer = cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review)).stdout
    return bool(json.loads(answer)["status"].get("allowed"))


ADDONS = [("keda.sh", "scaledobjects"), ("monitoring.coreos.com", "podmonitors")]


def _apply_rbac(helm: Helm, cluster: ClusterClient, release: str, namespace: str, *set_args: str) -> str:
    text = helm("template", release, str(CHART), "--namespace", namespace,
                "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml",
                *set_args).stdout  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=text)
    return text


def _delete(cluster: ClusterClient, text: str) -> None:
    cluster.kubectl("delete", "-f", "-", "--ignore-not-found", "--wait=false", input=text, check=False)


ALLOWED = [
    ("get", "secrets"),
    ("patch", "rerankpipelines.rerank.dev", "--subresource=status"),
    ("get", "rerankpipelines.rerank.dev", "--subresource=status"),
    ("list", "rerankpipelines.rerank.dev"),
    ("watch", "rerankpipelines.rerank.dev"),
    ("patch", "rerankpipelines.rerank.dev"),
    ("update", "rerankpipelines.rerank.dev", "--subresource=finalizers"),
    ("create", "events"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("get", "deployments.apps"),
    ("create", "services"),
    ("get", "services"),
    ("get", "persistentvolumeclaims"),
    ("patch", "persistentvolumeclaims"),
    ("get", "poddisruptionbudgets.policy"),
    ("create", "poddisruptionbudgets.policy"),
    ("patch", "poddisruptionbudgets.policy"),
    ("get", "horizontalpodautoscalers.autoscaling"),
    ("create", "horizontalpodautoscalers.autoscaling"),
    ("patch", "horizontalpodautoscalers.autoscaling"),
    ("delete", "horizontalpodautoscalers.autoscaling"),
    ("delete", "deployments.apps"),  # BlueGreen retires a revision's Deployment and Service
    ("delete", "services"),
    ("list", "pods"),
    ("watch", "pods"),
    ("watch", "deployments.apps"),
    ("list", "services"),
    ("watch", "configmaps"),
    ("list", "configmaps"),
    ("watch", "rerankpublishgrants.rerank.dev"),
    ("get", "configmaps"),
    ("create", "configmaps"),
    ("patch", "configmaps"),
    ("delete", "configmaps"),
    ("list", "rerankpublishgrants.rerank.dev"),
]
DENIED = [
    ("create", "rerankpublishgrants.rerank.dev"),  # consent is the namespace's, never the operator's
    ("patch", "rerankpublishgrants.rerank.dev"),
    ("delete", "rerankpublishgrants.rerank.dev"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("delete", "persistentvolumeclaims"),
    ("delete", "poddisruptionbudgets.policy"),
    ("update", "deployments.apps"),
    ("update", "horizontalpodautoscalers.autoscaling"),
    ("update", "deployments.apps", "--subresource=scale"),  # the autoscaler scales, never the operator
    ("patch", "deployments.apps", "--subresource=scale"),
    ("delete", "rerankpipelines.rerank.dev"),
    ("create", "rerankpipelines.rerank.dev"),
    ("update", "rerankpipelines.rerank.dev"),
    ("get", "pods"),
    ("create", "pods"),
    ("patch", "events"),
    ("*", "*"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
]
CLUSTER_DENIED = [
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("get", "nodes"),
    ("list", "namespaces"),
    ("get", "customresourcedefinitions.apiextensions.k8s.io"),
    ("impersonate", "serviceaccounts"),
    ("create", "serviceaccounts/token"),
]


def test_rbac_clusterwide_as_the_service_account(
    helm: Helm, cluster: ClusterClient, namespace: str, namespaces: Callable[[str], str]
) -> None:
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    text = _apply_rbac(helm, cluster, release, namespace)
    sa = f"system:serviceaccount:{namespace}:{release}-rerank-operator"
    elsewhere = namespaces("apps")
    try:
        cluster.wait_for(
            lambda: _can_i(cluster, sa, "get", "secrets", "-n", elsewhere),
            timeout=30,
            what="RBAC to take effect",
        )
        for ns in (namespace, elsewhere):
            for check in ALLOWED:
                assert _can_i(cluster, sa, *check, "-n", ns), f"{sa} should be allowed: {check} in {ns}"
            for check in DENIED:
                assert not _can_i(cluster, sa, *check, "-n", ns), f"{sa} must be denied: {check} in {ns}"
        for group, resource in ADDONS:  # only with rbac.keda / rbac.podMonitors
            assert not _reviewed(cluster, sa, "create", group, resource, namespace), resource
            assert _reviewed(cluster, sa, "create", "autoscaling", "horizontalpodautoscalers", namespace)
        assert _can_i(cluster, sa, "list", "rerankpipelines.rerank.dev", "--all-namespaces")
        assert _can_i(cluster, sa, "watch", "rerankpipelines.rerank.dev", "--all-namespaces")
        assert not _can_i(cluster, sa, "list", "secrets", "--all-namespaces")
        for check in CLUSTER_DENIED:
            assert not _can_i(cluster, sa, *check), f"{sa} must be denied: {check}"
    finally:
        _delete(cluster, text)


def test_rbac_namespaced_as_the_service_account(
    helm: Helm, cluster: ClusterClient, namespace: str, namespaces: Callable[[str], str]
) -> None:
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    watched = namespaces("watch")
    publish = namespaces("publish")
    unrelated = namespaces("other")
    text = _apply_rbac(helm, cluster, release, namespace, *namespaced_values([watched], [publish]))
    sa = f"system:serviceaccount:{namespace}:{release}-rerank-operator"
    try:
        cluster.wait_for(
            lambda: _can_i(cluster, sa, "get", "secrets", "-n", watched),
            timeout=30,
            what="RBAC to take effect",
        )
        for check in ALLOWED:
            assert _can_i(cluster, sa, *check, "-n", watched), f"should be allowed: {check} in {watched}"
        for check in DENIED:
            assert not _can_i(cluster, sa, *check, "-n", watched), f"must be denied: {check} in {watched}"
        for verb in ("get", "create", "patch", "delete"):
            assert _can_i(cluster, sa, verb, "configmaps", "-n", publish)
        assert _can_i(cluster, sa, "list", "rerankpublishgrants.rerank.dev", "-n", publish)
        assert not _can_i(cluster, sa, "create", "rerankpublishgrants.rerank.dev", "-n", publish)
        for check in [("get", "secrets"), ("create", "events"), ("list", "rerankpipelines.rerank.dev"),
                      ("create", "deployments.apps"), ("list", "configmaps")]:  # fmt: skip
            assert not _can_i(cluster, sa, *check, "-n", publish), f"must be denied: {check} in {publish}"
        for ns in (unrelated, namespace):  # neither watched nor published into (not even its own namespace)
            assert not _can_i(cluster, sa, "get", "secrets", "-n", ns)
            assert not _can_i(cluster, sa, "get", "configmaps", "-n", ns)
            assert not _can_i(cluster, sa, "list", "rerankpipelines.rerank.dev", "-n", ns)
        assert not _can_i(cluster, sa, "list", "rerankpipelines.rerank.dev", "--all-namespaces")
        for check in CLUSTER_DENIED:
            assert not _can_i(cluster, sa, *check), f"must be denied: {check}"
    finally:
        _delete(cluster, text)


def test_rbac_addons_as_the_service_account(helm: Helm, cluster: ClusterClient, namespace: str) -> None:
    """rbac.keda / rbac.podMonitors grant exactly the add-on children, nothing around them."""
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    text = _apply_rbac(
        helm, cluster, release, namespace, "--set", "rbac.keda=true", "--set", "rbac.podMonitors=true"
    )
    sa = f"system:serviceaccount:{namespace}:{release}-rerank-operator"
    try:
        cluster.wait_for(
            lambda: _reviewed(cluster, sa, "create", "keda.sh", "scaledobjects", namespace),
            timeout=30,
            what="RBAC to take effect",
        )
        for group, resource in ADDONS:
            for verb in ("get", "create", "patch", "delete"):
                assert _reviewed(cluster, sa, verb, group, resource, namespace), (verb, resource)
            for verb in ("list", "watch", "update", "deletecollection"):
                assert not _reviewed(cluster, sa, verb, group, resource, namespace), (verb, resource)
        for group, resource in [("keda.sh", "scaledjobs"), ("keda.sh", "triggerauthentications"),
                                ("monitoring.coreos.com", "servicemonitors"),
                                ("monitoring.coreos.com", "prometheusrules")]:  # fmt: skip
            assert not _reviewed(cluster, sa, "create", group, resource, namespace), resource
    finally:
        _delete(cluster, text)
