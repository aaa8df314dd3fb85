"""Which addresses the canary may contact for ``spec.publish.endpoint``: the operator's SSRF guard.

``publish.endpoint`` lets whoever creates a pipeline choose where the operator sends a canary request,
from the operator's own network position and with the pipeline's API key. Admission already refuses
loopback, link-local and cloud-metadata addresses, in-cluster names and bare names. A platform team can
narrow it further with an allowlist (``RERANK_OPERATOR_ENDPOINT_ALLOWLIST``, chart value
``endpointAllowlist``):

* a CIDR (``10.20.0.0/16``) admits IP-literal endpoints inside it;
* a domain suffix starting with a dot (``.rerank.example.com``) admits that domain and its subdomains.

Host names are matched by name and never resolved here: resolving to check a CIDR would be racy (DNS
can answer differently when the request is sent), so list only suffixes whose DNS you control. An
empty allowlist keeps the default: anything admission accepts.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_VAR = "RERANK_OPERATOR_ENDPOINT_ALLOWLIST"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class DestinationPolicy:
    networks: tuple[Network, ...] = ()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> DestinationPolicy:
        """``10.0.0.0/8,.example.com``; raises ValueError naming the bad entry."""
        networks: list[Network] = []
        suffixes: list[str] = []
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry.startswith("."):
                if len(entry) < 2 or ".." in entry or "/" in entry or ":" in entry:
                    raise ValueError(
                        f"allowlist entry {entry!r}: expected a domain suffix such as .example.com"
                    )
                suffixes.append(entry)
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=True))
            except ValueError:
                raise ValueError(
                    f"allowlist entry {entry!r}: expected a CIDR (10.0.0.0/8) or a domain suffix (.example.com)"
                ) from None
        return cls(networks=tuple(networks), suffixes=tuple(suffixes))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DestinationPolicy:
        env = os.environ if environ is None else environ
        try:
            return cls.parse(env.get(ENV_VAR, ""))
        except ValueError as exc:
            raise ValueError(f"{ENV_VAR}: {exc}") from None

    def __bool__(self) -> bool:
        return bool(self.networks or self.suffixes)

    def refusal(self, host: str) -> str | None:
        """``None`` when the canary may contact ``host``, else why not (for the probe's message)."""
        if not self:
            return None
        host = host.lower().rstrip(".")
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            if any(host == s[1:] or host.endswith(s) for s in self.suffixes):
                return None
        else:
            if any(ip in net for net in self.networks):
                return None
        allowed = ", ".join([*(str(n) for n in self.networks), *self.suffixes])
        return f"{host} is outside the operator's endpoint allowlist ({ENV_VAR}: {allowed})"
