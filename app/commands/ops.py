"""Operator CLI: `gpu-autoscaler status|optimize|cost|report`.

The command only loads the cluster (a snapshot for `demo`/PATH, the live API for `kube`) and usage data
(Prometheus with `--prometheus-url`; the demo's recorded history on the demo cluster), calls the pure views
in `app/ops/` and `app/cost/`, and prints them: rich tables, markdown (`report`) or JSON (`--output json`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import CliError

if TYPE_CHECKING:  # the views load only when a view runs: `--help` and other commands stay cheap
    from app.cluster.base import Obj
    from app.cost.prices import PriceTable
    from app.ops.inventory import ClusterFacts
    from app.settings import Settings
    from app.waste.score import GpuUse, WasteScore
    from webhook.history import WorkloadKey
    from webhook.mig import Usage

log = logging.getLogger(__name__)

COMMANDS = {
    "status": "nodes, GPUs total/used/free per product, MIG slices, pods holding GPUs, GPU utilisation",
    "cost": "GPU cost per namespace and workload, monthly projection, idle-GPU cost",
    "optimize": "suggestions: MIG right-sizing, idle GPUs, fragmented nodes",
    "report": "status + cost + suggestions in one markdown document",
}


def register(sub: Any) -> None:
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--cluster", default=None, help="demo | kube | PATH (snapshot file or folder)")
        p.add_argument("--prometheus-url", default=None, help="DCGM usage history (waste, MIG suggestions)")
        p.add_argument("--output", default="table", choices=["table", "json"])
        p.add_argument("--prices", type=Path, default=None, help="JSON $/GPU-hour table (default: bundled)")
        p.add_argument("--now", default=None, help="ISO time costs are counted up to (default: now)")
        p.add_argument("--config", default=None, help="YAML file of settings")
        p.set_defaults(func=run, ops_view=name)


@dataclass
class Inputs:
    """Everything the views need, loaded once."""

    facts: ClusterFacts
    nodes: list[Obj]
    prices: PriceTable
    now: datetime
    settings: Settings
    usage: Mapping[WorkloadKey, Mapping[str, Usage]] = field(default_factory=dict)
    waste: list[WasteScore] = field(default_factory=list)
    #: per-GPU DCGM averages for `status` (None: no Prometheus given)
    gpu_use: list[GpuUse] | None = None
    notes: list[str] = field(default_factory=list)


def _now(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"--now: not an ISO time: {value!r}") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _demo_usage() -> Mapping[WorkloadKey, Mapping[str, Usage]]:
    """The webhook demo's recorded history (simulated DCGM), when it is available."""
    try:
        from webhook.demo import demo_history

        table: Mapping[WorkloadKey, Mapping[str, Usage]] = demo_history().table
        return table
    except (ImportError, AttributeError):  # pragma: no cover - the webhook demo is optional
        return {}


def usage_to_uses(facts: ClusterFacts, usage: Mapping[WorkloadKey, Mapping[str, Usage]]) -> list[GpuUse]:
    """Waste inputs from recorded history (peak memory share, p95 compute) for each pod of a workload."""
    from app.waste.score import GpuUse

    out: list[GpuUse] = []
    for pod in facts.holding():
        containers = usage.get(pod.workload)
        if not containers or pod.gpus != 1:
            continue
        u = max(containers.values(), key=lambda x: x.peak_memory_mib)
        mem = u.peak_memory_mib / u.gpu_memory_mib if u.gpu_memory_mib else None
        out.append(GpuUse(pod.namespace, pod.name, pod.node, "0", compute=u.p95_compute, memory=mem))
    return out


async def _prometheus(inputs: Inputs, url: str) -> None:
    from app.ops.status import UTIL_WINDOW
    from app.waste.collector import WasteCollector
    from app.waste.score import waste_scores
    from webhook.history import PrometheusHistory

    keys = sorted({p.workload for p in inputs.facts.holding() if p.gpus == 1 and not p.mig}, key=str)
    hist = PrometheusHistory(url, inputs.settings.history_window)
    collector = WasteCollector(url, inputs.settings.waste_window)
    per_gpu = WasteCollector(url, UTIL_WINDOW, per_gpu=True)
    try:
        sem = asyncio.Semaphore(8)

        async def one(key: WorkloadKey) -> tuple[WorkloadKey, dict[str, Usage]]:
            async with sem:
                return key, await hist.fetch(key)

        results = await asyncio.gather(*(one(k) for k in keys))
        inputs.usage = {k: v for k, v in results if v}
        inputs.waste = waste_scores(await collector.fetch())
        inputs.gpu_use = await per_gpu.fetch()
    except Exception as exc:
        raise CliError(f"prometheus {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        await hist.aclose()
        await collector.aclose()
        await per_gpu.aclose()


async def load_inputs(args: argparse.Namespace) -> Inputs:
    from app.commands.serve import check_cluster
    from app.cost.prices import PriceError, load_prices
    from app.main import build_cluster
    from app.ops.inventory import cluster_facts
    from app.settings import SettingsError, load_settings
    from app.waste.score import waste_scores

    try:
        settings = load_settings(
            {"cluster": args.cluster, "prometheus_url": args.prometheus_url, "config": args.config}
        )
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    try:
        prices = load_prices(args.prices)
    except PriceError as exc:
        raise CliError(f"--prices: {exc}") from exc
    cluster = build_cluster(settings)
    check_cluster(cluster)
    await cluster.start()
    try:
        nodes = cluster.list("Node")
        facts = cluster_facts(nodes, cluster.list("Pod"), cluster.source)
    finally:
        await cluster.stop()
    inputs = Inputs(facts, nodes, prices, _now(args.now), settings)
    if settings.prometheus_url:
        await _prometheus(inputs, settings.prometheus_url)
        inputs.notes.append(
            f"usage: Prometheus {settings.prometheus_url} "
            f"(history {settings.history_window}, waste {settings.waste_window})"
        )
    elif settings.cluster == "demo" or cluster.source.endswith("/demo"):
        inputs.usage = _demo_usage()
        inputs.waste = waste_scores(usage_to_uses(facts, inputs.usage))
        inputs.notes.append("usage: recorded demo history (simulated DCGM, no Prometheus)")
    else:
        inputs.notes.append("no usage data: pass --prometheus-url for MIG and idle-GPU suggestions")
    return inputs


def build(view: str, inputs: Inputs) -> dict[str, Any]:
    """The JSON document of one view (`report`: all three)."""
    from app.cost.report import cost
    from app.ops.optimize import optimize
    from app.ops.status import status

    st = status(inputs.facts, inputs.gpu_use)
    if view == "status":
        return st
    co = cost(inputs.facts, inputs.prices, inputs.now, inputs.waste)
    if view == "cost":
        return co
    s = inputs.settings
    op = optimize(
        inputs.facts,
        inputs.nodes,
        inputs.prices,
        inputs.usage,
        inputs.waste,
        s.mig_underuse_threshold,
        s.mig_headroom,
        inputs.notes,
    )
    op["waste"] = [
        {
            "namespace": w.namespace,
            "pod": w.pod,
            "node": w.node,
            "gpu": w.gpu,
            "score": w.score,
            "reasons": list(w.reasons),
        }
        for w in inputs.waste
    ]
    if view == "optimize":
        return op
    return {"status": st, "cost": co, "optimize": op}


# -- rendering -------------------------------------------------------------------------------------------
def _print_tables(view: str, doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from app.ops.report import sections, usd

    console = Console(file=sys.stdout, width=max(120, Console().width), soft_wrap=False)
    if view == "status":
        tot = doc["totals"]
        console.print(
            f"{tot['nodes']} GPU nodes · {tot['gpus']} GPUs ({tot['used']} used, {tot['free']} free) · "
            f"{tot['mig_slices']} MIG slices ({tot['mig_used']} used) · {tot['pods']} pods · {doc['source']}"
        )
        if doc.get("gpu_use") is None:
            console.print("GPU utilisation: pass --prometheus-url (DCGM exporter metrics)")
    elif view == "cost":
        tot = doc["totals"]
        console.print(
            f"Spend {usd(tot['usd_per_hour'])}/h · {usd(tot['usd_per_month'])}/month · idle "
            f"{usd(tot['idle_usd_per_hour'])}/h ({usd(tot['idle_usd_per_month'])}/month) · "
            f"prices: {doc['prices']}"
        )
    for title, headers, rows in sections(view, doc):
        t = Table(title=title, title_justify="left")
        for h in headers:
            t.add_column(h)
        for r in rows:
            t.add_row(*("—" if v is None else str(v) for v in r))
        console.print(t)
    if view == "cost" and doc["unpriced_products"]:
        console.print("No price for: " + ", ".join(doc["unpriced_products"]) + " (pass --prices FILE)")
    if view == "optimize":
        console.print(f"Total saving if all applied: {usd(doc['usd_per_hour_saved'])}/h")
        for note in doc["notes"]:
            console.print(f"note: {note}")


def run(args: argparse.Namespace) -> int:
    from app.logging_setup import setup_logging

    setup_logging("WARNING")
    view = str(args.ops_view)
    inputs = asyncio.run(load_inputs(args))
    doc = build(view, inputs)
    if args.output == "json":
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    elif view == "report":
        from app.ops.report import markdown

        sys.stdout.write(markdown(doc["status"], doc["cost"], doc["optimize"]))
    else:
        _print_tables(view, doc)
    return 0
