"""The cost document: GPU-hours and $ per namespace, workload, cost centre and pod, idle capacity, budgets.

Two sources give the same shape:
- history (`from_history`): what Prometheus recorded over (since, until] — pods that ended still count;
- point in time (`point_in_time`, the fallback without Prometheus): the pods holding GPUs now, each counted
  from when it started (or `since`) up to `until`; pods that already ended are not known.

hourly(pod)  = GPU-equivalents held x $/GPU-hour of its node's product (app/cost/attribution.py)
monthly      = hourly x 730, if today's holdings stay
idle         = capacity no pod holds, priced the same way
wasted       = sum over held GPUs of price x share x waste score / 100 (when waste scores are given)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from app.cost.attribution import Attribution, Holding
from app.cost.budgets import Budget, BudgetStatus, ScopeKey, month_start, statuses
from app.cost.prices import HOURS_PER_MONTH
from app.ops.inventory import ClusterFacts
from app.waste.score import WasteScore

UNASSIGNED = "(unassigned)"
GROUPS = {
    "namespaces": ("namespace",),
    "workloads": ("namespace", "workload"),
    "cost_centers": ("cost_center",),
}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _window(since: datetime | None, until: datetime) -> dict[str, Any]:
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat(),
        "hours": round((until - since).total_seconds() / 3600, 3) if since else None,
    }


def _group(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    acc: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in rows:
        k = tuple(str(r.get(key) or "") for key in keys)
        a = acc.setdefault(
            k,
            {
                **dict(zip(keys, k, strict=True)),
                "pods": 0,
                "gpus": 0.0,
                "gpu_hours": 0.0,
                "cost_usd": 0.0,
                "usd_per_hour": 0.0,
            },
        )
        a["pods"] += 1
        for m in ("gpus", "gpu_hours", "cost_usd", "usd_per_hour"):
            a[m] += r.get(m) or 0.0
    return [_finish(a) for a in acc.values()]


def _finish(a: dict[str, Any]) -> dict[str, Any]:
    a["gpus"] = round(a.get("gpus") or 0.0, 4)
    a["gpu_hours"] = round(a.get("gpu_hours") or 0.0, 2)
    a["cost_usd"] = _r(a.get("cost_usd") or 0.0)
    a["usd_per_hour"] = _r(a.get("usd_per_hour") or 0.0)
    a["usd_per_month"] = _r((a["usd_per_hour"] or 0.0) * HOURS_PER_MONTH)
    if "cost_center" in a and not a["cost_center"]:
        a["cost_center"] = UNASSIGNED
    return a


def _sorted(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda a: (-(a["cost_usd"] or 0.0), -(a["usd_per_hour"] or 0.0), str(a[key])))


def _wasted(attr: Attribution, waste: Iterable[WasteScore]) -> float:
    """$/hour of held GPU capacity the waste scores say goes unused (a MIG slice through its pod's share)."""
    held = {(h.namespace, h.pod): h for h in attr.holdings}
    total = 0.0
    for w in waste:
        h = held.get((w.namespace, w.pod))
        if h is None or h.usd_per_hour is None or not h.gpus:
            continue
        per_gpu = h.usd_per_hour / h.gpus
        share = h.gpus if "/" in w.gpu else min(1.0, h.gpus)
        total += per_gpu * share * w.score / 100.0
    return total


def _totals(doc: dict[str, Any], idle_per_hour: float, wasted: float) -> dict[str, Any]:
    held = sum(r["usd_per_hour"] or 0.0 for r in doc["namespaces"])
    return {
        "usd_per_hour": _r(held),
        "usd_per_month": _r(held * HOURS_PER_MONTH),
        "gpu_hours": round(sum(r["gpu_hours"] for r in doc["namespaces"]), 2),
        "cost_usd": _r(sum(r["cost_usd"] or 0.0 for r in doc["namespaces"])),
        "idle_usd_per_hour": _r(idle_per_hour),
        "idle_usd_per_month": _r(idle_per_hour * HOURS_PER_MONTH),
        "idle_gpu_hours": round(sum(i.get("idle_gpu_hours") or 0.0 for i in doc["idle"]), 2),
        "idle_cost_usd": _r(sum(i.get("cost_usd") or 0.0 for i in doc["idle"])),
        "wasted_usd_per_hour": _r(wasted),
        "wasted_usd_per_month": _r(wasted * HOURS_PER_MONTH),
    }


def point_in_time(
    facts: ClusterFacts,
    attr: Attribution,
    now: datetime,
    waste: Iterable[WasteScore] = (),
    since: datetime | None = None,
    prices_origin: str = "bundled",
) -> dict[str, Any]:
    """The cost document from the pods holding GPUs now (no history)."""
    started = {(p.namespace, p.name): p.started for p in facts.holding()}
    rows: list[dict[str, Any]] = []
    for h in attr.holdings:
        start = started.get((h.namespace, h.pod))
        if since is not None:
            start = max(start, since) if start else since
        hours = max(0.0, (now - start).total_seconds() / 3600) if start else 0.0
        rows.append(_pod_row(h, hours))
    idle = [
        {
            "node": n.node,
            "product": n.product,
            "idle_gpus": round(n.idle, 4),
            "usd_per_hour": _r(n.idle_usd_per_hour),
            "usd_per_month": _r(
                None if n.idle_usd_per_hour is None else n.idle_usd_per_hour * HOURS_PER_MONTH
            ),
        }
        for n in attr.nodes
        if n.idle > 0
    ]
    doc: dict[str, Any] = {
        "currency": "USD",
        "source": "point-in-time",
        "prices": prices_origin,
        "now": now.isoformat(),
        "window": _window(since, now),
        "hours_per_month": HOURS_PER_MONTH,
        "pods": rows,
        "idle": idle,
        "unpriced_products": attr.unpriced,
        "notes": [
            "point-in-time: pods holding GPUs now, counted since they started"
            + (" (or since the window's start)" if since else "")
            + "; pods that ended are not known without Prometheus history"
        ],
    }
    for name, keys in GROUPS.items():
        doc[name] = _sorted(_group(rows, keys), keys[-1])
    idle_hour = sum(n.idle_usd_per_hour or 0.0 for n in attr.nodes)
    doc["totals"] = _totals(doc, idle_hour, _wasted(attr, waste))
    return doc


def _pod_row(h: Holding, hours: float) -> dict[str, Any]:
    return {
        "namespace": h.namespace,
        "workload": h.workload,
        "pod": h.pod,
        "node": h.node,
        "product": h.product,
        "cost_center": h.cost_center,
        "project": h.project,
        "gpus": round(h.gpus, 4),
        "split_by_use": h.split_by_use,
        "usd_per_hour": _r(h.usd_per_hour),
        "gpu_hours": round(h.gpus * hours, 2),
        "cost_usd": _r(None if h.usd_per_hour is None else h.usd_per_hour * hours),
        "usd_so_far": _r(None if h.usd_per_hour is None else h.usd_per_hour * hours),
    }


def from_history(
    tables: Mapping[str, Mapping[tuple[str, ...], Mapping[str, float]]],
    since: datetime,
    until: datetime,
    attr: Attribution | None = None,
    waste: Iterable[WasteScore] = (),
    prices_origin: str = "prometheus",
) -> dict[str, Any]:
    """The cost document from the recorded series (`app.cost.history.tables`)."""
    from app.cost.history import LEVELS

    def rows(level: str) -> list[dict[str, Any]]:
        labels = LEVELS[level][0]
        out = []
        for key, m in tables.get(level, {}).items():
            row: dict[str, Any] = dict(zip(labels, key, strict=True))
            row.update({k: m.get(k) for k in ("gpus", "gpu_hours", "cost_usd", "usd_per_hour")})
            out.append(_finish(row))
        return out

    pods = rows("pod")
    for p in pods:
        p.pop("usd_per_month", None)
    doc: dict[str, Any] = {
        "currency": "USD",
        "source": "prometheus",
        "prices": prices_origin,
        "now": until.isoformat(),
        "window": _window(since, until),
        "hours_per_month": HOURS_PER_MONTH,
        "namespaces": _sorted(rows("namespace"), "namespace"),
        "workloads": _sorted(rows("workload"), "workload"),
        "cost_centers": _sorted(rows("cost_center"), "cost_center"),
        "pods": sorted(pods, key=lambda p: (-(p["cost_usd"] or 0.0), p["namespace"], p["pod"])),
        "idle": sorted(
            (
                {
                    "node": node,
                    "product": product,
                    "idle_gpu_hours": round(m.get("gpu_hours") or 0.0, 2),
                    "cost_usd": _r(m.get("cost_usd")),
                }
                for (node, product), m in tables.get("idle", {}).items()
            ),
            key=lambda i: (-(i["cost_usd"] or 0.0), i["node"]),
        ),
        "unpriced_products": attr.unpriced if attr else [],
        "notes": [f"history: Prometheus recording rules over {since.isoformat()} .. {until.isoformat()}"],
    }
    idle_now = sum(n.idle_usd_per_hour or 0.0 for n in attr.nodes) if attr else 0.0
    doc["totals"] = _totals(doc, idle_now, _wasted(attr, waste) if attr else 0.0)
    return doc


def with_budgets(
    doc: dict[str, Any], budgets: Iterable[BudgetStatus], errors: Iterable[str] = ()
) -> dict[str, Any]:
    """Attach each budget's standing to its namespace / cost-centre row (rows are added for budgets of scopes
    that hold nothing) and list them all under `budgets`."""
    listed = [b.as_dict() for b in budgets]
    doc["budgets"] = listed
    doc["budget_errors"] = list(errors)
    for b in listed:
        table, key = (
            ("namespaces", "namespace") if b["scope"] == "namespace" else ("cost_centers", "cost_center")
        )
        row = next((r for r in doc[table] if r[key] == b["name"]), None)
        if row is None:
            row = _finish({key: b["name"], "pods": 0})
            doc[table].append(row)
        row["budget"] = b
    return doc


def budget_cell(b: Mapping[str, Any] | None) -> str | None:
    """`$8,120 / $10,000 (81%, soft)` for tables; None without a budget."""
    if not b:
        return None
    state = "" if b["state"] == "ok" else f", {b['state']}"
    return f"${b['spent_usd']:,.0f} / ${b['monthly_usd']:,.0f} ({b['used_pct']:.0f}%{state})"


def spend_by_scope(doc: Mapping[str, Any]) -> tuple[dict[ScopeKey, float], dict[ScopeKey, float]]:
    """($ spent, $/hour held now) per budget scope, from a cost document over the budget month."""
    spent: dict[ScopeKey, float] = {}
    rate: dict[ScopeKey, float] = {}
    for table, key, scope in (
        ("namespaces", "namespace", "namespace"),
        ("cost_centers", "cost_center", "cost-center"),
    ):
        for r in doc.get(table, []):
            spent[(scope, r[key])] = r.get("cost_usd") or 0.0
            rate[(scope, r[key])] = r.get("usd_per_hour") or 0.0
    return spent, rate


def budget_standing(
    facts: ClusterFacts,
    attr: Attribution,
    now: datetime,
    budgets: Iterable[Budget],
    month: Mapping[str, Mapping[tuple[str, ...], Mapping[str, float]]] | None = None,
) -> list[BudgetStatus]:
    """Where each budget stands this month: from the recorded series over the month (`month`, tables of
    `app.cost.history`) when there are any, else from the pods holding GPUs now."""
    start = month_start(now)
    month_doc = from_history(month, start, now, attr) if month else point_in_time(facts, attr, now, (), start)
    spent, rate = spend_by_scope(month_doc)
    return statuses(budgets, spent, rate, now)


def cost_view(
    facts: ClusterFacts,
    attr: Attribution,
    now: datetime,
    *,
    since: datetime | None = None,
    history: Mapping[str, Mapping[tuple[str, ...], Mapping[str, float]]] | None = None,
    month: Mapping[str, Mapping[tuple[str, ...], Mapping[str, float]]] | None = None,
    budgets: Iterable[Budget] = (),
    budget_errors: Iterable[str] = (),
    standing: list[BudgetStatus] | None = None,
    waste: Iterable[WasteScore] = (),
    prices_origin: str = "bundled",
) -> dict[str, Any]:
    """The whole cost document: history when Prometheus recorded any (`history`: tables over the window,
    `month`: over the budget month), else today's point-in-time view; each budget's standing attached
    (`standing` when the caller has it already)."""
    waste = list(waste)
    if history:
        doc = from_history(history, since or month_start(now), now, attr, waste, prices_origin)
    else:
        doc = point_in_time(facts, attr, now, waste, since, prices_origin)
    if standing is None:
        standing = budget_standing(facts, attr, now, budgets, month)
    return with_budgets(doc, standing, budget_errors)
