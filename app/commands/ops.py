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
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import CliError

if TYPE_CHECKING:  # the views load only when a view runs: `--help` and other commands stay cheap
    from app.cluster.base import Obj
    from app.cost.budgets import Budget
    from app.cost.prices import PriceTable
    from app.ops.inventory import ClusterFacts
    from app.settings import Settings
    from app.waste.score import GpuUse, WasteScore
    from webhook.history import WorkloadKey
    from webhook.mig import Usage

log = logging.getLogger(__name__)

COMMANDS = {
    "status": "nodes, GPUs total/used/free per product, MIG slices, pods holding GPUs, GPU utilisation",
    "cost": "GPU-hours and $ per namespace, workload and cost centre over a window; budgets; idle cost",
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
        p.add_argument("--now", "--until", dest="now", default=None, help="ISO time costs are counted up to")
        p.add_argument(
            "--since",
            default=None,
            help="window start: ISO time or a duration back from --until (7d, 24h); default: the month so "
            "far with Prometheus history, else since each running pod started",
        )
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
    uses: list[GpuUse] = field(default_factory=list)
    #: per-GPU DCGM averages for `status` (None: no Prometheus given)
    gpu_use: list[GpuUse] | None = None
    notes: list[str] = field(default_factory=list)
    since: datetime | None = None
    budgets: list[Budget] = field(default_factory=list)
    budget_errors: list[str] = field(default_factory=list)
    #: recorded cost series (app.cost.history.tables) over the window and over the budget month
    history: dict[str, Any] = field(default_factory=dict)
    month: dict[str, Any] = field(default_factory=dict)


def _now(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"--now: not an ISO time: {value!r}") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)([mhdw])")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


def _since(value: str | None, until: datetime) -> datetime | None:
    """`--since`: an ISO time, or a duration back from `until` (`90m`, `24h`, `7d`, `2w`)."""
    if not value:
        return None
    m = _DURATION.fullmatch(value.strip())
    if m:
        since = until - timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
    else:
        try:
            since = _now(value)
        except CliError as exc:
            raise CliError(f"--since: not an ISO time or a duration such as 7d, 24h: {value!r}") from exc
    if since >= until:
        raise CliError(f"--since {value}: must be before --until {until.isoformat()}")
    return since


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
        inputs.uses = await collector.fetch()
        inputs.waste = waste_scores(inputs.uses)
        inputs.gpu_use = await per_gpu.fetch()
        await _cost_history(inputs, url)
    except Exception as exc:
        raise CliError(f"prometheus {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        await hist.aclose()
        await collector.aclose()
        await per_gpu.aclose()


async def _cost_history(inputs: Inputs, url: str) -> None:
    """Recorded cost series over the window and over the budget month (empty when the rules are absent)."""
    import httpx

    from app.cost import history
    from app.cost.budgets import month_start

    start = month_start(inputs.now)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0)) as client:
        window = await history.fetch(client, url, history.build_queries(inputs.since or start, inputs.now))
        inputs.history = history.tables(window)
        if inputs.since is None or inputs.since == start:
            inputs.month = inputs.history
        else:
            month = await history.fetch(client, url, history.budget_spend_queries(start, inputs.now))
            inputs.month = history.tables(month)
    if not inputs.history:
        inputs.notes.append(
            "no recorded cost series in Prometheus for the window (are the recording rules of "
            "manifests/monitoring/ installed?): point-in-time view"
        )


def _load_budgets(inputs: Inputs, cluster: Any) -> None:
    from app.cost.budgets import parse_budgets

    name, ns = inputs.settings.budgets_configmap, inputs.settings.namespace
    cm = cluster.get("ConfigMap", name, ns)
    if cm is not None:
        inputs.budgets, inputs.budget_errors = parse_budgets(cm.get("data"), f"{ns}/{name}")


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
        prices = load_prices(args.prices or settings.prices_file)
    except PriceError as exc:
        raise CliError(f"--prices: {exc}") from exc
    cluster = build_cluster(settings)
    check_cluster(cluster)
    await cluster.start()
    now = _now(args.now)
    since = _since(args.since, now)
    try:
        nodes = cluster.list("Node")
        facts = cluster_facts(nodes, cluster.list("Pod"), cluster.source)
        inputs = Inputs(facts, nodes, prices, now, settings, since=since)
        _load_budgets(inputs, cluster)
    finally:
        await cluster.stop()
    if settings.prometheus_url:
        await _prometheus(inputs, settings.prometheus_url)
        inputs.notes.append(
            f"usage: Prometheus {settings.prometheus_url} "
            f"(history {settings.history_window}, waste {settings.waste_window})"
        )
    elif settings.cluster == "demo" or cluster.source.endswith("/demo"):
        inputs.usage = _demo_usage()
        inputs.uses = usage_to_uses(facts, inputs.usage)
        inputs.waste = waste_scores(inputs.uses)
        inputs.notes.append("usage: recorded demo history (simulated DCGM, no Prometheus)")
    else:
        inputs.notes.append("no usage data: pass --prometheus-url for MIG and idle-GPU suggestions")
    return inputs


def build(view: str, inputs: Inputs) -> dict[str, Any]:
    """The JSON document of one view (`report`: all three)."""
    from app.cost.attribution import attribute
    from app.cost.report import cost_view
    from app.ops.optimize import optimize
    from app.ops.status import status

    st = status(inputs.facts, inputs.gpu_use)
    if view == "status":
        return st
    co = cost_view(
        inputs.facts,
        attribute(inputs.facts, inputs.prices, inputs.uses),
        inputs.now,
        since=inputs.since,
        history=inputs.history,
        month=inputs.month,
        budgets=inputs.budgets,
        budget_errors=inputs.budget_errors,
        waste=inputs.waste,
        prices_origin=inputs.prices.origin,
    )
    co["notes"] = list(dict.fromkeys([*inputs.notes, *co["notes"]]))
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

    from app.ops.report import sections, spent_window, usd

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
            f"Spent {usd(tot['cost_usd'])} {spent_window(doc)} · now {usd(tot['usd_per_hour'])}/h "
            f"({usd(tot['usd_per_month'])}/month) · idle {usd(tot['idle_usd_per_hour'])}/h "
            f"({usd(tot['idle_usd_per_month'])}/month) · source: {doc['source']} · prices: {doc['prices']}"
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
    if view == "cost":
        for note in [*doc["notes"], *(f"budget skipped: {e}" for e in doc["budget_errors"])]:
            console.print(f"note: {note}")
    if view == "optimize":
        console.print(
            f"Total saving if all applied: {usd(doc['usd_per_month_saved'])}/month "
            f"({usd(doc['usd_per_hour_saved'])}/h)"
        )
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
