"""Fixtures for end-to-end tests against a real Kubernetes API.

Every test in tests/e2e gets the ``e2e`` marker automatically (select with ``-m e2e``, skip with
``-m "not e2e"``).

Fixtures:

``cluster`` (session)
    A :class:`~rerank_operator.sandbox.ClusterClient` (``.kubeconfig``, ``.env``, ``.kubectl(*args)``,
    ``.apply(obj)``, ``.service_account_kubeconfig(ns, name)``). By default it is a
    :class:`~rerank_operator.sandbox.Sandbox`: kine + kube-apiserver + controller-manager + scheduler +
    kwok on 127.0.0.1 with 2 fake GPU nodes (``E2E_GPUS_PER_NODE`` x nvidia.com/gpu, tainted
    nvidia.com/gpu=present:NoSchedule) and 1 CPU node, CRDs from crds/ installed. With
    ``RERANK_E2E_KUBECONFIG=/path/kubeconfig`` the suite runs against that existing cluster instead
    (kind, k3d, ...); CRDs from crds/ are applied to it.
    If applying crds/ fails (e.g. the apiserver rejects the schema), every test using it fails with
    kubectl's message.
``bare_cluster`` (session)
    The same cluster before/without the CRD step: for tests of the harness itself.
``sandbox`` (session)
    The same object when it is a Sandbox (for start_process, logs...); skips the test on external clusters.
``sandbox_binaries`` (session)
    Only the gate: the binaries are built and this is not an external-cluster run (starts no cluster).
``helm`` (session)
    ``helm(*args, check=True)``: the pinned, cached helm binary with an empty HELM_* home.
``namespace``, ``namespaces`` (function)
    A fresh namespace, or a factory of them (their default ServiceAccount exists, so pods are
    admitted), deleted afterwards.

Binaries are compiled before the first test when missing (after collection, so pytest-timeout does not
cut the first, very long build short); progress goes to the terminal.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_support import Helm

from rerank_operator.sandbox import (
    CLUSTER_BINARIES,
    BuildError,
    ClusterClient,
    KubectlError,
    Sandbox,
    default_crds_dir,
    default_nodes,
    ensure_binaries,
)

E2E_DIR = Path(__file__).parent
EXTERNAL_ENV = "RERANK_E2E_KUBECONFIG"
E2E_GPUS_PER_NODE = 12
_build_error: list[BaseException] = []
_sandboxes: list[Sandbox] = []


def _is_e2e(item: pytest.Item) -> bool:
    return E2E_DIR in Path(str(item.path)).parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_e2e(item):
            item.add_marker(pytest.mark.e2e)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing binaries up front, outside any test's timeout, with output visible."""
    if os.environ.get(EXTERNAL_ENV) or not any(_is_e2e(i) for i in session.items):
        return
    capman = session.config.pluginmanager.getplugin("capturemanager")
    try:
        with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
            ensure_binaries((*CLUSTER_BINARIES, "helm"))
    except BuildError as exc:  # reported by the `cluster` fixture, so non-e2e tests still run
        _build_error.append(exc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On an e2e failure keep the sandbox workdir and point at its component logs."""
    report: Any = yield
    if report.failed and _is_e2e(item) and _sandboxes:
        sb = _sandboxes[-1]
        sb.keep_workdir = True
        report.sections.append(("sandbox", f"component logs (kept after the run): {sb.logs_dir}"))
    return report  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The pinned, cached helm with its own empty home; fails with helm's output unless ``check=False``."""
    binary = ensure_binaries(["helm"])["helm"]
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    env.pop("KUBECONFIG", None)  # lint/template never talk to a cluster

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(binary), *args], env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


@pytest.fixture(scope="session")
def sandbox_binaries() -> None:
    """The sandbox's binaries are built, and this is not an external-cluster run; starts nothing."""
    if os.environ.get(EXTERNAL_ENV):
        pytest.skip(f"needs the built-in sandbox, not {EXTERNAL_ENV}")
    if _build_error:
        pytest.fail(f"building sandbox binaries failed: {_build_error[0]}", pytrace=False)


@pytest.fixture(scope="session")
def bare_cluster() -> Iterator[ClusterClient]:
    if _build_error:
        pytest.fail(f"building sandbox binaries failed: {_build_error[0]}", pytrace=False)
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        yield ClusterClient(Path(external))
        return
    # Several modules share this cluster and pods of deleted pipelines release their GPUs only when
    # their namespaces are gone, so the suite's nodes are bigger than the sandbox default (4 each).
    with Sandbox(
        crds=None, nodes=default_nodes(gpu_nodes=2, cpu_nodes=1, gpus_per_node=E2E_GPUS_PER_NODE)
    ) as sb:
        _sandboxes.append(sb)
        try:
            yield sb
        finally:
            _sandboxes.remove(sb)


@pytest.fixture(scope="session")
def cluster(bare_cluster: ClusterClient) -> ClusterClient:
    crds = default_crds_dir()
    if crds is not None:
        try:
            bare_cluster.install_crds(crds)
        except KubectlError as exc:
            pytest.fail(f"installing {crds} with kubectl failed: {exc}", pytrace=False)
    return bare_cluster


@pytest.fixture(scope="session")
def sandbox(bare_cluster: ClusterClient) -> Sandbox:
    if not isinstance(bare_cluster, Sandbox):
        pytest.skip(f"needs the built-in sandbox, not {EXTERNAL_ENV}")
    return bare_cluster


@pytest.fixture
def namespaces(bare_cluster: ClusterClient) -> Iterator[Callable[[str], str]]:
    """Factory: ``namespaces("watch")`` creates a fresh ``watch-<id>`` (its default ServiceAccount
    exists, so pods are admitted); all are deleted afterwards."""
    created: list[str] = []

    def make(prefix: str) -> str:
        created.append(bare_cluster.create_namespace(f"{prefix}-{uuid.uuid4().hex[:6]}"))
        return created[-1]

    yield make
    bare_cluster.delete_namespaces(*created)


@pytest.fixture
def namespace(namespaces: Callable[[str], str]) -> str:
    return namespaces("e2e")
