"""Extender cost against the HTTP floor: filter + prioritize of a GPU pod vs the same two calls for a pod that
asks no GPU (passed through: HTTP, JSON and the framework, no decision).

    python -m bench.bench_extender_floor [--nodes 1000] [--pods 800] [--names 500] [--requests 300]

The service runs as `gpu-autoscaler serve` in its own process on a snapshot (as in a cluster) and a
keep-alive client calls it as kube-scheduler does (nodeCacheCapable: NodeNames). Nodes carry the topology
annotation (70 % NV18, 30 % PCIe), `--pods` pods of 1, 2, 4 or 8 GPUs are running, each request names
`--names` random nodes. Every GPU pod is new (its own uid), as kube-scheduler's queue would send them, so
the cluster fills up slowly through the assumptions. Target (issue 10): p50 ratio ≤ 2.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

import httpx

from bench.bench_extender import node, pct
from tests.integration.kube_scheduler_sim import gpu_pod, serve


def cluster(n_nodes: int, n_pods: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    nodes = [node(f"node-{i:05d}", rng) for i in range(n_nodes)]
    for nd in nodes:  # the pods below hold the GPUs; the agent's flags would double-count them
        topo = json.loads(nd["metadata"]["annotations"]["gpu-autoscaler.io/topology"])
        for g in topo["gpus"]:
            g["allocated"] = False
        nd["metadata"]["annotations"]["gpu-autoscaler.io/topology"] = json.dumps(topo)
    free = {nd["metadata"]["name"]: 8 for nd in nodes}
    names = list(free)
    pods: list[dict[str, Any]] = []
    while len(pods) < n_pods:
        k = rng.choice((1, 1, 1, 2, 2, 4, 8))
        name = rng.choice(names)
        if free[name] < k:
            continue
        free[name] -= k
        p = gpu_pod(f"running-{len(pods):05d}", k, namespace="bench")
        p["spec"]["nodeName"] = name
        p["status"]["phase"] = "Running"
        pods.append(p)
    return [*nodes, *pods]


def pair(client: httpx.Client, body: bytes) -> float:
    """ms for filter + prioritize of one pod (prioritize gets the names filter passed), as kube-scheduler
    calls them; building the second body is the client's work and is not counted."""
    headers = {"Content-Type": "application/json"}
    t0 = time.perf_counter()
    filt = client.post("/filter", content=body, headers=headers).json()
    t1 = time.perf_counter()
    req = json.loads(body)
    req["NodeNames"] = filt["NodeNames"]
    prio_body = json.dumps(req).encode()
    t2 = time.perf_counter()
    client.post("/prioritize", content=prio_body, headers=headers)
    return (t1 - t0 + time.perf_counter() - t2) * 1000


def measure(base: str, floor_bodies: list[bytes], gpu_bodies: list[bytes]) -> tuple[list[float], list[float]]:
    """Floor and GPU pairs alternate, so drifting machine load hits both alike."""
    floor, gpu = [], []
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(20):  # warm-up: connections, first-call imports, the first parse of each shape
            pair(client, floor_bodies[i % len(floor_bodies)])
            pair(client, gpu_bodies[-1 - i])
        for f, g in zip(floor_bodies, gpu_bodies, strict=True):
            floor.append(pair(client, f))
            gpu.append(pair(client, g))
    return floor, gpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=800)
    p.add_argument("--names", type=int, default=500)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    objs = cluster(args.nodes, args.pods)
    names = [o["metadata"]["name"] for o in objs if o["kind"] == "Node"]
    rng = random.Random(11)
    gpu_bodies, floor_bodies = [], []
    for i in range(args.requests):
        sample = rng.sample(names, min(args.names, len(names)))
        gpu = gpu_pod(f"new-{i:05d}", rng.choice((1, 1, 2, 4)), namespace="bench")
        cpu = gpu_pod(f"cpu-{i:05d}", 1, namespace="bench")
        res = cpu["spec"]["containers"][0]["resources"]
        for part in ("limits", "requests"):
            del res[part]["nvidia.com/gpu"]
        gpu_bodies.append(json.dumps({"Pod": gpu, "NodeNames": sample}).encode())
        floor_bodies.append(json.dumps({"Pod": cpu, "NodeNames": sample}).encode())
    with serve(objs) as svc:
        floor, gpu = measure(svc.url, floor_bodies, gpu_bodies)
    row = {
        "nodes": args.nodes,
        "running_pods": args.pods,
        "names": args.names,
        "requests": args.requests,
        "floor_p50_ms": round(statistics.median(floor), 2),
        "gpu_p50_ms": round(statistics.median(gpu), 2),
        "gpu_p99_ms": round(pct(gpu, 0.99), 2),
        "ratio_p50": round(statistics.median(gpu) / statistics.median(floor), 2),
    }
    print(json.dumps(row) if args.json else "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
