"""Kubeconfig files for sandbox clients (admin user, control-plane components, ServiceAccounts).

The CA is embedded (``certificate-authority-data``) so a kubeconfig can be copied elsewhere and still work
for as long as the sandbox runs.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml


def kubeconfig_dict(
    *, server: str, ca_pem: bytes, token: str, user: str, cluster: str = "rerank-sandbox", namespace: str = ""
) -> dict[str, Any]:
    """A single-context kubeconfig authenticating with a bearer token."""
    context: dict[str, str] = {"cluster": cluster, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": f"{user}@{cluster}", "context": context}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    }


def render_kubeconfig(**kwargs: Any) -> str:
    """YAML text of :func:`kubeconfig_dict` (same keyword arguments)."""
    return yaml.safe_dump(kubeconfig_dict(**kwargs), sort_keys=False)


def write_kubeconfig(path: Path, **kwargs: Any) -> Path:
    """Write a kubeconfig readable only by the owner (it holds a bearer token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(render_kubeconfig(**kwargs))
    return path
