"""``rerank-operator sandbox --engine vllm`` as a newcomer meets it: a real reranker, and Ctrl-C that works.

First a sandbox is interrupted while vLLM loads (its engine processes must go too), then one runs until
its example is Ready with the real engine, answers the query it prints, and stops within 20 s of SIGINT.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rerank_operator.sandbox.cluster import SANDBOX_ID_ENV
from rerank_operator.sandbox.engine import EngineInstall
from rerank_operator.sandbox.procs import processes_with_env

REPO = Path(__file__).resolve().parents[2]
STOP_WITHIN = 20.0
READY_TIMEOUT = 900  # cluster start + vLLM load and compile on a busy 2-core machine


class SandboxRun:
    def __init__(self, workdir: Path, log: Path) -> None:
        self.workdir = workdir
        self.log = log
        with log.open("w") as err:
            self.proc = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "rerank-operator"),
                    "sandbox",
                    "--engine",
                    "vllm",
                    "--workdir",
                    str(workdir),
                ],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text())
            if m:
                return m
            assert self.proc.poll() is None, f"sandbox exited ({self.proc.returncode}):\n{self.text()}"
            assert time.monotonic() < deadline, f"no {pattern!r} within {timeout:.0f}s:\n{self.text()}"
            time.sleep(0.5)

    def processes(self) -> list[int]:
        return processes_with_env(SANDBOX_ID_ENV, str(self.workdir))

    def interrupt(self) -> float:
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_WITHIN:.0f}s after SIGINT:\n{self.text()}")
        return time.monotonic() - sent

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def sandbox_run(engine: EngineInstall, tmp_path: Path) -> Iterator[SandboxRun]:
    run = SandboxRun(tmp_path / "sandbox", tmp_path / "sandbox.err")
    try:
        yield run
    finally:
        run.kill()


def _vllm_processes(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            title = Path(f"/proc/{pid}/comm").read_text()
        except OSError:
            continue
        if "vllm" in cmdline.lower() or "vllm" in title.lower():
            out.append(pid)
    return out


def test_sigint_while_vllm_loads_stops_the_engine_too(sandbox_run: SandboxRun) -> None:
    sandbox_run.wait_for_line(r"started the real vLLM", timeout=300)
    deadline = time.monotonic() + 60  # the API server and its engine core are up and loading
    while len(_vllm_processes(sandbox_run.processes())) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(_vllm_processes(sandbox_run.processes())) >= 2, sandbox_run.text()
    took = sandbox_run.interrupt()
    assert sandbox_run.proc.returncode in (0, 130), sandbox_run.text()
    assert sandbox_run.processes() == [], f"left running {took:.1f}s after SIGINT"


def test_sandbox_with_the_real_engine_reaches_ready_and_prints_how_to_query_it(
    sandbox_run: SandboxRun,
) -> None:
    sandbox_run.wait_for_line(r"example Ready after", timeout=READY_TIMEOUT)
    text = sandbox_run.text()
    assert re.search(r"minilm-cpu\s+True\s+sentence-transformers/all-MiniLM-L6-v2", text), text
    curl = sandbox_run.wait_for_line(r"  (curl -s http://127\.0\.0\.1:(\d+)/v2/rerank .*)", timeout=5)
    port = int(curl.group(2))
    # Do what it says: the printed curl command, as a user would paste it.
    argv = shlex.split(curl.group(1))
    body = argv[argv.index("-d") + 1]
    resp = httpx.post(
        f"http://127.0.0.1:{port}/v2/rerank", content=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert results[0]["document"]["text"] == "Paris is the capital of France."
    assert results[0]["relevance_score"] > results[1]["relevance_score"]
    probe = subprocess.run(
        [
            str(Path(sys.executable).parent / "rerank-operator"),
            "probe",
            "--endpoint",
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert _vllm_processes(sandbox_run.processes())

    took = sandbox_run.interrupt()
    assert sandbox_run.proc.returncode == 0, sandbox_run.text()
    assert sandbox_run.processes() == [], f"left running {took:.1f}s after SIGINT"
