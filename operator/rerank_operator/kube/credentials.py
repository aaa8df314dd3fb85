"""Who the operator is to the apiserver, and where that is: the pod's ServiceAccount, or a kubeconfig.

Read here, not by the kubernetes client library: the operator's API facade is async on httpx, and
kopf takes the same credentials (``handlers.pipeline`` logs it in with them), so the operator process
needs nothing else to talk to the apiserver. What is supported is what operators meet:

* in a pod: the ServiceAccount token (re-read when the kubelet rotates the file), its CA, and the
  apiserver at ``$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``;
* a kubeconfig (``$KUBECONFIG``, several files joined by ``:``, the first value of each name winning;
  else ``~/.kube/config``), its current context: CA (file or data), ``insecure-skip-tls-verify``,
  client certificate and key (files or data), a bearer ``token`` or ``tokenFile``, an OIDC
  ``auth-provider``'s ``id-token``, and ``exec`` credential plugins (``client.authentication.k8s.io``,
  as ``aws eks get-token`` or ``gke-gcloud-auth-plugin``), run again when their token expires or is
  refused.

Anything else (basic auth, which Kubernetes dropped in 1.19; a plugin that returns a client
certificate) is refused with a message that says so, instead of failing later with a 401.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
EXEC_TIMEOUT_SECONDS = 60.0
# an exec plugin's token is renewed this long before it expires (the request may take a while)
EXEC_EXPIRY_MARGIN_SECONDS = 60.0


class CredentialsError(Exception):
    """No usable credentials: says which file or field, and why."""


@dataclass(frozen=True)
class ExecPlugin:
    """A kubeconfig ``exec`` credential plugin: a command that prints an ExecCredential."""

    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1"
    install_hint: str = ""

    def run(self) -> tuple[str, float | None]:
        """The token and when it expires (``time.time()`` seconds; None: no expiry given)."""
        spec = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
        env = {**os.environ, **dict(self.env), "KUBERNETES_EXEC_INFO": json.dumps(spec)}
        try:
            done = subprocess.run(
                [self.command, *self.args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=EXEC_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            hint = f" ({self.install_hint.strip()})" if self.install_hint.strip() else ""
            raise CredentialsError(f"kubeconfig exec plugin {self.command!r} failed: {exc}{hint}") from exc
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise CredentialsError(
                f"kubeconfig exec plugin {self.command!r} exited with {done.returncode}: {stderr[0][:300]}"
            )
        try:
            status = json.loads(done.stdout).get("status") or {}
        except (ValueError, AttributeError) as exc:
            raise CredentialsError(
                f"kubeconfig exec plugin {self.command!r} printed no ExecCredential"
            ) from exc
        token = status.get("token")
        if not token:
            raise CredentialsError(
                f"kubeconfig exec plugin {self.command!r} gave no token (client certificates from a plugin "
                "are not supported)"
            )
        expires = status.get("expirationTimestamp")
        return str(token), (_parse_time(str(expires)) if expires else None)


@dataclass
class Credentials:
    """Where the apiserver is, how to trust it, and who the operator is to it."""

    server: str
    ca_path: str | None = None
    ca_data: bytes | None = None  # PEM
    insecure: bool = False
    certificate_path: str | None = None
    certificate_data: bytes | None = None  # PEM
    private_key_path: str | None = None
    private_key_data: bytes | None = None  # PEM
    token: str | None = None
    token_path: str | None = None  # read afresh whenever the file changes (rotated tokens)
    exec_plugin: ExecPlugin | None = None
    namespace: str | None = None
    # the current token from token_path or the exec plugin, and what it was read at or expires
    _token: str | None = field(default=None, repr=False)
    _token_mtime: float | None = field(default=None, repr=False)
    _token_expires: float | None = field(default=None, repr=False)

    def bearer_token(self) -> str | None:
        """The token to send now: a static one, the token file's content, or the plugin's output."""
        if self.token_path is not None:
            try:
                mtime = os.stat(self.token_path).st_mtime
            except OSError as exc:
                raise CredentialsError(f"cannot read the token file {self.token_path}: {exc}") from exc
            if self._token is None or mtime != self._token_mtime:
                self._token = Path(self.token_path).read_text().strip()
                self._token_mtime = mtime
            return self._token
        if self.exec_plugin is not None:
            expired = self._token_expires is not None and (
                time.time() >= self._token_expires - EXEC_EXPIRY_MARGIN_SECONDS
            )
            if self._token is None or expired:
                self._token, self._token_expires = self.exec_plugin.run()
            return self._token
        return self.token

    @property
    def must_ask(self) -> bool:
        """Whether the next :meth:`bearer_token` runs the exec plugin (a process: call it off the loop)."""
        if self.exec_plugin is None or self.token_path is not None:
            return False
        return self._token is None or (
            self._token_expires is not None
            and time.time() >= self._token_expires - EXEC_EXPIRY_MARGIN_SECONDS
        )

    @property
    def renews(self) -> bool:
        """Whether a refused token may be replaced by asking again (its file, or its plugin)."""
        return self.token_path is not None or self.exec_plugin is not None

    def forget_token(self) -> None:
        """The apiserver refused the token: read or ask for it again before the next request."""
        self._token = None

    def expires_at(self) -> datetime | None:
        """When the current token expires, if it is known to (an exec plugin may say)."""
        if self._token_expires is None:
            return None
        return datetime.fromtimestamp(self._token_expires).astimezone()

    def ssl_context(self) -> ssl.SSLContext | None:
        """None for plain http (test emulators); else the CA to trust and the client certificate."""
        if not self.server.startswith("https://"):
            return None
        context = ssl.create_default_context(
            cafile=self.ca_path, cadata=self.ca_data.decode("ascii") if self.ca_data else None
        )
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.certificate_path or self.certificate_data:
            _load_client_certificate(context, self)
        return context


def load_credentials() -> Credentials:
    """In a pod, its ServiceAccount; elsewhere the kubeconfig (as kubectl finds it)."""
    in_cluster = in_cluster_credentials()
    if in_cluster is not None:
        return in_cluster
    return kubeconfig_credentials()


def in_cluster_credentials(
    environ: Mapping[str, str] | None = None, directory: Path = SERVICE_ACCOUNT_DIR
) -> Credentials | None:
    """The pod's ServiceAccount, or None outside a pod."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    token = directory / "token"
    if not host or not port or not token.exists():
        return None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    ca = directory / "ca.crt"
    namespace = directory / "namespace"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_path=str(ca) if ca.exists() else None,
        token_path=str(token),
        namespace=namespace.read_text().strip() if namespace.exists() else None,
    )


def kubeconfig_credentials(paths: Sequence[str] | None = None) -> Credentials:
    """The current context of the kubeconfig files (``$KUBECONFIG``, else ``~/.kube/config``)."""
    files = _kubeconfig_paths() if paths is None else [Path(p) for p in paths]
    if not files:
        raise CredentialsError(
            "no credentials: not in a pod (no ServiceAccount token) and no kubeconfig "
            "($KUBECONFIG is unset and ~/.kube/config does not exist)"
        )
    current: str | None = None
    named: dict[str, dict[str, tuple[Path, dict[str, Any]]]] = {"contexts": {}, "clusters": {}, "users": {}}
    for path in files:
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CredentialsError(f"cannot read kubeconfig {path}: {exc}") from exc
        current = current or config.get("current-context")
        for section, kind in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in config.get(section) or []:
                named[section].setdefault(str(item.get("name")), (path, item.get(kind) or {}))
    where = ", ".join(str(p) for p in files)
    if not current:
        raise CredentialsError(f"kubeconfig {where}: no current-context")
    context = _named(named, "contexts", current, where)[1]
    cluster_file, cluster = _named(named, "clusters", str(context.get("cluster")), where)
    user_file, user = _named(named, "users", str(context.get("user")), where)
    server = str(cluster.get("server") or "")
    if not server:
        raise CredentialsError(f"kubeconfig {cluster_file}: cluster {context.get('cluster')!r} has no server")
    if user.get("username") or user.get("password"):
        raise CredentialsError(
            f"kubeconfig {user_file}: user {context.get('user')!r} uses basic auth, which Kubernetes "
            "removed in 1.19; use a token, a client certificate or an exec plugin"
        )
    token = user.get("token") or ((user.get("auth-provider") or {}).get("config") or {}).get("id-token")
    return Credentials(
        server=server.rstrip("/"),
        ca_path=_file(cluster_file, cluster.get("certificate-authority")),
        ca_data=_data(cluster.get("certificate-authority-data")),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        certificate_path=_file(user_file, user.get("client-certificate")),
        certificate_data=_data(user.get("client-certificate-data")),
        private_key_path=_file(user_file, user.get("client-key")),
        private_key_data=_data(user.get("client-key-data")),
        token=str(token) if token else None,
        token_path=_file(user_file, user.get("tokenFile")),
        exec_plugin=_exec_plugin(user.get("exec"), user_file),
        namespace=context.get("namespace") or None,
    )


def _kubeconfig_paths() -> list[Path]:
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    if listed:
        return [Path(p).expanduser() for p in listed]
    default = Path("~/.kube/config").expanduser()
    return [default] if default.exists() else []


def _named(
    named: dict[str, dict[str, tuple[Path, dict[str, Any]]]], section: str, name: str, where: str
) -> tuple[Path, dict[str, Any]]:
    found = named[section].get(name)
    if found is None:
        raise CredentialsError(f"kubeconfig {where}: no {section[:-1]} named {name!r}")
    return found


def _file(kubeconfig: Path, value: Any) -> str | None:
    """A path in a kubeconfig is relative to the file that names it."""
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else kubeconfig.parent / path)


def _data(value: Any) -> bytes | None:
    return base64.b64decode(str(value)) if value else None


def _exec_plugin(spec: Any, kubeconfig: Path) -> ExecPlugin | None:
    if not spec:
        return None
    command = str(spec.get("command") or "")
    if not command:
        raise CredentialsError(f"kubeconfig {kubeconfig}: exec plugin without a command")
    if "/" in command and not Path(command).is_absolute():
        command = str(kubeconfig.parent / command)  # as kubectl resolves a relative command path
    return ExecPlugin(
        command=command,
        args=tuple(str(a) for a in spec.get("args") or ()),
        env=tuple((str(e["name"]), str(e.get("value", ""))) for e in spec.get("env") or ()),
        api_version=str(spec.get("apiVersion") or "client.authentication.k8s.io/v1"),
        install_hint=str(spec.get("installHint") or ""),
    )


def _parse_time(value: str) -> float:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise CredentialsError(f"exec plugin's expirationTimestamp is not a time: {value!r}") from exc


def _load_client_certificate(context: ssl.SSLContext, creds: Credentials) -> None:
    """``ssl`` loads a certificate chain only from files: PEM given as data goes through a private
    temporary directory that is gone before this returns."""
    with tempfile.TemporaryDirectory(prefix="rerank-operator-tls-") as tmp:
        cert = creds.certificate_path
        key = creds.private_key_path
        if creds.certificate_data is not None:
            cert = os.path.join(tmp, "client.crt")
            Path(cert).write_bytes(creds.certificate_data)
        if creds.private_key_data is not None:
            key = os.path.join(tmp, "client.key")
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(creds.private_key_data)
        assert cert is not None
        context.load_cert_chain(cert, key)
