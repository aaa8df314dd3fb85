"""Whether a child must be written: the desired manifest against the object as observed (pure).

An apply of an unchanged manifest is a no-op for etcd, but not for the apiserver: it is still a PATCH
that is authenticated, admitted, diffed and audited. A pass that finds nothing to change must write
nothing, so before every apply the operator asks :func:`needs_write`:

* the object carries the hash of the manifest last applied (``APPLIED_HASH_ANNOTATION``) and
* every value the manifest sets is still there (:func:`contains`), so a hand edit of a field the
  operator sets is restored, while fields others add (defaults, a Service's clusterIP, labels of other
  tools) are not the operator's business.

The hash alone would miss hand edits; the comparison alone can be fooled by apiserver normalisation
that :func:`contains` does not know (it handles quantities). Where an apply answer still fails the
comparison, the caller stops comparing values for that object (``hash_only``) instead of applying it
again and again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from rerank_operator import GROUP
from rerank_operator.models.quantity import QUANTITY, quantity_decimal

APPLIED_HASH_ANNOTATION = f"{GROUP}/applied-hash"


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A stable digest of a manifest (its own hash annotation left out)."""
    meta = dict(manifest.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_HASH_ANNOTATION}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    canonical = json.dumps({**manifest, "metadata": meta}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def with_hash(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest to send: annotated with its own hash (a new dict; the input is not changed)."""
    meta = dict(manifest.get("metadata") or {})
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        APPLIED_HASH_ANNOTATION: manifest_hash(manifest),
    }
    return {**manifest, "metadata": meta}


def applied_hash(live: Mapping[str, Any] | None) -> str | None:
    annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(APPLIED_HASH_ANNOTATION)
    return str(value) if value is not None else None


def needs_write(
    manifest: Mapping[str, Any], live: Mapping[str, Any] | None, *, hash_only: bool = False
) -> bool:
    """True unless ``live`` provably is what applying ``manifest`` would leave."""
    if live is None:
        return True
    # a manifest from ``with_hash`` carries its hash already: not computed again on every pass
    if applied_hash(live) != (applied_hash(manifest) or manifest_hash(manifest)):
        return True
    if hash_only:
        return False
    return not contains(live, manifest)


def contains(live: Any, desired: Any) -> bool:
    """Whether every value ``desired`` sets is in ``live``: maps by key (extra keys in ``live`` are
    fine), lists item by item and of the same length, quantities by their value, and an empty map,
    list or ``None`` in ``desired`` matching a missing one (the apiserver drops empty values)."""
    if isinstance(desired, Mapping):
        if live is None:
            return all(_empty(v) for v in desired.values())
        if not isinstance(live, Mapping):
            return False
        return all(contains(live.get(k), v) if k in live else _empty(v) for k, v in desired.items())
    if isinstance(desired, list):
        if live is None:
            return not desired
        if not isinstance(live, list) or len(live) != len(desired):
            return False
        return all(contains(a, b) for a, b in zip(live, desired, strict=True))
    if desired is None:
        return True
    return _same_scalar(live, desired)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, Mapping | list) and not value)


def _same_scalar(live: Any, desired: Any) -> bool:
    if live == desired and type(live) is type(desired):
        return True
    if isinstance(live, bool) or isinstance(desired, bool):
        return False
    if isinstance(live, int | str) and isinstance(desired, int | str):
        a, b = str(live), str(desired)
        if _is_quantity(a) and _is_quantity(b):  # "1000m" is stored as "1", "1024Mi" as "1Gi"
            return quantity_decimal(a) == quantity_decimal(b)
    return False


def _is_quantity(text: str) -> bool:
    return re.fullmatch(QUANTITY, text) is not None
