"""Pure parts of rerank_operator.sandbox.build: go.mod derivation, version checks, cache and overrides."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rerank_operator.sandbox.build import (
    BINARY_COMPONENT,
    COMPONENTS,
    KUBERNETES_VERSION,
    BuildError,
    cache_root,
    env_var_for,
    go_directive,
    go_satisfies,
    ldflags,
    lookup_binary,
    render_kubernetes_gomod,
    staging_modules,
    staging_version,
)

# Trimmed from k8s.io/kubernetes v1.37.2's go.mod (layout and the kinds of lines that matter kept as is).
UPSTREAM_GOMOD = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
\tk8s.io/apimachinery v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/apiextensions-apiserver => ./staging/src/k8s.io/apiextensions-apiserver
\tk8s.io/apimachinery => ./staging/src/k8s.io/apimachinery
\tk8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
\tk8s.io/sample-cli-plugin => ./staging/src/k8s.io/sample-cli-plugin
)
"""


def test_staging_modules_come_from_replace_block() -> None:
    assert staging_modules(UPSTREAM_GOMOD) == [
        "k8s.io/api",
        "k8s.io/apiextensions-apiserver",
        "k8s.io/apimachinery",
        "k8s.io/cri-streaming",
        "k8s.io/sample-cli-plugin",
    ]


def test_staging_modules_single_line_replace_and_foreign_replaces() -> None:
    gomod = (
        "module x\n"
        "replace k8s.io/kubelet => ./staging/src/k8s.io/kubelet\n"
        "replace github.com/foo/bar => github.com/fork/bar v1.0.0\n"
        "replace k8s.io/odd => ./vendor/k8s.io/odd\n"
    )
    assert staging_modules(gomod) == ["k8s.io/kubelet"]


@pytest.mark.parametrize(
    ("release", "staging"),
    [("v1.37.2", "v0.37.2"), ("v1.34.0", "v0.34.0"), ("v1.37.0-rc.1", "v0.37.0-rc.1")],
)
def test_staging_version(release: str, staging: str) -> None:
    assert staging_version(release) == staging


def test_staging_version_rejects_non_release() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes"):
        staging_version("v2.0.0")


def test_render_kubernetes_gomod() -> None:
    text = render_kubernetes_gomod("v1.37.2", UPSTREAM_GOMOD)
    lines = text.splitlines()
    assert lines[0].startswith("module ")
    assert "go 1.26.0" in lines
    assert "godebug default=go1.26" in lines
    assert "require k8s.io/kubernetes v1.37.2" in lines
    assert "\tk8s.io/api => k8s.io/api v0.37.2" in lines
    assert "\tk8s.io/cri-streaming => k8s.io/cri-streaming v0.37.2" in lines
    assert "./staging" not in text


def test_render_requires_staging_replaces() -> None:
    with pytest.raises(ValueError, match="staging"):
        render_kubernetes_gomod("v1.37.2", "module k8s.io/kubernetes\n\ngo 1.26.0\n")


def test_go_directive_and_satisfaction() -> None:
    assert go_directive(UPSTREAM_GOMOD) == "1.26.0"
    assert go_directive("module x\n") is None
    assert go_satisfies("1.26.0", "go1.26.8")
    assert go_satisfies("1.26", "go1.26.0")
    assert not go_satisfies("1.26.5", "go1.26.4")
    assert not go_satisfies("1.27", "go1.26.8")
    assert go_satisfies("1.25.3", "go1.26.0")


def test_pinned_components() -> None:
    assert KUBERNETES_VERSION.startswith("v1.")
    assert set(COMPONENTS) == {"kubernetes", "kine", "kwok", "helm"}
    assert COMPONENTS["kine"].cgo  # SQLite
    assert BINARY_COMPONENT["kube-scheduler"] is COMPONENTS["kubernetes"]
    assert COMPONENTS["kubernetes"].dirname == f"kubernetes-{KUBERNETES_VERSION}"
    flags = ldflags(COMPONENTS["kubernetes"])
    assert flags.startswith("-s -w ")
    assert f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}" in flags


def test_helm_is_stamped_with_a_kubernetes_version_and_cached_apart_from_unstamped_builds() -> None:
    helm = COMPONENTS["helm"]
    flags = ldflags(helm)
    for pkg in ("chartutil", "lint/rules"):
        assert f"-X helm.sh/helm/v3/pkg/{pkg}.k8sVersionMajor=1" in flags
        assert f"-X helm.sh/helm/v3/pkg/{pkg}.k8sVersionMinor=37" in flags
    assert helm.dirname == f"helm-{helm.version}-r1"  # an older, unstamped cache entry is not reused


def test_cache_root_precedence(tmp_path: Path) -> None:
    assert cache_root({"HOME": "/home/u"}) == Path("/home/u/.cache/rerank-operator/bin")
    assert cache_root({"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/rerank-operator/bin")
    env = {"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "RERANK_SANDBOX_CACHE": str(tmp_path)}
    assert cache_root(env) == tmp_path


def test_env_var_for() -> None:
    assert env_var_for("kube-apiserver") == "RERANK_SANDBOX_KUBE_APISERVER"
    assert env_var_for("kine") == "RERANK_SANDBOX_KINE"


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_lookup_binary_order(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {"RERANK_SANDBOX_CACHE": str(cache)}
    assert lookup_binary("kine", env) is None  # would have to be built

    cached = _executable(cache / COMPONENTS["kine"].dirname / "kine")
    assert lookup_binary("kine", env) == cached

    assets = tmp_path / "assets"
    from_assets = _executable(assets / "kine")
    env["RERANK_SANDBOX_ASSETS"] = str(assets)
    assert lookup_binary("kine", env) == from_assets
    # A binary missing from the assets dir falls through to the cache / build.
    assert lookup_binary("kwok", env) is None

    explicit = _executable(tmp_path / "custom" / "my-kine")
    env["RERANK_SANDBOX_KINE"] = str(explicit)
    assert lookup_binary("kine", env) == explicit


def test_lookup_binary_errors(tmp_path: Path) -> None:
    not_exec = tmp_path / "kine"
    not_exec.write_text("")
    os.chmod(not_exec, 0o644)
    with pytest.raises(BuildError, match="RERANK_SANDBOX_KINE"):
        lookup_binary("kine", {"RERANK_SANDBOX_KINE": str(not_exec)})
    with pytest.raises(BuildError, match="unknown sandbox binary"):
        lookup_binary("etcd", {"RERANK_SANDBOX_CACHE": str(tmp_path)})
