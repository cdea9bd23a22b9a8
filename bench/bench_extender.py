"""Extender latency: p50/p99 of /filter and /prioritize at 100, 1,000, 5,000 nodes (8 GPUs each), both modes.

    python -m bench.bench_extender [--sizes 100,1000,5000] [--requests 200] [--json]

Runs the real app under uvicorn on loopback and times each HTTP call from the client (what kube-scheduler
waits for). Nodes are DGX-like (8 GPUs, NVLink or PCIe), about half their GPUs held by running pods.
Candidates per call: every node up to 1,000; 500 at 5,000 nodes (kube-scheduler's percentageOfNodesToScore
default sends 10 % there). The pod cycles through 1, 2, 4 and 8 GPUs; it keeps one uid, so each call replaces
the previous call's assumption (a steady state, not a cluster filling up).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.cluster.snapshot import SnapshotCluster
from app.inprocess import free_port, serve_in_thread
from app.main import create_app
from app.settings import Settings
from extender.component import ExtenderComponent

NV18 = [["X" if i == j else "NV18" for j in range(8)] for i in range(8)]
PCIE = [
    [
        "X" if i == j else ("PIX" if i // 2 == j // 2 else ("NODE" if i // 4 == j // 4 else "SYS"))
        for j in range(8)
    ]
    for i in range(8)
]


def node(name: str, rng: random.Random) -> dict[str, Any]:
    nv = rng.random() < 0.7
    allocated = {g for g in range(8) if rng.random() < 0.5}
    topo = {
        "version": 1,
        "gpus": [
            {
                "index": g,
                "uuid": f"GPU-{name}-{g}",
                "product": "NVIDIA H100 80GB HBM3" if nv else "NVIDIA L40S",
                "memoryMiB": 81559 if nv else 46068,
                "numaNode": g // 4,
                "pciBusId": f"0000:{16 + g:02X}:00.0",
                "migEnabled": False,
                "allocated": g in allocated,
            }
            for g in range(8)
        ],
        "links": NV18 if nv else PCIE,
    }
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "labels": {
                "kubernetes.io/hostname": name,
                "nvidia.com/gpu.count": "8",
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3" if nv else "NVIDIA-L40S",
            },
            "annotations": {"gpu-autoscaler.io/topology": json.dumps(topo)},
        },
        "spec": {},
        "status": {
            "allocatable": {"cpu": "224", "memory": "2015Gi", "nvidia.com/gpu": "8", "pods": "110"},
            "capacity": {"cpu": "224", "memory": "2015Gi", "nvidia.com/gpu": "8", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(gpus: int) -> dict[str, Any]:
    res = {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": str(gpus)}
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "bench", "namespace": "bench", "uid": "uid-bench", "annotations": {}},
        "spec": {
            "containers": [{"name": "main", "image": "x", "resources": {"limits": res, "requests": res}}]
        },
        "status": {"phase": "Pending"},
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_size(n: int, requests: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    nodes = [node(f"node-{i:05d}", rng) for i in range(n)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-extender-"))
    (tmp / "nodes.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
    cluster = SnapshotCluster(tmp / "nodes.json")
    port = free_port()
    app = create_app(Settings(cluster=str(tmp), port=port), cluster=cluster, components=[ExtenderComponent])
    k = min(n, 1000) if n <= 1000 else 500
    results = []
    with (
        serve_in_thread(app, "127.0.0.1", port, ready_timeout=120) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        for mode in ("nodeCacheCapable", "fullNodes"):
            bodies = []
            for i in range(8):
                cand = rng.sample(nodes, k)
                p = pod((1, 2, 4, 8)[i % 4])
                if mode == "nodeCacheCapable":
                    body = {"Pod": p, "Nodes": None, "NodeNames": [c["metadata"]["name"] for c in cand]}
                else:
                    body = {"Pod": p, "Nodes": {"metadata": {}, "items": cand}, "NodeNames": None}
                bodies.append(json.dumps(body).encode())
            for verb in ("filter", "prioritize"):
                for b in bodies[:4]:  # warm-up (full mode: first parse of each Node object)
                    client.post(f"/{verb}", content=b, headers={"Content-Type": "application/json"})
                times = []
                for i in range(requests):
                    b = bodies[i % len(bodies)]
                    t0 = time.perf_counter()
                    r = client.post(f"/{verb}", content=b, headers={"Content-Type": "application/json"})
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, r.text[:200]
                results.append(
                    {
                        "nodes": n,
                        "mode": mode,
                        "verb": verb,
                        "candidates": k,
                        "requests": requests,
                        "body_kib": round(statistics.mean(len(b) for b in bodies) / 1024, 1),
                        "p50_ms": round(pct(times, 0.50), 2),
                        "p99_ms": round(pct(times, 0.99), 2),
                    }
                )
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000,5000")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rows: list[dict[str, Any]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows.extend(run_size(n, args.requests))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'nodes':>6} {'mode':<17} {'verb':<11} {'cand':>5} {'body KiB':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(
            f"{r['nodes']:>6} {r['mode']:<17} {r['verb']:<11} {r['candidates']:>5} {r['body_kib']:>9} "
            f"{r['p50_ms']:>8} {r['p99_ms']:>8}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
