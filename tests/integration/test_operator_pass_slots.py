"""The bound on passes at work (``reconcile.slots``), in the running operator against kmock.

With a single slot, a pipeline whose canary hangs on a reranker that accepts the connection and never
answers must not hold up another pipeline: its pass gives the slot back while the canary is in flight.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kmock_support import EXTERNAL_HOST, MODEL, PIPELINES, passes

pytestmark = pytest.mark.timeout(60)

SILENT_HOST = "silent.example.test:9000"
HANGING_TIMEOUT_S = 30  # far longer than the other pipeline may take to turn Ready


@pytest.fixture
def silent_reranker() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback port that accepts connections, reads nothing and answers nothing."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed at teardown
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()
    for conn in accepted:
        conn.close()
    thread.join(timeout=5)


def external(endpoint: str, timeout_s: float = 5) -> dict[str, Any]:
    return {
        "model": {"name": MODEL},
        "external": {"endpoint": endpoint},
        "probe": {"intervalSeconds": 1, "failureThreshold": 2, "timeoutSeconds": timeout_s},
    }


async def test_a_hanging_canary_does_not_hold_up_other_pipelines(
    start_operator: Any,
    silent_reranker: tuple[int, list[socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    port, accepted = silent_reranker
    overrides = tmp_path / "overrides"
    overrides.write_text(f"{SILENT_HOST}=127.0.0.1:{port}\n")
    monkeypatch.setenv("RERANK_OPERATOR_HOST_OVERRIDES_FILE", str(overrides))  # wins over the variable
    monkeypatch.setenv("RERANK_OPERATOR_MAX_CONCURRENT_PASSES", "1")
    h = await start_operator()

    await h.create_pipeline("bad", external(f"http://{SILENT_HOST}", timeout_s=HANGING_TIMEOUT_S))

    def canary_in_flight() -> None:
        assert accepted, "the hanging canary has not connected yet"

    await passes(canary_in_flight, within=10, message="bad's canary connected")
    await h.create_pipeline("rr", external(f"http://{EXTERNAL_HOST}"))
    await h.wait_ready("rr", within=10)

    # all of that while bad's first canary was still waiting for its answer
    assert len(accepted) == 1
    conditions = (h.must(PIPELINES, "bad").get("status") or {}).get("conditions") or []
    assert not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions), conditions
    assert not any(r.header("host") == SILENT_HOST for r in h.canaries())  # the stand-in never saw it
