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
    containers = (pod.get("spec") or {}).get("containers") or []
    gpu_key = escape(GPU_RESOURCE)
    for index in sorted(rewrites):
        resources = containers[index].get("resources") or {}
        mig_key = escape(profile_resource(rewrites[index]))
        for section in ("limits", "requests"):
            values = resources.get(section) or {}
            if GPU_RESOURCE not in values:
                continue
            base = f"/spec/containers/{index}/resources/{section}"
            ops.append({"op": "remove", "path": f"{base}/{gpu_key}"})
            ops.append({"op": "add", "path": f"{base}/{mig_key}", "value": str(values[GPU_RESOURCE])})
    ops.extend(annotation_ops(pod, annotations))
    return ops


def annotation_ops(pod: Mapping[str, Any], annotations: Mapping[str, str]) -> list[Op]:
    """Set annotations, emitting nothing for ones already at the wanted value."""
    meta = pod.get("metadata")
    current = (meta or {}).get("annotations")
    wanted = {k: v for k, v in annotations.items() if not (current and current.get(k) == v)}
    if not wanted:
        return []
    if meta is None:
        return [{"op": "add", "path": "/metadata", "value": {"annotations": dict(wanted)}}]
    if current is None:
        return [{"op": "add", "path": "/metadata/annotations", "value": dict(wanted)}]
    return [
        {"op": "add", "path": f"/metadata/annotations/{escape(k)}", "value": v} for k, v in wanted.items()
    ]


def encode(ops: list[Op]) -> str:
    """The base64 form AdmissionResponse.patch carries."""
    return base64.b64encode(json.dumps(ops, separators=(",", ":")).encode()).decode()
