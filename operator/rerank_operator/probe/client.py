"""Send the canary the way Milvus would and turn whatever happens into a :class:`ProbeVerdict`.

The request mirrors Milvus: ``POST {endpoint}/rerank`` with ``{"query", "documents"}`` (plus
``truncate_prompt_tokens`` if set) for vLLM, ``{"query", "texts"}`` (plus ``truncate`` if set) for TEI,
and NO ``model`` field, because Milvus never sends one and relies on the server serving a single model.
Sending the model would prove less: a server that only works when told the model name would pass the
probe and fail Milvus. The served model name is checked separately against vLLM's ``GET /v1/models``.
Like Milvus, the documents go out in sequential requests of at most ``max_client_batch_size``.

For TEI with a ``max_client_batch_size``, ``GET /info`` is read first: a server whose
``max_client_batch_size`` is below the published one refuses (413) every Milvus request bigger than its
limit, so the probe fails with ``BatchLimitExceeded`` without sending the canary. When ``/info`` cannot be
read (no such route behind a gateway, a non-200, no or no integer ``max_client_batch_size``) the limit
is not verified and the canary alone decides: the field is introspection, not part of the rerank API,
and failing a server that reranks correctly for it would block working setups; the healthy message then
says the limit was not verified. A 413 with TEI's batch-size error on the canary itself is still
``BatchLimitExceeded``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import httpx

from rerank_operator import __version__
from rerank_operator.probe.evaluate import Answer, batch_limit_message, evaluate_answers
from rerank_operator.probe.resolver import HostResolver
from rerank_operator.probe.target import Endpoint, ProbeTarget, parse_endpoint
from rerank_operator.probe.verdict import ProbeVerdict, Reason, failed

USER_AGENT = f"rerank-operator-probe/{__version__}"  # lets vLLM access logs tell probes from Milvus
MAX_BODY_BYTES = 4 * 1024 * 1024  # a canary answer is a few hundred bytes; do not buffer a runaway body


@dataclass(frozen=True)
class Route:
    """Where the request really goes (maybe a loopback override) and the headers that hide it."""

    base_url: str
    host_header: str | None  # set only when overridden, so the server sees the original Host
    sni_hostname: str | None  # for https through an override: verify the cert for the original name

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def extensions(self) -> dict[str, Any]:
        return {"sni_hostname": self.sni_hostname} if self.sni_hostname else {}


def route_for(endpoint: Endpoint, resolver: HostResolver) -> Route:
    """Apply a host override, if any, keeping the original authority as the ``Host`` header."""
    override = resolver.resolve(endpoint.host, endpoint.port)
    if override is None:
        return Route(base_url=endpoint.base_url, host_header=None, sni_hostname=None)
    return Route(
        base_url=f"{endpoint.scheme}://{override.authority(endpoint.port)}",
        host_header=endpoint.netloc,
        sni_hostname=endpoint.host if endpoint.scheme == "https" else None,
    )


def request_body(target: ProbeTarget, documents: range | None = None) -> dict[str, Any]:
    """The JSON body Milvus sends for this engine (see the module docstring for why no ``model``),
    carrying the canary documents ``documents`` (all of them by default)."""
    canary = target.canary
    texts = list(canary.documents) if documents is None else [canary.documents[i] for i in documents]
    if target.engine == "tei":
        body: dict[str, Any] = {"query": canary.query, "texts": texts}
        if target.truncate is not None:
            body["truncate"] = target.truncate
        return body
    body = {"query": canary.query, "documents": texts}
    if target.truncate_prompt_tokens is not None:
        body["truncate_prompt_tokens"] = target.truncate_prompt_tokens
    return body


def _headers(target: ProbeTarget, route: Route) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    if route.host_header:
        headers["Host"] = route.host_header
    return headers


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its cause/context chain and group members (anyio wraps the socket error)."""
    stack, seen = [exc], set()
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        stack.extend(e for e in (cur.__cause__, cur.__context__) if e is not None)
        if isinstance(cur, BaseExceptionGroup):
            stack.extend(cur.exceptions)


def classify_transport_error(exc: BaseException, timeout_s: float, where: str) -> tuple[Reason, str]:
    """Map a client-side failure to a reason; connection refused is what a loading vLLM looks like."""
    causes = list(_causes(exc))
    if any(isinstance(c, httpx.TimeoutException | TimeoutError) for c in causes):
        return Reason.TIMEOUT, f"Timeout: no complete response from {where} within {timeout_s:g}s"
    if any(
        isinstance(c, ConnectionRefusedError) or getattr(c, "errno", None) == errno.ECONNREFUSED
        for c in causes
    ):
        return Reason.CONNECTION_REFUSED, f"ConnectionRefused: nothing listens on {where} (still loading?)"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return Reason.CONNECTION_ERROR, f"ConnectionError: cannot resolve {where} ({exc})"
    detail = str(exc) or type(exc).__name__
    return Reason.CONNECTION_ERROR, f"ConnectionError: {where}: {type(exc).__name__}: {detail}"


class _TooLarge(Exception):
    """The body exceeded MAX_BODY_BYTES (a canary answer is tiny)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"response body exceeds {MAX_BODY_BYTES} bytes")
        self.status = status


async def _send(
    client: httpx.AsyncClient, target: ProbeTarget, route: Route, method: str, path: str, **kw: Any
) -> tuple[int, bytes, float]:
    """``method path`` with the target's headers, bounded in time and body size: (status, body, ms)."""
    start = time.perf_counter()
    async with asyncio.timeout(target.timeout_s):
        request = client.build_request(
            method,
            route.url(path),
            headers=_headers(target, route),
            timeout=target.timeout_s,
            extensions=route.extensions(),
            **kw,
        )
        response = await client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _TooLarge(response.status_code)
                chunks.append(chunk)
        finally:
            await response.aclose()
    return response.status_code, b"".join(chunks), (time.perf_counter() - start) * 1000.0


async def _model_listed(client: httpx.AsyncClient, target: ProbeTarget, route: Route) -> bool | None:
    """Is ``served_model`` in ``GET /v1/models``? None when unknown (no name, TEI, or no usable listing)."""
    if target.served_model is None or target.engine != "vllm":
        return None
    try:
        status, body, _ = await _send(client, target, route, "GET", "/v1/models")
        if status != 200:
            return None
        data = json.loads(body)
        ids = {m.get("id") for m in data["data"] if isinstance(m, dict)}
    except (httpx.HTTPError, OSError, TimeoutError, _TooLarge, ValueError, KeyError, TypeError):
        return None
    return target.served_model in ids


async def _tei_batch_limit(client: httpx.AsyncClient, target: ProbeTarget, route: Route) -> int | str:
    """TEI's ``max_client_batch_size`` from ``GET /info``, or why it is unknown (see the module docstring)."""
    try:
        status, body, _ = await _send(client, target, route, "GET", "/info")
    except _TooLarge:
        return "GET /info answered too large a body"
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        return f"GET /info failed: {type(exc).__name__}"
    if status != 200:
        return f"GET /info answered {status}"
    try:
        limit = json.loads(body).get("max_client_batch_size")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return "GET /info is not a JSON object"
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return "GET /info has no max_client_batch_size"
    return limit


def redact(verdict: ProbeVerdict, secret: str | None) -> ProbeVerdict:
    """Belt and braces: a server may echo the Authorization header into an error body."""
    if not secret or secret not in verdict.message:
        return verdict
    return replace(verdict, message=verdict.message.replace(secret, "<redacted>"))


async def _probe(
    client: httpx.AsyncClient, target: ProbeTarget, endpoint: Endpoint, resolver: HostResolver
) -> ProbeVerdict:
    route = route_for(endpoint, resolver)
    wanted = target.max_client_batch_size
    note = ""
    if target.engine == "tei" and wanted is not None:
        limit = await _tei_batch_limit(client, target, route)
        if isinstance(limit, str):
            note = f"; batch limit not verified ({limit})"
        elif limit < wanted:
            message = batch_limit_message(limit, wanted, f"GET /info: max_client_batch_size {limit}")
            return failed(Reason.BATCH_LIMIT_EXCEEDED, message)
        else:
            note = f"; /info allows {limit} documents per request"
    answers: list[Answer] = []
    latency_ms = 0.0
    for documents in target.batches():
        try:
            status, body, took = await _send(
                client, target, route, "POST", "/rerank", json=request_body(target, documents)
            )
        except _TooLarge as big:
            return failed(Reason.MALFORMED_RESPONSE, f"MalformedResponse: {big}", status_code=big.status)
        except httpx.InvalidURL as exc:
            return failed(Reason.INVALID_ENDPOINT, f"InvalidEndpoint: {exc}")
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            reason, message = classify_transport_error(exc, target.timeout_s, endpoint.netloc)
            return failed(reason, message)
        answers.append(Answer(status, body, documents))
        latency_ms += took
        if status != 200:
            break  # a Milvus search fails at its first failing batch
    verdict = evaluate_answers(
        answers,
        target.canary,
        target.engine,
        latency_ms,
        target.max_latency_ms,
        max_client_batch_size=wanted,
    )
    if verdict.ok and note:
        verdict = replace(verdict, message=verdict.message + note)
    if answers[-1].status != 200:
        return verdict
    listed = await _model_listed(client, target, route)
    verdict = replace(verdict, model_listed=listed)
    if verdict.ok and listed is False:
        return replace(
            verdict,
            ok=False,
            reason=Reason.MODEL_NOT_LISTED,
            message=f"ModelNotListed: reranked correctly, but {target.served_model!r} is not in /v1/models",
        )
    return verdict


async def probe_reranker(
    target: ProbeTarget,
    *,
    client: httpx.AsyncClient | None = None,
    resolver: HostResolver | None = None,
) -> ProbeVerdict:
    """Probe one reranker; never raises for anything the endpoint does, only returns a verdict.

    Without ``resolver`` the overrides come from ``RERANK_OPERATOR_HOST_OVERRIDES`` (none in production).
    Without ``client`` a private one is used that ignores proxy env vars: probes target cluster-internal
    addresses, which a corporate proxy cannot reach.
    """
    try:
        endpoint = parse_endpoint(target.endpoint)
        if resolver is None:
            resolver = HostResolver.from_env()
    except ValueError as exc:
        verdict = failed(Reason.INVALID_ENDPOINT, f"InvalidEndpoint: {exc}")
    else:
        session: AbstractAsyncContextManager[httpx.AsyncClient] = (
            nullcontext(client)
            if client is not None
            else httpx.AsyncClient(trust_env=False, follow_redirects=False)
        )
        async with session as http:
            verdict = await _probe(http, target, endpoint, resolver)
    return redact(verdict, target.api_key)
