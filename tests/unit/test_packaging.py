"""Packaging: the package lives in operator/ without shadowing the standard library's ``operator``.

Each check runs in a fresh interpreter from the repository root, where ``operator/`` is a directory
on sys.path[0] (the current directory) and could shadow the stdlib if it ever became a package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_no_operator_init() -> None:
    assert (REPO_ROOT / "operator").is_dir()
    assert not (REPO_ROOT / "operator" / "__init__.py").exists()
    assert (REPO_ROOT / "operator" / "rerank_operator" / "__init__.py").is_file()


def test_stdlib_operator_is_not_shadowed() -> None:
    out = json.loads(
        python(
            "import json, operator; "
            "print(json.dumps({'file': getattr(operator, '__file__', None), "
            "'itemgetter': operator.itemgetter('a')({'a': 1})}))"
        )
    )
    assert out["itemgetter"] == 1
    assert out["file"] is not None, "operator resolved to a namespace package (the repo's operator/ dir)"
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(out["file"]).resolve().parent == stdlib
    assert not Path(out["file"]).resolve().is_relative_to(REPO_ROOT)


def test_rerank_operator_imports_from_the_source_tree() -> None:
    out = json.loads(
        python(
            "import json, rerank_operator; "
            "print(json.dumps({'file': rerank_operator.__file__, 'version': rerank_operator.__version__}))"
        )
    )
    assert (
        Path(out["file"]).resolve() == (REPO_ROOT / "operator" / "rerank_operator" / "__init__.py").resolve()
    )
    assert out["version"]


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("rerank-operator")
    assert exe.exists()
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("rerank-operator ")


APP_SIDE_MODULES = (
    "rerank_operator.client",
    "rerank_operator.models",
    "rerank_operator.models.crd",
    "rerank_operator.publish",
    "rerank_operator.render",
    "rerank_operator.manifests",
)


def test_app_side_modules_do_not_import_kopf() -> None:
    """Apps and offline commands use these; they must not drag in the operator runtime.

    One fresh interpreter imports them in turn and records, after each, whether kopf got loaded,
    so the first culprit is named.
    """
    code = (
        "import importlib, json, sys\n"
        "out = {}\n"
        f"for name in {list(APP_SIDE_MODULES)!r}:\n"
        "    importlib.import_module(name)\n"
        "    out[name] = sorted(m for m in sys.modules if m.split('.')[0] == 'kopf')\n"
        "print(json.dumps(out))\n"
    )
    assert json.loads(python(code)) == {name: [] for name in APP_SIDE_MODULES}


def test_offline_commands_do_not_import_kopf() -> None:
    code = (
        "import contextlib, io, json, sys\n"
        "from rerank_operator.cli import main\n"
        "out = {}\n"
        "for argv in (['validate', '-f', 'examples/minimal.yaml'], ['render', '-f', 'examples/minimal.yaml'], ['crd']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        rc = main(argv)\n"
        "    out[argv[0]] = [rc, sorted(m for m in sys.modules if m.split('.')[0] == 'kopf')]\n"
        "print(json.dumps(out))\n"
    )
    assert json.loads(python(code)) == {"validate": [0, []], "render": [0, []], "crd": [0, []]}


def test_the_operator_runs_without_the_kubernetes_client_library() -> None:
    """The image installs no ``kubernetes`` package (it is the app helper's, in the client extra): the
    operator's modules, its handlers and kopf must all import without it. A fresh interpreter refuses
    that import outright, as an image without it would."""
    code = (
        "import importlib.abc, json, sys\n"
        "class NoKubernetes(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'kubernetes':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoKubernetes())\n"
        "import rerank_operator.handlers, rerank_operator.cli.run_cmd, rerank_operator.kube\n"
        "from rerank_operator.handlers.pipeline import login\n"
        "print(json.dumps(['kopf' in sys.modules, sorted(m for m in sys.modules if m.startswith('kubernetes'))]))\n"
    )
    assert json.loads(python(code)) == [True, []]


def test_runtime_dependencies_leave_the_client_library_to_the_app_extra() -> None:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    names = [dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in project["dependencies"]]
    assert "kubernetes" not in names and "kopf" in names and "httpx" in names
    assert any(dep.startswith("kubernetes") for dep in project["optional-dependencies"]["client"])
