"""A threaded HTTP server that speaks vLLM's (or TEI's) rerank API with switchable faults (a test tool).

Standard library only, so tests need no web framework and the sandbox can run it as a plain process.
It listens on loopback only: it has unauthenticated admin routes and records request headers.

``engine`` picks the wire protocol at construction. ``"vllm"`` (the default) serves vLLM's routes and
also answers a TEI-shaped ``{"query", "texts"}`` body on them in TEI's response shape, which the
probe's TEI tests rely on. ``"tei"`` is a faithful text-embeddings-inference router instead: only TEI's
routes, TEI's validation order and error shapes and statuses (see :mod:`rerank_operator.standin.tei`).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self, get_args
from urllib.parse import urlsplit

from rerank_operator.standin import protocol, tei
from rerank_operator.standin.faults import Fault, FaultMode, FaultState
from rerank_operator.standin.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_MODEL = "BAAI/bge-reranker-base"
Engine = Literal["vllm", "tei"]
ENGINES: tuple[Engine, ...] = get_args(Engine)
DEFAULT_MAX_CLIENT_BATCH_SIZE = tei.DEFAULT_MAX_CLIENT_BATCH_SIZE
RERANK_PATHS = frozenset({"/rerank", "/v1/rerank", "/v2/rerank"})
# TEI (reranker model): POST / and /invocations rerank too; GET /, /health and /ping are its health check.
TEI_RERANK_PATHS = frozenset({"/rerank", "/", "/invocations"})
TEI_HEALTH_PATHS = frozenset({"/health", "/ping", "/"})
ADMIN_PREFIX = "/__standin/"
MAX_REQUEST_BYTES = 16 * 1024 * 1024
LOG_LIMIT = 10_000  # bounded so a long sandbox run cannot grow without limit
MAX_DURATION_S = 600.0


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received (header names lower-cased), so tests can assert what a client sent."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    received_at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the admin route; the Authorization value is redacted there."""
        headers = {k: ("<redacted>" if k == "authorization" else v) for k, v in self.headers.items()}
        try:
            body: Any = self.json()
        except ValueError:
            body = self.body.decode("utf-8", errors="replace")
        return {
            "method": self.method,
            "path": self.path,
            "headers": headers,
            "body": body,
            "receivedAt": self.received_at,
        }


def _loopback(host: str) -> str:
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"stand-in host must be a loopback IP (127.0.0.0/8 or ::1), not {host!r}")
    return host


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # so a stopped stand-in can come back on the same port

    def __init__(self, address: tuple[str, int], owner: StandinServer) -> None:
        self.owner = owner
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connections cut by stop()/faults end in broken pipes; that is expected, not worth a traceback.
        log.debug("stand-in connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like uvicorn; every reply carries Content-Length
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus delayed ACKs add
    # ~40 ms per reply on loopback, which would swamp the latency the probe measures.
    disable_nagle_algorithm = True
    server_version = "rerank-standin"
    timeout = 30  # idle keep-alive connections end eventually
    server: _HTTPServer

    @property
    def owner(self) -> StandinServer:
        return self.server.owner

    def setup(self) -> None:
        super().setup()
        self.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("stand-in %s: " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- plumbing ----------------------------------------------------------------------------------

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        self._reply(status, protocol.dumps(payload), headers=headers)

    def _empty(self, status: int, allow: str | None = None) -> None:
        """A bodiless answer without Content-Type, as axum gives for 401/404/405 and a healthy /health.

        ``allow``: the methods the path takes, which axum lists in a 405's ``Allow`` header.
        """
        self._reply(status, b"", None, headers={"Allow": allow} if allow else None)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._json(411, {"detail": "Content-Length required"})
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self.close_connection = True
            self._json(413 if length > 0 else 400, {"detail": "bad or too large Content-Length"})
            return None
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        key = self.owner.api_key
        if key is None:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {key}".encode())

    # -- routes ------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if path.startswith(ADMIN_PREFIX):
            self._admin(path, body)
            return
        self.owner._record(
            RecordedRequest(
                method=self.command,
                path=self.path,
                body=body,
                received_at=time.time(),
                headers={k.lower(): v for k, v in self.headers.items()},
            )
        )
        if self.owner.engine == "tei":
            self._dispatch_tei(path, body)
        elif path in RERANK_PATHS:
            if self.command != "POST":
                self._json(405, {"detail": "Method Not Allowed"})
            else:
                self._rerank(path, body)
        elif path in ("/health", "/ping") and self.command == "GET":
            self._reply(200, b"", None)
        elif path == "/metrics" and self.command == "GET":
            text = self.owner.metrics.render(self.owner.fault.mode.value)
            self._reply(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
        elif path.startswith(("/v1/", "/v2/")) and not self._authorized():
            self._json(401, {"error": "Unauthorized"})  # vLLM's auth middleware body
        elif path == "/v1/models" and self.command == "GET":
            self._json(200, self.owner.models_payload())
        else:
            self._json(404, {"detail": "Not Found"})

    def _answer_fault(self) -> int | None:
        """The faults both protocols answer alike, before reading the request: the status recorded for
        the answer given (0 for none), or None when the request is to be served."""
        owner, fault = self.owner, self.owner.fault
        if fault.mode is FaultMode.SLOW and owner._sleep(fault.delay_s):
            self.close_connection = True  # stopped while "computing": like a killed pod
            return 0
        if fault.mode is FaultMode.INVALID_JSON:
            self._reply(200, b"<html><body>502 Bad Gateway</body></html>")
            return 200
        if fault.mode is FaultMode.MALFORMED:
            self._json(200, {"id": "rerank-malformed", "model": owner.served_model, "data": []})
            return 200
        return None

    def _rerank(self, path: str, body: bytes) -> None:
        owner, fault = self.owner, self.owner.fault
        if fault.mode is FaultMode.DROP:
            self.close_connection = True  # nothing written: the client sees the connection close
            return
        protected = owner.key_protects_bare_rerank or path != "/rerank"
        if protected and not self._authorized():
            self._json(401, {"error": "Unauthorized"})
            return
        if fault.mode is FaultMode.NOT_FOUND:
            self._json(404, {"detail": "Not Found"})
            return
        owner.metrics.started()
        started, status, tokens, tei = time.perf_counter(), 500, 0, False
        try:
            answered = self._answer_fault()
            if answered is not None:
                status = answered
                return
            if fault.mode is FaultMode.HTTP500:
                raise protocol.ApiError(500, "stand-in fault http500: simulated engine failure")
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise protocol.ApiError(400, f"JSON decode error: {exc}", "body") from None
            req = protocol.parse_request(data)
            tei = req.tei
            protocol.check_model(req, owner.served_model)
            tokens = protocol.prompt_tokens(req, owner.max_model_len)
            results = protocol.rerank_results(req, fault.mode)
            payload: Any = (
                protocol.tei_body(req, results)
                if tei
                else protocol.vllm_body(req, results, owner.served_model, tokens)
            )
            status = 200
            self._json(200, payload)
        except protocol.ApiError as err:
            status = err.status
            self._json(err.status, err.body(tei=tei))
        finally:
            owner.metrics.finished(path, status, time.perf_counter() - started, tokens)

    # -- TEI mode --------------------------------------------------------------------------------------

    def _dispatch_tei(self, path: str, body: bytes) -> None:
        """TEI's router: public health/metrics routes, the rest behind ``--api-key``, axum's 404/405."""
        method = self.command
        if path in TEI_HEALTH_PATHS and method == "GET":
            self._tei_health()
        elif path == "/metrics":
            if method == "GET":
                text = self.owner.metrics.render(self.owner.fault.mode.value)
                self._reply(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._empty(405, "GET,HEAD")
        elif path in ("/health", "/ping") or (path == "/" and method != "POST"):
            self._empty(405, "GET,HEAD,POST" if path == "/" else "GET,HEAD")
        elif path in TEI_RERANK_PATHS or path == "/info":
            # TEI's auth middleware wraps these routes only (405s included), and answers 401 with no body.
            if not self._authorized():
                self._empty(401)
            elif path == "/info":
                if method == "GET":
                    self._json(200, self.owner.info_payload())
                else:
                    self._empty(405, "GET,HEAD")
            elif method == "POST":
                self._rerank_tei(path, body)
            else:
                self._empty(405, "POST")
        else:
            self._empty(404)  # vLLM's /v1/models, /v1/rerank, /v2/rerank included: TEI has no such routes

    def _tei_health(self) -> None:
        """TEI's health check runs the backend: with the backend failing (``http500``) it answers 503."""
        if self.owner.fault.mode is FaultMode.HTTP500:
            self._json(503, tei.unhealthy_body())
        else:
            self._empty(200)

    def _rerank_tei(self, path: str, body: bytes) -> None:
        owner, fault = self.owner, self.owner.fault
        if fault.mode is FaultMode.DROP:
            self.close_connection = True
            return
        if fault.mode is FaultMode.NOT_FOUND:
            self._empty(404)
            return
        owner.metrics.started()
        started, status, tokens = time.perf_counter(), 500, 0
        try:
            answered = self._answer_fault()
            if answered is not None:
                status = answered
                return
            if not tei.is_json_content_type(self.headers.get("Content-Type")):
                raise tei.content_type_rejection()
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise tei.syntax_rejection(exc) from None
            req = tei.parse_request(data)
            tei.check_not_empty(req)
            owner.metrics.te_counted()
            tei.check_batch_size(req, owner.max_client_batch_size)
            tokens = tei.prompt_tokens(req, owner.max_model_len, owner.auto_truncate)
            failure = tei.inference_fault(fault.mode)
            if failure is not None:
                raise failure
            results = protocol.apply_fault(tei.rank(req), fault.mode, len(req.texts))
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            status = 200
            self._json(
                200,
                tei.body(req.texts, results, req.return_text),
                headers=tei.compute_headers(req, tokens, elapsed_ms),
            )
        except tei.JsonRejection as rejection:
            status = rejection.status
            self._reply(rejection.status, rejection.body(), tei.REJECTION_CONTENT_TYPE)
        except tei.TeiError as err:
            status = err.status
            if err.metric_err is not None:
                owner.metrics.te_failed(err.metric_err)
            self._json(err.status, err.body())
        finally:
            owner.metrics.finished(path, status, time.perf_counter() - started, tokens)

    # -- admin -------------------------------------------------------------------------------------------

    def _admin(self, path: str, body: bytes) -> None:
        owner = self.owner
        if path == f"{ADMIN_PREFIX}config" and self.command == "GET":
            self._json(200, owner.config_payload())
        elif path == f"{ADMIN_PREFIX}fault" and self.command == "GET":
            self._json(200, owner.fault_payload())
        elif path == f"{ADMIN_PREFIX}fault" and self.command in ("POST", "PUT"):
            try:
                spec = json.loads(body or b"{}")
                if not isinstance(spec, dict):
                    raise ValueError("body must be a JSON object")
                mode, delay, duration = spec.get("mode"), spec.get("delay_s"), spec.get("duration_s")
                if mode == FaultMode.LOADING and duration is None:
                    raise ValueError("mode 'loading' over HTTP needs duration_s: nothing could undo it")
                if not isinstance(mode, str):
                    raise ValueError("'mode' must be a string")
                if mode == FaultMode.LOADING:
                    # Reply after the listener is gone, so the caller knows it took effect.
                    owner.set_fault(mode, delay_s=delay, duration_s=duration, _keep=self.connection)
                    self.close_connection = True
                else:
                    owner.set_fault(mode, delay_s=delay, duration_s=duration)
            except (ValueError, TypeError) as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, owner.fault_payload())
        elif path == f"{ADMIN_PREFIX}queue" and self.command in ("POST", "PUT"):
            try:
                spec = json.loads(body or b"{}")
                waiting = spec.get("waiting") if isinstance(spec, dict) else None
                if not isinstance(waiting, int) or isinstance(waiting, bool):
                    raise ValueError('body must be {"waiting": <non-negative integer>}')
                owner.metrics.set_waiting(waiting)
            except ValueError as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, {"waiting": owner.metrics.waiting})
        elif path == f"{ADMIN_PREFIX}requests" and self.command == "GET":
            self._json(200, [r.to_dict() for r in owner.request_log])
        elif path == f"{ADMIN_PREFIX}requests" and self.command == "DELETE":
            self._json(200, {"cleared": owner.clear_log()})
        else:
            self._json(404, {"detail": "Not Found"})


class StandinServer:
    """A vLLM-compatible (or, with ``engine="tei"``, TEI-compatible) reranker on loopback, in a thread.

    Use as a context manager or call :meth:`start`/:meth:`stop`. ``port=0`` picks a free port once; after
    that the same port is reused, so ``stop()``/``start()`` (or the ``loading`` fault) looks to a client
    exactly like a vLLM pod that stopped listening while it reloads weights.

    TEI mode: ``max_model_len`` is TEI's ``max_input_length``, ``max_client_batch_size`` and
    ``auto_truncate`` are TEI's ``--max-client-batch-size`` and ``--auto-truncate``; the API key always
    guards ``/rerank`` (``key_protects_bare_rerank`` is a vLLM quirk and is ignored).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        served_model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        *,
        max_model_len: int = 512,
        key_protects_bare_rerank: bool = True,
        engine: Engine = "vllm",
        max_client_batch_size: int = DEFAULT_MAX_CLIENT_BATCH_SIZE,
        auto_truncate: bool = False,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        if isinstance(max_client_batch_size, bool) or not (
            isinstance(max_client_batch_size, int) and max_client_batch_size >= 1
        ):
            raise ValueError(
                f"max_client_batch_size must be a positive integer, not {max_client_batch_size!r}"
            )
        self.host = _loopback(host)
        self._port = port
        self.served_model = served_model
        self.api_key = api_key or None
        self.max_model_len = max_model_len
        # False emulates the many vLLM releases whose --api-key guards /v1 and /v2 but not /rerank.
        self.key_protects_bare_rerank = key_protects_bare_rerank
        self.engine: Engine = engine
        self.max_client_batch_size = max_client_batch_size
        self.auto_truncate = auto_truncate
        self.metrics = Metrics(served_model, engine=engine)
        self._faults = FaultState()
        self._log: deque[RecordedRequest] = deque(maxlen=LOG_LIMIT)
        self._log_lock = threading.Lock()
        self._lifecycle = threading.RLock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._listening = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._down_for_loading = False

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port`` with no path: the form Milvus and the probe expect."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> Self:
        """Listen (again) on the same port; leaves a ``loading`` fault if there was one."""
        with self._lifecycle:
            if self._httpd is not None:
                return self
            httpd = _HTTPServer((self.host, self._port), self)
            self._port = httpd.server_address[1]
            self._stopped.clear()
            self._httpd = httpd
            self._down_for_loading = False
            if self._faults.get().mode is FaultMode.LOADING:
                self._faults.set(Fault())
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"standin-{self._port}",
                daemon=True,
            )
            self._thread.start()
            self._listening.set()
            log.info("stand-in listening on %s (%s, model %s)", self.url, self.engine, self.served_model)
            return self

    def stop(self) -> None:
        """Stop listening and cut open connections; the object can be started again."""
        with self._lifecycle:
            self._cancel_timer()
            self._down_for_loading = False
            self._stop_listener()

    def _stop_listener(self, keep: socket.socket | None = None) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopped.set()
        self._listening.clear()
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        with self._conns_lock:
            conns = [c for c in self._conns if c is not keep]
        for conn in conns:
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd = self._thread = None

    def wait_listening(self, timeout: float) -> bool:
        """Block until the listener is up (e.g. after a timed ``loading`` fault); False on timeout."""
        return self._listening.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults ------------------------------------------------------------------------------------

    @property
    def fault(self) -> Fault:
        return self._faults.get()

    def set_fault(
        self,
        mode: str | FaultMode,
        *,
        delay_s: float | None = None,
        duration_s: float | None = None,
        _keep: socket.socket | None = None,
    ) -> None:
        """Switch fault mode (thread-safe); ``duration_s`` reverts to ``healthy`` afterwards.

        ``loading`` stops the listener (connection refused) until another mode is set, ``start()`` is
        called, or ``duration_s`` elapses; leaving ``loading`` listens again on the same port.
        """
        fault = Fault.make(mode, delay_s)
        if duration_s is not None and not 0 < float(duration_s) <= MAX_DURATION_S:
            raise ValueError(f"duration_s must be in (0, {MAX_DURATION_S:g}]")
        with self._lifecycle:
            self._cancel_timer()
            self._faults.set(fault)
            if fault.mode is FaultMode.LOADING:
                if self._httpd is not None:
                    self._down_for_loading = True
                    self._stop_listener(keep=_keep)
            elif self._down_for_loading:
                self.start()
            if duration_s is not None:
                self._timer = threading.Timer(float(duration_s), self.set_fault, args=(FaultMode.HEALTHY,))
                self._timer.daemon = True
                self._timer.start()
        log.info("stand-in %s fault -> %s", self.url, fault.mode.value)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sleep(self, seconds: float) -> bool:
        """Wait like a slow model; True if the server was stopped meanwhile."""
        return self._stopped.wait(seconds)

    def fault_payload(self) -> dict[str, Any]:
        fault = self.fault
        return {"mode": fault.mode.value, "delay_s": fault.delay_s, "listening": self.running}

    def config_payload(self) -> dict[str, Any]:
        """``GET /__standin/config``: how this stand-in was built (the API key itself is never shown)."""
        return {
            "engine": self.engine,
            "served_model": self.served_model,
            "max_model_len": self.max_model_len,
            "max_client_batch_size": self.max_client_batch_size,
            "auto_truncate": self.auto_truncate,
            "api_key": self.api_key is not None,
            "key_protects_bare_rerank": self.key_protects_bare_rerank,
        }

    # -- bookkeeping -------------------------------------------------------------------------------

    def info_payload(self) -> dict[str, Any]:
        """``GET /info`` in TEI mode: TEI's ``Info`` for this stand-in's model and limits."""
        return tei.info(self.served_model, self.max_model_len, self.max_client_batch_size, self.auto_truncate)

    def models_payload(self) -> dict[str, Any]:
        """``GET /v1/models`` in OpenAI list format, as vLLM answers it."""
        return {
            "object": "list",
            "data": [
                {
                    "id": self.served_model,
                    "object": "model",
                    "created": 0,
                    "owned_by": "vllm",
                    "root": self.served_model,
                    "parent": None,
                    "max_model_len": self.max_model_len,
                }
            ],
        }

    @property
    def request_log(self) -> list[RecordedRequest]:
        """Requests received so far (admin routes excluded), oldest first."""
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> int:
        with self._log_lock:
            n = len(self._log)
            self._log.clear()
            return n

    def _record(self, request: RecordedRequest) -> None:
        with self._log_lock:
            self._log.append(request)

    def _track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)
