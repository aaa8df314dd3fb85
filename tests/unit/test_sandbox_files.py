"""Sandbox file generation: kubeconfigs (checked with the real kubectl), PKI (checked with openssl), tokens,
fake node manifests, kwok's stages."""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import rerank_operator
from rerank_operator.sandbox.build import (
    KWOK_STAGE_FILES,
    KWOK_STAGES_ENV,
    KWOK_VERSION,
    BuildError,
    kwok_stages,
)
from rerank_operator.sandbox.client import find_kubectl, manifest_text
from rerank_operator.sandbox.kubeconfig import kubeconfig_dict, write_kubeconfig
from rerank_operator.sandbox.nodes import GPU_RESOURCE, KWOK_ANNOTATION, default_nodes, node_list
from rerank_operator.sandbox.pki import StaticUser, generate_pki, render_san_extension, render_token_file


def test_kubeconfig_is_accepted_by_kubectl(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "kc.yaml",
        server="https://127.0.0.1:6443",
        ca_pem=b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        token="s3cret",
        user="sandbox-admin",
        namespace="team-a",
    )
    assert path.stat().st_mode & 0o077 == 0  # holds a token
    out = subprocess.run(
        [str(find_kubectl()), "config", "view", "--kubeconfig", str(path), "--raw", "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    view = json.loads(out)
    assert view["current-context"] == "sandbox-admin@rerank-sandbox"
    assert view["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert view["users"][0]["user"]["token"] == "s3cret"
    assert view["contexts"][0]["context"]["namespace"] == "team-a"
    ca = base64.b64decode(view["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")


def test_kubeconfig_without_namespace() -> None:
    cfg = kubeconfig_dict(server="https://127.0.0.1:1", ca_pem=b"x", token="t", user="u")
    assert "namespace" not in cfg["contexts"][0]["context"]


def test_token_file_quotes_groups() -> None:
    users = [
        StaticUser("admin", "tok1", ("system:masters", "extra")),
        StaticUser("plain", "tok2"),
    ]
    text = render_token_file(users)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["tok1", "admin", "admin", "system:masters,extra"], ["tok2", "plain", "plain"]]
    assert '"system:masters,extra"' in text
    generated = StaticUser.generate("x", ["g"])
    assert len(generated.token) == 48
    assert generated.uid == "sandbox-x"


def test_san_extension() -> None:
    ext = render_san_extension(["127.0.0.1", "::1"], ["localhost"])
    assert "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" in ext
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        render_san_extension(["not-an-ip"], [])


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_generate_pki(tmp_path: Path) -> None:
    pki = generate_pki(tmp_path / "pki")
    subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca_cert), str(pki.serving_cert)],
        check=True,
        capture_output=True,
    )
    text = subprocess.run(
        ["openssl", "x509", "-in", str(pki.serving_cert), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text
    assert "DNS:kubernetes.default.svc" in text
    assert "TLS Web Server Authentication" in text
    assert pki.sa_pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert pki.sa_key.stat().st_mode & 0o077 == 0


def test_default_nodes() -> None:
    nodes = default_nodes()
    assert [n.name for n in nodes] == ["kwok-gpu-0", "kwok-gpu-1", "kwok-cpu-0"]
    gpu, cpu = nodes[0].manifest(), nodes[2].manifest()
    assert gpu["metadata"]["annotations"][KWOK_ANNOTATION] == "fake"
    assert gpu["status"]["allocatable"][GPU_RESOURCE] == "4"
    assert gpu["status"]["capacity"][GPU_RESOURCE] == "4"
    assert gpu["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert gpu["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert GPU_RESOURCE not in cpu["status"]["allocatable"]
    assert "taints" not in cpu["spec"]
    assert cpu["metadata"]["annotations"][KWOK_ANNOTATION] == "fake"
    assert len(node_list(default_nodes(gpu_nodes=3, cpu_nodes=0))["items"]) == 3


def test_manifest_text_round_trips() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"y": "n", "on": "no"}}
    assert yaml.safe_load(manifest_text(obj)) == obj
    assert '"y": "n"' in manifest_text(obj)  # quoted: kubectl's YAML 1.1 would read y/n as booleans
    assert list(yaml.safe_load_all(manifest_text([obj, obj]))) == [obj, obj]
    assert manifest_text("kind: X\n") == "kind: X\n"


def _stage_tree(root: Path) -> Path:
    for rel in KWOK_STAGE_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"kind: Stage\nmetadata: {{name: {Path(rel).stem}}}\n")
    return root


def test_kwok_stages_are_read_from_the_cache_entry_in_the_modules_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANK_SANDBOX_CACHE", str(tmp_path))
    monkeypatch.delenv(KWOK_STAGES_ENV, raising=False)
    _stage_tree(tmp_path / f"kwok-stages-{KWOK_VERSION}")
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(kwok_stages())]
    assert names == [Path(f).stem for f in KWOK_STAGE_FILES]
    assert "node-heartbeat-with-lease" in names  # kwok renews leases only with this stage


def test_kwok_stages_override_dir_and_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = _stage_tree(tmp_path / "stage")
    monkeypatch.setenv(KWOK_STAGES_ENV, str(tree))
    assert len(list(yaml.safe_load_all(kwok_stages()))) == len(KWOK_STAGE_FILES)
    (tree / KWOK_STAGE_FILES[0]).unlink()
    with pytest.raises(BuildError, match=r"node-initialize\.yaml"):
        kwok_stages()


def test_no_copy_of_kwoks_stages_is_carried_in_the_repo() -> None:
    package = Path(rerank_operator.__file__).parent
    hits = [p for p in package.rglob("*.py") if "statusTemplate" in p.read_text()]
    assert hits == []
