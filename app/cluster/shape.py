"""The structural shape every object must have before the cluster view keeps it.

A live API server validates objects against their schema, so `metadata.labels` is always a map of strings
there; recorded files, a fake server or a buggy proxy can hand over anything. The view is the one place every
object passes, so it refuses the structurally impossible here (reported once per version in
`app.bad_objects`, then treated as absent) and every reader downstream may rely on the structure. Value
problems (a negative GPU count, an annotation that is not JSON) stay with the reader that understands the
value: it reports them the same way and treats that object as unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: per kind: dotted path -> the JSON types allowed there when present (lists: every item an object)
_DICTS = ("metadata", "spec", "status")
_ALL: dict[str, tuple[str, ...]] = {"metadata.ownerReferences": ("list",)}
_BY_KIND: dict[str, dict[str, tuple[str, ...]]] = {
    "Node": {
        "status.allocatable": ("dict",),
        "status.capacity": ("dict",),
        "status.conditions": ("list",),
        "spec.taints": ("list",),
        "spec.unschedulable": ("bool",),
    },
    "Pod": {
        "spec.containers": ("list",),
        "spec.initContainers": ("list",),
        "spec.nodeName": ("str",),
        "spec.tolerations": ("list",),
        "spec.nodeSelector": ("dict",),
        "status.conditions": ("list",),
        "status.containerStatuses": ("list",),
        "status.phase": ("str",),
    },
}
_TYPES: dict[str, type] = {"dict": dict, "str": str, "int": int, "list": list}


def _at(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def field_problem(obj: Any, fields: Mapping[str, tuple[str, ...]]) -> str | None:
    """The first field of `obj` that is not the documented shape: `fields` maps a dotted object path to the
    JSON types allowed there ("dict", "str", "int", "list", "bool"); absent fields are fine, an "int" must be
    >= 0, and a boolean is never taken for an int."""
    if not isinstance(obj, dict):
        return "object is not a JSON object"
    for path, kinds in fields.items():
        value = _at(obj, path)
        if value is None:
            continue
        if isinstance(value, bool):
            ok = "bool" in kinds
        else:
            ok = isinstance(value, tuple(_TYPES[k] for k in kinds if k != "bool"))
        if not ok:
            return f"{path} must be {' or '.join(kinds)}, got {type(value).__name__}"
        if "int" in kinds and isinstance(value, int) and value < 0:
            return f"{path} must be >= 0, got {value}"
    return None


def _string_map(value: Any, where: str) -> str | None:
    if not isinstance(value, dict):
        return f"{where} must be a map of strings, got {type(value).__name__}"
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            return f"{where}[{k!r}] must be a string, got {type(v).__name__}"
    return None


def shape_problem(kind: str, obj: Any) -> str | None:
    """None when `obj` has the structure the schema guarantees; else one sentence naming the field."""
    if not isinstance(obj, dict):
        return f"object is a {type(obj).__name__}, not a JSON object"
    for key in _DICTS:
        if key in obj and obj[key] is not None and not isinstance(obj[key], dict):
            return f"{key} must be an object, got {type(obj[key]).__name__}"
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return "metadata.name must be a non-empty string"
    if meta.get("namespace") is not None and not isinstance(meta["namespace"], str):
        return "metadata.namespace must be a string"
    for field in ("labels", "annotations"):
        if meta.get(field) is not None:
            problem = _string_map(meta[field], f"metadata.{field}")
            if problem:
                return problem
    fields = _ALL | _BY_KIND.get(kind, {})
    problem = field_problem(obj, fields)
    if problem:
        return problem
    for path, kinds in fields.items():
        value = _at(obj, path)
        if "list" in kinds and isinstance(value, list) and not all(isinstance(item, dict) for item in value):
            return f"{path} must list objects"
        if path == "spec.nodeSelector" and value is not None:
            problem = _string_map(value, path)
            if problem:
                return problem
    return None
