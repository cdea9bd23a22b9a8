"""`gpu-autoscaler demo`: start the real server on the demo cluster, drive it over HTTP, print decisions.

Each capability contributes an *act*: `act(run: DemoRun) -> None`, listed in DEMO_ACTS. An act talks to the
server only through `run.client` (real HTTP) and may edit the demo cluster through `run.cluster` to play the
part of the Kubernetes API (a pod got bound, load changed…).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from app.cli import CliError, add_server_flags
from app.cluster.snapshot import SnapshotCluster, SnapshotError
from app.inprocess import free_port, serve_in_thread
from app.settings import Settings

#: "module:function" of each act, in the order the day plays out
DEMO_ACTS: tuple[str, ...] = (
    "app.demo:act_cluster",
    "extender.demo:act",
    "app.autoscaler.demo:act",
    "app.autoscaler.demo:act_zero",
    "extender.replay.demo:act",
    "webhook.demo:act",
    "app.nodescale.demo:act",
    "app.mig.demo:act",
    "app.cost.demo:act",
    "app.console.demo:act",
)


@dataclass
class DemoRun:
    client: httpx.Client
    cluster: SnapshotCluster
    settings: Settings
    console: Console
    app: Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="run the service on the demo cluster, replay a scripted day, print decisions"
    )
    add_server_flags(p)
    p.add_argument(
        "--keep-serving",
        action="store_true",
        help="after the acts, keep the server up (open the console it prints) until Ctrl-C",
    )
    p.set_defaults(func=run)


def act_cluster(run: DemoRun) -> None:
    """What the service sees: nodes, GPUs and their links, running pods, the variants it scales."""
    import json

    from rich.table import Table

    run.console.rule("[bold]Demo cluster")
    health = run.client.get("/readyz").json()
    run.console.print(f"server ready: {health}")
    pods = run.cluster.list("Pod")
    table = Table("node", "GPU product", "GPUs used", "interconnect", "MIG slices (allocatable)", "pods")
    for node in run.cluster.list("Node"):
        name = node["metadata"]["name"]
        labels = node["metadata"].get("labels", {})
        alloc = node.get("status", {}).get("allocatable", {})
        topo = json.loads(
            node["metadata"].get("annotations", {}).get("gpu-autoscaler.io/topology", "{}") or "{}"
        )
        gpus = topo.get("gpus", [])
        used = (
            f"{sum(bool(g.get('allocated')) for g in gpus)}/{len(gpus)}"
            if gpus
            else labels.get("nvidia.com/gpu.count", "?")
        )
        links = {tok for row in topo.get("links", []) for tok in row if tok != "X"}
        numa = len({g.get("numaNode") for g in gpus})
        mig = ", ".join(f"{k.removeprefix('nvidia.com/mig-')}={v}" for k, v in alloc.items() if "/mig-" in k)
        on_node = sorted(p["metadata"]["name"] for p in pods if p.get("spec", {}).get("nodeName") == name)
        table.add_row(
            name,
            labels.get("nvidia.com/gpu.product", "?"),
            used,
            f"{'/'.join(sorted(links)) or '?'}, {numa} NUMA",
            mig or "-",
            "\n".join(on_node) or "-",
        )
    run.console.print(table)
    variants = Table("variant", "model", "accelerator", "cost", "replicas (ready)")
    for va in run.cluster.list("VariantAutoscaling"):
        meta, spec = va["metadata"], va.get("spec", {})
        target = spec.get("scaleTargetRef", {}).get("name", "")
        dep = run.cluster.get("Deployment", target, meta.get("namespace", "")) or {}
        st = dep.get("status", {})
        variants.add_row(
            f"{meta.get('namespace')}/{meta['name']}",
            spec.get("modelID", "?"),
            meta.get("labels", {}).get("inference.optimization/acceleratorName", "?"),
            spec.get("variantCost", "10.0"),
            f"{st.get('replicas', dep.get('spec', {}).get('replicas', '?'))} ({st.get('readyReplicas', 0)})",
        )
    run.console.print(variants)
    metrics = run.client.get("/metrics").text
    ours = sorted(
        {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line and line[0] != "#"}
    )
    run.console.print(
        f"{len(pods)} pods running; /metrics exports {len(ours)} series families: {', '.join(ours)}"
    )


def keep_serving(console: Console, base: str) -> None:
    """Leave the demo's server up so people can look around (the console at /ui) until Ctrl-C."""
    import time

    console.rule("[bold green]demo played; still serving")
    console.print(f"console: {base}/ui  ·  API: {base}/docs  ·  Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        console.print("stopping")


def run(args: argparse.Namespace) -> int:
    from app.commands.serve import prepare
    from app.logging_setup import setup_logging
    from app.main import create_app

    if args.cluster is None:
        args.cluster = "demo"
    if args.port is None:
        args.port = free_port(args.host or "127.0.0.1")
    settings = prepare(args)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    cluster = SnapshotCluster() if settings.cluster == "demo" else SnapshotCluster(Path(settings.cluster))
    try:
        cluster.load()
    except SnapshotError as exc:
        raise CliError(f"cluster snapshot: {exc}") from exc
    app = create_app(settings, cluster=cluster)
    console = Console(width=140)
    try:
        with (
            serve_in_thread(app, settings.host, settings.port) as base,
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            demo = DemoRun(client=client, cluster=cluster, settings=settings, console=console, app=app)
            for ref in DEMO_ACTS:
                mod, _, fn = ref.partition(":")
                act: Callable[[DemoRun], None] = getattr(importlib.import_module(mod), fn)
                act(demo)
            if getattr(args, "keep_serving", False):
                keep_serving(console, base)
    except TimeoutError as exc:
        raise CliError(f"demo: {exc}") from exc
    console.rule("[bold green]demo finished")
    return 0
