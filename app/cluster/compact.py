"""What the live cluster view keeps of each object: the fields decisions read, with shared key strings.

A realistic Pod from the API is 3-10 KB of JSON and ~20 KB as Python objects; 50,000 of them would take a
gigabyte. The view keeps what scheduling, accounting and scaling read (metadata minus managedFields and
kubectl's last-applied copy; a Pod's placement-relevant spec and its containers' name, image and resources;
its phase, conditions and times) and drops the rest (env, args, command, volumes, probes, container
statuses, a Node's image list), like a client-go informer's transform. Key strings and short values are
interned, so 50,000 copies of "metadata" or "nvidia.com/gpu" are one. Dropping env and args also means the
process never holds a pod's secrets it was handed in plain text.

Sub-objects that whole workloads repeat (a ReplicaSet's pods carry the same labels, owner, containers and
tolerations) are stored once and shared between the objects that carry them: the view's objects are
read-only by contract (`ClusterView`), so sharing is invisible to its readers. A Pod keeps only its `Ready`
and `PodScheduled` conditions (what readiness and the unschedulable check read).

`compact` returns a new object (a `Compacted` dict, which it passes through unchanged: the client compacts
each page as it arrives, so a relist of 50,000 pods never holds them all at full size); kinds without a rule
only lose managedFields and the last-applied copy.
"""

from __future__ import annotations

import json
import sys
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: Pod spec fields placement and accounting read (kube-scheduler's inputs, the node autoscaler's too)
POD_SPEC = frozenset(
    {
        "nodeName",
        "containers",
        "initContainers",
        "nodeSelector",
        "affinity",
        "tolerations",
        "priority",
        "priorityClassName",
        "preemptionPolicy",
        "schedulerName",
        "schedulingGates",
        "runtimeClassName",
        "overhead",
        "topologySpreadConstraints",
        "resourceClaims",
        "resources",
        "restartPolicy",
        "hostNetwork",
    }
)
#: per container: what requests and limits say, and enough to name it
CONTAINER = frozenset({"name", "image", "resources", "restartPolicy", "resizePolicy"})
POD_STATUS = frozenset(
    {"phase", "conditions", "startTime", "nominatedNodeName", "qosClass", "reason", "message", "resize"}
)
NODE_STATUS_DROP = frozenset({"images", "volumesInUse", "volumesAttached"})
#: strings up to this length are interned (names, label values, quantities); longer ones are unique anyway
INTERN_MAX = 64
POD_CONDITIONS = frozenset({"Ready", "PodScheduled"})
#: (section, key) of sub-objects many objects repeat, stored once
SHARED = (
    ("metadata", "labels"),
    ("metadata", "ownerReferences"),
    ("spec", "containers"),
    ("spec", "initContainers"),
    ("spec", "tolerations"),
    ("spec", "nodeSelector"),
    ("spec", "affinity"),
    ("spec", "topologySpreadConstraints"),
)
#: distinct shared sub-objects remembered; past this the table starts over (what is stored stays shared)
SHARED_MAX = 200_000
_shared: dict[str, Any] = {}


class Compacted(dict):  # type: ignore[type-arg]
    """An object `compact` already made (a plain dict otherwise: JSON, copies and equality as usual)."""

    __slots__ = ()


def compact(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    if isinstance(obj, Compacted):
        return obj
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k != "managedFields"}
        ann = meta.get("annotations")
        if isinstance(ann, dict) and LAST_APPLIED in ann:
            meta["annotations"] = {k: v for k, v in ann.items() if k != LAST_APPLIED}
        out["metadata"] = meta
    if kind == "Pod":
        spec = out.get("spec")
        if isinstance(spec, dict):
            spec = {k: v for k, v in spec.items() if k in POD_SPEC}
            for key in ("containers", "initContainers"):
                if isinstance(spec.get(key), list):
                    spec[key] = [_container(c) for c in spec[key]]
            out["spec"] = spec
        status = out.get("status")
        if isinstance(status, dict):
            status = {k: v for k, v in status.items() if k in POD_STATUS}
            if isinstance(status.get("conditions"), list):
                status["conditions"] = [
                    c for c in status["conditions"] if isinstance(c, dict) and c.get("type") in POD_CONDITIONS
                ]
            out["status"] = status
    elif kind == "Node":
        status = out.get("status")
        if isinstance(status, dict):
            out["status"] = {k: v for k, v in status.items() if k not in NODE_STATUS_DROP}
    out = _intern(out)
    for section, key in SHARED:
        part = out.get(section)
        if isinstance(part, dict) and part.get(key):
            part[key] = _share(part[key])
    meta = out.get("metadata")
    if isinstance(meta, dict) and meta.get("annotations") == {}:
        del meta["annotations"]
    return Compacted(out)


def _share(value: Any) -> Any:
    """One stored copy of equal sub-objects (keyed by their canonical JSON)."""
    try:
        key = json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return value
    found = _shared.get(key)
    if found is not None:
        return found
    if len(_shared) >= SHARED_MAX:
        _shared.clear()
    _shared[key] = value
    return value


def _container(c: Any) -> Any:
    return {k: v for k, v in c.items() if k in CONTAINER} if isinstance(c, dict) else c


def _intern(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: _intern(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_intern(v) for v in value]
    if isinstance(value, str) and len(value) <= INTERN_MAX:
        return sys.intern(value)
    return value
