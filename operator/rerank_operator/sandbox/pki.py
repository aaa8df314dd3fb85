"""Throw-away PKI and static tokens for the sandbox apiserver.

The `cryptography` package is not a dependency, so keys and certificates come from the ``openssl`` CLI
(present on every CI image). Everything is per-sandbox and deleted with its temp dir.

Identities: components authenticate with static bearer tokens (``--token-auth-file``) rather than client
certificates, which keeps generation to one CA-signed serving cert. Service-account tokens are signed
with a separate RSA key so ``TokenRequest`` works and the operator can later run as a real ServiceAccount.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# DNS names a pod would use for the apiserver; kept so certs stay valid if the sandbox grows networking.
APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class StaticUser:
    """A line of the apiserver's token file."""

    name: str
    token: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @classmethod
    def generate(cls, name: str, groups: Sequence[str] = ()) -> StaticUser:
        return cls(name=name, token=secrets.token_hex(24), groups=tuple(groups), uid=f"sandbox-{name}")


def render_token_file(users: Sequence[StaticUser]) -> str:
    """CSV as kube-apiserver expects: token,user,uid,"group1,group2"."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for u in users:
        row = [u.token, u.name, u.uid or u.name]
        if u.groups:
            row.append(",".join(u.groups))
        writer.writerow(row)
    return buf.getvalue()


def render_san_extension(ips: Sequence[str], dns_names: Sequence[str]) -> str:
    """The openssl x509 extension file for a TLS serving certificate."""
    sans = [f"DNS:{d}" for d in dns_names] + [f"IP:{ipaddress.ip_address(i)}" for i in ips]
    return (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(sans)}\n"
    )


@dataclass(frozen=True)
class Pki:
    """Paths of the generated material (PEM files)."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def generate_pki(
    directory: Path, *, ips: Sequence[str] = ("127.0.0.1",), dns_names: Sequence[str] = APISERVER_DNS_NAMES
) -> Pki:
    """Create a CA, an apiserver serving cert for `ips`/`dns_names`, and a service-account key pair.

    EC P-256 for TLS (fast to generate); RSA 2048 for service accounts (RS256 is what every client accepts).
    """
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    _openssl("genpkey", *ec, "-out", "ca.key", cwd=d)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650",
        "-subj", "/CN=rerank-sandbox-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.crt", cwd=d,
    )  # fmt: skip
    _openssl("genpkey", *ec, "-out", "apiserver.key", cwd=d)
    _openssl(
        "req", "-new", "-key", "apiserver.key", "-subj", "/CN=kube-apiserver", "-out", "apiserver.csr", cwd=d
    )
    (d / "apiserver.ext").write_text(render_san_extension(ips, dns_names))
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "3650", "-sha256", "-extfile", "apiserver.ext", "-out", "apiserver.crt", cwd=d,
    )  # fmt: skip
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=d)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    for key in ("ca.key", "apiserver.key", "sa.key"):
        (d / key).chmod(0o600)
    return Pki(
        ca_cert=d / "ca.crt",
        ca_key=d / "ca.key",
        serving_cert=d / "apiserver.crt",
        serving_key=d / "apiserver.key",
        sa_key=d / "sa.key",
        sa_pub=d / "sa.pub",
    )
