"""`report`: status, cost and suggestions in one markdown document (pure: dicts in, text out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.cost.report import budget_cell


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return "—" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


Section = tuple[str, list[str], list[list[Any]]]


def usd(v: float | None) -> str:
    return "—" if v is None else f"${v:,.2f}"


def spent_window(cost: dict[str, Any]) -> str:
    """`over 2025-06-01T00:00 .. 2025-06-03T12:00` or `so far (pods holding GPUs now)`."""
    w = cost.get("window") or {}
    if w.get("since"):
        return f"over {w['since'][:16]} .. {w['until'][:16]}"
    return "so far (pods holding GPUs now, since they started)"


def sections(view: str, doc: dict[str, Any]) -> list[Section]:
    """The tables of one view (`status`, `cost` or `optimize` document): (title, headers, rows). One
    definition for the terminal tables and the markdown report."""
    if view == "status":
        use = doc.get("gpu_use")
        per_gpu: list[Section] = []
        if use is not None:
            per_gpu.append(
                (
                    f"GPU utilisation (DCGM, {use['window']} average)",
                    ["node", "GPU", "compute %", "memory %"],
                    [[g["node"], g["gpu"], g["util_pct"], g["memory_pct"]] for g in use["gpus"]],
                )
            )
        return [
            (
                "GPUs per product",
                ["product", "nodes", "GPUs", "used", "free", "MIG slices", "MIG used"],
                [
                    [
                        p["product"],
                        p["nodes"],
                        p["gpus"],
                        p["used"],
                        p["free"],
                        p["mig_slices"],
                        p["mig_used"],
                    ]
                    for p in doc["products"]
                ],
            ),
            (
                "Nodes",
                ["node", "product", "GPUs", "used", "free", "compute %", "MIG (used/total)", "topology"],
                [
                    [
                        n["name"],
                        n["product"],
                        n["gpus"],
                        n["used"],
                        n["free"],
                        n.get("util_pct"),
                        ", ".join(f"{m['profile']} {m['used']}/{m['total']}" for m in n["mig"]),
                        n["topology"],
                    ]
                    for n in doc["nodes"]
                ],
            ),
            *per_gpu,
            (
                "Pods holding GPUs",
                ["namespace", "pod", "node", "GPUs", "phase"],
                [
                    [p["namespace"], p["name"], p["node"] or "(pending)", p["gpus"], p["phase"]]
                    for p in doc["pods"]
                ],
            ),
        ]
    if view == "cost":
        out: list[Section] = [
            (
                "Cost per namespace",
                ["namespace", "GPUs now", "GPU-hours", "$", "$/hour", "$/month", "budget (month)"],
                [
                    [
                        a["namespace"],
                        a["gpus"],
                        a["gpu_hours"],
                        usd(a["cost_usd"]),
                        usd(a["usd_per_hour"]),
                        usd(a["usd_per_month"]),
                        budget_cell(a.get("budget")),
                    ]
                    for a in doc["namespaces"]
                ],
            ),
            (
                "Cost per workload",
                ["workload", "GPUs now", "GPU-hours", "$", "$/hour", "$/month"],
                [
                    [
                        a["workload"],
                        a["gpus"],
                        a["gpu_hours"],
                        *(usd(a[k]) for k in ("cost_usd", "usd_per_hour", "usd_per_month")),
                    ]
                    for a in doc["workloads"]
                ],
            ),
        ]
        centers = [a for a in doc.get("cost_centers", []) if a["gpu_hours"] or a.get("budget")]
        if centers:
            out.append(
                (
                    "Cost per cost centre",
                    ["cost centre", "GPUs now", "GPU-hours", "$", "$/hour", "budget (month)"],
                    [
                        [
                            a["cost_center"],
                            a["gpus"],
                            a["gpu_hours"],
                            usd(a["cost_usd"]),
                            usd(a["usd_per_hour"]),
                            budget_cell(a.get("budget")),
                        ]
                        for a in centers
                    ],
                )
            )
        out.append(
            (
                "Idle GPUs",
                ["node", "product", "idle GPUs now", "idle GPU-hours", "$ idle", "$/hour"],
                [
                    [
                        i["node"],
                        i["product"],
                        i.get("idle_gpus"),
                        i.get("idle_gpu_hours"),
                        usd(i.get("cost_usd")),
                        usd(i.get("usd_per_hour")),
                    ]
                    for i in doc["idle"]
                ],
            )
        )
        if doc.get("budgets"):
            out.append(
                (
                    "Budgets",
                    ["scope", "name", "spent", "budget", "used", "projected month end", "state"],
                    [
                        [
                            b["scope"],
                            b["name"],
                            usd(b["spent_usd"]),
                            usd(b["monthly_usd"]),
                            f"{b['used_pct']:.0f}%",
                            usd(b["projected_usd"]),
                            b["state"],
                        ]
                        for b in doc["budgets"]
                    ],
                )
            )
        return out
    if view == "optimize":
        return [
            (
                "Suggestions",
                ["kind", "target", "suggestion", "why", "saves $/hour", "saves $/month"],
                [
                    [
                        s["kind"],
                        s["target"],
                        s["action"],
                        s["reason"],
                        usd(s.get("usd_per_hour_saved")),
                        usd(s.get("usd_per_month_saved")),
                    ]
                    for s in doc["suggestions"]
                ],
            )
        ]
    raise ValueError(f"unknown view {view!r}")


def markdown(status: dict[str, Any], cost: dict[str, Any], optimize: dict[str, Any]) -> str:
    t = status["totals"]
    c = cost["totals"]
    parts = [
        "# GPU cluster report",
        "",
        f"Source: `{status['source']}` · prices: {cost['prices']} · as of {cost['now']}",
        "",
        f"**{t['nodes']} GPU nodes, {t['gpus']} GPUs: {t['used']} used, {t['free']} free; "
        f"{t['mig_slices']} MIG slices ({t['mig_used']} used); {t['pods']} pods hold GPUs.** "
        f"Spend {usd(c['usd_per_hour'])}/h ({usd(c['usd_per_month'])}/month); idle capacity "
        f"{usd(c['idle_usd_per_hour'])}/h ({usd(c['idle_usd_per_month'])}/month).",
        "",
        f"**Spent {usd(c['cost_usd'])} {spent_window(cost)} · could save "
        f"{usd(optimize.get('usd_per_month_saved'))}/month ({usd(optimize['usd_per_hour_saved'])}/h) "
        "with the suggestions below.**",
    ]
    for title, headers, rows in sections("status", status) + sections("cost", cost):
        parts += ["", f"## {title}", "", _table(headers, rows)]
    parts += ["", "## Suggestions", ""]
    if optimize["suggestions"]:
        parts.append(_table(*sections("optimize", optimize)[0][1:]))
    else:
        parts.append("No suggestions.")
    notes = list(dict.fromkeys([*cost.get("notes", []), *optimize.get("notes", [])]))
    if cost["unpriced_products"]:
        notes.append("no price for: " + ", ".join(cost["unpriced_products"]) + " (pass --prices FILE)")
    if notes:
        parts += ["", "Notes:", "", *(f"- {n}" for n in notes)]
    return "\n".join(parts) + "\n"
