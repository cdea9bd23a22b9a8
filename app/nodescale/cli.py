"""`gpu-autoscaler nodes plan`: what node autoscaling would do now, from a pure read of a cluster.

Reads the snapshot (`--cluster demo|PATH`, or the live API with `kube`), runs the same planner the loop runs,
changes nothing. JSON (`--output json`) is exactly `{"scale": [...], "drain": [...], "blocked": [...]}`.
Idle times come from the objects alone (node creation, finished GPU pods): the loop also remembers when it
last saw each node busy, so it can be later to call a node idle than this command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli import CliError

if TYPE_CHECKING:
    from app.nodescale.planner import Plan


def register(sub: Any) -> None:
    p = sub.add_parser("nodes", help="node autoscaling through Cluster API (MachineDeployments)")
    verbs = p.add_subparsers(dest="nodes_command", required=True, parser_class=type(p))
    plan_p = verbs.add_parser(
        "plan", help="which node groups would scale, which nodes would be drained, which are held and why"
    )
    plan_p.add_argument("--cluster", default=None, help="demo | kube | PATH (snapshot file or folder)")
    plan_p.add_argument("--output", default="table", choices=["table", "json"])
    plan_p.add_argument("--now", default=None, help="ISO time the plan is made at (default: now)")
    plan_p.add_argument("--prices", type=Path, default=None, help="JSON $/GPU-hour table (default: bundled)")
    plan_p.add_argument("--config", default=None, help="YAML file of settings (thresholds, selectors)")
    plan_p.set_defaults(func=run)


async def _read(args: argparse.Namespace) -> Plan:
    from app.commands.ops import _now
    from app.commands.serve import check_cluster
    from app.cost.prices import PriceError, load_prices
    from app.main import build_cluster
    from app.nodescale.planner import Inputs, Params, plan
    from app.settings import SettingsError, load_settings

    try:
        settings = load_settings({"cluster": args.cluster, "config": args.config})
        params = Params.from_settings(settings)
    except (SettingsError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    try:
        prices = load_prices(args.prices)
    except PriceError as exc:
        raise CliError(f"--prices: {exc}") from exc
    now = _now(args.now).timestamp()
    cluster = build_cluster(settings)
    check_cluster(cluster)
    await cluster.start()
    try:
        inputs = Inputs.read(cluster.list, now=now, prices=prices)
    finally:
        await cluster.stop()
    return plan(inputs, params)


def print_tables(p: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    from app.nodescale.planner import duration

    console = Console(file=sys.stdout, width=max(120, Console().width), soft_wrap=False)
    groups = Table(title="Node groups (Cluster API MachineDeployments)", title_justify="left")
    groups.add_column("group", no_wrap=True)
    for header in ("replicas", "min-max", "nodes", "template", "GPUs/node", "$/GPU-h", "spot", "problem"):
        groups.add_column(header)
    for g in p.groups:
        if "replicas" not in g:
            groups.add_row(g["group"], "—", "—", "—", "—", "—", "—", "—", g.get("problem") or "")
            continue
        price = "—" if g["usd_per_gpu_hour"] is None else f"{g['usd_per_gpu_hour']:.2f}"
        coming = f" (+{g['upcoming']} coming)" if g["upcoming"] else ""
        groups.add_row(
            g["group"],
            f"{g['replicas']}{coming}",
            f"{g['min']}-{g['max']}",
            ", ".join(g["nodes"]) or "—",
            g["template"] or "—",
            f"{g['gpus_per_node']}x {g['product'] or '?'}",
            price,
            "yes" if g["spot"] else "",
            g["problem"] or "",
        )
    console.print(groups)
    pending = [
        [v["pod"], v["gpus"], str(v["priority"]), duration(v["pending_s"]), v.get("status", "")]
        for v in p.pending
    ]
    sections: list[tuple[str, list[str], list[list[str]]]] = [
        (
            "Scale",
            ["group", "from", "to", "reason"],
            [[s.group, str(s.from_), str(s.to), s.reason] for s in p.scale],
        ),
        (
            "Drain",
            ["node", "pods to evict", "reason"],
            [[d.node, "\n".join(d.pods) or "—", d.reason] for d in p.drain],
        ),
        ("Blocked (would go, held)", ["node", "reason"], [[b.node, b.reason] for b in p.blocked]),
        ("Pending GPU pods", ["pod", "GPUs", "priority", "pending", "status"], pending),
    ]
    for title, headers, rows in sections:
        if not rows:
            console.print(f"{title}: none")
            continue
        t = Table(*headers, title=title, title_justify="left")
        for row in rows:
            t.add_row(*row)
        console.print(t)
    for note in p.notes:
        console.print(f"note: {note}")


def run(args: argparse.Namespace) -> int:
    from app.logging_setup import setup_logging

    setup_logging("WARNING")
    p = asyncio.run(_read(args))
    if args.output == "json":
        sys.stdout.write(json.dumps(p.to_dict(), indent=2) + "\n")
    else:
        print_tables(p)
    return 0
