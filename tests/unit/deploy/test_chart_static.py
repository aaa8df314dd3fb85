"""Static checks of the Helm chart that need no helm binary (helm lint/template run in tests/e2e)."""

from __future__ import annotations

import copy
import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "helm" / "rerank-operator"
CRD_NAMES = ["rerankpipelines.rerank.dev.yaml", "rerankpublishgrants.rerank.dev.yaml"]


def chart() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return data


def values() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return data


def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return data


def test_chart_crd_is_a_copy_of_the_generated_crd() -> None:
    """`make crd` refreshes both; a stale chart copy would install an old schema."""
    for name in CRD_NAMES:
        top = (REPO_ROOT / "crds" / name).read_bytes()
        copied = (CHART / "crds" / name).read_bytes()
        assert copied == top, f"helm/rerank-operator/crds/{name} differs from crds/{name}: run `make crd`"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == CRD_NAMES


def test_app_version_is_the_package_version() -> None:
    meta = chart()
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "rerank-operator"
    assert str(meta["appVersion"]) == version("rerank-operator")
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", str(meta["version"]))


def test_kube_version_floor_covers_what_the_crd_uses() -> None:
    """CEL rules with ``fieldPath`` need 1.28+, and CRD validation rules are GA from 1.29: an older
    apiserver would reject the CRD or drop the rules silently, so the chart refuses it up front."""
    floor = re.fullmatch(r">=\s*1\.(\d+)\.0-0", str(chart().get("kubeVersion", "")))
    assert floor, "Chart.yaml needs kubeVersion: '>=1.N.0-0' (the -0 admits pre-release and vendor builds)"
    crd = yaml.safe_load((REPO_ROOT / "crds" / CRD_NAMES[0]).read_text())
    assert "fieldPath" in json.dumps(crd)  # the reason for the floor is still there
    assert int(floor.group(1)) >= 29


def test_values_defaults() -> None:
    v = values()
    assert v["watchNamespaces"] == []  # cluster-wide by default
    assert v["publishNamespaces"] == []
    assert v["image"]["tag"] == ""  # defaults to appVersion
    assert v["metrics"]["port"] == 9090
    assert v["liveness"]["port"] == 8080
    assert v["metrics"]["serviceMonitor"]["enabled"] is False
    assert v["clusterDomain"] == "cluster.local"
    # add-on children are granted only when asked for: least privilege by default
    assert v["rbac"] == {"create": True, "keda": False, "podMonitors": False}


# ------------------------------------------------------------------------------ values.schema.json
# helm validates values against this draft-07 schema; jsonschema (a dev dependency) does the same here.

# Keywords that annotate rather than validate; any other key must be one jsonschema validates by.
ANNOTATIONS = {"$schema", "title", "description", "definitions"}


def errors(value: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(dotted path, failing keyword, message) of each schema violation in ``value``."""
    validator = jsonschema.Draft7Validator(schema())
    return [
        (".".join(str(p) for p in e.absolute_path), str(e.validator), e.message)
        for e in validator.iter_errors(value)
    ]


def _schema_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every sub-schema, walking only schema-valued keywords (property names are not keywords)."""
    out = [node]
    for child in list(node.get("properties", {}).values()) + list(node.get("definitions", {}).values()):
        out += _schema_nodes(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out += _schema_nodes(node[key])
    return out


def test_schema_is_valid_draft7_without_unknown_keywords() -> None:
    """A misspelt keyword (``additionalproperties``) would be ignored silently, by helm too."""
    s = schema()
    assert s["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(s)
    known = set(jsonschema.Draft7Validator.VALIDATORS) | ANNOTATIONS
    for node in _schema_nodes(s):
        unknown = set(node) - known
        assert not unknown, f"not draft-07 keywords: {unknown}"


def test_schema_is_strict_at_the_top() -> None:
    s = schema()
    assert s["type"] == "object"
    assert s["additionalProperties"] is False
    # every default value is declared (a value missing from the schema could never be set)
    assert set(values()) <= set(s["properties"])


def test_values_yaml_validates() -> None:
    assert errors(values()) == []


@pytest.mark.parametrize(
    ("change", "path", "keyword", "fragment"),
    [
        ({"watchNamespace": ["a"]}, "", "additionalProperties", "'watchNamespace'"),
        ({"image": {"repository": "x", "tga": "1"}}, "image", "additionalProperties", "'tga'"),
        ({"watchNamespaces": ["team-*"]}, "watchNamespaces.0", "pattern", "does not match"),  # RBAC needs exact names, not kopf globs
        ({"watchNamespaces": ["a", "a"]}, "watchNamespaces", "uniqueItems", "non-unique"),
        ({"metrics": {"port": 70000}}, "metrics.port", "maximum", "70000"),
        ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "metrics.serviceMonitor.enabled", "type", "boolean"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "image.pullPolicy", "enum", "Sometimes"),
        ({"resyncSeconds": 0}, "resyncSeconds", "minimum", "0"),
        ({"maxConcurrentPasses": 0}, "maxConcurrentPasses", "minimum", "0"),
        ({"maxConcurrentPasses": 1.5}, "maxConcurrentPasses", "type", "integer"),
    ],
)  # fmt: skip
def test_schema_rejects_typos_and_bad_values(
    change: dict[str, Any], path: str, keyword: str, fragment: str
) -> None:
    bad = copy.deepcopy(values())
    bad.update(change)
    found = errors(bad)
    assert any(p == path and k == keyword and fragment in m for p, k, m in found), found


def test_schema_accepts_namespaced_mode() -> None:
    ok = copy.deepcopy(values())
    ok.update(watchNamespaces=["search", "team-a"], publishNamespaces=["apps"])
    ok["image"].update(digest="sha256:" + "a" * 64)
    assert errors(ok) == []


# ------------------------------------------------------------------------------ templates & files


def test_argocd_configmap_template_reads_the_shipped_lua() -> None:
    template = (CHART / "templates" / "argocd-health.yaml").read_text()
    assert '.Files.Get "files/argocd-health.lua"' in template
    assert "resource.customizations.health.rerank.dev_RerankPipeline" in template
    assert (CHART / "files" / "argocd-health.lua").is_file()


def test_helmignore_keeps_files_and_crds() -> None:
    ignored = (CHART / ".helmignore").read_text().split()
    assert not {"files/", "crds/", "files", "crds"} & set(ignored)
