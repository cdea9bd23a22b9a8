"""Demo act: MIG rewrites at admission, over real HTTP, with a *recorded* usage history.

The demo has no Prometheus, so the webhook is given a RecordedHistory labelled as simulated: the numbers
stand in for 7 days of DCGM_FI_DEV_FB_USED / DCGM_FI_PROF_GR_ENGINE_ACTIVE per workload.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any

import jsonpatch

from app.demo import DemoRun
from webhook.history import RecordedHistory, WorkloadKey
from webhook.mig import Usage

DEMO_LABEL = "recorded demo history (simulated DCGM, no Prometheus)"
A100 = "NVIDIA A100-SXM4-80GB"
L40S = "NVIDIA L40S"


def _u(peak_gib: float, p95: float, model: str = A100, total_mib: float = 81920) -> Usage:
    return Usage(peak_gib * 1024, p95, total_mib, model, samples=20160)


def demo_history() -> RecordedHistory:
    """7-day peaks and p95s the demo pretends DCGM recorded."""
    return RecordedHistory(
        {
            WorkloadKey("notebooks", "StatefulSet", "nb-alice"): {"notebook": _u(5.2, 0.06, L40S, 46068)},
            WorkloadKey("notebooks", "StatefulSet", "nb-bob"): {"notebook": _u(14.0, 0.18, L40S, 46068)},
            WorkloadKey("inference", "Deployment", "text-embed"): {"vllm": _u(6.4, 0.09)},
            WorkloadKey("inference", "Deployment", "reranker"): {"vllm": _u(17.0, 0.30)},
            # vLLM pre-allocates 90 % of the GPU for its KV cache: never a slicing candidate
            WorkloadKey("inference", "Deployment", "llama-8b-h100"): {
                "vllm": _u(72.5, 0.55, "NVIDIA H100 80GB HBM3")
            },
        },
        label=DEMO_LABEL,
    )


def _pod(
    ns: str,
    owner: tuple[str, str] | None,
    container: str,
    gpus: int,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "labels": {}}
    if owner and owner[0] == "Deployment":
        rs = f"{owner[1]}-6c9d7f5b8d"
        meta["generateName"] = rs + "-"
        meta["labels"]["pod-template-hash"] = "6c9d7f5b8d"
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "controller": True}
        ]
    elif owner:
        meta["name"] = f"{owner[1]}-1"
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "controller": True}
        ]
    else:
        meta["name"] = "scratch"
    if annotations:
        meta["annotations"] = annotations
    res = {"nvidia.com/gpu": str(gpus), "memory": "16Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [
                {"name": container, "image": "img", "resources": {"limits": res, "requests": dict(res)}}
            ]
        },
    }


def _review(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": pod["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": False,
        },
    }


SCENES: list[tuple[str, dict[str, Any]]] = [
    ("notebook, light use", _pod("notebooks", ("StatefulSet", "nb-alice"), "notebook", 1)),
    ("notebook, medium use", _pod("notebooks", ("StatefulSet", "nb-bob"), "notebook", 1)),
    ("embedding server", _pod("inference", ("Deployment", "text-embed"), "vllm", 1)),
    ("reranker", _pod("inference", ("Deployment", "reranker"), "vllm", 1)),
    ("vLLM, 90% KV cache", _pod("inference", ("Deployment", "llama-8b-h100"), "vllm", 1)),
    ("pinned by annotation", _pod("notebooks", None, "notebook", 1, {"gpu-autoscaler.io/mig": "3g.40gb"})),
    (
        "opted out",
        _pod("notebooks", ("StatefulSet", "nb-alice"), "notebook", 1, {"gpu-autoscaler.io/mig": "off"}),
    ),
    ("new workload", _pod("inference", ("Deployment", "brand-new"), "vllm", 1)),
    ("multi-GPU", _pod("inference", ("Deployment", "qwen-32b-a100"), "vllm", 2)),
    ("namespace not opted in", _pod("ml-training", ("Job", "bert-pretrain"), "trainer", 1)),
]


def _gpu_resource(pod: dict[str, Any]) -> str:
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    return ", ".join(
        f"{k.removeprefix('nvidia.com/')}={v}" for k, v in limits.items() if k.startswith("nvidia")
    )


def act(run: DemoRun) -> None:
    """Send a handful of pod CREATE reviews to /mutate and show what the webhook did and why."""
    from rich.table import Table

    run.console.rule("[bold]MIG-rewriting webhook")
    component = run.app.state.ctx.components.get("webhook")
    if component is None:
        run.console.print("webhook component not running; skipped")
        return
    component.set_history_source(demo_history())
    run.console.print(f"usage history: [yellow]{DEMO_LABEL}[/yellow]")
    table = Table("scene", "namespace", "asked", "got", "outcome", "why (response warning)")
    mutated = 0
    for scene, pod in SCENES:
        review = _review(copy.deepcopy(pod))
        resp = run.client.post("/mutate", json=review)
        body = resp.json()["response"]
        patched = pod
        if "patch" in body:
            ops = json.loads(base64.b64decode(body["patch"]))
            patched = jsonpatch.apply_patch(pod, ops, in_place=False)
            mutated += 1
            # reinvocation: the webhook's own output comes back unchanged
            again = run.client.post("/mutate", json=_review(patched)).json()["response"]
            assert "patch" not in again, "webhook is not idempotent"
        warning = (body.get("warnings") or ["(decided silently)"])[0].removeprefix("gpu-autoscaler: ")
        outcome = body.get("auditAnnotations", {}).get("mig-rewrite", "?").split(":")[0]
        table.add_row(
            scene, pod["metadata"]["namespace"], _gpu_resource(pod), _gpu_resource(patched), outcome, warning
        )
    run.console.print(table)
    run.console.print(
        f"{mutated} of {len(SCENES)} pods rewritten to MIG slices; reinvocation changed none of them"
    )
