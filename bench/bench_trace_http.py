"""The extender's HTTP path under the Alibaba trace: `default` replayed through /filter + /prioritize.

    python -m bench.bench_trace_http [--pods 2000 | --all] [--candidates 497] [--json]

What it does, as kube-scheduler would with `nodeCacheCapable: true`:

- builds the 1,213 GPU nodes of `openb_node_list_gpu_node.csv` as Node objects (GFD labels, the trace's
  model as `nvidia.com/gpu.product`, time-slicing with 10 replicas so `nvidia.com/gpu` = GPUs x 10 and the
  sharing pods are accepted) into a temporary snapshot, and serves the real app (uvicorn, 127.0.0.1, a free
  port, in a thread of this process so bound pods can be fed back into its cluster view);
- replays the first N pods of `openb_pod_list_default.csv` in CSV order as Pod JSON (cpu / memory requests,
  `nvidia.com/gpu`, `gpu-autoscaler.io/gpu-milli` for shares, `gpu-autoscaler.io/gpu-product` from gpu_spec);
- per GPU pod: the feasible sample kube-scheduler sends (its in-tree filters keep nodes with room for the
  pod's CPU, memory and `nvidia.com/gpu` count; percentageOfNodesToScore stops at 497 of 1,213 nodes,
  scanning on from where the last cycle stopped), POST /filter, POST /prioritize with the names that
  passed, the first top-scored host wins and the pod is bound there (fed to the cluster view with
  `spec.nodeName`: the server turns its assumption into the placement);
- CPU-only pods are not sent (no managed resource); they are bound to the first node of their sample so
  CPU and memory fill up as in the trace.

Times are client-side wall time per call (encode excluded; HTTP + parse + decide + serialise included).
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.cluster.snapshot import SnapshotCluster
from app.inprocess import free_port, serve_in_thread
from app.main import create_app
from app.settings import Settings
from extender.component import ExtenderComponent
from extender.replay import datasets

DATA = datasets.find(datasets.NODES_CSV, datasets.pods_csv("default")) or datasets.BUNDLED
REPLICAS = 10
#: kube-scheduler's numFeasibleNodesToFind for 1,213 nodes: (50 - 1213 // 125) % = 41 % -> 497 nodes
DEFAULT_CANDIDATES = 497


@dataclass
class TraceNode:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    model: str


@dataclass
class TracePod:
    name: str
    cpu_milli: int
    memory_mib: int
    gpus: int
    gpu_milli: int
    gpu_spec: str


def load_nodes(path: Path) -> list[TraceNode]:
    with path.open() as f:
        return [
            TraceNode(r["sn"], int(r["cpu_milli"]), int(r["memory_mib"]), int(r["gpu"]), r["model"])
            for r in csv.DictReader(f)
        ]


def load_pods(path: Path, limit: int | None) -> list[TracePod]:
    out: list[TracePod] = []
    with path.open() as f:
        for r in csv.DictReader(f):
            if limit is not None and len(out) >= limit:
                break
            out.append(
                TracePod(
                    r["name"],
                    int(r["cpu_milli"]),
                    int(r["memory_mib"]),
                    int(r["num_gpu"]),
                    int(r["gpu_milli"]),
                    r["gpu_spec"],
                )
            )
    return out


def node_object(n: TraceNode) -> dict[str, Any]:
    """A Node as the API shows it on a time-slicing pool (GFD labels, allocatable = GPUs x replicas)."""
    alloc = {
        "cpu": f"{n.cpu_milli}m",
        "memory": f"{n.memory_mib}Mi",
        "nvidia.com/gpu": str(n.gpus * REPLICAS),
        "pods": "110",
    }
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": n.name,
            "uid": f"uid-{n.name}",
            "resourceVersion": "1",
            "labels": {
                "kubernetes.io/hostname": n.name,
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.count": str(n.gpus),
                "nvidia.com/gpu.product": f"{n.model}-SHARED",
                "nvidia.com/gpu.replicas": str(REPLICAS),
                "nvidia.com/gpu.sharing-strategy": "time-slicing",
                "nvidia.com/mig.strategy": "none",
            },
        },
        "spec": {},
        "status": {
            "allocatable": alloc,
            "capacity": dict(alloc),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod_object(p: TracePod, node: str | None = None) -> dict[str, Any]:
    res = {"cpu": f"{p.cpu_milli}m", "memory": f"{p.memory_mib}Mi"}
    ann: dict[str, str] = {}
    if p.gpus:
        res["nvidia.com/gpu"] = str(p.gpus)
        if p.gpu_milli < 1000:
            ann["gpu-autoscaler.io/gpu-milli"] = str(p.gpu_milli)
    if p.gpu_spec:
        ann["gpu-autoscaler.io/gpu-product"] = p.gpu_spec.replace("|", ",")
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "x", "resources": {"requests": res, "limits": dict(res)}}],
        "schedulerName": "default-scheduler",
    }
    if node:
        spec["nodeName"] = node
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": p.name, "namespace": "openb", "uid": f"uid-{p.name}", "annotations": ann},
        "spec": spec,
        "status": {"phase": "Running" if node else "Pending"},
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


class Sampler:
    """kube-scheduler's side: in-tree NodeResourcesFit over cpu, memory and nvidia.com/gpu (replicas), and
    the rotating search that stops at `k` feasible nodes (percentageOfNodesToScore)."""

    def __init__(self, nodes: list[TraceNode], k: int) -> None:
        self.names = [n.name for n in nodes]
        self.cpu = np.array([n.cpu_milli for n in nodes], dtype=np.int64)
        self.mem = np.array([n.memory_mib for n in nodes], dtype=np.int64)
        self.gpu = np.array([n.gpus * REPLICAS for n in nodes], dtype=np.int64)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.k = k
        self.start = 0

    def sample(self, p: TracePod) -> list[str]:
        n = len(self.names)
        ok = (self.cpu >= p.cpu_milli) & (self.mem >= p.memory_mib) & (self.gpu >= p.gpus)
        order = np.roll(np.arange(n), -self.start)
        hits = np.flatnonzero(ok[order])[: self.k]
        if len(hits) == 0:
            return []
        self.start = (self.start + int(hits[-1]) + 1) % n  # next cycle scans on from here
        return [self.names[int(i)] for i in order[hits]]

    def bind(self, name: str, p: TracePod) -> None:
        i = self.index[name]
        self.cpu[i] -= p.cpu_milli
        self.mem[i] -= p.memory_mib
        self.gpu[i] -= p.gpus


def run(pods_limit: int | None, k: int, warmup: int = 20) -> dict[str, Any]:
    nodes = load_nodes(DATA / "openb_node_list_gpu_node.csv")
    pods = load_pods(DATA / "openb_pod_list_default.csv", pods_limit)
    tmp = Path(tempfile.mkdtemp(prefix="bench-trace-http-"))
    snap = tmp / "nodes.json"
    snap.write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": [node_object(n) for n in nodes]})
    )
    cluster = SnapshotCluster(snap)
    port = free_port()
    settings = Settings.model_validate(
        {"cluster": str(snap), "port": port, "log_level": "WARNING", "assume_ttl_seconds": 3600}
    )
    app = create_app(settings, cluster=cluster, components=[ExtenderComponent])
    sampler = Sampler(nodes, k)
    t_filter: list[float] = []
    t_prio: list[float] = []
    t_both: list[float] = []
    cand: list[int] = []
    passed_n: list[int] = []
    stats = {"gpu_pods": 0, "cpu_only_pods": 0, "placed": 0, "unschedulable": 0, "shared": 0}
    headers = {"Content-Type": "application/json"}
    with serve_in_thread(app, "127.0.0.1", port, ready_timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def post(path: str, body: bytes) -> tuple[Any, float]:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            dt = (time.perf_counter() - t0) * 1000
            if resp.status != 200:
                raise RuntimeError(f"{path}: HTTP {resp.status}: {data[:200]!r}")
            return json.loads(data), dt

        wall0 = time.perf_counter()
        busy = 0.0
        for j, p in enumerate(pods):
            names = sampler.sample(p)
            if not p.gpus:
                stats["cpu_only_pods"] += 1
                if names:
                    sampler.bind(names[0], p)
                    cluster.upsert(pod_object(p, names[0]))
                continue
            stats["gpu_pods"] += 1
            stats["shared"] += p.gpu_milli < 1000
            if not names:
                stats["unschedulable"] += 1
                continue
            pod = pod_object(p)
            filt, df = post("/filter", json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode())
            ok = filt["NodeNames"] or []
            dp = 0.0
            host = None
            if len(ok) > 1:
                prio, dp = post(
                    "/prioritize", json.dumps({"Pod": pod, "Nodes": None, "NodeNames": ok}).encode()
                )
                best = max(h["Score"] for h in prio)
                host = next(h["Host"] for h in prio if h["Score"] == best)
            elif ok:
                host = ok[0]  # kube-scheduler skips prioritize with one feasible node
            if j >= warmup:
                t_filter.append(df)
                if dp:
                    t_prio.append(dp)
                t_both.append(df + dp)
                cand.append(len(names))
                passed_n.append(len(ok))
            busy += df + dp
            if host is None:
                stats["unschedulable"] += 1
                continue
            sampler.bind(host, p)
            cluster.upsert(pod_object(p, host))  # the watch delivers the bound pod
            stats["placed"] += 1
        wall = time.perf_counter() - wall0
        # the floor: a pod asking no GPU is passed through untouched (HTTP + JSON + framework, no decision)
        idle = pod_object(TracePod("floor", 1000, 1024, 0, 0, ""))
        body = json.dumps({"Pod": idle, "Nodes": None, "NodeNames": sampler.names[:k]}).encode()
        t_floor = [post("/filter", body)[1] for _ in range(200)]
        conn.close()
    comp = app.state.ctx.components["extender"]
    st_ = comp.adapter.state
    used = st_.used_gpu_milli()
    return {
        "nodes": len(nodes),
        "pods": len(pods),
        **stats,
        "candidates_mean": round(statistics.mean(cand), 1) if cand else 0,
        "passed_mean": round(statistics.mean(passed_n), 1) if passed_n else 0,
        "gpu_alloc_pct": round(100 * used / st_.total_gpu_milli(), 2),
        "filter_p50_ms": round(pct(t_filter, 0.5), 2),
        "filter_p99_ms": round(pct(t_filter, 0.99), 2),
        "prioritize_p50_ms": round(pct(t_prio, 0.5), 2),
        "prioritize_p99_ms": round(pct(t_prio, 0.99), 2),
        "both_p50_ms": round(pct(t_both, 0.5), 2),
        "both_p99_ms": round(pct(t_both, 0.99), 2),
        "passthrough_p50_ms": round(pct(t_floor, 0.5), 2),
        "replay_pods_per_s": round(len(pods) / wall, 1),
        "extender_gpu_pods_per_s": round(stats["gpu_pods"] / (busy / 1000), 1) if busy else 0,
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--pods", type=int, default=2000, help="replay the first N pods (CSV order)")
    p.add_argument("--all", action="store_true", help="replay all 8,152 pods")
    p.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES, help="NodeNames per request")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    out = run(None if args.all else args.pods, args.candidates)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(
        f"{out['nodes']} nodes, {out['pods']} pods ({out['gpu_pods']} GPU, {out['shared']} shared, "
        f"{out['cpu_only_pods']} CPU-only); placed {out['placed']}, unschedulable {out['unschedulable']}; "
        f"GPU allocated {out['gpu_alloc_pct']} %"
    )
    print(f"candidates per request {out['candidates_mean']}, passing filter {out['passed_mean']}")
    print(f"{'verb':<22} {'p50 ms':>8} {'p99 ms':>8}")
    for verb, key in (("filter", "filter"), ("prioritize", "prioritize"), ("filter + prioritize", "both")):
        print(f"{verb:<22} {out[key + '_p50_ms']:>8} {out[key + '_p99_ms']:>8}")
    print(f"{'passthrough (floor)':<22} {out['passthrough_p50_ms']:>8}")
    print(
        f"replay {out['replay_pods_per_s']} pods/s (client included, {out['wall_s']} s); "
        f"extender time alone {out['extender_gpu_pods_per_s']} GPU pods/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
