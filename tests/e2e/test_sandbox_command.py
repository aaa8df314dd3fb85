"""`rerank-operator sandbox`, the newcomer's "run it" command, as a user runs it.

It starts its own cluster (with the cached binaries), the operator, applies the minimal example, gives
every pipeline (the example and one applied later) an answering stand-in, prints how to look at it, and
stops everything on SIGINT.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from rerank_operator.sandbox import ClusterClient
from rerank_operator.sandbox.procs import live_group_members

REPO = Path(__file__).resolve().parents[2]


def test_sandbox_command_runs_example_and_stops_on_sigint(sandbox_binaries: None, tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "rerank-operator"
    kubeconfig = tmp_path / "kubeconfig"
    log = (tmp_path / "sandbox.err").open("w")
    proc = subprocess.Popen(
        [str(exe), "sandbox", "--kubeconfig-out", str(kubeconfig)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        err = ""
        # the sandbox says how to stop it as soon as it runs, and reports the example once it is Ready
        while time.monotonic() < deadline and "example Ready after" not in err:
            assert proc.poll() is None, (tmp_path / "sandbox.err").read_text()
            time.sleep(1)
            err = (tmp_path / "sandbox.err").read_text()
        assert "press Ctrl-C" in err, err
        assert "example Ready after" in err, err
        assert "bge-base" in err and "True" in err, f"example not Ready:\n{err}"
        cluster = ClusterClient(kubeconfig)
        condition = cluster.kubectl(
            "get", "rrp", "bge-base", "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            check=False, timeout=30,
        )  # fmt: skip
        assert condition.stdout == "True", (condition.stdout, condition.stderr)
        ready = cluster.kubectl(
            "get", "configmap", "bge-base-ranker", "-o", "jsonpath={.data.ready}", check=False, timeout=30
        )
        assert ready.stdout == "true", ready.stderr

        # Every pipeline a user applies gets an answering stand-in, not only the example: one in another
        # namespace, protected by an API key, applied while the sandbox runs.
        cluster.create_namespace("team-b")
        cluster.kubectl("-n", "team-b", "create", "secret", "generic", "rr-key", "--from-literal=api-key=k3y")
        cluster.apply(
            {
                "apiVersion": "rerank.dev/v1alpha1",
                "kind": "RerankPipeline",
                "metadata": {"name": "second", "namespace": "team-b"},
                "spec": {
                    "model": {"name": "cross-encoder/ms-marco-MiniLM-L-6-v2", "servedName": "msmarco"},
                    "apiKeySecretRef": {"name": "rr-key", "key": "api-key"},
                    "probe": {"intervalSeconds": 2},
                },
            }
        )

        def second_ready() -> bool:
            out = cluster.kubectl(
                "get", "rrp", "second", "-n", "team-b", "-o",
                'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False, timeout=30,
            )  # fmt: skip
            return out.stdout == "True"

        cluster.wait_for(second_ready, timeout=120, what="a second, user-applied pipeline to become Ready")
        assert "team-b/second: stand-in reranker (vllm)" in (tmp_path / "sandbox.err").read_text()

        # A reranker run elsewhere, speaking TEI: the sandbox answers its outside address in TEI's protocol.
        cluster.apply(
            {
                "apiVersion": "rerank.dev/v1alpha1",
                "kind": "RerankPipeline",
                "metadata": {"name": "elsewhere", "namespace": "team-b"},
                "spec": {
                    "model": {"name": "BAAI/bge-reranker-base"},
                    "external": {"endpoint": "http://rr.team-b.example.test:8080", "engine": "tei"},
                    "publish": {"maxClientBatchSize": 16},
                    "probe": {"intervalSeconds": 2},
                },
            }
        )

        def external_published() -> str | None:
            out = cluster.kubectl(
                "get", "configmap", "elsewhere-ranker", "-n", "team-b", "-o", "jsonpath={.data.ready}",
                check=False, timeout=30,
            )  # fmt: skip
            return out.stdout if out.stdout == "true" else None

        cluster.wait_for(external_published, timeout=120, what="the external TEI pipeline to be published")
        assert (
            "team-b/elsewhere: stand-in reranker (tei) on 127.0.0.1:"
            in (tmp_path / "sandbox.err").read_text()
        )
        assert "answers for rr.team-b.example.test:8080" in (tmp_path / "sandbox.err").read_text()

        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, (tmp_path / "sandbox.err").read_text()
        assert f"KUBECONFIG={kubeconfig} kubectl get rrp -o wide" in out
        assert not live_group_members(proc.pid), "sandbox left processes behind"
        workdir = re.search(r"logs in (/\S+)/logs", err)
        assert workdir is not None, err
        assert _processes_mentioning(workdir.group(1)) == [], "sandbox components survived SIGINT"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line or environment names ``text`` (the sandbox's workdir)."""
    needle = text.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in blob:
            found.append(int(entry.name))
    return found
