"""Shared helpers for the webhook tests: fixtures of real AdmissionReview JSON, the demo's MIG offers."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch

from app.cluster.snapshot import demo_snapshot_path, load_snapshot
from app.gpu.mig import offered_profiles
from webhook.history import WorkloadKey
from webhook.mig import Usage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhook"
A100_80 = "NVIDIA A100-SXM4-80GB"


def load_review(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def demo_offers() -> dict[str, frozenset[str]]:
    nodes = [o for o in load_snapshot(demo_snapshot_path()) if o["kind"] == "Node"]
    return offered_profiles(nodes)


def apply_response(pod: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """The pod as the API server would store it after our patch (jsonpatch on a copy)."""
    if "patch" not in response:
        return copy.deepcopy(pod)
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(pod, ops, in_place=False)
    return result


def usage(peak_gib: float, p95: float, model: str = A100_80, total_mib: float = 81920.0) -> Usage:
    return Usage(
        peak_memory_mib=peak_gib * 1024,
        p95_compute=p95,
        gpu_memory_mib=total_mib,
        gpu_model=model,
        samples=20160,
    )


TEXT_EMBED = WorkloadKey("inference", "Deployment", "text-embed")
NB_ALICE = WorkloadKey("notebooks", "StatefulSet", "nb-alice")
QWEN = WorkloadKey("inference", "Deployment", "qwen-32b-a100")

NS_LABELS = {
    "inference": {"gpu-autoscaler.io/mig-rewrite": "enabled"},
    "notebooks": {"gpu-autoscaler.io/mig-rewrite": "enabled"},
    "ml-training": {},
}
