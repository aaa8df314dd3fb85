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
async def start_operator(
    kmock: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Factory: ``harness = await start_operator(**standin_kwargs)`` runs the real operator.

    One operator per test: a fresh emulator, a fresh stand-in (``api_key=...`` etc. go to it), a
    kubeconfig for both kopf and ``KubeApi``, a 1 s resync and host overrides that send the canary
    of every name in ``kmock_support.PIPELINE_NAMES`` to the stand-in. Stopped at teardown.
    """
    from kmock_support import (
        Harness,
        OperatorThread,
        configure_emulator,
        host_overrides,
        write_kubeconfig,
    )

    started: list[tuple[OperatorThread, StandinServer]] = []

    async def start(**standin_kwargs: Any) -> Harness:
        assert not started, "one operator per test"
        configure_emulator(kmock)
        server = StandinServer(**standin_kwargs).start()
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", str(kmock.url).rstrip("/"))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        # The kubernetes client reads $KUBECONFIG once, at import time (KUBE_CONFIG_DEFAULT_LOCATION);
        # in a test process it was imported long before, so point its default at our file too.
        import kubernetes.config.kube_config

        monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("RERANK_OPERATOR_RESYNC_SECONDS", "1")
        monkeypatch.setenv("RERANK_OPERATOR_CLUSTER_DOMAIN", "cluster.local")
        monkeypatch.setenv("RERANK_OPERATOR_HOST_OVERRIDES", host_overrides(server))
        operator = OperatorThread()
        started.append((operator, server))
        await operator.start()
        return Harness(kmock=kmock, standin=server, operator=operator)

    yield start
    for operator, server in started:
        try:
            await operator.stop()
        finally:
            server.stop()
