"""Benchmark: one node-scaling plan for a 500-node GPU cluster (4 node groups of 125 nodes with 8 GPUs each,
~1,600 running pods, 40 Pending GPU pods, a tail of under-used nodes). Prints one JSON line.

The plan is what the loop runs off the event loop every `node_autoscaling_interval` (30 s): the extender's
node state rebuilt from the objects, the pending pods placed, the cheapest cover chosen, every scale-down
candidate drained in simulation.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from typing import Any

from app.cost.prices import load_prices
from app.nodescale.planner import Inputs, Params, plan

GROUPS, NODES_PER_GROUP, GPUS = 4, 125, 8
PRODUCTS = ("NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-L40S")
CREATED = "2025-06-01T00:00:00Z"
NOW = time.time()


def _node(name: str, product: str) -> dict[str, Any]:
    alloc = {"cpu": "192", "memory": "2000Gi", "pods": "110", "nvidia.com/gpu": str(GPUS)}
    labels = {
        "kubernetes.io/hostname": name,
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(GPUS),
    }
    return {
        "metadata": {"name": name, "creationTimestamp": CREATED, "labels": labels, "annotations": {}},
        "spec": {},
        "status": {"allocatable": alloc, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def _pod(name: str, gpus: int, node: str | None, pending_s: float = 0.0) -> dict[str, Any]:
    res = {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": str(gpus)}
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - pending_s)) if pending_s else CREATED
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"limits": res, "requests": res}}]}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {
            "name": name,
            "namespace": "bench",
            "uid": name,
            "creationTimestamp": created,
            "labels": {"app": name.rsplit("-", 1)[0]},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "controller": True}],
        },
        "spec": spec,
        "status": {"phase": "Running" if node else "Pending"},
    }


def cluster(seed: int = 7) -> Inputs:
    rng = random.Random(seed)
    nodes, pods, mds, machines = [], [], [], []
    for g in range(GROUPS):
        group = f"pool-{g}"
        ann = {
            "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size": "1",
            "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size": str(NODES_PER_GROUP + 20),
        }
        mds.append(
            {
                "metadata": {"name": group, "namespace": "capi", "annotations": ann, "labels": {}},
                "spec": {"replicas": NODES_PER_GROUP},
            }
        )
        for i in range(NODES_PER_GROUP):
            name = f"{group}-n{i}"
            nodes.append(_node(name, PRODUCTS[g]))
            machines.append(
                {
                    "metadata": {
                        "name": f"{name}-m",
                        "namespace": "capi",
                        "creationTimestamp": CREATED,
                        "labels": {"cluster.x-k8s.io/deployment-name": group},
                    },
                    "status": {"nodeRef": {"name": name}, "phase": "Running"},
                }
            )
            # most nodes nearly full, one in ten almost empty (scale-down candidates)
            left = 1 if i % 10 else GPUS - 1
            used = GPUS - left
            k = 0
            while used > 0:
                size = min(used, rng.choice((1, 2, 4)))
                pods.append(_pod(f"{name}-p{k}", size, name))
                used -= size
                k += 1
    for j in range(40):
        pods.append(_pod(f"pending-{j}", rng.choice((2, 4, 8)), None, pending_s=600))
    return Inputs(nodes, pods, mds, machines, [], now=NOW, prices=load_prices())


def _time(inputs: Inputs, params: Params) -> dict[str, Any]:
    times = []
    result = None
    for _ in range(5):
        start = time.perf_counter()
        result = plan(inputs, params)
        times.append(time.perf_counter() - start)
    assert result is not None
    return {
        "pending": sum(1 for p in inputs.pods if not p["spec"].get("nodeName")),
        "scale": [(s.group, s.from_, s.to) for s in result.scale],
        "drained": len(result.drain),
        "blocked": len(result.blocked),
        "median_s": round(statistics.median(times), 3),
        "max_s": round(max(times), 3),
    }


def main() -> None:
    inputs = cluster()
    params = Params(scale_down_max_nodes=10)
    # with Pending pods: scale-up plans, scale-down is held; without: every candidate is drained in simulation
    quiet = Inputs(
        inputs.nodes,
        [p for p in inputs.pods if p["spec"].get("nodeName")],
        inputs.machine_deployments,
        inputs.machines,
        [],
        now=inputs.now,
        prices=inputs.prices,
    )
    out = {"bench": "nodescale_plan", "nodes": len(inputs.nodes), "pods": len(inputs.pods)}
    print(json.dumps({**out, "scale_up": _time(inputs, params), "scale_down": _time(quiet, params)}))


if __name__ == "__main__":
    main()
