"""Pure JSON Patch (RFC 6902) building: pod + chosen profiles -> ops.

Only `nvidia.com/gpu` entries and our own annotations are ever touched, and ops that would not change the
pod are left out, so running the webhook on its own output yields an empty patch (idempotent).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from app.gpu.mig import GPU_RESOURCE, profile_resource

ANN_PREFIX = "gpu-autoscaler.io/"
ANN_MIG = ANN_PREFIX + "mig"
ANN_OPTIMIZED = ANN_PREFIX + "optimized"
ANN_ORIGINAL = ANN_PREFIX + "original-gpu-request"
ANN_REASON = ANN_PREFIX + "optimization-reason"
#: a share of one GPU in milli (the scheduler extender's contract, docs/scheduling.md "GPU sharing")
ANN_GPU_MILLI = ANN_PREFIX + "gpu-milli"
#: pod annotation `off` opts a pod out of the sharing rewrite
ANN_SHARING = ANN_PREFIX + "sharing"

Op = dict[str, Any]


def escape(token: str) -> str:
    """JSON Pointer token escaping (RFC 6901): `~` -> `~0`, `/` -> `~1`."""
    return token.replace("~", "~0").replace("/", "~1")


def gpu_count(container: Mapping[str, Any]) -> int | None:
    """Whole GPUs the container asks for (limits, else requests); None when none or not an integer."""
    resources = container.get("resources") or {}
    for section in ("limits", "requests"):
        value = (resources.get(section) or {}).get(GPU_RESOURCE)
        if value is not None:
            try:
                n = int(str(value))
            except ValueError:
                return None
            return n if n > 0 else None
    return None


def build_patch(
    pod: Mapping[str, Any],
    rewrites: Mapping[int, str],
    annotations: Mapping[str, str],
) -> list[Op]:
    """Ops replacing `nvidia.com/gpu` by `nvidia.com/mig-<profile>` (same count) in the rewritten containers'
    limits and requests, and setting `annotations` on the pod."""
    ops: list[Op] = []
    for index in sorted(rewrites):
        ops.extend(rename_gpu_ops(pod, index, profile_resource(rewrites[index])))
    ops.extend(annotation_ops(pod, annotations))
    return ops


def rename_gpu_ops(pod: Mapping[str, Any], index: int, resource: str) -> list[Op]:
    """Ops asking `resource` instead of `nvidia.com/gpu` (same count) in container `index`."""
    ops: list[Op] = []
    resources = ((pod.get("spec") or {}).get("containers") or [])[index].get("resources") or {}
    for section in ("limits", "requests"):
        values = resources.get(section) or {}
        if GPU_RESOURCE not in values:
            continue
        base = f"/spec/containers/{index}/resources/{section}"
        ops.append({"op": "remove", "path": f"{base}/{escape(GPU_RESOURCE)}"})
        ops.append({"op": "add", "path": f"{base}/{escape(resource)}", "value": str(values[GPU_RESOURCE])})
    return ops


def build_share_patch(
    pod: Mapping[str, Any],
    index: int,
    resource: str,
    node_selector: Mapping[str, str],
    annotations: Mapping[str, str],
) -> list[Op]:
    """Ops turning container `index`'s whole GPU into a share of one: the GPU resource renamed where the
    pool advertises `nvidia.com/gpu.shared`, the pool's node selector added, `annotations` set."""
    ops = rename_gpu_ops(pod, index, resource) if resource != GPU_RESOURCE else []
    spec = pod.get("spec")
    ops.extend(map_ops("/spec", spec, "nodeSelector", node_selector))
    ops.extend(annotation_ops(pod, annotations))
    return ops


def annotation_ops(pod: Mapping[str, Any], annotations: Mapping[str, str]) -> list[Op]:
    """Set annotations, emitting nothing for ones already at the wanted value."""
    meta = pod.get("metadata")
    if meta is None:
        return (
            [{"op": "add", "path": "/metadata", "value": {"annotations": dict(annotations)}}]
            if annotations
            else []
        )
    return map_ops("/metadata", meta, "annotations", annotations)


def map_ops(
    parent_path: str, parent: Mapping[str, Any] | None, key: str, wanted: Mapping[str, str]
) -> list[Op]:
    """Ops setting the entries of the string map `parent[key]` that are not already at the wanted value
    (the map is created when absent)."""
    current = (parent or {}).get(key)
    missing = {k: v for k, v in wanted.items() if not (current and current.get(k) == v)}
    if not missing:
        return []
    path = f"{parent_path}/{escape(key)}"
    if current is None:
        return [{"op": "add", "path": path, "value": dict(missing)}]
    return [{"op": "add", "path": f"{path}/{escape(k)}", "value": v} for k, v in missing.items()]


def encode(ops: list[Op]) -> str:
    """The base64 form AdmissionResponse.patch carries."""
    return base64.b64encode(json.dumps(ops, separators=(",", ":")).encode()).decode()
