"""Static checks of the Helm chart that need no helm binary (helm lint/template run in tests/e2e)."""

from __future__ import annotations

import copy
import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "helm" / "rerank-operator"
CRD_NAME = "rerankpipelines.rerank.dev.yaml"


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
    top = (REPO_ROOT / "crds" / CRD_NAME).read_bytes()
    copied = (CHART / "crds" / CRD_NAME).read_bytes()
    assert copied == top, f"helm/rerank-operator/crds/{CRD_NAME} differs from crds/{CRD_NAME}: run `make crd`"
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [CRD_NAME]


def test_app_version_is_the_package_version() -> None:
    meta = chart()
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "rerank-operator"
    assert str(meta["appVersion"]) == version("rerank-operator")
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", str(meta["version"]))


def test_values_defaults() -> None:
    v = values()
    assert v["watchNamespaces"] == []  # cluster-wide by default
    assert v["publishNamespaces"] == []
    assert v["image"]["tag"] == ""  # defaults to appVersion
    assert v["metrics"]["port"] == 9090
    assert v["liveness"]["port"] == 8080
    assert v["metrics"]["serviceMonitor"]["enabled"] is False
    assert v["clusterDomain"] == "cluster.local"


# ------------------------------------------------------------------------------ values.schema.json
# jsonschema is not a dependency of the project; a small validator for the keywords the schema uses
# keeps these checks running everywhere, and jsonschema double-checks when it is installed.

SUPPORTED = {
    "$schema", "title", "description", "type", "properties", "additionalProperties", "items", "required",
    "enum", "pattern", "minimum", "maximum", "minLength", "maxLength", "uniqueItems", "$ref", "definitions",
}  # fmt: skip
TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/definitions/"), ref
        node = root["definitions"][ref.split("/")[-1]]
    return node


def _type_ok(value: Any, types: str | list[str]) -> bool:
    names = [types] if isinstance(types, str) else types
    for name in names:
        if isinstance(value, bool) and name in ("integer", "number"):
            continue
        if isinstance(value, TYPES[name]):
            return True
    return False


def validate(value: Any, node: dict[str, Any], root: dict[str, Any], path: str = "") -> list[str]:
    node = _resolve(node, root)
    where = path or "<root>"
    if "type" in node and not _type_ok(value, node["type"]):
        return [f"{where}: expected {node['type']}, got {type(value).__name__}"]
    errors: list[str] = []
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{where}: {value!r} not in {node['enum']}")
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {node['pattern']}")
        if len(value) < node.get("minLength", 0) or len(value) > node.get("maxLength", len(value)):
            errors.append(f"{where}: bad length {len(value)}")
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (value < node.get("minimum", value) or value > node.get("maximum", value))
    ):
        errors.append(f"{where}: {value} out of range")
    if isinstance(value, list):
        if node.get("uniqueItems") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            errors.append(f"{where}: items are not unique")
        if "items" in node:
            for i, item in enumerate(value):
                errors += validate(item, node["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key in node.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing required {key!r}")
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            if key in props:
                errors += validate(item, props[key], root, sub)
            elif node.get("additionalProperties") is False:
                errors.append(f"{sub}: unknown key (additionalProperties is false)")
            elif isinstance(node.get("additionalProperties"), dict):
                errors += validate(item, node["additionalProperties"], root, sub)
    return errors


def _schema_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every sub-schema, walking only schema-valued keywords (property names are not keywords)."""
    out = [node]
    for child in list(node.get("properties", {}).values()) + list(node.get("definitions", {}).values()):
        out += _schema_nodes(child)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out += _schema_nodes(node[key])
    return out


def test_schema_uses_only_keywords_the_local_validator_knows() -> None:
    s = schema()
    assert s["$schema"] == "http://json-schema.org/draft-07/schema#"
    for node in _schema_nodes(s):
        unknown = set(node) - SUPPORTED
        assert not unknown, f"schema keywords not covered by the local validator: {unknown}"


def test_schema_is_strict_at_the_top() -> None:
    s = schema()
    assert s["type"] == "object"
    assert s["additionalProperties"] is False
    # every default value is declared (a value missing from the schema could never be set)
    assert set(values()) <= set(s["properties"])


def test_values_yaml_validates() -> None:
    assert validate(values(), schema(), schema()) == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"watchNamespace": ["a"]}, "watchNamespace: unknown key"),
        ({"image": {"repository": "x", "tga": "1"}}, "image.tga: unknown key"),
        ({"watchNamespaces": ["team-*"]}, "does not match"),  # RBAC needs exact names, not kopf globs
        ({"watchNamespaces": ["a", "a"]}, "not unique"),
        ({"metrics": {"port": 70000}}, "out of range"),
        ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "expected boolean"),
        ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "not in"),
        ({"resyncSeconds": 0}, "out of range"),
    ],
)
def test_schema_rejects_typos_and_bad_values(change: dict[str, Any], fragment: str) -> None:
    bad = copy.deepcopy(values())
    bad.update(change)
    errors = validate(bad, schema(), schema())
    assert any(fragment in e for e in errors), errors


def test_schema_accepts_namespaced_mode() -> None:
    ok = copy.deepcopy(values())
    ok.update(watchNamespaces=["search", "team-a"], publishNamespaces=["apps"])
    ok["image"].update(digest="sha256:" + "a" * 64)
    assert validate(ok, schema(), schema()) == []


def test_with_jsonschema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft7Validator.check_schema(schema())
    jsonschema.Draft7Validator(schema()).validate(values())
    bad = {**values(), "watchNamespace": []}
    assert not jsonschema.Draft7Validator(schema()).is_valid(bad)


# ------------------------------------------------------------------------------ templates & files


def test_argocd_configmap_template_reads_the_shipped_lua() -> None:
    template = (CHART / "templates" / "argocd-health.yaml").read_text()
    assert '.Files.Get "files/argocd-health.lua"' in template
    assert "resource.customizations.health.rerank.dev_RerankPipeline" in template
    assert (CHART / "files" / "argocd-health.lua").is_file()


def test_helmignore_keeps_files_and_crds() -> None:
    ignored = (CHART / ".helmignore").read_text().split()
    assert not {"files/", "crds/", "files", "crds"} & set(ignored)
