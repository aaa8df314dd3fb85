"""A tiny ``custom.metrics.k8s.io`` API for the sandbox, so the real HPA controller can scale on vLLM's
metrics without Prometheus or prometheus-adapter (a test/demo tool, like the stand-in).

It answers what the HPA controller asks an adapter for a ``Pods`` metric: API discovery, and
``GET .../namespaces/<ns>/pods/*/<metric>?labelSelector=...`` as a ``MetricValueList`` with one value
per pod. The value of every pod is read from one vLLM-protocol ``/metrics`` endpoint (the sandbox's
stand-in serves all kwok pods), so a test sets the queue on the stand-in and the HPA sees it.

How it is reached: the apiserver's aggregator proxies the APIService to a Service. The sandbox has no
kube-proxy, and the apiserver's own proxies refuse loopback targets, but the aggregator resolves an
``ExternalName`` Service to its name and dials that: ``externalName: localhost`` and this server on
127.0.0.1 (HTTPS, as the aggregator requires; the APIService skips verification of this throw-away
certificate). :func:`registration` renders the Service and APIService.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import ssl
import threading
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

GROUP = "custom.metrics.k8s.io"
VERSION = "v1beta2"
GROUP_VERSION = f"{GROUP}/{VERSION}"
_POD_METRIC = re.compile(rf"^/apis/{re.escape(GROUP_VERSION)}/namespaces/([^/]+)/pods/([^/]+)/([^/]+)$")

# (namespace, label selector) -> names of the pods it selects
PodLister = Callable[[str, str], Sequence[str]]


def scrape(url: str, metric: str, timeout: float = 5.0) -> float | None:
    """The value of ``metric`` (summed over its label sets) in a Prometheus text exposition."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode("utf-8", "replace")
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == metric:
            total += float(line.rsplit(" ", 1)[-1])
            seen = True
    return total if seen else None


def quantity(value: float) -> str:
    """A metric value as the Kubernetes quantity the API carries (milli-units keep fractions)."""
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


class CustomMetricsServer:
    """Serves ``metrics`` for the pods ``pods`` lists in ``namespaces``, with values scraped from
    ``source_url``."""

    def __init__(
        self,
        *,
        source_url: str,
        pods: PodLister,
        metrics: Sequence[str],
        namespaces: Sequence[str],
        cert_file: Path,
        key_file: Path,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the custom-metrics stand-in listens on loopback only")
        self.source_url = source_url
        self.pods = pods
        self.metrics = tuple(metrics)
        # Only these namespaces have metrics: an APIService is cluster-wide, and HPAs elsewhere (other
        # tests sharing the cluster) must keep seeing "no metric" rather than this server's values.
        self.namespaces = frozenset(namespaces)
        self.requests: list[str] = []  # paths asked for, for tests
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert_file), str(key_file))
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> CustomMetricsServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="custom-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> CustomMetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ---------------------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": GROUP_VERSION,
            "resources": [
                {
                    "name": f"pods/{m}",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "MetricValueList",
                    "verbs": ["get"],
                }
                for m in self.metrics
            ],
        }

    def pod_metrics(self, namespace: str, pod: str, metric: str, selector: str) -> dict[str, Any] | None:
        """A MetricValueList for one pod or (``*``) every pod the selector picks; None if unknown."""
        if metric not in self.metrics or namespace not in self.namespaces:
            return None
        value = scrape(self.source_url, metric)
        if value is None:
            return None
        names = list(self.pods(namespace, selector)) if pod == "*" else [pod]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "kind": "MetricValueList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": [
                {
                    "describedObject": {
                        "kind": "Pod",
                        "namespace": namespace,
                        "name": name,
                        "apiVersion": "/v1",
                    },
                    "metric": {"name": metric},
                    "timestamp": now,
                    "windowSeconds": 0,
                    "value": quantity(value),
                }
                for name in names
            ],
        }


def _handler(server: CustomMetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("custom-metrics: " + format, *args)

        def _json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _not_found(self, what: str) -> None:
            self._json(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                    "message": what,
                },
            )

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            server.requests.append(self.path)
            if url.path.rstrip("/") == f"/apis/{GROUP_VERSION}":
                self._json(200, server.discovery())
                return
            match = _POD_METRIC.match(url.path)
            if match is None:
                self._not_found(f"{url.path} is not served here")
                return
            namespace, pod, metric = (unquote(part) for part in match.groups())  # "*" arrives as %2A
            selector = (parse_qs(url.query).get("labelSelector") or [""])[0]
            try:
                payload = server.pod_metrics(namespace, pod, metric, selector)
            except OSError as exc:  # the metrics source is down: what an adapter answers then
                self._json(503, {"kind": "Status", "status": "Failure", "code": 503, "message": str(exc)})
                return
            if payload is None:
                self._not_found(f"metric {metric} is not available for pods in {namespace}")
                return
            self._json(200, payload)

    return Handler


def registration(
    port: int, *, namespace: str = "kube-system", name: str = "custom-metrics-standin"
) -> list[dict[str, Any]]:
    """The Service (ExternalName localhost) and the APIService that route the API to this server."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": f"{VERSION}.{GROUP}"},
            "spec": {
                "group": GROUP,
                "version": VERSION,
                "service": {"namespace": namespace, "name": name, "port": port},
                "insecureSkipTLSVerify": True,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]
