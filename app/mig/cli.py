"""`gpu-autoscaler mig plan` and `gpu-autoscaler sharing plan`: what the controllers would do, read from a
snapshot (or the live cluster), never written: the same planning code as the background loops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.cli import CliError


def register(sub: Any) -> None:
    mig = sub.add_parser("mig", help="MIG layout controller: show the plan (per node: keep / reconfigure)")
    mig_sub = mig.add_subparsers(dest="mig_command", required=True)
    p = mig_sub.add_parser("plan", help="the MIG layout each node should take, and why")
    _common(p)
    p.add_argument("--mig-config", type=Path, default=None, help="mig-parted config file (or its ConfigMap)")
    p.set_defaults(func=run, controller="mig")

    sharing = sub.add_parser("sharing", help="GPU-sharing controller: show the plan (the sharing pool)")
    sharing_sub = sharing.add_subparsers(dest="sharing_command", required=True)
    p = sharing_sub.add_parser("plan", help="which nodes share GPUs, with how many replicas, and why")
    _common(p)
    p.add_argument(
        "--sharing-config", type=Path, default=None, help="the device plugin's config ConfigMap (YAML file)"
    )
    p.set_defaults(func=run, controller="sharing")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", default=None, help="demo | kube | PATH (snapshot file or folder)")
    p.add_argument("--output", default="table", choices=["table", "json"])
    p.add_argument("--config", default=None, help="YAML file of settings (selectors, mix, limits)")
    p.add_argument("--now", default=None, help="ISO time the plan is made at (cooldowns, timeouts)")


def _now(value: str | None) -> float:
    if not value:
        return datetime.now(UTC).timestamp()
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"--now: not an ISO time: {value!r}") from exc
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _sharing_configmap(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CliError(f"--sharing-config: {exc.strerror or exc}: {path}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"--sharing-config {path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != "ConfigMap":
        raise CliError(
            f"--sharing-config {path}: expected a ConfigMap (kind: ConfigMap, data: {{name: config}})"
        )
    return doc


async def plan_document(args: argparse.Namespace) -> dict[str, Any]:
    """The controller's plan over the chosen cluster, as its JSON document."""
    from app.cluster.snapshot import SnapshotCluster
    from app.commands.serve import check_cluster
    from app.context import AppContext
    from app.main import build_cluster
    from app.settings import SettingsError, load_settings

    overrides: dict[str, Any] = {"cluster": args.cluster, "config": args.config}
    if args.controller == "mig" and args.mig_config is not None:
        overrides["mig_config"] = args.mig_config
    try:
        settings = load_settings(overrides)
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    cluster = build_cluster(settings)
    check_cluster(cluster)
    await cluster.start()
    try:
        if args.controller == "sharing" and args.sharing_config is not None:
            cm = _sharing_configmap(args.sharing_config)
            namespace, _, name = settings.sharing_configmap.partition("/")
            cm.setdefault("metadata", {}).update(name=name, namespace=namespace)
            if isinstance(cluster, SnapshotCluster):
                cluster.upsert(cm)
            else:
                raise CliError("--sharing-config works with a snapshot cluster (demo or PATH) only")
        ctx = AppContext(settings=settings, cluster=cluster)
        now = _now(args.now)
        if args.controller == "mig":
            from app.mig.component import MigComponent

            mig = MigComponent(settings)
            mig.attach(ctx)
            return mig.build(now)[1].as_dict()
        from app.sharing.component import SharingComponent

        sharing = SharingComponent(settings)
        sharing.attach(ctx)
        return sharing.build(now)[1].as_dict()
    finally:
        await cluster.stop()


def _table(doc: dict[str, Any], controller: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table("node", "current", "target", "action", "reason", "blocked by")
    colour = {"keep": "", "reconfigure": "bold green", "blocked": "yellow"}
    for n in doc["nodes"]:
        action = n["action"]
        table.add_row(
            n["node"],
            n["current"] or "-",
            n["target"] or "-",
            f"[{colour[action]}]{action}[/]" if colour[action] else action,
            n["reason"],
            "\n".join(n["blocked_by"]) or "-",
        )
    console.print(table)
    if controller == "sharing":
        pool = doc["pool"]
        console.print(
            f"pool: {pool['strategy']} {pool['config'] or '(no config)'}, "
            f"{pool['gpus_shared']} GPU(s) shared, {pool['gpus_needed']} needed for {pool['shares']} share(s)"
        )
    unmet = ", ".join(f"{k}: {v}" for k, v in doc["unmet"].items() if v) or "none"
    console.print(f"unmet: {unmet}")
    for note in doc.get("notes", []):
        console.print(f"note: {note}")


def run(args: argparse.Namespace) -> int:
    import logging

    from app.gpu.migparted import MigConfigError
    from app.logging_setup import setup_logging

    setup_logging("WARNING")
    logging.getLogger("app").setLevel(logging.ERROR)
    try:
        doc = asyncio.run(plan_document(args))
    except MigConfigError as exc:
        raise CliError(str(exc)) from exc
    if args.output == "json":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        _table(doc, args.controller)
    return 0
