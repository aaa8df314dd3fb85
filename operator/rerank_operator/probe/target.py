"""What to probe: the endpoint as Milvus would be configured with it, plus the canary and limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from rerank_operator.probe.canary import DEFAULT_CANARY, Canary
from rerank_operator.probe.evaluate import ENGINES, Engine


@dataclass(frozen=True)
class ProbeTarget:
    """A reranker endpoint (``scheme://host:port``, no path: Milvus replaces the path with ``/rerank``).

    The request options mirror the published Milvus Function's params, so the canary is what Milvus sends:

    * ``truncate_prompt_tokens`` (vLLM only): forwarded in the body, like Milvus' param of that name.
    * ``truncate`` (TEI only): sent as TEI's ``truncate``, like Milvus' param of that name; ``None`` sends
      nothing (the server's ``--auto-truncate`` decides).
    * ``max_client_batch_size``: the published ``max_client_batch_size``. The canary's documents go out in
      requests of at most this many, as Milvus splits them (``None``: one request). For TEI the server's
      ``GET /info`` limit is checked against it too (``BatchLimitExceeded`` when it is lower).
    """

    endpoint: str
    canary: Canary = DEFAULT_CANARY
    engine: Engine = "vllm"
    api_key: str | None = field(default=None, repr=False)  # never in repr, logs or messages
    served_model: str | None = None
    timeout_s: float = 5.0
    max_latency_ms: int | None = None
    truncate_prompt_tokens: int | None = None
    max_client_batch_size: int | None = None
    truncate: bool | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {self.engine!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError("timeout_s must be a positive number")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise ValueError("max_latency_ms must be positive when set")
        if self.truncate_prompt_tokens is not None and self.truncate_prompt_tokens < -1:
            raise ValueError("truncate_prompt_tokens must be >= -1 (vLLM: -1 means the model's limit)")
        if self.truncate_prompt_tokens is not None and self.engine != "vllm":
            raise ValueError("truncate_prompt_tokens is vLLM's; for TEI use truncate")
        if self.truncate is not None and self.engine != "tei":
            raise ValueError("truncate is TEI's; for vLLM use truncate_prompt_tokens")
        batch = self.max_client_batch_size
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise ValueError(f"max_client_batch_size must be a positive integer, not {batch!r}")
        if self.api_key == "":
            raise ValueError("api_key must be None or non-empty")

    def batches(self) -> list[range]:
        """The canary documents (by index) each request carries: Milvus' split by max_client_batch_size."""
        n = len(self.canary.documents)
        size = self.max_client_batch_size or n
        return [range(start, min(start + size, n)) for start in range(0, n, size)]


@dataclass(frozen=True)
class Endpoint:
    """A validated endpoint: the pieces needed to connect and to rebuild the ``Host`` header."""

    scheme: str
    host: str
    port: int
    netloc: str  # as written by the user: this is the Host header Milvus would send

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def parse_endpoint(endpoint: str) -> Endpoint:
    """Validate ``scheme://host[:port]`` the way Milvus needs it; ValueError explains what is wrong."""
    text = endpoint.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"endpoint is not a valid URL: {exc}") from None
    if parts.username is not None or parts.password is not None:
        # Do not echo the endpoint here: it contains a secret.
        raise ValueError("endpoint: credentials in the URL are not supported; use an API key")
    if port == 0:
        raise ValueError(f"endpoint {endpoint!r}: port 0 is not a valid destination")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"endpoint {endpoint!r}: scheme must be http or https")
    if not parts.hostname:
        raise ValueError(f"endpoint {endpoint!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"endpoint {endpoint!r}: give scheme://host:port only; Milvus replaces any path with /rerank"
        )
    default_port = 443 if parts.scheme == "https" else 80
    return Endpoint(
        scheme=parts.scheme,
        host=parts.hostname.lower(),
        port=port or default_port,
        netloc=parts.netloc.lower(),
    )
