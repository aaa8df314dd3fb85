"""Ctrl-C at any moment of ``rerank-operator sandbox`` stops it and everything it started within 20 s.

The sandbox runs as a user's background job would (SIGINT ignored when it starts: what a non-interactive
shell does to ``cmd &``), and gets SIGINT at several points of its startup, found by the progress lines
it prints: right away, while the apiserver starts, while the controllers start, while nodes and CRDs
are set up, while the operator starts and the example is applied, and once it runs. Every process the
sandbox starts carries ``RERANK_SANDBOX_ID=<workdir>``; none may be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rerank_operator.sandbox.cluster import SANDBOX_ID_ENV
from rerank_operator.sandbox.procs import processes_with_env

REPO = Path(__file__).resolve().parents[2]
STOP_WITHIN = 20.0
# (label, line on stderr that starts the phase; None = a fixed delay after start)
PHASES = [
    ("at-once", None),
    ("apiserver-starting", "sandbox: kine ready"),
    ("controllers-starting", "sandbox: kube-apiserver ready"),
    ("nodes-and-crds", "sandbox: controllers ready"),
    ("operator-and-example", "sandbox ready in"),
    ("running", "press Ctrl-C to stop"),
]


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def sandbox_processes(workdir: Path) -> list[int]:
    return processes_with_env(SANDBOX_ID_ENV, str(workdir))


@pytest.mark.parametrize(("label", "marker"), PHASES, ids=[p[0] for p in PHASES])
def test_sigint_during_startup_stops_everything_within_20s(
    sandbox_binaries: None, tmp_path: Path, label: str, marker: str | None
) -> None:
    workdir = tmp_path / "sandbox"
    err_path = tmp_path / "sandbox.err"
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "rerank-operator"), "sandbox", "--workdir", str(workdir)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            preexec_fn=_ignore_sigint,
        )
    try:
        if marker is None:
            time.sleep(1)
        else:
            deadline = time.monotonic() + 180
            while marker not in err_path.read_text():
                assert proc.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, f"never saw {marker!r}:\n{err_path.read_text()}"
                time.sleep(0.05)
        assert proc.poll() is None, f"the sandbox ended before SIGINT ({label}):\n{err_path.read_text()}"
        if marker is not None:  # the phase has processes running: the interrupt must reach them
            assert sandbox_processes(workdir), f"nothing running at {label}?\n{err_path.read_text()}"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_WITHIN:.0f}s after SIGINT ({label}):\n{err_path.read_text()}")
        took = time.monotonic() - sent
        assert proc.returncode in (0, 130), err_path.read_text()
        left = sandbox_processes(workdir)
        assert left == [], f"left running after SIGINT at {label} (took {took:.1f}s): {left}"
        assert "press Ctrl-C to stop" not in err_path.read_text() or label == "running"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
