"""Demo act: place a stream of pods through the real /filter and /prioritize (nodeCacheCapable mode).

Plays kube-scheduler: for each pod, POST /filter with every node name, POST /prioritize with the nodes that
passed, take the best score (ties: first), then plays the API server by binding the pod (upsert with
`spec.nodeName`). Chosen GPUs and score parts come from GET /extender/placements.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from rich.table import Table

from app.demo import DemoRun

Pod = dict[str, Any]


@dataclass(frozen=True)
class Scheduled:
    """What playing kube-scheduler for one pod gave: the filter reply, the nodes that passed, the winner."""

    filter: dict[str, Any]
    passed: list[str]
    chosen: str | None  # None: filter error or no node passed
    score: int | None  # None: prioritize skipped (one node passed) or nothing chosen


def schedule(client: httpx.Client, pod: Pod, names: list[str]) -> Scheduled:
    """Play kube-scheduler with our extender (nodeCacheCapable): /filter with `names`, /prioritize with the
    nodes that passed (skipped when only one did, as kube-scheduler does), best score wins, ties the first."""
    body = {"Pod": pod, "Nodes": None, "NodeNames": names}
    filt = client.post("/filter", json=body).json()
    passed: list[str] = filt.get("NodeNames") or []
    if filt.get("Error") or not passed:
        return Scheduled(filt, passed, None, None)
    if len(passed) == 1:
        return Scheduled(filt, passed, passed[0], None)
    prio = client.post("/prioritize", json={**body, "NodeNames": passed}).json()
    best = max(prio, key=lambda h: h["Score"])  # max() keeps the first of equal scores
    return Scheduled(filt, passed, str(best["Host"]), int(best["Score"]))


def _pod(
    name: str,
    namespace: str = "ml-team",
    gpus: int = 0,
    mig: str = "",
    cpu: str = "4",
    memory: str = "32Gi",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> Pod:
    """A pending Pod exactly as the API returns it (what kube-scheduler sends in ExtenderArgs.Pod)."""
    limits: dict[str, str] = {"memory": memory}
    requests: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = requests["nvidia.com/gpu"] = str(gpus)
    if mig:
        limits[f"nvidia.com/mig-{mig}"] = requests[f"nvidia.com/mig-{mig}"] = "1"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}.{name}.gpu-autoscaler.demo")),
            "creationTimestamp": "2025-06-03T10:05:00Z",
            "labels": {"app.kubernetes.io/name": name, **(labels or {})},
            "annotations": annotations or {},
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "vllm/vllm-openai:v0.11.0",
                    "resources": {"limits": limits, "requests": requests},
                }
            ],
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }


def stream() -> list[Pod]:
    """~12 varied pods: whole GPUs with topology needs, products, memory, MIG slices, a gang, CPU-only."""
    gang = {"gpu-autoscaler.io/pod-group": "ddp-run", "gpu-autoscaler.io/pod-group-min": "2"}
    return [
        _pod(
            "llama-70b-train",
            gpus=4,
            annotations={"gpu-autoscaler.io/topology": "required", "gpu-autoscaler.io/gpu-product": "H100"},
        ),
        _pod("chat-8b-0", "inference", gpus=1),
        _pod("chat-8b-1", "inference", gpus=1),
        _pod("nb-dave", "notebooks", mig="1g.10gb", cpu="2", memory="16Gi"),
        _pod(
            "qwen-72b-a100",
            "inference",
            gpus=2,
            annotations={"gpu-autoscaler.io/gpu-memory": "70Gi", "gpu-autoscaler.io/gpu-product": "A100"},
        ),
        _pod("embed-48g", "inference", gpus=1, annotations={"gpu-autoscaler.io/gpu-memory": "48Gi"}),
        _pod("eval-3g", "ml-team", mig="3g.40gb", cpu="8", memory="64Gi"),
        _pod("ddp-worker-0", gpus=4, labels=gang, cpu="32", memory="256Gi"),
        _pod("ddp-worker-1", gpus=4, labels=gang, cpu="32", memory="256Gi"),
        _pod("sd-l40s", "inference", gpus=2, annotations={"gpu-autoscaler.io/gpu-product": "L40S"}),
        _pod("big-pretrain", gpus=8, annotations={"gpu-autoscaler.io/topology": "required"}),
        _pod("etl-cpu-only", "data", cpu="16", memory="64Gi"),
    ]


def _fmt(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, int | float) else "-"


def act(run: DemoRun) -> None:
    run.console.rule("[bold]Scheduler extender: placing a stream of pods (nodeCacheCapable)")
    pods = stream()
    for p in pods:  # gang members exist before any is placed (quorum)
        if "gpu-autoscaler.io/pod-group" in p["metadata"]["labels"]:
            run.cluster.upsert(copy.deepcopy(p))
    table = Table("pod", "GPUs", "node", "GPU ids", "score", "topology", "resource", "balance", "note")
    for pod in pods:
        names = [n["metadata"]["name"] for n in run.cluster.list("Node")]
        sched = schedule(run.client, pod, names)
        filt, passed = sched.filter, sched.passed
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        res = pod["spec"]["containers"][0]["resources"]["requests"]
        gpus = next(
            (f"{k.removeprefix('nvidia.com/')}" for k in res if k.startswith("nvidia.com/mig-")), None
        )
        gpus = gpus or res.get("nvidia.com/gpu", "0")
        if filt.get("Error"):
            table.add_row(key, gpus, "-", "-", "-", "-", "-", "-", f"error: {filt['Error']}")
            continue
        if not passed:
            reasons = {**filt["FailedNodes"], **filt["FailedAndUnresolvableNodes"]}
            first = sorted(set(reasons.values()), key=lambda r: -list(reasons.values()).count(r))[:2]
            table.add_row(key, gpus, "[red]pending", "-", "-", "-", "-", "-", "; ".join(first))
            continue
        chosen, score = sched.chosen, sched.score
        placed = run.client.get("/extender/placements", params={"pod": meta["uid"]}).json()
        info = placed.get(meta["uid"]) or {}
        parts = info.get("parts") or {}
        bound = copy.deepcopy(pod)
        bound["spec"]["nodeName"] = chosen
        bound["status"]["phase"] = "Running"
        run.cluster.upsert(bound)  # the API server binds the pod; the extender's watch reconciles
        note = f"{len(passed)} of {len(names)} nodes passed"
        if "nvidia.com/gpu" not in res and gpus == "0":
            note = "no GPU asked: passed through"
        table.add_row(
            key,
            gpus,
            f"[green]{chosen}",
            ",".join(str(g) for g in info.get("gpus", [])) or "-",
            "-" if score is None else str(score),
            _fmt(parts.get("topology")),
            _fmt(parts.get("resource")),
            _fmt(parts.get("balance")),
            note,
        )
    run.console.print(table)
    run.console.print(
        "total = 0.40·topology + 0.35·resource + 0.25·balance (parts 0..100); score: 10 for the best node, "
        "at most 8 for the others (decisive scores, docs/scheduling.md)"
    )
