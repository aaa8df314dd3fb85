"""End to end: published ConfigMap -> ``load_ranker`` -> real Milvus Lite -> a vLLM-protocol reranker.

The published config is built exactly as the operator builds it for ``examples/minimal.yaml``, with one
difference: its endpoint. In a cluster Milvus reaches the reranker through the Service's cluster DNS
name; here Milvus Lite (embedded in this process) reaches the loopback stand-in directly, so the
config is built with ``endpoint=<stand-in URL>``. The config is written to a directory the way the
kubelet mounts a ConfigMap, and the app code under test is the snippet in docs/app-usage.md, executed
as written there.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from rerank_operator.client import RankerNotReady, load_ranker
from rerank_operator.models import RerankPipeline
from rerank_operator.publish.content import (
    PublishedConfig,
    initial_config,
    milvus_function,
    milvus_lite_function,
)
from rerank_operator.standin import RecordedRequest, StandinServer, relevance

pytestmark = pytest.mark.milvus

ROOT = Path(__file__).resolve().parents[2]
DOCS_PAGE = ROOT / "docs" / "app-usage.md"
EXAMPLE = ROOT / "examples" / "minimal.yaml"
COLLECTION = "docs"
QUERY = "what is the capital of france"
# The closer a document's vector is to QUERY_VECTOR, the less it answers QUERY: vector-only order is
# 0, 1, 2, ... while lexical relevance puts 5 and 4 first.
DOCS = [
    "bananas are yellow",
    "a recipe for apple pie",
    "capital gains tax rules",
    "wine from france",
    "france and its capital city",
    "paris is the capital of france",
]
DIM = 4
QUERY_VECTOR = [1.0, 0.0, 0.0, 0.0]
VECTOR_ORDER = list(range(len(DOCS)))  # ids by cosine to QUERY_VECTOR, closest first


def _vector(i: int) -> list[float]:
    """Unit vectors 0.2 rad apart: cosine to QUERY_VECTOR falls with i."""
    return [math.cos(0.2 * i), math.sin(0.2 * i), 0.0, 0.0]


def _load_app_snippet() -> types.ModuleType:
    """The ```python block after the app-snippet marker in docs/app-usage.md, as a module."""
    text = DOCS_PAGE.read_text()
    match = re.search(r"<!-- app-snippet:[^>]*-->\s*```python\n(.*?)\n```", text, re.DOTALL)
    assert match, f"no app-snippet block in {DOCS_PAGE}"
    module = types.ModuleType("app_usage_snippet")
    module.__file__ = str(DOCS_PAGE)
    exec(compile(match.group(1), str(DOCS_PAGE), "exec"), module.__dict__)
    return module


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app() -> types.ModuleType:
    return _load_app_snippet()


@pytest.fixture(scope="module")
def pipeline() -> RerankPipeline:
    body = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d.get("kind") == "RerankPipeline")
    return RerankPipeline.from_body(body)


@pytest.fixture(scope="module")
def milvus(app: types.ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusClient]:
    """One embedded Milvus Lite database for the module, with the docs collection loaded."""
    client = MilvusClient(str(tmp_path_factory.mktemp("milvus") / "milvus.db"))
    try:
        app.create_docs_collection(client, COLLECTION, dim=DIM)
        client.insert(
            COLLECTION, [{"id": i, "embedding": _vector(i), "document": d} for i, d in enumerate(DOCS)]
        )
        client.load_collection(COLLECTION)
        yield client
    finally:
        client.close()


@pytest.fixture
def reranker(pipeline: RerankPipeline) -> Iterator[StandinServer]:
    """A fresh loopback stand-in per test (faults and stops do not leak), serving the pipeline's model."""
    with StandinServer(served_model=pipeline.spec.model.effective_served_name) as server:
        yield server


def published_config(pipeline: RerankPipeline, endpoint: str, *, ready: bool) -> dict[str, str]:
    """The operator's published data for ``pipeline``, with the reranker at ``endpoint``."""
    initial = initial_config(pipeline)
    config = PublishedConfig(
        endpoint=endpoint,
        model=initial.model,
        generation=initial.generation,
        function_json=json.dumps(milvus_function(pipeline, endpoint), indent=2) + "\n",
        lite_function_json=json.dumps(milvus_lite_function(pipeline, endpoint), indent=2) + "\n",
    )
    return config.marked(ready=ready, reason="Healthy" if ready else "ProbeFailed").data()


def mount(directory: Path, data: dict[str, str]) -> Path:
    """Write ConfigMap data the way a configMap volume presents it: one file per key."""
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        (directory / key).write_text(value)
    return directory


@pytest.fixture
def ranker_dir(pipeline: RerankPipeline, reranker: StandinServer, tmp_path: Path) -> Path:
    return mount(tmp_path / "bge-base-ranker", published_config(pipeline, reranker.url, ready=True))


def rerank_calls(server: StandinServer) -> list[RecordedRequest]:
    return [r for r in server.request_log if r.method == "POST" and r.path == "/v2/rerank"]


def the_rerank_call(server: StandinServer, pipeline: RerankPipeline) -> RecordedRequest:
    """The single rerank request of a search for QUERY: the published model name and every document."""
    [call] = rerank_calls(server)
    body = call.json()
    assert body["model"] == pipeline.spec.model.effective_served_name
    assert body["query"] == QUERY
    assert sorted(body["documents"]) == sorted(DOCS)
    return call


def expected_order(query: str = QUERY) -> list[int]:
    """All ids by the stand-in's own scoring, applied directly: best first, ties to the lower id."""
    return sorted(VECTOR_ORDER, key=lambda i: (-relevance(query, DOCS[i]), i))


def ids(hits: list[dict[str, Any]]) -> list[int]:
    return [int(h["id"]) for h in hits]


# --- the published config is the operator's --------------------------------------------------------


def test_test_config_differs_from_the_operators_only_in_the_endpoint(
    pipeline: RerankPipeline, reranker: StandinServer
) -> None:
    ours = published_config(pipeline, reranker.url, ready=True)
    service_url = initial_config(pipeline).endpoint
    as_in_cluster = {k: v.replace(reranker.url, service_url) for k, v in ours.items()}
    assert as_in_cluster == initial_config(pipeline).marked(ready=True, reason="Healthy").data()


def test_scores_have_no_ties_and_disagree_with_vector_order() -> None:
    scores = [relevance(QUERY, d) for d in DOCS]
    assert len(set(scores)) == len(scores)
    assert expected_order() != VECTOR_ORDER


# --- search / hybrid_search through the reranker ---------------------------------------------------


def test_search_is_reordered_by_the_reranker(
    app: types.ModuleType,
    milvus: MilvusClient,
    reranker: StandinServer,
    ranker_dir: Path,
    pipeline: RerankPipeline,
) -> None:
    vector_only = milvus.search(COLLECTION, data=[QUERY_VECTOR], anns_field="embedding", limit=len(DOCS))
    assert ids(vector_only[0]) == VECTOR_ORDER

    hits = app.reranked_search(
        milvus, COLLECTION, QUERY, QUERY_VECTOR, limit=len(DOCS), source=ranker_dir, target="milvus-lite"
    )

    assert ids(hits) == expected_order()
    assert ids(hits) != ids(vector_only[0])
    for hit in hits:  # distance is now the reranker's relevance score
        assert hit["distance"] == pytest.approx(relevance(QUERY, DOCS[hit["id"]]), rel=1e-6)
        assert hit["entity"]["document"] == DOCS[hit["id"]]
    assert the_rerank_call(reranker, pipeline).header("Authorization") == "Bearer unused"


def test_limit_returns_the_best_reranked(
    app: types.ModuleType, milvus: MilvusClient, reranker: StandinServer, ranker_dir: Path
) -> None:
    """Milvus Lite over-fetches (10 x limit) before reranking, so the top 2 come from all 6 documents."""
    hits = app.reranked_search(
        milvus, COLLECTION, QUERY, QUERY_VECTOR, limit=2, source=ranker_dir, target="milvus-lite"
    )
    assert ids(hits) == expected_order()[:2]


def test_hybrid_search_is_reordered_by_the_reranker(
    app: types.ModuleType,
    milvus: MilvusClient,
    reranker: StandinServer,
    ranker_dir: Path,
    pipeline: RerankPipeline,
) -> None:
    hits = app.reranked_hybrid_search(
        milvus,
        COLLECTION,
        QUERY,
        QUERY_VECTOR,
        limit=len(DOCS),
        candidates=len(DOCS),
        source=ranker_dir,
        target="milvus-lite",
    )

    assert ids(hits) == expected_order()
    assert the_rerank_call(reranker, pipeline).header("Authorization") == "Bearer unused"


def test_one_query_text_per_search_vector(
    milvus: MilvusClient, reranker: StandinServer, ranker_dir: Path
) -> None:
    queries = [QUERY, "bananas and apple pie"]
    ranker = load_ranker(ranker_dir, queries, target="milvus-lite")
    results = milvus.search(
        COLLECTION,
        data=[QUERY_VECTOR, _vector(5)],
        anns_field="embedding",
        limit=len(DOCS),
        output_fields=["document"],
        ranker=ranker,
    )
    assert [ids(r) for r in results] == [expected_order(q) for q in queries]
    assert [c.json()["query"] for c in rerank_calls(reranker)] == queries


def test_api_key_reaches_the_reranker(
    milvus: MilvusClient, pipeline: RerankPipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vLLM started with --api-key: the key comes from RERANK_API_KEY; the placeholder is refused."""
    with StandinServer(served_model=pipeline.spec.model.effective_served_name, api_key="s3cret") as server:
        source = mount(tmp_path / "ranker", published_config(pipeline, server.url, ready=True))
        monkeypatch.delenv("RERANK_API_KEY", raising=False)
        with pytest.raises(MilvusException, match="Cohere API error 401"):
            milvus.search(
                COLLECTION,
                data=[QUERY_VECTOR],
                anns_field="embedding",
                limit=3,
                ranker=load_ranker(source, QUERY, target="milvus-lite"),
            )
        monkeypatch.setenv("RERANK_API_KEY", "s3cret")
        hits = milvus.search(
            COLLECTION,
            data=[QUERY_VECTOR],
            anns_field="embedding",
            limit=3,
            output_fields=["document"],
            ranker=load_ranker(source, QUERY, target="milvus-lite"),
        )
        assert ids(hits[0]) == expected_order()[:3]
        assert rerank_calls(server)[-1].header("Authorization") == "Bearer s3cret"


# --- failures ---------------------------------------------------------------------------------------


def test_reranker_down_fails_the_search_clearly(
    app: types.ModuleType, milvus: MilvusClient, reranker: StandinServer, ranker_dir: Path
) -> None:
    reranker.stop()  # like a vLLM pod that stopped listening while its config still says ready
    with pytest.raises(MilvusException, match=r"Cohere API connection error: .*Connection refused"):
        app.reranked_search(milvus, COLLECTION, QUERY, QUERY_VECTOR, source=ranker_dir, target="milvus-lite")
    with pytest.raises(MilvusException, match=r"Cohere API connection error: .*Connection refused"):
        app.reranked_hybrid_search(
            milvus, COLLECTION, QUERY, QUERY_VECTOR, source=ranker_dir, target="milvus-lite"
        )


def test_reranker_error_fails_the_search_clearly(
    app: types.ModuleType, milvus: MilvusClient, reranker: StandinServer, ranker_dir: Path
) -> None:
    reranker.set_fault("http500")
    with pytest.raises(MilvusException, match=r"Cohere API error 500: .*simulated engine failure"):
        app.reranked_search(milvus, COLLECTION, QUERY, QUERY_VECTOR, source=ranker_dir, target="milvus-lite")


def test_wrong_model_name_is_a_404(milvus: MilvusClient, pipeline: RerankPipeline, tmp_path: Path) -> None:
    """Milvus Lite sends the published model name; a server serving another name answers 404."""
    with StandinServer(served_model="some/other-model") as server:
        source = mount(tmp_path / "ranker", published_config(pipeline, server.url, ready=True))
        with pytest.raises(MilvusException, match=r"Cohere API error 404: .*BAAI/bge-reranker-base"):
            milvus.search(
                COLLECTION,
                data=[QUERY_VECTOR],
                anns_field="embedding",
                limit=3,
                ranker=load_ranker(source, QUERY, target="milvus-lite"),
            )


def test_not_ready_config_is_refused_before_milvus_is_touched(
    app: types.ModuleType, pipeline: RerankPipeline, reranker: StandinServer, tmp_path: Path
) -> None:
    source = mount(tmp_path / "ranker", published_config(pipeline, reranker.url, ready=False))
    untouchable = object()  # any use as a Milvus client would raise AttributeError, not RankerNotReady
    with pytest.raises(RankerNotReady, match=r"not ready: ProbeFailed.*require_ready=False"):
        app.reranked_search(
            untouchable, COLLECTION, QUERY, QUERY_VECTOR, source=source, target="milvus-lite", degrade=False
        )
    with pytest.raises(RankerNotReady):
        load_ranker(source, QUERY, target="milvus-lite")
    assert reranker.request_log == []


def test_not_ready_config_degrades_to_vector_order(
    app: types.ModuleType,
    milvus: MilvusClient,
    pipeline: RerankPipeline,
    reranker: StandinServer,
    tmp_path: Path,
) -> None:
    source = mount(tmp_path / "ranker", published_config(pipeline, reranker.url, ready=False))
    hits = app.reranked_search(
        milvus, COLLECTION, QUERY, QUERY_VECTOR, limit=len(DOCS), source=source, target="milvus-lite"
    )
    assert ids(hits) == VECTOR_ORDER
    hybrid = app.reranked_hybrid_search(
        milvus, COLLECTION, QUERY, QUERY_VECTOR, limit=3, source=source, target="milvus-lite"
    )
    assert len(hybrid) == 3  # RRF over dense + BM25
    assert reranker.request_log == []


def test_opting_out_of_readiness_uses_the_last_published_params(
    milvus: MilvusClient, pipeline: RerankPipeline, reranker: StandinServer, tmp_path: Path
) -> None:
    source = mount(tmp_path / "ranker", published_config(pipeline, reranker.url, ready=False))
    ranker = load_ranker(source, QUERY, target="milvus-lite", require_ready=False)
    hits = milvus.search(
        COLLECTION,
        data=[QUERY_VECTOR],
        anns_field="embedding",
        limit=len(DOCS),
        ranker=ranker,
        output_fields=["document"],
    )
    assert ids(hits[0]) == expected_order()


def test_milvus_server_function_is_not_for_milvus_lite(
    milvus: MilvusClient, reranker: StandinServer, ranker_dir: Path
) -> None:
    """Why two functions are published: Milvus Lite has no ``vllm`` provider."""
    ranker = load_ranker(ranker_dir, QUERY, target="milvus")
    with pytest.raises(MilvusException, match="Unknown rerank provider: 'vllm'"):
        milvus.search(COLLECTION, data=[QUERY_VECTOR], anns_field="embedding", limit=3, ranker=ranker)
    assert reranker.request_log == []
