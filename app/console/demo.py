"""Demo act: fill in what the earlier acts leave out of the console, then say where it is.

The bundled demo cluster has no GPU-sharing node and no DCGM, so this act plays:
- the cluster operator adding a time-slicing node pool (one 4x L4 node; the node agent marks GPU 3 busy with
  a process outside Kubernetes) and kube-scheduler placing three GPU-share pods there through the real
  /filter and /prioritize, the API server binding two of them (the third stays "steered, not bound");
- DCGM: window averages per held GPU, simulated from the workload's kind (labelled as simulated), scored by
  the real waste scoring, so the map shows utilisation and the console its top wasters.
"""

from __future__ import annotations

import asyncio
import copy
import json
import zlib
from typing import Any

from app.console.component import ConsoleComponent
from app.demo import DemoRun
from app.waste.score import GpuUse

SHARED_NODE = "l4-shared-0"
SIMULATED = "simulated DCGM window averages (demo, no Prometheus)"
#: (compute, memory) use by namespace in the simulated DCGM: training busy, inference medium with vLLM's
#: pre-allocated KV cache, notebooks idle most of the time
USE = {
    "ml-team": (0.9, 0.85),
    "ml-training": (0.85, 0.8),
    "inference": (0.45, 0.9),
    "notebooks": (0.04, 0.04),
    "data": (0.12, 0.3),
}


def shared_node() -> dict[str, Any]:
    """A 4x L4 node whose device plugin time-slices each GPU 4 ways, as GFD labels it."""
    links = [["X", "PHB", "SYS", "SYS"], ["PHB", "X", "SYS", "SYS"], ["SYS", "SYS", "X", "PHB"]]
    links.append(["SYS", "SYS", "PHB", "X"])
    topo = {
        "version": 1,
        "gpus": [
            {
                "index": i,
                "uuid": f"GPU-6f1c2a7e-4b9d-5e3f-8a21-0d4c9b7e5a1{i}",
                "product": "NVIDIA L4",
                "memoryMiB": 23034,
                "numaNode": i // 2,
                "pciBusId": f"0000:{0x41 + 0x20 * i:02X}:00.0",
                "migEnabled": False,
                "allocated": i == 3,
            }
            for i in range(4)
        ],
        "links": links,
    }
    res = {"cpu": "47", "memory": "191Gi", "nvidia.com/gpu": "16", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": SHARED_NODE,
            "uid": "8c3e6f0a-2d4b-5f7e-9a1c-3b5d7f9e1a20",
            "resourceVersion": "4100900",
            "labels": {
                "kubernetes.io/hostname": SHARED_NODE,
                "nvidia.com/gpu.count": "4",
                "nvidia.com/gpu.memory": "23034",
                "nvidia.com/gpu.product": "NVIDIA-L4-SHARED",
                "nvidia.com/gpu.replicas": "4",
                "nvidia.com/gpu.sharing-strategy": "time-slicing",
                "nvidia.com/mig.strategy": "none",
            },
            "annotations": {"gpu-autoscaler.io/topology": json.dumps(topo, separators=(",", ":"))},
        },
        "spec": {},
        "status": {
            "allocatable": dict(res),
            "capacity": dict(res),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def share_pods() -> list[tuple[dict[str, Any], bool]]:
    """(pod, bind it?) for three GPU-share pods; the last one is steered but not bound."""
    from extender.demo import _pod

    out = []
    for name, milli, bind in (
        ("whisper-0", "500", True),
        ("embed-small-0", "250", True),
        ("ocr-0", "300", False),
    ):
        pod = _pod(name, "inference", gpus=1, cpu="2", memory="8Gi")
        pod["metadata"]["annotations"] = {
            "gpu-autoscaler.io/gpu-milli": milli,
            "gpu-autoscaler.io/gpu-product": "L4",
        }
        out.append((pod, bind))
    return out


def simulated_uses(component: Any) -> list[GpuUse]:
    """One GpuUse per GPU each pod holds, from the extender's own accounting (which GPU) and the pod's
    namespace (how busy), with a small per-pod spread so the bars differ."""
    adapter = component.adapter
    uses = []
    with adapter.lock:
        holders = [(b.ask, b.node, b.gpus) for b in adapter.bound.values() if b.placed]
    for ask, node, cols in holders:
        row = adapter.state.index.get(node)
        if row is None:
            continue
        compute, memory = USE.get(ask.namespace, (0.3, 0.5))
        # a stable per-pod spread so the bars differ: up to +-10 % of the namespace's figure
        spread = 1 + (zlib.crc32(ask.name.encode()) % 21 - 10) / 100
        compute, memory = min(1.0, compute * spread), min(1.0, memory * spread)
        # which GPU instance holds a MIG pod is not known here: one entry for the pod
        gpus = ["0/1"] if ask.mig else [str(g) for g in adapter.gpu_phys(row, list(cols))]
        uses += [GpuUse(ask.namespace, ask.name, node, g, compute=compute, memory=memory) for g in gpus]
    return uses


class _Uses:
    def __init__(self, uses: list[GpuUse]) -> None:
        self.uses = uses
        self.label = SIMULATED

    async def fetch(self) -> list[GpuUse]:
        return list(self.uses)


def act(run: DemoRun) -> None:
    from extender.demo import schedule

    run.console.rule("[bold]Console: the cluster's GPUs, decisions and savings on one page")
    comps = run.app.state.ctx.components
    console: ConsoleComponent | None = comps.get("console")
    if console is None:
        run.console.print("console not running (console_enabled is false); skipped")
        return
    run.cluster.upsert(shared_node())
    names = [n["metadata"]["name"] for n in run.cluster.list("Node")]
    for pod, bind in share_pods():
        chosen = schedule(run.client, pod, names).chosen
        meta = pod["metadata"]
        where = chosen or "pending"
        if chosen and bind:
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = chosen
            bound["status"]["phase"] = "Running"
            run.cluster.upsert(bound)
        run.console.print(
            f"{meta['namespace']}/{meta['name']} asks {meta['annotations']['gpu-autoscaler.io/gpu-milli']}m "
            f"of one GPU -> {where}{'' if bind else ' (not bound yet: drawn as steered)'}"
        )
    waste = comps.get("waste")
    extender = comps.get("extender")
    if waste is not None and extender is not None and not run.settings.prometheus_url:
        waste.source = _Uses(simulated_uses(extender))
        scores = asyncio.run(waste.cycle())
        idle = sum(1 for s in scores if s.idle)
        run.console.print(
            f"utilisation: [yellow]{SIMULATED}[/yellow]; {len(scores)} GPUs scored, {idle} idle"
        )
    console.money.refresh(run.app.state.ctx)  # cost and savings with the webhook's recorded history
    data = run.client.get("/ui/data").json()
    s = data["summary"]
    run.console.print(
        f"console: {s['nodes']} GPU nodes, {s['gpus']} GPUs ({s['used']:g} in use), "
        f"{len(data['placements'] or [])} placements, {len(data['webhook'] or [])} admission reviews, "
        f"{len((data['autoscaler'] or {}).get('variants') or [])} autoscaled variants"
    )
    base = str(run.client.base_url).rstrip("/")
    run.console.print(
        f"[bold]console: {base}/ui[/bold] (up while the demo runs; `make console` or "
        "`gpu-autoscaler demo --keep-serving` keeps it open)"
    )
