"""``rerank-operator probe`` as a real process against stand-ins (in-process and as a process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rerank_operator.probe import HOST_OVERRIDES_ENV
from rerank_operator.standin import StandinServer

Factory = Callable[..., StandinServer]
SCRIPT = Path(sys.executable).with_name("rerank-operator")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "rerank_operator"]


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    """Run the probe subcommand; returns (exit code, parsed stdout JSON or None, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if k != HOST_OVERRIDES_ENV}
    full_env.update(env or {})
    proc = subprocess.run(
        [*COMMAND, "probe", *args], capture_output=True, text=True, timeout=60, env=full_env, check=False
    )
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr


def test_healthy_endpoint_exits_0_with_a_json_verdict(standin: StandinServer) -> None:
    code, verdict, _ = cli("--endpoint", standin.url, "--model", standin.served_model)
    assert code == 0
    assert verdict["ok"] is True
    assert verdict["reason"] == "Healthy"
    assert verdict["modelListed"] is True
    assert verdict["ranking"][0] == 1
    assert set(verdict) == {
        "ok",
        "reason",
        "message",
        "latencyMs",
        "statusCode",
        "ranking",
        "scores",
        "modelListed",
        "checkedAt",
    }


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("http500", "HTTPStatus"),
        ("shuffled", "WrongTopDocument"),
        ("nan", "NonFiniteScore"),
        ("wrong_count", "WrongResultCount"),
        ("drop", "ConnectionError"),
        ("loading", "ConnectionRefused"),
    ],
)
def test_faults_exit_1_and_name_the_reason(standin: StandinServer, mode: str, reason: str) -> None:
    standin.set_fault(mode)
    code, verdict, _ = cli("--endpoint", standin.url, "--timeout", "3")
    assert code == 1
    assert verdict["ok"] is False
    assert verdict["reason"] == reason
    assert verdict["message"].startswith(reason)


def test_slow_response_limit(standin: StandinServer) -> None:
    standin.set_fault("slow", delay_s=0.3)
    code, verdict, _ = cli("--endpoint", standin.url, "--max-latency-ms", "100")
    assert (code, verdict["reason"]) == (1, "SlowResponse")


def test_custom_canary(standin: StandinServer) -> None:
    docs = ["--document", "kittens purr", "--document", "the moon orbits the earth", "--document", "rust"]
    code, verdict, _ = cli(
        "--endpoint", standin.url, "--query", "what orbits the earth", *docs, "--expected-top-index", "1"
    )
    assert code == 0, verdict
    assert standin.request_log[-1].json()["documents"] == [
        "kittens purr",
        "the moon orbits the earth",
        "rust",
    ]
    code, verdict, _ = cli("--endpoint", standin.url, "--query", "what orbits the earth", *docs)
    assert (code, verdict["reason"]) == (1, "WrongTopDocument")  # default expected index is 0


def test_api_key_from_environment_is_sent_and_never_printed(standin_factory: Factory) -> None:
    server = standin_factory(api_key="cli-secret-42")
    code, verdict, err = cli(
        "--endpoint", server.url, "--api-key-env", "RR_KEY", env={"RR_KEY": "cli-secret-42"}
    )
    assert code == 0, verdict
    assert server.request_log[-1].header("authorization") == "Bearer cli-secret-42"
    code, verdict, err = cli(
        "--endpoint", server.url, "--api-key-env", "RR_KEY", env={"RR_KEY": "nope-nope-7"}
    )
    assert (code, verdict["reason"]) == (1, "Unauthorized")
    assert "nope-nope-7" not in json.dumps(verdict) + err


def test_model_not_listed_and_tei(standin: StandinServer) -> None:
    code, verdict, _ = cli("--endpoint", standin.url, "--model", "not-served")
    assert (code, verdict["reason"], verdict["modelListed"]) == (1, "ModelNotListed", False)
    code, verdict, _ = cli("--endpoint", standin.url, "--engine", "tei")
    assert code == 0, verdict
    assert "texts" in standin.request_log[-1].json()


def test_tei_batch_limit(standin_factory: Factory) -> None:
    server = standin_factory(engine="tei", max_client_batch_size=16)
    code, verdict, _ = cli("--endpoint", server.url, "--engine", "tei", "--max-client-batch-size", "16")
    assert code == 0, verdict
    assert [r.path for r in server.request_log] == ["/info", "/rerank"]
    code, verdict, _ = cli("--endpoint", server.url, "--engine", "tei", "--max-client-batch-size", "32")
    assert (code, verdict["reason"]) == (1, "BatchLimitExceeded")
    assert "at most 16" in verdict["message"]
    assert "up to 32" in verdict["message"]
    assert "spec.publish.maxClientBatchSize" in verdict["message"]


def test_split_canary_and_tei_truncate(standin_factory: Factory) -> None:
    server = standin_factory(engine="tei", max_client_batch_size=2)
    code, verdict, _ = cli(
        "--endpoint", server.url, "--engine", "tei", "--max-client-batch-size", "2", "--truncate"
    )
    assert code == 0, verdict
    posts = [r.json() for r in server.request_log if r.method == "POST"]
    assert [len(p["texts"]) for p in posts] == [2, 2]
    assert all(p["truncate"] is True for p in posts)


def test_host_overrides_from_environment(standin: StandinServer) -> None:
    env = {HOST_OVERRIDES_ENV: f"rr.team-a.svc.cluster.local:8000=127.0.0.1:{standin.port}"}
    code, verdict, _ = cli("--endpoint", "http://rr.team-a.svc.cluster.local:8000", env=env)
    assert code == 0, verdict
    assert standin.request_log[-1].header("host") == "rr.team-a.svc.cluster.local:8000"


@pytest.mark.parametrize(
    ("args", "env", "complaint"),
    [
        (["--document", "a"], {}, "--document requires --query"),
        (["--query", "q"], {}, "--query requires"),
        (["--expected-top-index", "1"], {}, "requires --query"),
        (["--query", "q", "--document", "a", "--expected-top-index", "3"], {}, "out of range"),
        (["--api-key-env", "RR_MISSING_KEY_VAR"], {}, "RR_MISSING_KEY_VAR"),
        (["--timeout", "0"], {}, "timeout"),
        (["--max-client-batch-size", "0"], {}, "max_client_batch_size"),
        (["--engine", "tei", "--truncate-prompt-tokens", "256"], {}, "for TEI use truncate"),
        (["--truncate"], {}, "for vLLM use truncate_prompt_tokens"),
        ([], {HOST_OVERRIDES_ENV: "x=192.0.2.1"}, "not loopback"),
    ],
)
def test_usage_errors_exit_2(closed_port: int, args: list[str], env: dict[str, str], complaint: str) -> None:
    code, verdict, err = cli("--endpoint", f"http://127.0.0.1:{closed_port}", *args, env=env)
    assert code == 2
    assert verdict is None
    assert complaint in err


def test_endpoint_with_a_path_exits_2_with_a_verdict() -> None:
    code, verdict, err = cli("--endpoint", "http://127.0.0.1:9/v2")
    assert code == 2
    assert verdict["reason"] == "InvalidEndpoint"
    assert "Milvus replaces any path" in err


def test_missing_endpoint_is_an_argparse_error() -> None:
    code, _, err = cli()
    assert code == 2
    assert "--endpoint" in err


@pytest.fixture
def standin_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m rerank_operator.standin`` as the sandbox starts it; yields (process, URL)."""
    env = {**os.environ, "STANDIN_KEY": "proc-key"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rerank_operator.standin",
            "--port",
            "0",
            "--model",
            "rr-proc",
            "--api-key-env",
            "STANDIN_KEY",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_against_a_standin_process(standin_process: tuple[subprocess.Popen[str], str]) -> None:
    proc, url = standin_process
    env = {"K": "proc-key"}
    code, verdict, _ = cli("--endpoint", url, "--api-key-env", "K", "--model", "rr-proc", env=env)
    assert code == 0, verdict
    assert verdict["modelListed"] is True
    httpx.post(f"{url}/__standin/fault", json={"mode": "duplicate_index"}, timeout=5).raise_for_status()
    code, verdict, _ = cli("--endpoint", url, "--api-key-env", "K", env=env)
    assert (code, verdict["reason"]) == (1, "DuplicateIndex")
    log = httpx.get(f"{url}/__standin/requests", timeout=5).json()
    assert {entry["headers"]["authorization"] for entry in log} == {"<redacted>"}
    assert httpx.delete(f"{url}/__standin/requests", timeout=5).json() == {"cleared": len(log)}
    assert httpx.get(f"{url}/__standin/requests", timeout=5).json() == []
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
