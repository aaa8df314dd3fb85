"""Kubernetes-style conditions with honest ``lastTransitionTime``.

A condition's transition time moves only when its *status* flips, never on a message change,
so tools such as kstatus, Argo CD and ``kubectl wait`` see real transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]

# Order in which conditions are written; Reconciling mirrors Progressing for kstatus (Flux).
CONDITION_TYPES = ("Ready", "Progressing", "Reconciling", "Degraded", "Stalled", "Probed", "Published")


@dataclass(frozen=True)
class Desired:
    type: str
    status: Status
    reason: str
    message: str = ""


def merge_conditions(
    previous: list[dict[str, Any]], desired: list[Desired], *, generation: int, now: str
) -> list[dict[str, Any]]:
    before = {c.get("type"): c for c in previous if isinstance(c, dict)}
    out: list[dict[str, Any]] = []
    for d in sorted(
        desired, key=lambda c: CONDITION_TYPES.index(c.type) if c.type in CONDITION_TYPES else 99
    ):
        old = before.get(d.type)
        changed = old is None or old.get("status") != d.status
        out.append(
            {
                "type": d.type,
                "status": d.status,
                "reason": d.reason,
                "message": d.message[:32768],
                "lastTransitionTime": now if changed or not old else old.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
    return out


def find(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    for c in conditions:
        if c.get("type") == type_:
            return c
    return None
