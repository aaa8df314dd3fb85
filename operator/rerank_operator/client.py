"""App-side helper: turn the ConfigMap the operator publishes into a ready-to-use pymilvus ranker.

Apps never hard-code reranker endpoints: they read the published ConfigMap (mounted as a volume, or
through the Kubernetes API) and get a ``pymilvus.Function`` for ``search(..., ranker=...)`` /
``hybrid_search(..., ranker=...)``. Only pymilvus and the standard library are imported up front; the
``kubernetes`` client is imported only when a ``(namespace, name)`` source is used, and the probe's
endpoint parser (with httpx) only for ``endpoint=``, so apps do not load the operator's runtime.

Typical use (see docs/app-usage.md)::

    ranker = load_ranker("/etc/rerank/bge-base-ranker", [query_text])
    client.search("docs", data=[query_vector], limit=5, output_fields=["document"], ranker=ranker)

Read the config at query time (it is a few small files): the operator flips ``ready`` when the
reranker breaks, and the kubelet refreshes mounted ConfigMaps within a minute or two.

A TEI pipeline's config has no Milvus Lite Function (Milvus Lite's only model-rerank provider is
Cohere-style, which TEI does not serve): ``target="milvus-lite"`` on it raises ``RankerConfigError``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pymilvus import Function

__all__ = [
    "API_KEY_ENV",
    "DATA_KEYS",
    "FUNCTION_KEYS",
    "PLACEHOLDER_API_KEY",
    "PublishedRanker",
    "RankerConfigError",
    "RankerNotReady",
    "Target",
    "load_ranker",
    "read_published",
]

Target = Literal["milvus", "milvus-lite"]
# Which ConfigMap key holds the Function for each target.
FUNCTION_KEYS: dict[str, str] = {"milvus": "milvus-function.json", "milvus-lite": "milvus-lite-function.json"}
DATA_KEYS = ("endpoint", "model", "ready", "reason", "generation", *FUNCTION_KEYS.values())
LITE_KEY = FUNCTION_KEYS["milvus-lite"]
# ``reason`` is optional: earlier operator versions published it only when not ready. The Milvus Lite
# Function is required too, except next to a Milvus Function whose provider Milvus Lite cannot call.
_REQUIRED_KEYS = tuple(k for k in DATA_KEYS if k not in ("reason", LITE_KEY))
# Providers Milvus Lite has no way to call (it speaks Cohere's API only): their configs carry no Lite key.
NO_LITE_PROVIDERS = frozenset({"tei"})
_FUNCTION_DICT_KEYS = ("name", "description", "type", "input_field_names", "output_field_names", "params")

# Milvus Lite's Cohere provider refuses to run without an API key. vLLM started without ``--api-key``
# accepts any bearer token, so a fixed placeholder is sent unless the app supplies a real key.
API_KEY_ENV = "RERANK_API_KEY"
PLACEHOLDER_API_KEY = "unused"

ConfigMapRef = tuple[str, str]
Source = str | os.PathLike[str] | Mapping[str, Any] | ConfigMapRef


class RankerConfigError(ValueError):
    """The published ranker config is missing, incomplete or malformed."""


class RankerNotReady(RankerConfigError):
    """The operator has not (or no longer) verified the reranker behind this config."""

    def __init__(self, published: PublishedRanker) -> None:
        self.published = published
        self.reason = published.reason or "no reason published"
        super().__init__(
            f"reranker {published.function_name!r} ({published.model} at {published.endpoint}, "
            f"from {published.source}) is not ready: {self.reason}. Wait for rerank-operator's probe "
            f"to pass, or pass require_ready=False to use the last published config anyway."
        )


@dataclass(frozen=True)
class PublishedRanker:
    """The parsed ConfigMap data; the function dicts are ``Function.to_dict()`` without ``queries``."""

    endpoint: str
    model: str
    ready: bool
    reason: str  # empty when ready (the operator publishes it only while not ready)
    generation: int
    milvus_function: dict[str, Any]
    milvus_lite_function: dict[str, Any] | None  # None for a reranker Milvus Lite cannot call (TEI)
    source: str  # where it was read from, for error messages

    @property
    def function_name(self) -> str:
        return str(self.milvus_function.get("name", "?"))

    @property
    def provider(self) -> str:
        """The Milvus provider of the published Function (``vllm`` or ``tei``): the reranker's protocol."""
        return str(self.milvus_function["params"].get("provider", "?"))

    def function_dict(self, target: Target) -> dict[str, Any]:
        """A private deep copy of the target's Function dict, safe to mutate.

        ``RankerConfigError`` for ``"milvus-lite"`` when Milvus Lite cannot call this reranker (TEI).
        """
        if _check_target(target) == "milvus":
            return copy.deepcopy(self.milvus_function)
        if self.milvus_lite_function is None:
            raise self._no_lite()
        return copy.deepcopy(self.milvus_lite_function)

    def require_lite(self) -> None:
        """Raise ``RankerConfigError`` unless this config has a Function Milvus Lite can run."""
        if self.milvus_lite_function is None:
            raise self._no_lite()

    def _no_lite(self) -> RankerConfigError:
        return RankerConfigError(
            f"reranker {self.function_name!r} ({self.model} at {self.endpoint}, from {self.source}) speaks "
            f"TEI's protocol (provider {self.provider!r}), and Milvus Lite cannot call a TEI reranker: its "
            f"only model-rerank provider is Cohere-style, which TEI does not serve. Use target='milvus' with "
            f"a Milvus (2.6.1+) server, or a vLLM pipeline (spec.engine.kind: vllm) for Milvus Lite."
        )

    def require_ready(self) -> None:
        if not self.ready:
            raise RankerNotReady(self)


def read_published(source: Source, *, kube_client: Any = None) -> PublishedRanker:
    """Read and validate the published ConfigMap data from any supported source.

    ``source`` is a mounted ConfigMap directory (``str``/``Path``), the ConfigMap's ``data`` as a dict
    (a whole ConfigMap object is accepted too), or a ``(namespace, name)`` tuple read through the
    Kubernetes API; ``kube_client`` (an ``ApiClient`` or ``CoreV1Api``) is used for the latter, else
    in-cluster config or the kubeconfig is loaded.
    """
    data, where = _read_source(source, kube_client)
    return _parse(data, where)


def load_ranker(
    source: Source,
    queries: str | Sequence[str],
    *,
    target: Target = "milvus",
    api_key: str | None = None,
    require_ready: bool = True,
    kube_client: Any = None,
    endpoint: str | None = None,
) -> Function:
    """Build the ``pymilvus.Function`` ranker for one search call.

    ``queries`` holds one query text per search vector (Milvus requires ``len(queries) == nq``); a bare
    string is one query. ``target`` picks the published Function:

    - ``"milvus"`` (a Milvus 2.6.1+ server, provider ``vllm``): Milvus itself calls the reranker and
      sends the key of the ``credential`` label named in the published Function (``credential.<label>.apikey``
      in milvus.yaml). A per-call ``api_key`` cannot be forwarded, so passing one raises ``ValueError``
      rather than being silently dropped; ``RERANK_API_KEY`` is ignored for this target.
    - ``"milvus-lite"`` (embedded Milvus Lite, Cohere-compatible provider against vLLM's ``/v2`` route):
      the key is ``api_key``, else env ``RERANK_API_KEY``, else ``"unused"`` (any token works when vLLM
      runs without ``--api-key``). A key is always set so Milvus Lite never falls back to
      ``COHERE_API_KEY``, which would send a real Cohere key to the cluster reranker. A TEI reranker
      (provider ``tei``) has no Milvus Lite Function: asking for one raises ``RankerConfigError``, before
      readiness is looked at (waiting would not help).

    A config whose ``ready`` is not ``"true"`` raises ``RankerNotReady`` unless ``require_ready=False``
    (then the last published, last-known-good, params are used). Malformed configs raise
    ``RankerConfigError``; bad arguments raise ``ValueError``.

    ``endpoint`` (``scheme://host:port``) replaces the published in-cluster URL, for a reranker reached
    another way, e.g. Milvus Lite on a laptop through ``kubectl port-forward svc/<name>-reranker 8000``.
    """
    target = _check_target(target)
    query_list = _check_queries(queries)
    key = _resolve_api_key(target, api_key)
    base_url = None if endpoint is None else _check_endpoint(endpoint)
    published = read_published(source, kube_client=kube_client)
    if target == "milvus-lite":
        published.require_lite()
    if require_ready:
        published.require_ready()
    raw = published.function_dict(target)
    params = raw["params"]
    if base_url is not None and target == "milvus-lite":
        params["base_url"] = f"{base_url}/v2"
    elif base_url is not None:
        params["endpoint"] = base_url
    params["queries"] = query_list
    if key is not None:
        params["api_key"] = key
    return _construct(raw, FUNCTION_KEYS[target], published.source)


# --- arguments ---------------------------------------------------------------------------------------


def _check_endpoint(endpoint: str) -> str:
    """``scheme://host:port``, checked by the same rule the operator's probe applies (no path, ...)."""
    # Imported here, like ``kubernetes``: only this optional argument needs it.
    from rerank_operator.probe.target import parse_endpoint

    return parse_endpoint(endpoint).base_url


def _check_target(target: str) -> Target:
    if target == "milvus":
        return "milvus"
    if target == "milvus-lite":
        return "milvus-lite"
    raise ValueError(f"target must be 'milvus' or 'milvus-lite', got {target!r}")


def _check_queries(queries: str | Sequence[str]) -> list[str]:
    items = [queries] if isinstance(queries, str) else queries
    if isinstance(items, bytes | bytearray) or not isinstance(items, Sequence):
        raise ValueError(f"queries must be a string or a list of strings, got {type(queries).__name__}")
    out = list(items)
    if not out:
        raise ValueError("queries must not be empty: pass one query text per search vector")
    bad = [i for i, q in enumerate(out) if not isinstance(q, str)]
    if bad:
        raise ValueError(f"queries must be strings; item(s) {bad} are not")
    return out


def _resolve_api_key(target: Target, api_key: str | None) -> str | None:
    if target == "milvus":
        if api_key is not None:
            raise ValueError(
                "api_key is not used with target='milvus': the Milvus server calls the reranker and sends "
                "the key of the published 'credential' label (credential.<label>.apikey in milvus.yaml); "
                "set spec.publish.credential on the RerankPipeline instead"
            )
        return None
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or PLACEHOLDER_API_KEY
    if not isinstance(key, str) or not key:
        raise ValueError("api_key must be a non-empty string (Milvus Lite would fall back to COHERE_API_KEY)")
    return key


# --- sources -----------------------------------------------------------------------------------------


def _read_source(source: Source, kube_client: Any) -> tuple[Mapping[str, Any], str]:
    if isinstance(source, tuple):
        return _read_api(source, kube_client)
    if isinstance(source, Mapping):
        return _unwrap_configmap(source), "the given ConfigMap data"
    if isinstance(source, str | os.PathLike):
        return _read_dir(Path(source)), f"directory {os.fspath(source)}"
    raise TypeError(
        "source must be a mounted ConfigMap directory, a dict of ConfigMap data, or a (namespace, name) "
        f"tuple; got {type(source).__name__}"
    )


def _unwrap_configmap(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept a whole ConfigMap object (e.g. loaded from YAML) as well as its ``data``."""
    if data.get("kind") == "ConfigMap" and isinstance(data.get("data"), Mapping):
        inner: Mapping[str, Any] = data["data"]
        return inner
    return data


def _read_dir(path: Path) -> dict[str, str]:
    """A ConfigMap volume: one file per key (symlinks into ``..data``, followed transparently)."""
    if not path.is_dir():
        raise RankerConfigError(f"ranker config directory {path} does not exist (is the ConfigMap mounted?)")
    out: dict[str, str] = {}
    for key in DATA_KEYS:
        file = path / key
        if file.is_file():
            out[key] = file.read_text(encoding="utf-8")
    return out


def _read_api(ref: tuple[Any, ...], kube_client: Any) -> tuple[dict[str, str], str]:
    if len(ref) != 2 or not all(isinstance(p, str) and p for p in ref):
        raise ValueError(f"a ConfigMap reference must be (namespace, name) as non-empty strings, got {ref!r}")
    namespace, name = ref
    where = f"ConfigMap {namespace}/{name}"
    from kubernetes.client.exceptions import ApiException

    api, owned = _core_v1(kube_client)
    try:
        cm = api.read_namespaced_config_map(name, namespace)
    except ApiException as exc:
        raise RankerConfigError(_api_error(where, exc)) from exc
    finally:
        if owned is not None:
            owned.close()
    return dict(cm.data or {}), where


def _api_error(where: str, exc: Any) -> str:
    status = getattr(exc, "status", None)
    if status == 404:
        return f"{where} not found: is the pipeline published to this namespace (spec.publish.namespaces)?"
    if status in (401, 403):
        return f"reading {where} was refused ({status}): the app's ServiceAccount needs 'get' on configmaps"
    return f"reading {where} failed: {status} {getattr(exc, 'reason', '')}".rstrip()


def _core_v1(kube_client: Any) -> tuple[Any, Any]:
    """``(CoreV1Api, ApiClient we created or None)``; an injected client is used as-is and not closed."""
    from kubernetes import client

    if kube_client is None:
        api_client = client.ApiClient(_load_kube_configuration())
        return client.CoreV1Api(api_client), api_client
    if isinstance(kube_client, client.CoreV1Api):
        return kube_client, None
    if isinstance(kube_client, client.ApiClient):
        return client.CoreV1Api(kube_client), None
    raise TypeError(f"kube_client must be an ApiClient or CoreV1Api, not {type(kube_client).__name__}")


def _load_kube_configuration() -> Any:
    """In-cluster config (the app's ServiceAccount) first, then the local kubeconfig; no global state."""
    from kubernetes import client
    from kubernetes import config as _config

    config: Any = _config  # the package is untyped
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        # KUBECONFIG is read now, not when the kubernetes package was imported
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=cfg)
    return cfg


# --- parsing -----------------------------------------------------------------------------------------


def _parse(data: Mapping[str, Any], where: str) -> PublishedRanker:
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise RankerConfigError(
            f"published ranker config from {where} lacks key(s) {', '.join(missing)}: is it a ConfigMap "
            f"published by rerank-operator (name <pipeline>-ranker)?"
        )
    text = {k: _text(data, k, where) for k in (*_REQUIRED_KEYS, "reason", LITE_KEY) if k in data}
    milvus_function = _function_json(text, FUNCTION_KEYS["milvus"], where)
    lite_function: dict[str, Any] | None = None
    if milvus_function["params"].get("provider") not in NO_LITE_PROVIDERS:
        if LITE_KEY not in text:
            raise RankerConfigError(
                f"published ranker config from {where} lacks key(s) {LITE_KEY}, which every config of a "
                f"vLLM reranker has: is it a ConfigMap published by rerank-operator (name <pipeline>-ranker)?"
            )
        lite_function = _function_json(text, LITE_KEY, where)
    # else: Milvus Lite cannot call this provider; a Lite key, if any, is ignored (it could not work)
    return PublishedRanker(
        endpoint=text["endpoint"],
        model=text["model"],
        ready=_ready(text["ready"], where),
        reason=text.get("reason", ""),
        generation=_generation(text["generation"], where),
        milvus_function=milvus_function,
        milvus_lite_function=lite_function,
        source=where,
    )


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data[key]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise RankerConfigError(f"key {key!r} in {where} must be a string, got {type(value).__name__}")
    return value.strip() if not key.endswith(".json") else value


def _ready(value: str, where: str) -> bool:
    if value not in ("true", "false"):
        raise RankerConfigError(f"key 'ready' in {where} must be 'true' or 'false', got {value!r}")
    return value == "true"


def _generation(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise RankerConfigError(f"key 'generation' in {where} must be an integer, got {value!r}") from None


def _function_json(text: Mapping[str, str], key: str, where: str) -> dict[str, Any]:
    try:
        fn = json.loads(text[key])
    except json.JSONDecodeError as exc:
        raise RankerConfigError(f"key {key!r} in {where} is not valid JSON: {exc}") from None
    if not isinstance(fn, dict):
        raise RankerConfigError(f"key {key!r} in {where} must be a JSON object, got {type(fn).__name__}")
    missing = [k for k in _FUNCTION_DICT_KEYS if k not in fn]
    if missing:
        raise RankerConfigError(f"key {key!r} in {where} lacks Function field(s) {', '.join(missing)}")
    if not isinstance(fn["params"], dict):
        raise RankerConfigError(f"key {key!r} in {where}: 'params' must be a JSON object")
    return fn


def _construct(raw: dict[str, Any], key: str, where: str) -> Function:
    from pymilvus.exceptions import MilvusException

    try:
        return Function.construct_from_dict(raw)
    except (MilvusException, TypeError, ValueError) as exc:
        raise RankerConfigError(f"key {key!r} in {where} is not a valid pymilvus Function: {exc}") from exc
