"""Console first paint at 1,000 nodes: server time for GET /ui, page size, and (with Chromium) the browser's
first contentful paint and DOMContentLoaded.

    python -m bench.bench_console [--nodes 1000] [--runs 7] [--json]

Runs the real app (every default component) under uvicorn on loopback over a synthetic cluster: 8-GPU
nodes (70 % DGX H100 with NVLink, 20 % L40S on PCIe, 5 % A100 in MIG mode with a layout, 5 % L4 with
time-slicing), about half the GPUs held by running pods, waste scores for every held GPU and 200 scheduling
decisions in the extender's log (each filter over every node). Each "cold" run first binds one more pod,
so the map is rebuilt and re-rendered as after any cluster change; "warm" runs reuse the rendered map.
First paint is measured in headless Chromium (Performance API: `first-contentful-paint`, navigation
timing) when chromium and chromedriver are installed; the server figures are printed either way.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import random
import shutil
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
from app.waste.score import GpuUse
from bench.bench_extender import NV18, PCIE
from extender.demo import _pod as demo_pod
from extender.demo import schedule
from tests.chromium import binaries, chromium

MIG_LAYOUT = {"0": ["1g.10gb"] * 7, "1": ["2g.20gb"] * 3, "2": ["3g.40gb"] * 2, "3": ["1g.10gb"] * 7}
MIG_LAYOUT.update({str(i): ["7g.80gb"] for i in range(4, 8)})


def node(name: str, kind: str) -> dict[str, Any]:
    product = {"h100": "NVIDIA H100 80GB HBM3", "l40s": "NVIDIA L40S", "mig": "NVIDIA A100-SXM4-80GB"}
    product["l4"] = "NVIDIA L4"
    mig = kind == "mig"
    topo = {
        "version": 1,
        "gpus": [
            {
                "index": g,
                "uuid": f"GPU-{name}-{g}",
                "product": product[kind],
                "memoryMiB": 81559,
                "numaNode": g // 4,
                "pciBusId": f"0000:{16 + g:02X}:00.0",
                "migEnabled": mig,
                "allocated": False,
            }
            for g in range(8)
        ],
        "links": NV18 if kind in ("h100", "mig") else PCIE,
    }
    labels = {
        "kubernetes.io/hostname": name,
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.product": product[kind].replace(" ", "-"),
    }
    alloc = {"cpu": "224", "memory": "2015Gi", "nvidia.com/gpu": "8", "pods": "110"}
    annotations = {"gpu-autoscaler.io/topology": json.dumps(topo)}
    if mig:
        alloc["nvidia.com/gpu"] = "0"
        alloc.update({"nvidia.com/mig-1g.10gb": "14", "nvidia.com/mig-2g.20gb": "3"})
        alloc.update({"nvidia.com/mig-3g.40gb": "2", "nvidia.com/mig-7g.80gb": "4"})
        labels["nvidia.com/mig.strategy"] = "mixed"
        annotations["gpu-autoscaler.io/mig-layout"] = json.dumps(MIG_LAYOUT)
    if kind == "l4":
        alloc["nvidia.com/gpu"] = "32"
        labels["nvidia.com/gpu.sharing-strategy"] = "time-slicing"
        labels["nvidia.com/gpu.replicas"] = "4"
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1", "labels": labels,
                     "annotations": annotations},
        "spec": {},
        "status": {"allocatable": alloc, "capacity": dict(alloc),
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


def pods_for(name: str, kind: str, rng: random.Random) -> list[dict[str, Any]]:
    """About half of the node's GPUs held, as running pods bound to it."""
    out = []
    ns = rng.choice(["inference", "ml-team", "notebooks", "research", "data"])
    if kind == "mig":
        for i, profile in enumerate(("1g.10gb", "1g.10gb", "3g.40gb", "7g.80gb", "7g.80gb")):
            out.append(demo_pod(f"{name}-m{i}", ns, mig=profile, cpu="2", memory="8Gi"))
    elif kind == "l4":
        for i, milli in enumerate((500, 250, 500, 300, 700)):
            p = demo_pod(f"{name}-s{i}", ns, gpus=1, cpu="2", memory="8Gi")
            p["metadata"]["annotations"] = {"gpu-autoscaler.io/gpu-milli": str(milli)}
            out.append(p)
    else:
        left = 8
        i = 0
        while left > 4:
            size = rng.choice([1, 1, 2, 4])
            out.append(demo_pod(f"{name}-p{i}", ns, gpus=min(size, left), cpu="8", memory="64Gi"))
            left -= min(size, left)
            i += 1
    for p in out:
        p["spec"]["nodeName"] = name
        p["status"]["phase"] = "Running"
    return out


def build_cluster(n: int, seed: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    nodes, pods = [], []
    for i in range(n):
        r = rng.random()
        kind = "h100" if r < 0.7 else "l40s" if r < 0.9 else "mig" if r < 0.95 else "l4"
        name = f"node-{i:05d}"
        nodes.append(node(name, kind))
        pods += pods_for(name, kind, rng)
    return nodes, pods


class _Uses:
    def __init__(self, uses: list[GpuUse]) -> None:
        self.uses = uses

    async def fetch(self) -> list[GpuUse]:
        return self.uses


def _fill(app: Any, client: httpx.Client, names: list[str], decisions: int, rng: random.Random) -> None:
    """Waste scores for every held GPU; `decisions` scheduling decisions over every node."""
    ctx = app.state.ctx
    adapter = ctx.components["extender"].adapter
    uses = []
    for b in list(adapter.bound.values()):
        row = adapter.state.index[b.node]
        for g in adapter.gpu_phys(row, b.gpus) or [0]:
            uses.append(GpuUse(b.ask.namespace, b.ask.name, b.node, str(g), rng.random(), rng.random()))
    waste = ctx.components["waste"]
    waste.source = _Uses(uses)
    asyncio.run(waste.cycle())
    for i in range(decisions):
        pod = demo_pod(f"pending-{i}", "bench", gpus=rng.choice([1, 2, 4, 8]))
        schedule(client, pod, names)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(n: int, runs: int, decisions: int) -> dict[str, Any]:
    nodes, pods = build_cluster(n)
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    (tmp / "cluster.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes + pods}))
    cluster = SnapshotCluster(tmp / "cluster.json")
    port = free_port()
    # the console's background warmer off (one run at start): "every row rebuilt" must measure a rebuild
    app = create_app(Settings(cluster=str(tmp), port=port, console_refresh_seconds=3600), cluster=cluster)
    console = app.state.ctx.components["console"]
    rng = random.Random(2)
    out: dict[str, Any] = {"nodes": n, "pods": len(pods), "runs": runs, "decisions": decisions}
    bumps = [0]

    def change() -> None:
        """One more pod bound: its node's row is rebuilt, as after any single change."""
        p = copy.deepcopy(demo_pod(f"bump-{bumps[0]}", "bench", cpu="1", memory="1Gi"))
        p["spec"]["nodeName"] = nodes[bumps[0] % n]["metadata"]["name"]
        p["status"]["phase"] = "Running"
        cluster.upsert(p)
        bumps[0] += 1

    def forget() -> None:
        """Drop every cached row: what the first page after start or after a waste cycle costs."""
        console.state.nodes.clear()
        console._rows.clear()
        console._map_cache = None

    def timed(prepare: Any, url: str = "/ui") -> tuple[float, int]:
        prepare()
        t0 = time.perf_counter()
        r = client.get(url, headers={"Accept-Encoding": "identity"})
        return (time.perf_counter() - t0) * 1000, len(r.content)

    with (
        serve_in_thread(app, "127.0.0.1", port, ready_timeout=300) as base,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        names = [x["metadata"]["name"] for x in nodes]
        _fill(app, client, names, decisions, rng)
        console.money.refresh(app.state.ctx)
        client.get("/ui")  # templates compiled
        full = [timed(forget)[0] for _ in range(runs)]
        one = [timed(change) for _ in range(runs)]
        same = [timed(lambda: None)[0] for _ in range(runs)]
        poll = [timed(change, "/ui/sections")[0] for _ in range(runs)]
        gz = int(client.get("/ui", headers={"Accept-Encoding": "gzip"}).headers.get("content-length", 0))
        out["server"] = {
            "full_p50_ms": round(statistics.median(full), 1),
            "change_p50_ms": round(statistics.median(t for t, _ in one), 1),
            "change_max_ms": round(max(t for t, _ in one), 1),
            "unchanged_p50_ms": round(statistics.median(same), 1),
            "sections_p50_ms": round(statistics.median(poll), 1),
            "html_kib": round(one[-1][1] / 1024),
            "gzip_kib": round(gz / 1024),
            "cells": console.describe()["summary"]["gpus"],
        }
        out["browser"] = {
            "after_change": browser_paint(base, runs, change),
            "full_rebuild": browser_paint(base, runs, forget),
        }
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def _paint(driver: Any, console: bool = True) -> tuple[float, float, float, float]:
    """(first contentful paint, DOMContentLoaded end, load end, every map row in the page) of the page just
    loaded, in ms since navigation start; waits for the paint entry and, on the console, for its script
    to have put in the rows the first paint left out."""
    deadline = time.monotonic() + 10
    while True:
        t = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "const p = performance.getEntriesByName('first-contentful-paint')[0];"
            "const c = window.gpuConsole ? window.gpuConsole.completeAt : -1;"
            "return [p ? p.startTime : null, n.domContentLoadedEventEnd, n.loadEventEnd, c];"
        )
        done = t[0] is not None and (not console or t[3] is not None)
        if done or time.monotonic() > deadline:
            return float(t[0] or "nan"), float(t[1]), float(t[2]), float(t[3] if t[3] is not None else "nan")
        time.sleep(0.02)


def browser_paint(base: str, runs: int, prepare: Any) -> dict[str, Any] | None:
    """Load /ui `runs` times in headless Chromium, `prepare()` before each; Performance API figures."""
    if binaries() is None:
        return None
    fcp, dcl, load, complete, base_fcp = [], [], [], [], []
    with chromium() as driver:
        driver.get(base + "/ui")  # static assets cached, as for anyone who opened the console before
        for _ in range(runs):
            prepare()
            driver.get(base + "/ui")
            t = _paint(driver)
            fcp.append(t[0])
            dcl.append(t[1])
            load.append(t[2])
            complete.append(t[3])
            driver.get("data:text/html,<!DOCTYPE html><title>x</title><h1>baseline</h1>")
            base_fcp.append(_paint(driver, console=False)[0])
    return {
        "fcp_p50_ms": round(statistics.median(fcp), 1),
        "fcp_max_ms": round(max(fcp), 1),
        "trivial_page_fcp_p50_ms": round(statistics.median(base_fcp), 1),
        "dcl_p50_ms": round(statistics.median(dcl), 1),
        "load_p50_ms": round(statistics.median(load), 1),
        "all_rows_p50_ms": round(statistics.median(complete), 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--decisions", type=int, default=200)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    res = run(args.nodes, args.runs, args.decisions)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    s, b = res["server"], res["browser"]
    print(f"{res['nodes']} nodes, {s['cells']} GPU cells, {res['pods']} pods, {res['decisions']} decisions")
    print(f"GET /ui, every row rebuilt (start, waste cycle): p50 {s['full_p50_ms']} ms")
    print(f"GET /ui after one pod bound (one row rebuilt):   p50 {s['change_p50_ms']} ms")
    print(f"GET /ui, nothing changed:                        p50 {s['unchanged_p50_ms']} ms")
    print(f"GET /ui/sections after one pod bound:            p50 {s['sections_p50_ms']} ms")
    print(f"page: {s['html_kib']} KiB HTML, {s['gzip_kib']} KiB gzipped")
    for what, fig in b.items():
        if fig is None:
            print("browser: chromium/chromedriver not installed, first paint not measured")
            break
        print(
            f"Chromium, {what.replace('_', ' ')}: first contentful paint p50 {fig['fcp_p50_ms']} ms "
            f"(max {fig['fcp_max_ms']}), DOMContentLoaded p50 {fig['dcl_p50_ms']} ms, "
            f"load p50 {fig['load_p50_ms']} ms, every row in the page p50 {fig['all_rows_p50_ms']} ms; "
            f"a one-line page's FCP p50 {fig['trivial_page_fcp_p50_ms']} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
