"""The app-side helper: every source kind, readiness refusal, malformed configs and both targets.

The ``(namespace, name)`` branch runs against a real loopback HTTP server that answers like the
Kubernetes API, through the real kubernetes client (no mocks of the client).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymilvus import Function, FunctionType

from rerank_operator import client
from rerank_operator.client import (
    API_KEY_ENV,
    PLACEHOLDER_API_KEY,
    RankerConfigError,
    RankerNotReady,
    load_ranker,
    read_published,
)
from rerank_operator.models import RerankPipeline
from rerank_operator.publish.content import DATA_KEYS, initial_config, render_published_configmap

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "minimal.yaml"
QUERY = "what is the capital of france"


@pytest.fixture(scope="module")
def pipeline() -> RerankPipeline:
    body = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d.get("kind") == "RerankPipeline")
    return RerankPipeline.from_body(body)


@pytest.fixture
def ready_data(pipeline: RerankPipeline) -> dict[str, str]:
    return initial_config(pipeline).marked(ready=True, reason="Healthy").data()


@pytest.fixture
def not_ready_data(pipeline: RerankPipeline) -> dict[str, str]:
    return initial_config(pipeline).data()  # AwaitingFirstProbe, exactly as first published


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)


def _published_fn(data: dict[str, str], key: str) -> dict[str, Any]:
    fn: dict[str, Any] = json.loads(data[key])
    return fn


# --- contract with the publisher ------------------------------------------------------------------


def test_client_knows_every_published_key() -> None:
    assert set(client.DATA_KEYS) == set(DATA_KEYS)


def test_client_does_not_import_the_operator_runtime() -> None:
    source = Path(client.__file__).read_text()
    for forbidden in ("kopf", "rerank_operator.handlers", "rerank_operator.sandbox"):
        assert f"import {forbidden}" not in source
        assert f"from {forbidden}" not in source
    assert "\nimport kubernetes" not in source
    assert "\nfrom kubernetes" not in source


# --- dict source, both targets --------------------------------------------------------------------


def test_milvus_target_is_the_published_function_plus_queries(ready_data: dict[str, str]) -> None:
    fn = load_ranker(ready_data, [QUERY])
    expected = _published_fn(ready_data, "milvus-function.json")
    assert isinstance(fn, Function)
    assert fn.type == FunctionType.RERANK
    assert fn.params == {**expected["params"], "queries": [QUERY]}
    assert fn.params["provider"] == "vllm"
    assert "api_key" not in fn.params
    assert {k: v for k, v in fn.to_dict().items() if k != "params"} == {
        k: v for k, v in expected.items() if k != "params"
    }


def test_milvus_lite_target_uses_the_cohere_route_with_placeholder_key(ready_data: dict[str, str]) -> None:
    fn = load_ranker(ready_data, QUERY, target="milvus-lite")
    expected = _published_fn(ready_data, "milvus-lite-function.json")
    assert fn.params == {**expected["params"], "queries": [QUERY], "api_key": PLACEHOLDER_API_KEY}
    assert fn.params["provider"] == "cohere"
    assert fn.params["base_url"].endswith("/v2")


@pytest.mark.parametrize("target", ["milvus", "milvus-lite"])
def test_function_round_trips_through_json(ready_data: dict[str, str], target: client.Target) -> None:
    fn = load_ranker(ready_data, ["q1", "q2"], target=target)
    again = Function.construct_from_dict(json.loads(json.dumps(fn.to_dict())))
    assert again == fn
    assert again.params["queries"] == ["q1", "q2"]


def test_calls_do_not_share_state(ready_data: dict[str, str]) -> None:
    published = read_published(ready_data)
    first = load_ranker(ready_data, ["a"], target="milvus-lite")
    second = load_ranker(ready_data, ["b"], target="milvus-lite")
    assert first.params["queries"] == ["a"]
    assert second.params["queries"] == ["b"]
    assert "queries" not in published.function_dict("milvus-lite")["params"]


def test_whole_configmap_object_is_accepted(pipeline: RerankPipeline) -> None:
    config = initial_config(pipeline).marked(ready=True, reason="Healthy")
    cm = render_published_configmap(pipeline, config, "apps")
    fn = load_ranker(cm, QUERY)
    assert fn.params["endpoint"] == config.endpoint


# --- api_key handling -----------------------------------------------------------------------------


def test_env_key_is_used_for_milvus_lite(ready_data: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert load_ranker(ready_data, QUERY, target="milvus-lite").params["api_key"] == "from-env"
    explicit = load_ranker(ready_data, QUERY, target="milvus-lite", api_key="explicit")
    assert explicit.params["api_key"] == "explicit"


def test_cohere_key_is_never_picked_up(ready_data: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHERE_API_KEY", "a-real-cohere-secret")
    assert load_ranker(ready_data, QUERY, target="milvus-lite").params["api_key"] == PLACEHOLDER_API_KEY


def test_empty_key_is_refused(ready_data: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        load_ranker(ready_data, QUERY, target="milvus-lite", api_key="")


def test_key_with_milvus_target_is_refused(
    ready_data: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match=r"credential"):
        load_ranker(ready_data, QUERY, api_key="secret")
    monkeypatch.setenv(API_KEY_ENV, "from-env")  # meant for Milvus Lite: ignored, not an error
    assert "api_key" not in load_ranker(ready_data, QUERY).params


# --- readiness ------------------------------------------------------------------------------------


def test_not_ready_is_refused_with_reason_and_opt_out(not_ready_data: dict[str, str]) -> None:
    with pytest.raises(RankerNotReady) as info:
        load_ranker(not_ready_data, QUERY)
    msg = str(info.value)
    assert "AwaitingFirstProbe" in msg
    assert not_ready_data["endpoint"] in msg
    assert "bge_base_rerank" in msg
    assert "require_ready=False" in msg
    assert isinstance(info.value, RankerConfigError)
    assert info.value.reason == "AwaitingFirstProbe"

    fn = load_ranker(not_ready_data, QUERY, require_ready=False)
    assert fn.params["queries"] == [QUERY]


def test_read_published_fields(ready_data: dict[str, str], not_ready_data: dict[str, str]) -> None:
    ready = read_published(ready_data)
    assert ready.ready
    assert ready.reason == "Healthy"  # published with every config, ready or not
    assert ready.model == "BAAI/bge-reranker-base"
    assert ready.endpoint == "http://bge-base-reranker.default.svc.cluster.local:8000"
    assert ready.generation == 0
    assert ready.milvus_function["params"]["provider"] == "vllm"
    assert ready.milvus_lite_function is not None
    assert ready.milvus_lite_function["params"]["provider"] == "cohere"
    assert ready.source == "the given ConfigMap data"
    waiting = read_published(not_ready_data)
    assert not waiting.ready
    assert waiting.reason == "AwaitingFirstProbe"


# --- malformed configs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["endpoint", "model", "ready", "generation", "milvus-function.json", "milvus-lite-function.json"]
)
def test_missing_key_is_named(ready_data: dict[str, str], key: str) -> None:
    del ready_data[key]
    with pytest.raises(RankerConfigError, match=f"lacks key\\(s\\) {key}"):
        load_ranker(ready_data, QUERY)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("milvus-function.json", "{not json", "'milvus-function.json' .* not valid JSON"),
        ("milvus-lite-function.json", "[1, 2]", "'milvus-lite-function.json' .* JSON object"),
        ("milvus-function.json", '{"name": "x", "params": {}}', "'milvus-function.json' .* lacks Function"),
        ("ready", "yes", "'ready' .* 'true' or 'false'"),
        ("generation", "seven", "'generation' .* integer"),
    ],
)
def test_bad_value_is_named(ready_data: dict[str, str], key: str, value: str, match: str) -> None:
    ready_data[key] = value
    with pytest.raises(RankerConfigError, match=match):
        load_ranker(ready_data, QUERY)


def test_non_string_value_is_named(ready_data: dict[str, Any]) -> None:
    ready_data["ready"] = True  # YAML's unquoted true: a ConfigMap could never hold it
    with pytest.raises(RankerConfigError, match=r"'ready' .* must be a string"):
        load_ranker(ready_data, QUERY)


def test_invalid_function_type_is_reported(ready_data: dict[str, str]) -> None:
    fn = _published_fn(ready_data, "milvus-function.json")
    fn["type"] = 99
    ready_data["milvus-function.json"] = json.dumps(fn)
    with pytest.raises(RankerConfigError, match="not a valid pymilvus Function"):
        load_ranker(ready_data, QUERY)


def test_unsupported_source_type() -> None:
    with pytest.raises(TypeError, match="source must be"):
        load_ranker(42, QUERY)  # type: ignore[arg-type]


# --- argument validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queries", "match"),
    [
        ([], "must not be empty"),
        ((), "must not be empty"),
        ([QUERY, 3], r"item\(s\) \[1\]"),
        (b"bytes", "string or a list"),
        (None, "string or a list"),
    ],
)
def test_bad_queries(ready_data: dict[str, str], queries: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_ranker(ready_data, queries)


def test_tuple_of_queries_is_accepted(ready_data: dict[str, str]) -> None:
    assert load_ranker(ready_data, ("a", "b")).params["queries"] == ["a", "b"]


def test_bad_target(ready_data: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="'milvus' or 'milvus-lite'"):
        load_ranker(ready_data, QUERY, target="tei")  # type: ignore[arg-type]


def test_arguments_are_checked_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        load_ranker(tmp_path / "absent", [])


# --- directory source -----------------------------------------------------------------------------


def _write_plain(directory: Path, data: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        (directory / key).write_text(value)


def _write_like_kubelet(directory: Path, data: dict[str, str]) -> None:
    """The kubelet's atomic-writer layout: ``key -> ..data/key``, ``..data -> ..<timestamp>``."""
    stamp = directory / "..2026_01_01_00_00_00.000000001"
    _write_plain(stamp, data)
    (directory / "..data").symlink_to(stamp.name)
    for key in data:
        (directory / key).symlink_to(f"..data/{key}")


@pytest.mark.parametrize("writer", [_write_plain, _write_like_kubelet])
def test_directory_source(tmp_path: Path, ready_data: dict[str, str], writer: Any) -> None:
    mount = tmp_path / "bge-base-ranker"
    writer(mount, ready_data)
    from_path = load_ranker(mount, QUERY, target="milvus-lite")
    from_str = load_ranker(str(mount), QUERY, target="milvus-lite")
    assert from_path == from_str == load_ranker(ready_data, QUERY, target="milvus-lite")
    assert read_published(mount).source == f"directory {mount}"


def test_directory_not_ready(tmp_path: Path, not_ready_data: dict[str, str]) -> None:
    _write_plain(tmp_path, not_ready_data)
    with pytest.raises(RankerNotReady, match=f"directory {tmp_path}"):
        load_ranker(tmp_path, QUERY)


def test_directory_missing_key(tmp_path: Path, ready_data: dict[str, str]) -> None:
    _write_plain(tmp_path, ready_data)
    (tmp_path / "milvus-lite-function.json").unlink()
    with pytest.raises(RankerConfigError, match=r"lacks key\(s\) milvus-lite-function\.json"):
        load_ranker(tmp_path, QUERY)


def test_directory_absent(tmp_path: Path) -> None:
    with pytest.raises(RankerConfigError, match="does not exist"):
        load_ranker(tmp_path / "nope", QUERY)


# --- (namespace, name) through a loopback "API server" -------------------------------------------


class FakeApiServer:
    """Answers ``GET /api/v1/namespaces/<ns>/configmaps/<name>`` like kube-apiserver (loopback only)."""

    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.forbidden: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path))
                status, body = server.answer(self.path.split("?")[0])
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if len(parts) != 6 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "configmaps":
            return 404, _status(404, "NotFound", f"the server could not find the requested resource {path}")
        ref = (parts[3], parts[5])
        if ref in self.forbidden:
            return 403, _status(403, "Forbidden", f'configmaps "{ref[1]}" is forbidden')
        if ref not in self.configmaps:
            return 404, _status(404, "NotFound", f'configmaps "{ref[1]}" not found')
        return 200, self.configmaps[ref]

    def __enter__(self) -> FakeApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@pytest.fixture
def api_server(pipeline: RerankPipeline) -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        config = initial_config(pipeline).marked(ready=True, reason="Healthy")
        server.configmaps[("apps", "bge-base-ranker")] = render_published_configmap(pipeline, config, "apps")
        server.configmaps[("apps", "waiting-ranker")] = render_published_configmap(
            pipeline, initial_config(pipeline), "apps"
        )
        server.forbidden.add(("secret-ns", "bge-base-ranker"))
        yield server


@pytest.fixture
def api_client(api_server: FakeApiServer) -> Iterator[Any]:
    from kubernetes.client import ApiClient, Configuration

    cfg = Configuration(host=api_server.url)
    with ApiClient(cfg) as api:
        yield api


def test_configmap_via_api_client(
    api_server: FakeApiServer, api_client: Any, ready_data: dict[str, str]
) -> None:
    fn = load_ranker(("apps", "bge-base-ranker"), QUERY, target="milvus-lite", kube_client=api_client)
    assert fn == load_ranker(ready_data, QUERY, target="milvus-lite")
    assert api_server.requests == [("GET", "/api/v1/namespaces/apps/configmaps/bge-base-ranker")]
    assert read_published(("apps", "bge-base-ranker"), kube_client=api_client).source == (
        "ConfigMap apps/bge-base-ranker"
    )


def test_configmap_via_core_v1_api(api_client: Any) -> None:
    from kubernetes.client import CoreV1Api

    fn = load_ranker(("apps", "bge-base-ranker"), QUERY, kube_client=CoreV1Api(api_client))
    assert fn.params["provider"] == "vllm"


def test_configmap_not_ready_via_api(api_client: Any) -> None:
    with pytest.raises(RankerNotReady, match="ConfigMap apps/waiting-ranker"):
        load_ranker(("apps", "waiting-ranker"), QUERY, kube_client=api_client)


def test_configmap_not_found(api_client: Any) -> None:
    with pytest.raises(RankerConfigError, match="ConfigMap apps/absent not found"):
        load_ranker(("apps", "absent"), QUERY, kube_client=api_client)


def test_configmap_forbidden(api_client: Any) -> None:
    with pytest.raises(RankerConfigError, match=r"refused \(403\).*ServiceAccount"):
        load_ranker(("secret-ns", "bge-base-ranker"), QUERY, kube_client=api_client)


def test_configmap_default_client_from_kubeconfig(
    api_server: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no client given, the kubeconfig is loaded (not in a pod: no in-cluster env)."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "loopback",
        "clusters": [{"name": "loopback", "cluster": {"server": api_server.url}}],
        "users": [{"name": "dev", "user": {"token": "t"}}],
        "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "dev"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    fn = load_ranker(("apps", "bge-base-ranker"), QUERY)
    assert fn.params["provider"] == "vllm"
    assert api_server.requests == [("GET", "/api/v1/namespaces/apps/configmaps/bge-base-ranker")]


@pytest.mark.parametrize("ref", [("apps",), ("apps", ""), ("apps", "x", "y"), ("apps", 3)])
def test_bad_configmap_reference(ref: Any) -> None:
    with pytest.raises(ValueError, match="namespace, name"):
        load_ranker(ref, QUERY, kube_client=object())


def test_bad_kube_client() -> None:
    with pytest.raises(TypeError, match="ApiClient or CoreV1Api"):
        load_ranker(("apps", "x"), QUERY, kube_client=object())


# --- endpoint override (e.g. kubectl port-forward) ----------------------------------------------------


def test_endpoint_override_for_milvus_lite(ready_data: dict[str, str]) -> None:
    fn = load_ranker(ready_data, ["q"], target="milvus-lite", endpoint="http://127.0.0.1:18000/")
    assert fn.params["base_url"] == "http://127.0.0.1:18000/v2"


def test_endpoint_override_for_milvus(ready_data: dict[str, str]) -> None:
    fn = load_ranker(ready_data, ["q"], endpoint="https://reranker.example:8443")
    assert fn.params["endpoint"] == "https://reranker.example:8443"


@pytest.mark.parametrize(
    "bad",
    [
        "127.0.0.1:8000",
        "ftp://x:1",
        "http://x:1/rerank",
        "http://x:1?a=b",
        "http://x:port",
        "http://x:0",
        "http://user:pw@x:1",
    ],
)
def test_endpoint_override_rejects_paths_and_schemes(ready_data: dict[str, str], bad: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        load_ranker(ready_data, ["q"], endpoint=bad)


def test_endpoint_override_is_checked_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Milvus replaces any path"):
        load_ranker(tmp_path / "absent", ["q"], endpoint="http://127.0.0.1:18000/v2")


# --- TEI configs (no Milvus Lite Function) ------------------------------------------------------------

# Every param Milvus' TEI provider reads (v2.6.18), plus the two every model ranker has and the app's queries.
MILVUS_TEI_PARAMS = {
    "reranker",
    "provider",
    "endpoint",
    "queries",
    "max_client_batch_size",
    "truncate",
    "truncation_direction",
    "credential",
}


@pytest.fixture
def tei_pipeline(make_pipeline: Any, tei_spec: dict[str, Any]) -> RerankPipeline:
    tei_spec["publish"]["credential"] = "tei_key"
    pipeline: RerankPipeline = make_pipeline(**tei_spec)
    return pipeline


@pytest.fixture
def tei_ready(tei_pipeline: RerankPipeline) -> dict[str, str]:
    return initial_config(tei_pipeline).marked(ready=True, reason="Healthy").data()


def test_tei_function_has_exactly_milvus_tei_params(tei_ready: dict[str, str]) -> None:
    from pymilvus.client.prepare import Prepare

    assert "milvus-lite-function.json" not in tei_ready
    fn = load_ranker(tei_ready, [QUERY, "q2"])
    assert fn.type == FunctionType.RERANK
    assert fn.params == {
        "reranker": "model",
        "provider": "tei",
        "endpoint": "http://demo-reranker.search.svc.cluster.local:8080",
        "max_client_batch_size": 16,
        "credential": "tei_key",
        "queries": [QUERY, "q2"],
    }
    assert set(fn.params) <= MILVUS_TEI_PARAMS
    [schema] = Prepare.ranker_to_function_score(fn).functions  # what Milvus receives
    assert {p.key for p in schema.params} <= MILVUS_TEI_PARAMS
    assert Function.construct_from_dict(json.loads(json.dumps(fn.to_dict()))) == fn


def test_tei_read_published(tei_ready: dict[str, str]) -> None:
    published = read_published(tei_ready)
    assert published.provider == "tei"
    assert published.milvus_lite_function is None
    assert published.function_dict("milvus")["params"]["provider"] == "tei"
    with pytest.raises(RankerConfigError, match="Milvus Lite cannot call a TEI reranker"):
        published.function_dict("milvus-lite")


@pytest.mark.parametrize("ready", [True, False])
def test_milvus_lite_target_refuses_a_tei_config(tei_pipeline: RerankPipeline, ready: bool) -> None:
    """Permanent, so reported before readiness: waiting for the probe would not help."""
    data = initial_config(tei_pipeline).marked(ready=ready, reason="Healthy" if ready else "Timeout").data()
    with pytest.raises(RankerConfigError) as info:
        load_ranker(data, QUERY, target="milvus-lite", require_ready=True)
    assert not isinstance(info.value, RankerNotReady)
    message = str(info.value)
    assert "Milvus Lite cannot call a TEI reranker" in message
    assert "target='milvus'" in message
    assert "vLLM pipeline" in message
    assert "demo_rerank" in message
    with pytest.raises(RankerConfigError, match="Milvus Lite cannot call"):
        load_ranker(data, QUERY, target="milvus-lite", endpoint="http://127.0.0.1:18080")


def test_a_lite_key_next_to_a_tei_function_is_still_refused(
    tei_ready: dict[str, str], ready_data: dict[str, str]
) -> None:
    tei_ready["milvus-lite-function.json"] = ready_data["milvus-lite-function.json"]
    with pytest.raises(RankerConfigError, match="Milvus Lite cannot call a TEI reranker"):
        load_ranker(tei_ready, QUERY, target="milvus-lite")
    assert load_ranker(tei_ready, QUERY).params["provider"] == "tei"


def test_vllm_config_without_lite_key_is_malformed(ready_data: dict[str, str]) -> None:
    del ready_data["milvus-lite-function.json"]
    for target in ("milvus", "milvus-lite"):
        with pytest.raises(RankerConfigError, match=r"lacks key\(s\) milvus-lite-function\.json.*vLLM"):
            load_ranker(ready_data, QUERY, target=target)


@pytest.mark.parametrize("key", ["endpoint", "model", "ready", "generation", "milvus-function.json"])
def test_tei_missing_key_is_named(tei_ready: dict[str, str], key: str) -> None:
    del tei_ready[key]
    with pytest.raises(RankerConfigError, match=f"lacks key\\(s\\) {key}"):
        load_ranker(tei_ready, QUERY)


def test_tei_directory_source_and_endpoint_override(tmp_path: Path, tei_ready: dict[str, str]) -> None:
    _write_like_kubelet(tmp_path / "tei-ranker", tei_ready)
    fn = load_ranker(tmp_path / "tei-ranker", QUERY, endpoint="http://127.0.0.1:18080")
    assert fn.params["endpoint"] == "http://127.0.0.1:18080"
    assert fn.params["provider"] == "tei"
    with pytest.raises(ValueError, match="credential"):
        load_ranker(tei_ready, QUERY, api_key="secret")  # Milvus sends the credential's key, as for vLLM


def test_tei_configmap_via_api(
    api_server: FakeApiServer, api_client: Any, tei_pipeline: RerankPipeline
) -> None:
    config = initial_config(tei_pipeline).marked(ready=True, reason="Healthy")
    api_server.configmaps[("apps", "tei-ranker")] = render_published_configmap(tei_pipeline, config, "apps")
    assert load_ranker(("apps", "tei-ranker"), QUERY, kube_client=api_client).params["provider"] == "tei"
    with pytest.raises(RankerConfigError, match="Milvus Lite cannot call a TEI reranker"):
        load_ranker(("apps", "tei-ranker"), QUERY, target="milvus-lite", kube_client=api_client)
