"""managedFields: who wrote which fields of an object, as server-side apply records it.

Two things here. The fold: ``create`` (a POST, create-only) leaves an ``Update`` entry of the operator's
field manager, and the first apply after it must turn that entry into (part of) the ``Apply`` entry,
or a field the operator stops setting would be kept by the ``Update`` entry. And packing: an entry's
field tree is a nested dict per field, for a Deployment the largest part of the object (the create-time
entry mirrors the whole spec). The watch-fed copies the operator keeps hold each tree as one compact
JSON string instead (:func:`packed`); what reads a tree goes through :func:`field_tree`, which takes
either form.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rerank_operator import FIELD_MANAGER


def managed_fields(live: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = (live.get("metadata") or {}).get("managedFields") or []
    return entries


def field_tree(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's FieldsV1 tree, whether packed or as the apiserver sent it."""
    tree = entry.get("fieldsV1")
    if isinstance(tree, str):
        unpacked_tree: dict[str, Any] = json.loads(tree)
        return unpacked_tree
    return dict(tree) if isinstance(tree, Mapping) else {}


def packed(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entry with its tree as one JSON string. Measured on a sandbox Deployment: its two trees take
    22 KB as dicts and 3 KB as strings; kept inside a ``reconcile.view.Kept`` text, the packed form also
    decodes in 34 instead of 46 us per read, into 25 instead of 44 KB."""
    out = {str(k): v for k, v in entry.items() if k != "fieldsV1"}
    if "fieldsV1" in entry:
        out["fieldsV1"] = json.dumps(field_tree(entry), separators=(",", ":"))
    return out


def unpacked(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entry as the apiserver sent it (what a write of managedFields must send back)."""
    out = dict(entry)
    if isinstance(out.get("fieldsV1"), str):
        out["fieldsV1"] = field_tree(entry)
    return out


def fold_managed_fields(entries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """managedFields with our ``Update`` entries (from ``create``) merged into our ``Apply`` entry of the
    same apiVersion; ``None`` when there is nothing to fold. Entries of other managers and of
    subresources (status) are kept as they are."""

    updates = [e for e in entries if ours(e, "Update")]
    if not updates:
        return None
    applies = [e for e in entries if ours(e, "Apply")]
    target = dict(applies[0]) if applies else {**updates[0], "operation": "Apply"}
    fields: dict[str, Any] = {}
    for entry in [*applies[:1], *updates]:
        fields = _merge_fields(fields, field_tree(entry))
    target["fieldsV1"] = fields
    rest = [e for e in entries if not (ours(e, "Update") or ours(e, "Apply"))]
    return [target, *rest]


def ours(entry: dict[str, Any], operation: str) -> bool:
    """An entry of the operator's own field manager on the main resource (not status)."""
    return (
        entry.get("manager") == FIELD_MANAGER
        and entry.get("operation") == operation
        and not entry.get("subresource")
    )


def covered(fields: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` (a manifest, or part of one) sets every field of a FieldsV1 tree: map keys
    (``f:``), list items by their keys (``k:``) or value (``v:``). Positional items (``i:``) are
    never taken as covered."""
    for key, sub in fields.items():
        if key == ".":
            continue
        kind, _, rest = key.partition(":")
        if kind == "f":
            if not isinstance(value, dict) or rest not in value:
                return False
            child = value[rest]
        elif kind == "k" and isinstance(value, list):
            wanted = json.loads(rest)
            child = next(
                (i for i in value if isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items())),
                None,
            )
            if child is None:
                return False
        elif kind == "v" and isinstance(value, list):
            if json.loads(rest) not in value:
                return False
            continue
        else:
            return False
        if sub and not covered(sub, child):
            return False
    return True


def _merge_fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Union of two FieldsV1 trees (nested objects whose keys are field paths)."""
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge_fields(out[key], value) if isinstance(out.get(key), dict) else value
    return out
