"""The Argo CD health check (helm/rerank-operator/files/argocd-health.lua), run in a real Lua 5.1.

Argo CD evaluates health scripts with gopher-lua (Lua 5.1): the object is the global ``obj`` and the
script returns ``{status=..., message=...}``. lupa's bundled Lua 5.1 runs the same file here, against
hand-written samples and against statuses produced by ``rerank_operator.reconcile.decide``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from status_support import NOW, invalid_status, observation, snapshot, valid_status

from rerank_operator.reconcile.decide import Observation
from rerank_operator.reconcile.workload import WorkloadState

lupa = pytest.importorskip("lupa")
from lupa import lua51  # noqa: E402  (after importorskip on purpose)

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "helm" / "rerank-operator"
SCRIPT_PATH = CHART / "files" / "argocd-health.lua"
HEALTH_KEY = "resource.customizations.health.rerank.dev_RerankPipeline"


def to_lua(runtime: Any, value: Any) -> Any:
    """JSON-like Python data -> Lua values the way Argo CD hands them over (arrays 1-indexed)."""
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value


def health(obj: dict[str, Any]) -> tuple[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute(SCRIPT_PATH.read_text())
    assert result is not None, "the script must return a table"
    status, message = result["status"], result["message"]
    assert status in {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
    assert isinstance(message, str)
    return status, message


def cond(type_: str, status: str, reason: str = "", message: str = "", generation: int = 1) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": NOW,
        "observedGeneration": generation,
    }


def pipeline(
    *conditions: dict[str, Any], generation: int = 1, observed: int | None = 1, status: bool = True
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "rerank.dev/v1alpha1",
        "kind": "RerankPipeline",
        "metadata": {"name": "bge-base", "namespace": "search", "generation": generation},
        "spec": {"model": {"name": "BAAI/bge-reranker-base"}},
    }
    if status:
        obj["status"] = {"conditions": list(conditions)}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


# ------------------------------------------------------------------------------------- hand samples


def test_no_status_is_progressing() -> None:
    assert health(pipeline(status=False))[0] == "Progressing"


def test_empty_status_is_progressing() -> None:
    obj = pipeline()
    obj["status"] = {}
    assert health(obj)[0] == "Progressing"


def test_ready_true_current_generation_is_healthy() -> None:
    status, message = health(
        pipeline(
            cond("Ready", "True", "Healthy", "canary rerank passed in 12 ms", generation=3),
            generation=3,
            observed=3,
        )
    )
    assert status == "Healthy"
    assert "canary rerank passed" in message


@pytest.mark.parametrize("reason", ["RollingOut", "AwaitingFirstProbe", "PodsPending", "WrongTopDocument"])
def test_ready_false_while_getting_there_is_progressing(reason: str) -> None:
    status, message = health(pipeline(cond("Ready", "False", reason, "2/3 pods ready")))
    assert status == "Progressing"
    assert reason in message


@pytest.mark.parametrize("reason", ["InvalidSpec", "ApplyRejected", "ContainerFailing"])
def test_ready_false_broken_is_degraded(reason: str) -> None:
    assert health(pipeline(cond("Ready", "False", reason, "x")))[0] == "Degraded"


def test_scaled_to_zero_is_suspended() -> None:
    assert health(pipeline(cond("Ready", "False", "ScaledToZero", "spec.replicas is 0")))[0] == "Suspended"


def test_stalled_true_is_degraded_even_if_ready() -> None:
    status, message = health(
        pipeline(
            cond("Ready", "True", "Healthy"),
            cond("Stalled", "True", "ApplyRejected", "Deployment bge-base-reranker rejected: bad"),
        )
    )
    assert status == "Degraded"
    assert message.startswith("ApplyRejected: Deployment bge-base-reranker rejected")


def test_degraded_true_is_degraded() -> None:
    status, message = health(
        pipeline(
            cond("Ready", "False", "WrongTopDocument", "canary failed"),
            cond("Degraded", "True", "CanaryFailing", "published reranker failing its canary"),
        )
    )
    assert status == "Degraded"
    assert "CanaryFailing" in message


def test_stalled_is_reported_before_degraded() -> None:
    status, message = health(
        pipeline(
            cond("Degraded", "True", "CanaryFailing", "published reranker failing its canary"),
            cond("Stalled", "True", "ApplyRejected", "Deployment rejected"),
        )
    )
    assert (status, message) == ("Degraded", "ApplyRejected: Deployment rejected")


def test_stale_observed_generation_is_progressing() -> None:
    status, message = health(pipeline(cond("Ready", "True", "Healthy"), generation=5, observed=4))
    assert status == "Progressing"
    assert "generation 5" in message


def test_missing_observed_generation_is_progressing() -> None:
    assert health(pipeline(cond("Ready", "True", "Healthy"), generation=2, observed=None))[0] == "Progressing"


def test_stale_ready_condition_is_progressing() -> None:
    """status.observedGeneration caught up, but the Ready condition still speaks of an older spec."""
    obj = pipeline(cond("Ready", "True", "Healthy", generation=1), generation=2, observed=2)
    assert health(obj)[0] == "Progressing"


def test_deletion_is_terminating() -> None:
    obj = pipeline(cond("Ready", "True", "Healthy"))
    obj["metadata"]["deletionTimestamp"] = NOW
    assert health(obj) == ("Progressing", "Terminating")


def test_no_ready_condition_is_progressing() -> None:
    assert health(pipeline(cond("Probed", "Unknown", "NotProbedYet")))[0] == "Progressing"


# ------------------------------------------------------------ statuses the operator really writes

VERIFIED = observation(generation=2)


def written(obs: Observation, *, generation: int | None = None) -> dict[str, Any]:
    """The object after the engine's status write for ``obs``."""
    obj = pipeline(generation=generation or obs.generation)
    obj["status"] = valid_status(obs)
    return obj


@pytest.mark.parametrize(
    ("obs", "expected"),
    [
        (VERIFIED, "Healthy"),
        (
            observation(2, published=None, published_ready=False, last_probe=None),
            "Progressing",
        ),
        (observation(2, workload=WorkloadState(2, 1, 2, False)), "Progressing"),
        (observation(2, apply_errors=["Deployment x rejected: bad"]), "Degraded"),
        (
            observation(2, workload=WorkloadState(1, 0, 1, False, failure_message="pod x: CrashLoopBackOff")),
            "Degraded",
        ),
        (
            observation(
                2,
                healthy=False,
                last_probe={"ok": False, "reason": "WrongTopDocument", "message": "bad order", "time": NOW},
            ),
            "Degraded",  # the published (last good) reranker fails its canary now
        ),
        (observation(2, workload=WorkloadState(0, 0, 0, True), published_ready=False), "Suspended"),
        (observation(2, workload=WorkloadState(2, 1, 2, True)), "Degraded"),
        (
            observation(
                3, published=snapshot(2), workload=WorkloadState(1, 0, 1, True, stuck_message="timed out")
            ),
            "Degraded",
        ),
    ],
    ids=[
        "verified",
        "first-pass",
        "rolling-out",
        "apply-rejected",
        "crashloop",
        "canary-failing",
        "scaled-to-zero",
        "replica-lost",  # serving (Ready=True) on fewer pods than asked for
        "progress-deadline-exceeded",
    ],
)
def test_operator_statuses(obs: Observation, expected: str) -> None:
    assert health(written(obs))[0] == expected


def test_operator_status_for_a_newer_spec_is_progressing() -> None:
    assert health(written(VERIFIED, generation=3))[0] == "Progressing"


def test_operator_invalid_spec_is_degraded() -> None:
    obj = pipeline(generation=4)
    obj["status"] = invalid_status(4, ["spec.model.name: required"])
    status, message = health(obj)
    assert status == "Degraded"
    assert "spec.model.name" in message


# -------------------------------------------------------------------------- docs and chart agree


def _readme_script() -> str:
    """The Lua embedded in the README's argocd-cm snippet, de-indented."""
    text = (CHART / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    for block in blocks:
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and HEALTH_KEY in (doc.get("data") or {}):
            return str(doc["data"][HEALTH_KEY])
    raise AssertionError(f"no ```yaml block with data.{HEALTH_KEY} in the chart README")


def test_readme_snippet_is_the_shipped_script() -> None:
    assert _readme_script().strip() == SCRIPT_PATH.read_text().strip()


def test_script_is_lua51_without_globals_leaking() -> None:
    """Only ``obj`` is read from outside; every helper is local (Argo CD shares one VM per check)."""
    source = SCRIPT_PATH.read_text()
    assert not re.search(r"^(?!local )\s*function ", source, flags=re.MULTILINE)
    assert "goto" not in source  # Lua 5.2+ only
