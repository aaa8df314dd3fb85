"""The API facade's transport against a real loopback HTTPS server: TLS trust from the credentials,
what goes on the wire (verb, path, query, content type, body), errors as ``ApiError``, and a refused
token asked for again once.

The server is a small ``http.server`` over TLS with a certificate from openssl; it answers as the
apiserver does (JSON Status objects for errors). The e2e tier runs the same facade on the real apiserver.
"""

from __future__ import annotations

import gzip
import json
import ssl
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from rerank_operator.kube import ApiError, KubeApi
from rerank_operator.kube.client import APPLY
from rerank_operator.kube.credentials import Credentials, ExecPlugin
from rerank_operator.sandbox.pki import Pki, generate_pki
from rerank_operator.sandbox.procs import free_port


@dataclass
class Seen:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApiserver:
    """Answers 200 with the request echoed, unless the token is not ``accept`` (401) or the path is
    ``/missing`` (404 with a Status body)."""

    port: int
    accept: str = "good"
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return generate_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def apiserver(pki: Pki) -> Iterator[FakeApiserver]:
    fake = FakeApiserver(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            fake.seen.append(
                Seen(
                    self.command,
                    url.path,
                    parse_qsl(url.query),
                    dict(self.headers.items()),
                    json.loads(raw) if raw else None,
                )
            )
            if self.headers.get("Authorization") != f"Bearer {fake.accept}":
                self._send(401, {"kind": "Status", "reason": "Unauthorized", "message": "Unauthorized"})
            elif url.path == "/gzipped" and "gzip" in (self.headers.get("Accept-Encoding") or ""):
                self._send(200, {"items": [{"n": i} for i in range(2000)]}, gzipped=True)  # a large list
            elif url.path == "/missing":
                self._send(
                    404, {"kind": "Status", "reason": "NotFound", "message": 'configmaps "x" not found'}
                )
            else:
                self._send(200, {"echo": url.path})

        def _send(self, code: int, body: dict[str, Any], *, gzipped: bool = False) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            if gzipped:  # as the apiserver compresses large responses for clients that accept it
                data = gzip.compress(data)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", fake.port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.serving_cert, pki.serving_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


async def test_requests_go_out_as_the_apiserver_expects(apiserver: FakeApiserver, pki: Pki) -> None:
    kube = KubeApi(Credentials(server=apiserver.url, ca_data=pki.ca_cert.read_bytes(), token="good"))
    manifest = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cm", "namespace": "ml"}}
    await kube.apply(manifest)
    seen = apiserver.seen[-1]
    assert (seen.method, seen.path) == ("PATCH", "/api/v1/namespaces/ml/configmaps/cm")
    assert seen.query == [("fieldManager", "rerank-operator"), ("force", "true")]
    assert seen.headers["Content-Type"] == APPLY and seen.body == manifest
    assert seen.headers["Authorization"] == "Bearer good"
    assert await kube.get("ConfigMap", "ml", "cm") == {"echo": "/api/v1/namespaces/ml/configmaps/cm"}
    assert await kube.delete("ConfigMap", "ml", "cm", uid="u-1")
    assert apiserver.seen[-1].body == {"propagationPolicy": "Background", "preconditions": {"uid": "u-1"}}
    await kube.aclose()


async def test_errors_are_api_errors_with_the_apiservers_reason(apiserver: FakeApiserver, pki: Pki) -> None:
    kube = KubeApi(Credentials(server=apiserver.url, ca_data=pki.ca_cert.read_bytes(), token="good"))
    with pytest.raises(ApiError) as info:
        await kube.request("GET", "/missing")
    assert (info.value.status, info.value.reason) == (404, "NotFound") and not info.value.transient
    wrong = KubeApi(Credentials(server=apiserver.url, ca_data=pki.ca_cert.read_bytes(), token="bad"))
    with pytest.raises(ApiError) as info:
        await wrong.get("ConfigMap", "ml", "cm")
    assert info.value.status == 401
    assert len([s for s in apiserver.seen if s.headers.get("Authorization") == "Bearer bad"]) == 1  # static
    refused = KubeApi(
        Credentials(server=f"https://127.0.0.1:{free_port()}", ca_data=pki.ca_cert.read_bytes())
    )
    with pytest.raises(ApiError) as info:
        await refused.get("ConfigMap", "ml", "cm")
    assert info.value.status == 0 and info.value.transient  # nothing listens: worth retrying
    for api in (kube, wrong, refused):
        await api.aclose()


async def test_a_server_not_signed_by_the_ca_is_refused(apiserver: FakeApiserver, tmp_path: Path) -> None:
    stranger = generate_pki(tmp_path / "other")
    kube = KubeApi(Credentials(server=apiserver.url, ca_data=stranger.ca_cert.read_bytes(), token="good"))
    with pytest.raises(ApiError) as info:
        await kube.get("ConfigMap", "ml", "cm")
    assert info.value.status == 0 and "CERTIFICATE_VERIFY_FAILED" in info.value.message
    assert apiserver.seen == []  # no request was sent to an unverified server
    await kube.aclose()


async def test_a_refused_token_is_asked_for_once_more(
    apiserver: FakeApiserver, pki: Pki, tmp_path: Path
) -> None:
    """An exec plugin's token revoked early: the 401 makes the facade run the plugin again and repeat
    the request once; a token that stays refused is a 401 after exactly one retry."""
    counter = tmp_path / "count"
    script = tmp_path / "plugin"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': 'good' if n > 1 else 'revoked'}}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    creds = Credentials(
        server=apiserver.url, ca_data=pki.ca_cert.read_bytes(), exec_plugin=ExecPlugin(command=str(script))
    )
    kube = KubeApi(creds)
    assert await kube.get("ConfigMap", "ml", "cm") is not None
    assert counter.read_text() == "2"
    assert [s.headers["Authorization"] for s in apiserver.seen] == ["Bearer revoked", "Bearer good"]
    await kube.get("ConfigMap", "ml", "cm")
    assert counter.read_text() == "2"  # kept while it works

    apiserver.accept = "something else"
    apiserver.seen.clear()
    with pytest.raises(ApiError) as info:
        await kube.get("ConfigMap", "ml", "cm")
    assert info.value.status == 401 and len(apiserver.seen) == 2
    await kube.aclose()


async def test_a_server_url_with_a_path_keeps_it(apiserver: FakeApiserver, pki: Pki) -> None:
    """Some clusters are reached through a proxy at a path (Rancher's /k8s/clusters/<id>)."""
    kube = KubeApi(
        Credentials(
            server=f"{apiserver.url}/k8s/clusters/c-1", ca_data=pki.ca_cert.read_bytes(), token="good"
        )
    )
    await kube.list("Pod", "ml", "app.kubernetes.io/instance=rr,rerank.dev/revision=abc")
    seen = apiserver.seen[-1]
    assert seen.path == "/k8s/clusters/c-1/api/v1/namespaces/ml/pods"
    assert seen.query == [("labelSelector", "app.kubernetes.io/instance=rr,rerank.dev/revision=abc")]
    await kube.aclose()


async def test_a_compressed_answer_is_read(apiserver: FakeApiserver, pki: Pki) -> None:
    """The apiserver gzips large responses (a list of many objects) for clients that accept it."""
    kube = KubeApi(Credentials(server=apiserver.url, ca_data=pki.ca_cert.read_bytes(), token="good"))
    answer = await kube.request("GET", "/gzipped")
    assert len(answer["items"]) == 2000 and answer["items"][-1] == {"n": 1999}
    await kube.aclose()
