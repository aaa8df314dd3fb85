"""Host overrides: the explicit seam that lets tests and the sandbox reach loopback stand-ins.

The operator probes ``http://<svc>.<ns>.svc.cluster.local:8000``; outside a cluster that name does not
resolve. Instead of mocking the HTTP client, the probe asks a :class:`HostResolver` where to connect,
connects there, and still sends the original ``Host`` header, so the request on the wire is the one
Milvus would send. Production configures no overrides and uses cluster DNS. Overrides may only point at
loopback addresses, so the seam cannot redirect probes (and their API keys) anywhere else.

Format (env ``RERANK_OPERATOR_HOST_OVERRIDES``)::

    rr-svc.default.svc.cluster.local:8000=127.0.0.1:18000,other:80=127.0.0.1:9

A key without a port matches that host on any port; a target without a port keeps the original port.
A ``*`` in a key's host matches any run of characters within one DNS label, so
``rr-*.default.svc.cluster.local`` covers a pipeline's stable Service and every per-revision Service
(BlueGreen) at once; exact keys win over patterns, and longer patterns over shorter ones.

``RERANK_OPERATOR_HOST_OVERRIDES_FILE`` names a file with the same entries (separated by commas or
newlines, ``#`` starts a comment) that is re-read whenever it changes, so the sandbox can map pipelines
a user applies while the operator runs; its entries win over the variable's. A file that fails to parse
is reported once and its last good entries stay in force; a missing file means no entries. Like the
variable, it is a test/sandbox seam: targets must be loopback.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENV_VAR = "RERANK_OPERATOR_HOST_OVERRIDES"
FILE_ENV_VAR = "RERANK_OPERATOR_HOST_OVERRIDES_FILE"
log = logging.getLogger(__name__)


def split_host_port(text: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` / ``[v6][:port]``; the host is lower-cased, the port checked."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{text!r}: unclosed '['")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':port' after ']'")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"{text!r}: write IPv6 addresses in brackets, e.g. [::1]:8000")
    else:
        host, port_text = text, None
    if not host:
        raise ValueError(f"{text!r}: empty host")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r}: port must be 1-65535")
        port = int(port_text)
    return host.lower(), port


def _loopback_ip(host: str, where: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"override target {where!r} must be a loopback IP literal (127.0.0.0/8 or ::1), not a name"
        ) from None
    if not ip.is_loopback:
        raise ValueError(f"override target {where!r} is not loopback: only 127.0.0.0/8 and ::1 are allowed")
    return str(ip)


@dataclass(frozen=True)
class Override:
    """Where to connect instead: a loopback IP and optionally a different port."""

    ip: str
    port: int | None = None

    def authority(self, original_port: int) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port or original_port}"


def parse_overrides(text: str) -> dict[str, Override]:
    """Parse ``key=target`` entries separated by commas or newlines (``#`` comments); raises
    ValueError naming the bad entry."""
    table: dict[str, Override] = {}
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    for raw in ",".join(lines).split(","):
        entry = raw.strip()
        if not entry:
            continue
        key_text, sep, target_text = entry.partition("=")
        if not sep or not key_text.strip() or not target_text.strip():
            raise ValueError(f"host override {entry!r}: expected 'host[:port]=127.0.0.1[:port]'")
        host, port = split_host_port(key_text)
        key = _key(host, port)
        if key in table:
            raise ValueError(f"host override {entry!r}: {key!r} is given twice")
        ip_text, target_port = split_host_port(target_text)
        table[key] = Override(ip=_loopback_ip(ip_text, target_text.strip()), port=target_port)
    return table


def _lookup(table: Mapping[str, Override], host: str, port: int) -> Override | None:
    found = table.get(_key(host, port)) or table.get(_key(host, None))
    if found is not None:
        return found
    patterns = sorted((k for k in table if "*" in k), key=len, reverse=True)
    for key in patterns:
        if _pattern(key).fullmatch(_key(host, port)) or _pattern(key).fullmatch(_key(host, None)):
            return table[key]
    return None


@functools.lru_cache(maxsize=256)
def _pattern(key: str) -> re.Pattern[str]:
    return re.compile("[^.:]*".join(re.escape(part) for part in key.split("*")))


class OverridesFile:
    """Entries read from a file, re-read when its modification time or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._signature: tuple[int, int] | None = None
        self._table: dict[str, Override] = {}

    def table(self) -> Mapping[str, Override]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        signature = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if signature != self._signature:
                self._signature = signature
                try:
                    self._table = parse_overrides(self.path.read_text())
                except (OSError, ValueError) as exc:  # keep the last good entries
                    log.warning("%s=%s: %s (keeping the previous entries)", FILE_ENV_VAR, self.path, exc)
            return dict(self._table)


@dataclass(frozen=True)
class HostResolver:
    """Maps ``host[:port]`` keys to loopback :class:`Override` targets; empty means "use DNS"."""

    overrides: Mapping[str, Override] = field(default_factory=dict)
    file: OverridesFile | None = None

    @classmethod
    def parse(cls, text: str) -> HostResolver:
        """Parse ``key=target,key=target``; raises ValueError naming the bad entry."""
        return cls(overrides=parse_overrides(text))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, var: str = ENV_VAR) -> HostResolver:
        """Resolver from ``RERANK_OPERATOR_HOST_OVERRIDES`` and ``..._FILE`` (unset or empty: none)."""
        env = os.environ if environ is None else environ
        try:
            table = parse_overrides(env.get(var, ""))
        except ValueError as exc:
            raise ValueError(f"{var}: {exc}") from None
        path = env.get(FILE_ENV_VAR, "").strip()
        return cls(overrides=table, file=OverridesFile(Path(path)) if path else None)

    def resolve(self, host: str, port: int) -> Override | None:
        """The override for ``host:port`` (exact key first, then host-only key; the file's entries
        before the variable's), or None."""
        host = host.lower()
        if self.file is not None:
            found = _lookup(self.file.table(), host, port)
            if found is not None:
                return found
        return _lookup(self.overrides, host, port)

    def __bool__(self) -> bool:
        return bool(self.overrides) or self.file is not None


def _key(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"
