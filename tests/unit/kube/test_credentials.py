"""Finding the operator's credentials: the pod's ServiceAccount, or a kubeconfig as kubectl reads it.

Real files throughout (kubeconfigs, token files, a CA and key pair from openssl, an exec plugin that is a
real executable); the TLS contexts are really built from them.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rerank_operator.kube.credentials import (
    CredentialsError,
    ExecPlugin,
    in_cluster_credentials,
    kubeconfig_credentials,
    load_credentials,
)
from rerank_operator.sandbox.pki import Pki, generate_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return generate_pki(tmp_path_factory.mktemp("pki"))


def kubeconfig(
    path: Path, *, user: dict[str, Any], cluster: dict[str, Any] | None = None, namespace: str = ""
) -> Path:
    context: dict[str, str] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "ctx", "context": context}],
                "current-context": "ctx",
            }
        )
    )
    return path


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_a_token_and_embedded_ca(tmp_path: Path, pki: Pki) -> None:
    path = kubeconfig(
        tmp_path / "config",
        user={"token": "s3cret"},
        cluster={"server": "https://127.0.0.1:6443/", "certificate-authority-data": b64(pki.ca_cert)},
        namespace="ml",
    )
    creds = kubeconfig_credentials([str(path)])
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.bearer_token() == "s3cret" and not creds.renews and not creds.must_ask
    assert creds.ca_data == pki.ca_cert.read_bytes() and creds.namespace == "ml"
    context = creds.ssl_context()
    assert context is not None and context.check_hostname
    assert len(context.get_ca_certs()) == 1  # exactly the kubeconfig's CA, not the system bundle


def test_client_certificates_as_files_relative_to_the_kubeconfig_or_as_data(tmp_path: Path, pki: Pki) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "me.crt").write_bytes(pki.serving_cert.read_bytes())
    (certs / "me.key").write_bytes(pki.serving_key.read_bytes())
    path = kubeconfig(
        tmp_path / "config",
        user={"client-certificate": "certs/me.crt", "client-key": "certs/me.key"},
        cluster={"server": "https://10.0.0.1", "certificate-authority": "certs/../certs/me.crt"},
    )
    creds = kubeconfig_credentials([str(path)])
    assert creds.certificate_path == str(certs / "me.crt") and creds.private_key_path == str(certs / "me.key")
    assert creds.ca_path == str(certs / ".." / "certs" / "me.crt")
    assert creds.bearer_token() is None
    assert creds.ssl_context() is not None  # loads the pair for real

    inline = kubeconfig(
        tmp_path / "inline",
        user={"client-certificate-data": b64(pki.serving_cert), "client-key-data": b64(pki.serving_key)},
        cluster={"server": "https://10.0.0.1", "insecure-skip-tls-verify": True},
    )
    creds = kubeconfig_credentials([str(inline)])
    context = creds.ssl_context()
    assert context is not None and not context.check_hostname  # insecure, as the kubeconfig says
    assert not any(
        p.name.startswith("rerank-operator-tls-") for p in Path(os.environ.get("TMPDIR", "/tmp")).iterdir()
    )


def test_several_files_the_first_value_of_each_name_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "a", user={"token": "from-a"})
    second = tmp_path / "b"
    second.write_text(
        yaml.safe_dump(
            {
                "current-context": "other",  # not the first file's: ignored
                "users": [{"name": "u", "user": {"token": "from-b"}}, {"name": "v", "user": {"token": "v"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://b"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(second)]))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    creds = load_credentials()
    assert creds.bearer_token() == "from-a" and creds.server == "https://127.0.0.1:6443"


def test_a_plain_http_server_needs_no_tls(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", user={}, cluster={"server": "http://127.0.0.1:8001"})
    assert kubeconfig_credentials([str(path)]).ssl_context() is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"contexts": [], "current-context": ""}, "no current-context"),
        ({"current-context": "nope"}, "no context named 'nope'"),
        ({"users": []}, "no user named 'u'"),
        ({"clusters": [{"name": "c", "cluster": {}}]}, "cluster 'c' has no server"),
        ({"users": [{"name": "u", "user": {"username": "a", "password": "b"}}]}, "basic auth"),
        ({"users": [{"name": "u", "user": {"exec": {"args": ["x"]}}}]}, "exec plugin without a command"),
    ],
)
def test_what_cannot_work_is_refused_naming_why(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "clusters": [{"name": "c", "cluster": {"server": "https://x"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({**base, **config}))
    with pytest.raises(CredentialsError, match=message) as info:
        kubeconfig_credentials([str(path)])
    assert str(path) in str(info.value)


def test_no_credentials_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CredentialsError, match="no kubeconfig"):
        load_credentials()


def test_a_token_file_is_read_again_when_it_is_rotated(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    path = kubeconfig(tmp_path / "config", user={"tokenFile": "token"})
    creds = kubeconfig_credentials([str(path)])
    assert creds.renews and creds.bearer_token() == "one"
    token.write_text("two\n")
    os.utime(token, (1_000_000, 1_000_000))  # a rotation is a new file: a new mtime
    assert creds.bearer_token() == "two"
    token.unlink()
    with pytest.raises(CredentialsError, match="token file"):
        creds.bearer_token()


def test_in_a_pod_the_service_account(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (tmp_path / "namespace").write_text("rerank-system\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = in_cluster_credentials(env, tmp_path)
    assert creds is not None
    assert creds.server == "https://10.96.0.1:443" and creds.namespace == "rerank-system"
    assert creds.bearer_token() == "sa-token" and creds.ca_path == str(tmp_path / "ca.crt")
    v6 = in_cluster_credentials({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, tmp_path)
    assert v6 is not None and v6.server == "https://[fd00::1]:443"
    assert in_cluster_credentials({}, tmp_path) is None  # not in a pod
    assert in_cluster_credentials(env, tmp_path / "missing") is None


def plugin(tmp_path: Path, *, token: str, expires: str | None = None, code: int = 0) -> Path:
    """A real exec plugin: records each run (and the ExecCredential spec it was given)."""
    script = tmp_path / "plugin"
    status: dict[str, Any] = {"token": token}
    if expires:
        status["expirationTimestamp"] = expires
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(tmp_path / 'runs')!r}, 'a') as f:\n"
        "    f.write(os.environ['KUBERNETES_EXEC_INFO'] + '\\n')\n"
        f"if {code}:\n"
        "    print('token service unavailable', file=sys.stderr)\n"
        f"    sys.exit({code})\n"
        f"print(json.dumps({{'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential', 'status': {status!r}}}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def runs(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "runs"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_an_exec_plugin_is_run_once_until_its_token_expires_or_is_refused(tmp_path: Path) -> None:
    script = plugin(tmp_path, token="from-plugin", expires="2999-01-01T00:00:00Z")
    path = kubeconfig(
        tmp_path / "config",
        user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin", "args": []}},
    )
    creds = kubeconfig_credentials([str(path)])
    assert creds.exec_plugin == ExecPlugin(command=str(script))
    assert creds.must_ask and creds.renews
    assert creds.bearer_token() == "from-plugin" and creds.bearer_token() == "from-plugin"
    assert not creds.must_ask and len(runs(tmp_path)) == 1
    assert runs(tmp_path)[0]["kind"] == "ExecCredential" and runs(tmp_path)[0]["spec"]["interactive"] is False
    expires = creds.expires_at()
    assert expires is not None and expires.year == 2999
    creds.forget_token()  # the apiserver refused it
    assert creds.bearer_token() == "from-plugin" and len(runs(tmp_path)) == 2

    plugin(tmp_path, token="short-lived", expires="2000-01-01T00:00:00Z")  # expired as soon as given
    creds.forget_token()
    creds.bearer_token()
    assert creds.must_ask  # asks again before the next request
    creds.bearer_token()
    assert len(runs(tmp_path)) == 4


def test_a_failing_exec_plugin_says_why(tmp_path: Path) -> None:
    plugin(tmp_path, token="x", code=3)
    path = kubeconfig(
        tmp_path / "config", user={"exec": {"command": str(tmp_path / "plugin"), "installHint": "install it"}}
    )
    creds = kubeconfig_credentials([str(path)])
    with pytest.raises(CredentialsError, match="exited with 3: token service unavailable"):
        creds.bearer_token()
    missing = ExecPlugin(command=str(tmp_path / "absent"), install_hint="brew install it")
    with pytest.raises(CredentialsError, match="brew install it"):
        missing.run()
