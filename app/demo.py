"""`gpu-autoscaler demo`: start the real server on the bundled demo cluster, drive it over HTTP, print decisions.

Each capability contributes an *act*: `act(run: DemoRun) -> None`, listed in DEMO_ACTS. An act talks to the
server only through `run.client` (real HTTP) and may edit the demo cluster through `run.cluster` to play the
part of the Kubernetes API (a pod got bound, load changed…).
"""

from __future__ import annotations

import argparse
import importlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console

from app.cli import CliError, add_server_flags
from app.cluster.snapshot import SnapshotCluster, SnapshotError
from app.settings import Settings

#: "module:function" of each act, in the order the day plays out
DEMO_ACTS: tuple[str, ...] = ("app.demo:act_cluster",)


@dataclass
class DemoRun:
    client: httpx.Client
    cluster: SnapshotCluster
    settings: Settings
    console: Console
    app: Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the service on the demo cluster, replay a scripted day, print decisions")
    add_server_flags(p)
    p.set_defaults(func=run)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def act_cluster(run: DemoRun) -> None:
    """What the service sees: nodes, GPUs, running pods."""
    from rich.table import Table

    run.console.rule("[bold]Demo cluster")
    health = run.client.get("/readyz").json()
    run.console.print(f"server ready: {health}")
    table = Table("node", "GPU product", "GPUs", "allocatable", "labels of note")
    for node in run.cluster.list("Node"):
        labels = node["metadata"].get("labels", {})
        alloc = node.get("status", {}).get("allocatable", {})
        gpus = {k: v for k, v in alloc.items() if k.startswith("nvidia.com/")}
        note = ", ".join(f"{k}={v}" for k, v in labels.items() if k.startswith("nvidia.com/mig"))
        table.add_row(
            node["metadata"]["name"],
            labels.get("nvidia.com/gpu.product", "?"),
            labels.get("nvidia.com/gpu.count", "?"),
            ", ".join(f"{k.removeprefix('nvidia.com/')}={v}" for k, v in gpus.items()),
            note[:60],
        )
    run.console.print(table)
    pods = run.cluster.list("Pod")
    run.console.print(f"{len(pods)} pods running, {len(run.cluster.list('Deployment'))} deployments")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from app.commands.serve import prepare
    from app.logging_setup import setup_logging
    from app.main import create_app

    if args.cluster is None:
        args.cluster = "demo"
    if args.port is None:
        args.port = _free_port(args.host or "127.0.0.1")
    settings = prepare(args)
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level)
    cluster = SnapshotCluster() if settings.cluster == "demo" else SnapshotCluster(__import__("pathlib").Path(settings.cluster))
    try:
        cluster.load()
    except SnapshotError as exc:
        raise CliError(f"cluster snapshot: {exc}") from exc
    app = create_app(settings, cluster=cluster)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
    thread.start()
    console = Console(width=140)
    base = f"http://{settings.host}:{settings.port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise CliError("demo server did not become ready within 30 s")
                time.sleep(0.05)
            demo = DemoRun(client=client, cluster=cluster, settings=settings, console=console, app=app)
            for ref in DEMO_ACTS:
                mod, _, fn = ref.partition(":")
                act: Callable[[DemoRun], None] = getattr(importlib.import_module(mod), fn)
                act(demo)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    console.rule("[bold green]demo finished")
    return 0
