"""Demo act: GPU cost per namespace this month with budgets, waste flags with their Events and savings, and a
new GPU pod of an over-budget namespace through the budget admission webhook — over real HTTP."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from rich.table import Table

from app.cost.report import budget_cell
from app.ops.report import usd


class RecordedUses:
    """The webhook demo's recorded usage history as DCGM window averages (its p95 compute as the peak)."""

    def __init__(self, uses: list[Any]) -> None:
        self.uses = uses

    async def fetch(self) -> list[Any]:
        return list(self.uses)


def _review(namespace: str) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "trainer-extra", "namespace": namespace},
        "spec": {
            "containers": [{"name": "t", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "5d1b3c2a-0000-4000-8000-00000000c057",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": copy.deepcopy(pod),
        },
    }


def act(run: Any) -> None:
    from dataclasses import replace

    from app.commands.ops import _demo_usage, usage_to_uses
    from app.cost.prices import load_prices
    from app.ops.inventory import cluster_facts

    run.console.rule("[bold]Cost, budgets and waste")
    ctx = run.app.state.ctx
    waste, cost = ctx.components["waste"], ctx.components["cost"]
    facts = cluster_facts(run.cluster.list("Node"), run.cluster.list("Pod"))
    uses = [replace(u, peak=u.compute) for u in usage_to_uses(facts, _demo_usage())]
    waste.source, waste.prices = RecordedUses(uses), load_prices()
    # one waste and one cost cycle now (the service runs them every 30 s; without Prometheus the demo's
    # recorded history stands in for DCGM and the month so far for the recorded cost series)
    asyncio.run(waste.cycle())
    asyncio.run(cost.cycle())
    doc = run.client.get("/cost").json()
    run.console.print(
        f"GET /cost · month {doc['month']} · source {doc['source']} · now "
        f"{usd(doc['totals']['usd_per_hour'])}/h, idle capacity {usd(doc['totals']['idle_usd_per_hour'])}/h"
    )
    table = Table("namespace", "GPUs now", "GPU-hours", "$ this month", "$/month if it stays", "budget")
    budgets = {b["name"]: b for b in doc["budgets"] if b["scope"] == "namespace"}
    for r in doc["namespaces"]:
        table.add_row(
            r["namespace"],
            f"{r['gpus']:g}",
            f"{r['gpu_hours']:g}",
            usd(r["cost_usd"]),
            usd(r["usd_per_month"]),
            budget_cell(budgets.get(r["namespace"])) or "-",
        )
    run.console.print(table)
    savings = Table("pod", "suggestion", "saves $/month")
    for s in doc["savings"]:
        savings.add_row(f"{s['namespace']}/{s['pod']}", s["suggestion"], usd(s["monthly_saving_usd"]))
    run.console.print(savings)
    run.console.print(f"could save {usd(doc['savings_usd_per_month'])}/month")
    for e in (run.cluster.others.get("Event") or {}).values():
        if e["reason"] == "GPUWasteful":
            obj = e["involvedObject"]
            run.console.print(
                f"Event {e['type']} {e['reason']} on pod {obj['namespace']}/{obj['name']}: {e['message']}"
            )
    over = next(
        (b["name"] for b in doc["budgets"] if b["state"] == "exceeded" and b["scope"] == "namespace"), None
    )
    if over:
        answer = run.client.post("/validate-budget", json=_review(over)).json()["response"]
        verdict = "admitted" if answer["allowed"] else "refused"
        why = (answer.get("warnings") or [answer.get("status", {}).get("message", "")])[0]
        run.console.print(f"new GPU pod in {over}: {verdict} (--enforce-budgets is off): {why}")
