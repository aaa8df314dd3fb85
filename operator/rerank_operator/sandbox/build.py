"""Build (once) and locate the pinned binaries the sandbox runs.

No kube-apiserver ships on PyPI/npm/Debian and container images are unavailable, so the control plane
is compiled from Go modules and cached by version, outside the checkout::

    ${RERANK_SANDBOX_CACHE:-${XDG_CACHE_HOME:-~/.cache}/rerank-operator/bin}/<component>-<version>/<binary>

Components: ``kubernetes`` (kube-apiserver, kube-controller-manager, kube-scheduler built together from
``k8s.io/kubernetes`` through a generated throw-away Go module whose staging ``replace`` lines are derived
from that release's own go.mod), ``kine`` (SQLite, cgo), ``kwok`` and ``helm`` (plain ``go install``).
A build runs in a temporary directory that is renamed into place, under a per-component file lock, so
concurrent runs build once and never see half-written binaries. Go's own caches (GOPATH, GOCACHE) are
left at their defaults so other checkouts and CI jobs on the same machine share them.

Environment overrides, checked in this order for each binary (like envtest's KUBEBUILDER_ASSETS):

``RERANK_SANDBOX_<BINARY>``
    Path to one binary, e.g. ``RERANK_SANDBOX_KUBE_APISERVER=/opt/k8s/kube-apiserver``
    (name upper-cased, ``-`` replaced by ``_``).
``RERANK_SANDBOX_ASSETS``
    A directory holding binaries under their plain names (kube-apiserver, kine, kwok, helm, ...).
    A binary missing there falls through to the cache.
``RERANK_SANDBOX_CACHE``
    Cache root instead of ``${XDG_CACHE_HOME:-~/.cache}/rerank-operator/bin``.
``RERANK_SANDBOX_NO_BUILD=1``
    Fail instead of compiling when a binary is not found (for CI that must use a warm cache).

kwok's default Stages (what makes fake nodes Ready and pods Running; the bare kwok binary ships none)
are read from the kwok module at the same version, never copied into this repo: a build copies them
from the module cache into ``kwok-stages-<version>/`` next to the binaries, so a cached sandbox needs
neither Go nor the module cache; when that entry is missing (binaries from RERANK_SANDBOX_ASSETS), they
are fetched with ``go mod download``. ``RERANK_SANDBOX_KWOK_STAGES=<dir>`` points at a directory with the
same layout as the module's ``kustomize/stage`` instead.

Pre-build (e.g. in a CI cache step) with ``python -m rerank_operator.sandbox [component ...]`` or
``rerank-operator sandbox --build-only``; both print the binary paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rerank_operator.sandbox.procs import CommandFailed, run_with_progress

KUBERNETES_VERSION = "v1.37.2"
KINE_VERSION = "v0.17.5"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.22.0"
# A cold Kubernetes build takes 11+ minutes on 2 busy cores; past this something is wrong.
GO_BUILD_TIMEOUT = 3600.0

KUBERNETES_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


class BuildError(RuntimeError):
    """A binary could not be found or compiled; the message carries the tail of the Go output."""


@dataclass(frozen=True)
class Component:
    """One cache entry: a set of binaries built together from one pinned module version."""

    name: str
    version: str
    binaries: tuple[str, ...]
    module: str
    packages: tuple[str, ...]
    cgo: bool = False
    # -X importpath.name=value pairs (version strings the binaries report).
    xflags: tuple[tuple[str, str], ...] = field(default=())
    # Bumped when the build recipe changes for the same version, so caches rebuild instead of reusing.
    revision: int = 0

    @property
    def dirname(self) -> str:
        suffix = f"-r{self.revision}" if self.revision else ""
        return f"{self.name}-{self.version}{suffix}"


def _kubernetes_xflags(version: str) -> tuple[tuple[str, str], ...]:
    """Mimic hack/lib/version.sh so `kubectl version` and compatibility checks see a real release."""
    major, minor = version.lstrip("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    return tuple(
        (f"{pkg}.{var}", val)
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for var, val in values.items()
    )


# The Kubernetes version helm assumes when not talking to a cluster (`helm template`, `helm lint`). Helm's
# Makefile derives it from the client-go it builds with (v0.37.0 in v3.22.0 -> 1.37); a plain `go install`
# leaves the source default, 1.20, which fails any chart with a modern kubeVersion constraint.
HELM_KUBE_VERSION = ("1", "37")


def _helm_kube_xflags() -> tuple[tuple[str, str], ...]:
    major, minor = HELM_KUBE_VERSION
    return tuple(
        (f"helm.sh/helm/v3/pkg/{pkg}.{var}", value)
        for pkg in ("chartutil", "lint/rules")
        for var, value in (("k8sVersionMajor", major), ("k8sVersionMinor", minor))
    )


COMPONENTS: dict[str, Component] = {
    "kubernetes": Component(
        name="kubernetes",
        version=KUBERNETES_VERSION,
        binaries=KUBERNETES_COMMANDS,
        module="k8s.io/kubernetes",
        packages=tuple(f"k8s.io/kubernetes/cmd/{c}" for c in KUBERNETES_COMMANDS),
        xflags=_kubernetes_xflags(KUBERNETES_VERSION),
    ),
    "kine": Component(
        name="kine",
        version=KINE_VERSION,
        binaries=("kine",),
        module="github.com/k3s-io/kine",
        packages=("github.com/k3s-io/kine",),
        cgo=True,  # mattn/go-sqlite3
        xflags=(("github.com/k3s-io/kine/pkg/version.Version", KINE_VERSION),),
    ),
    "kwok": Component(
        name="kwok",
        version=KWOK_VERSION,
        binaries=("kwok",),
        module="sigs.k8s.io/kwok",
        packages=("sigs.k8s.io/kwok/cmd/kwok",),
        xflags=(("sigs.k8s.io/kwok/pkg/consts.Version", KWOK_VERSION),),
    ),
    "helm": Component(
        name="helm",
        version=HELM_VERSION,
        binaries=("helm",),
        module="helm.sh/helm/v3",
        packages=("helm.sh/helm/v3/cmd/helm",),
        xflags=(("helm.sh/helm/v3/internal/version.version", HELM_VERSION), *_helm_kube_xflags()),
        revision=1,  # r1: Kubernetes version stamped (Chart.yaml's kubeVersion is checked against it)
    ),
}

BINARY_COMPONENT: dict[str, Component] = {b: c for c in COMPONENTS.values() for b in c.binaries}

# kwok's "fast" stages as kwokctl installs them, relative to the module's kustomize/stage directory.
KWOK_STAGE_FILES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
KWOK_STAGES_SUBDIR = "kustomize/stage"
KWOK_STAGES_ENV = "RERANK_SANDBOX_KWOK_STAGES"


# ---------------------------------------------------------------------------------------------------------
# Pure helpers (unit tested)


_STAGING_RE = re.compile(
    r"^\s*(?:replace\s+)?(k8s\.io/[A-Za-z0-9._-]+)\s*=>\s*\./staging/src/(k8s\.io/[A-Za-z0-9._-]+)\s*$",
    re.MULTILINE,
)
_GO_RE = re.compile(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", re.MULTILINE)
_GODEBUG_RE = re.compile(r"^godebug\s+(?:\([^)]*\)|[^\n]+)", re.MULTILINE)


def staging_modules(gomod: str) -> list[str]:
    """Module paths that k8s.io/kubernetes' go.mod replaces with its in-repo ./staging copies."""
    return [m.group(1) for m in _STAGING_RE.finditer(gomod) if m.group(1) == m.group(2)]


def staging_version(kubernetes_version: str) -> str:
    """Published tag of the staging modules for a release: v1.37.2 -> v0.37.2 (pre-release suffix kept)."""
    m = re.fullmatch(r"v1\.(\d+\.\d+(?:-[0-9A-Za-z.-]+)?)", kubernetes_version)
    if not m:
        raise ValueError(f"not a Kubernetes 1.x release tag: {kubernetes_version!r}")
    return f"v0.{m.group(1)}"


def go_directive(gomod: str) -> str | None:
    """The `go` line's version, e.g. "1.26.0"."""
    m = _GO_RE.search(gomod)
    return m.group(1) if m else None


def _version_tuple(v: str) -> tuple[int, ...]:
    m = re.match(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?", v)
    if not m:
        raise ValueError(f"unparseable Go version {v!r}")
    return tuple(int(x or 0) for x in m.groups())


def go_satisfies(required: str, have: str) -> bool:
    """Whether toolchain `have` ("go1.26.8") can build a module declaring `go <required>`."""
    return _version_tuple(have) >= _version_tuple(required)


def render_kubernetes_gomod(kubernetes_version: str, upstream_gomod: str) -> str:
    """go.mod of the throw-away module that builds k8s.io/kubernetes commands from published modules.

    Keeps upstream's `go` and `godebug` lines so the binaries get the same GODEBUG defaults as release builds.
    """
    staging = staging_modules(upstream_gomod)
    if not staging:
        raise ValueError("no ./staging replaces found in the k8s.io/kubernetes go.mod")
    sv = staging_version(kubernetes_version)
    lines = ["module rerank-operator.local/sandbox-build", ""]
    go = go_directive(upstream_gomod)
    if go:
        lines += [f"go {go}", ""]
    lines += [m.group(0).strip() for m in _GODEBUG_RE.finditer(upstream_gomod)]
    lines += ["", f"require k8s.io/kubernetes {kubernetes_version}", "", "replace ("]
    lines += [f"\t{m} => {m} {sv}" for m in staging]
    lines += [")", ""]
    return "\n".join(lines)


def ldflags(component: Component) -> str:
    """Strip symbols (-s -w: roughly halves the size) and stamp version variables."""
    return " ".join(["-s", "-w", *(f"-X {k}={v}" for k, v in component.xflags)])


def env_var_for(binary: str) -> str:
    """RERANK_SANDBOX_KUBE_APISERVER for kube-apiserver."""
    return "RERANK_SANDBOX_" + re.sub(r"[^A-Za-z0-9]", "_", binary).upper()


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """Where built binaries live; see the module docstring for the variables."""
    env = os.environ if environ is None else environ
    if env.get("RERANK_SANDBOX_CACHE"):
        return Path(env["RERANK_SANDBOX_CACHE"]).expanduser()
    xdg = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(xdg).expanduser() / "rerank-operator" / "bin"


def lookup_binary(binary: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Find an existing binary via overrides, then the cache; None when it would have to be built."""
    env = os.environ if environ is None else environ
    explicit = env.get(env_var_for(binary))
    if explicit:
        path = Path(explicit).expanduser()
        if not os.access(path, os.X_OK):
            raise BuildError(f"{env_var_for(binary)}={explicit} is not an executable file")
        return path
    assets = env.get("RERANK_SANDBOX_ASSETS")
    if assets:
        path = Path(assets).expanduser() / binary
        if os.access(path, os.X_OK):
            return path
    component = BINARY_COMPONENT.get(binary)
    if component is None:
        raise BuildError(f"unknown sandbox binary {binary!r}; known: {sorted(BINARY_COMPONENT)}")
    path = cache_root(env) / component.dirname / binary
    return path if os.access(path, os.X_OK) else None


# ---------------------------------------------------------------------------------------------------------
# Building


def _log(msg: str) -> None:
    print(f"[sandbox-build] {msg}", file=sys.stderr, flush=True)


def _go_env(component: Component) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOTOOLCHAIN="local",  # never try to download a different toolchain
        CGO_ENABLED="1" if component.cgo else "0",
        GOFLAGS="-trimpath -buildvcs=false",
        GOMAXPROCS=env.get("GOMAXPROCS", "2"),
    )
    return env


def _run_go(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], label: str) -> None:
    """Run a go command with a progress line every ~20 s; raise with the output's tail."""
    try:
        run_with_progress(args, label=label, report=_log, cwd=cwd, env=env, timeout=GO_BUILD_TIMEOUT)
    except CommandFailed as exc:
        raise BuildError(str(exc)) from None


def _go_version(env: Mapping[str, str]) -> str:
    out = subprocess.run(
        ["go", "env", "GOVERSION"], env=dict(env), check=True, capture_output=True, text=True
    ).stdout
    return out.strip()


def _module_download(module: str, version: str, env: Mapping[str, str], want: str) -> Path:
    """``go mod download -json`` (through the module proxy, cached in GOMODCACHE); the path under ``want``
    ("GoMod": its go.mod file, "Dir": the unpacked module)."""
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    info = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or want not in info:
        raise BuildError(f"go mod download {module}@{version} failed: {info.get('Error') or proc.stderr}")
    return Path(info[want])


def _module_gomod(module: str, version: str, env: Mapping[str, str]) -> str:
    """Text of a module's go.mod."""
    return _module_download(module, version, env, "GoMod").read_text()


def join_stages(stage_dir: Path) -> str:
    """The stage files under ``stage_dir`` as one multi-document YAML (kwok's --config)."""
    missing = [f for f in KWOK_STAGE_FILES if not (stage_dir / f).is_file()]
    if missing:
        raise BuildError(f"kwok stage files missing under {stage_dir}: {missing}")
    return "---\n".join((stage_dir / f).read_text() for f in KWOK_STAGE_FILES)


def _kwok_stages_entry() -> Path:
    return cache_root() / f"kwok-stages-{KWOK_VERSION}"


def _copy_kwok_stages(module_dir: Path) -> Path:
    """Copy the stage files from the kwok module into the cache (atomically); returns the entry."""
    final = _kwok_stages_entry()
    source = module_dir / KWOK_STAGES_SUBDIR
    join_stages(source)  # all there before anything is copied
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        for rel in KWOK_STAGE_FILES:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, tmp / rel)
        tmp.chmod(0o755)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def kwok_stages() -> str:
    """kwok's default stages for the pinned version: from RERANK_SANDBOX_KWOK_STAGES, the cache, or the
    kwok module (then cached)."""
    override = os.environ.get(KWOK_STAGES_ENV)
    if override:
        return join_stages(Path(override).expanduser())
    entry = _kwok_stages_entry()
    if all((entry / f).is_file() for f in KWOK_STAGE_FILES):
        return join_stages(entry)
    if shutil.which("go") is None:
        raise BuildError(
            f"kwok's stages are not in {entry} and `go` is not installed to fetch sigs.k8s.io/kwok@"
            f"{KWOK_VERSION}; set {KWOK_STAGES_ENV} to a copy of that module's {KWOK_STAGES_SUBDIR}"
        )
    with file_lock(cache_root() / f".{entry.name}.lock"):
        if not all((entry / f).is_file() for f in KWOK_STAGE_FILES):
            _log(f"fetching kwok {KWOK_VERSION}'s stages into {entry}")
            kwok = COMPONENTS["kwok"]
            _copy_kwok_stages(_module_download(kwok.module, kwok.version, _go_env(kwok), "Dir"))
    return join_stages(entry)


def _compile(component: Component, out_dir: Path, work_dir: Path) -> None:
    env = _go_env(component)
    have = _go_version(env)
    gomod_text = _module_gomod(component.module, component.version, env)
    required = go_directive(gomod_text)
    if required and not go_satisfies(required, have):
        raise BuildError(f"{component.module}@{component.version} needs go {required}, have {have}")
    flags = ["-p", env["GOMAXPROCS"], "-v", f"-ldflags={ldflags(component)}"]
    if component.name == "kubernetes":
        # A throw-away main module that pins the release and maps staging modules to their published tags.
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "go.mod").write_text(render_kubernetes_gomod(component.version, gomod_text))
        (work_dir / "go.sum").touch()
        args = ["go", "build", "-mod=mod", *flags, "-o", f"{out_dir}/", *component.packages]
        _run_go(args, cwd=work_dir, env=env, label=f"{component.dirname} go build")
    else:
        env["GOBIN"] = str(out_dir)
        args = ["go", "install", *flags, *(f"{p}@{component.version}" for p in component.packages)]
        _run_go(args, cwd=out_dir, env=env, label=f"{component.dirname} go install")
    if component.name == "kwok":  # the module is in the module cache now: keep its stages with the binary
        _copy_kwok_stages(_module_download(component.module, component.version, env, "Dir"))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for another process building ({path})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_component(component: Component) -> Path:
    """Compile a component into its cache dir unless present; returns that dir. Safe to call concurrently."""
    root = cache_root()
    final = root / component.dirname
    with file_lock(root / f".{component.dirname}.lock"):
        if all((final / b).is_file() for b in component.binaries):
            return final  # another process built it while this one waited for the lock
        _log(f"building {component.dirname} into {final} (the first build takes a while)")
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{component.dirname}-", dir=root))
        try:
            _compile(component, tmp, root / f".gomod-{component.dirname}")
            missing = [b for b in component.binaries if not (tmp / b).is_file()]
            if missing:
                raise BuildError(f"{component.dirname}: build produced no {missing}")
            if final.exists():  # an incomplete entry, e.g. a binary deleted by hand
                shutil.rmtree(final)
            tmp.chmod(0o755)  # mkdtemp creates 0700; the cache may be shared by CI users
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _log(f"built {component.dirname} in {time.monotonic() - start:.0f}s")
        return final


def ensure_binaries(binaries: Iterable[str], *, build: bool | None = None) -> dict[str, Path]:
    """Resolve each binary (overrides, cache), compiling missing components unless building is disabled."""
    if build is None:
        build = os.environ.get("RERANK_SANDBOX_NO_BUILD", "") in ("", "0", "false")
    paths: dict[str, Path] = {}
    for binary in binaries:
        found = lookup_binary(binary)
        if found is None:
            if not build:
                raise BuildError(
                    f"{binary} not found (set RERANK_SANDBOX_ASSETS or {env_var_for(binary)}, "
                    f"or unset RERANK_SANDBOX_NO_BUILD to compile it into {cache_root()})"
                )
            found = build_component(BINARY_COMPONENT[binary]) / binary
        paths[binary] = found
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Pre-build components (all by default) and print binary paths."""
    names = list(argv if argv is not None else sys.argv[1:]) or list(COMPONENTS)
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        print(f"unknown component(s) {unknown}; choose from {list(COMPONENTS)}", file=sys.stderr)
        return 2
    for name in names:
        for binary, path in ensure_binaries(COMPONENTS[name].binaries).items():
            print(f"{binary}\t{path}")
    return 0
