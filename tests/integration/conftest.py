"""Shared fixtures for integration tests: real servers on loopback, stopped at teardown."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from rerank_operator.standin import StandinServer


@pytest.fixture
def standin() -> Iterator[StandinServer]:
    """A healthy vLLM-like reranker stand-in on 127.0.0.1 (free port), no API key."""
    with StandinServer() as server:
        yield server


@pytest.fixture
def standin_factory() -> Iterator[Callable[..., StandinServer]]:
    """Start stand-ins with custom options (``api_key=``, ``served_model=``, ...); all stopped at teardown."""
    servers: list[StandinServer] = []

    def make(**kwargs: Any) -> StandinServer:
        server = StandinServer(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ------------------------------------------------------------------------------------------------
# In-process operator against kmock's Kubernetes emulator (see kmock_support.py for the pieces).
# ------------------------------------------------------------------------------------------------
@pytest.fixture
async def k8s_emulator() -> AsyncIterator[Any]:
    """kmock's emulator (with the apiserver bookkeeping of ``kmock_support.Emulator``) on 127.0.0.1.

    At teardown, any server-side failure that is not a Kubernetes API answer (404, 409, 422 ...)
    fails the test: it would be an emulator bug hiding behind a 500.
    """
    import kmock
    from kmock_support import Emulator, configure_emulator

    async with Emulator() as emulator, kmock.Server(emulator):
        configure_emulator(emulator)
        yield emulator
        unexpected = [e for e in emulator.errors if not isinstance(e, kmock.KubernetesError)]
        assert not unexpected, f"the emulator failed serving requests: {unexpected!r}"


@pytest.fixture
async def start_operator(
    k8s_emulator: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Factory: ``harness = await start_operator(**standin_kwargs)`` runs the real operator.

    One operator per test: a fresh emulator, a fresh stand-in (``api_key=...`` etc. go to it), a
    kubeconfig for both kopf and ``KubeApi``, a 1 s resync and host overrides that send the canary
    of every name in ``kmock_support.PIPELINE_NAMES`` to the stand-in. Stopped at teardown.
    """
    from kmock_support import Harness, OperatorThread, host_overrides, write_kubeconfig

    started: list[Harness] = []

    async def start(**standin_kwargs: Any) -> Harness:
        assert not started, "one operator per test"
        server = StandinServer(**standin_kwargs).start()
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(k8s_emulator.url).rstrip("/"))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.delenv("RERANK_OPERATOR_RESYNC_SECONDS", raising=False)  # watch-driven: no resync needed
        monkeypatch.setenv("RERANK_OPERATOR_CLUSTER_DOMAIN", "cluster.local")
        monkeypatch.setenv("RERANK_OPERATOR_HOST_OVERRIDES", host_overrides(server))
        harness = Harness(kmock=k8s_emulator, standin=server, operator=OperatorThread())
        started.append(harness)
        await harness.operator.start()
        return harness

    yield start
    for harness in started:  # the operator running now: a test may have restarted it
        try:
            await harness.operator.stop()
        finally:
            harness.standin.stop()
