"""`report`: status, cost and suggestions in one markdown document (pure: dicts in, text out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return "—" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


Section = tuple[str, list[str], list[list[Any]]]


def usd(v: float | None) -> str:
    return "—" if v is None else f"${v:,.2f}"


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
        money = ("usd_per_hour", "usd_per_month")
        return [
            (
                "Cost per namespace",
                ["namespace", "pods", "GPUs", "$/hour", "$/month", "GPU-hours so far", "$ so far"],
                [
                    [
                        a["namespace"],
                        a["pods"],
                        a["gpus"],
                        *(usd(a[k]) for k in money),
                        a["gpu_hours"],
                        usd(a["usd_so_far"]),
                    ]
                    for a in doc["namespaces"]
                ],
            ),
            (
                "Cost per workload",
                ["workload", "pods", "GPUs", "$/hour", "$/month"],
                [
                    [a["workload"], a["pods"], a["gpus"], *(usd(a[k]) for k in money)]
                    for a in doc["workloads"]
                ],
            ),
            (
                "Idle GPUs",
                ["node", "product", "idle GPUs", "$/hour", "$/month"],
                [[i["node"], i["product"], i["idle_gpus"], *(usd(i[k]) for k in money)] for i in doc["idle"]],
            ),
        ]
    if view == "optimize":
        return [
            (
                "Suggestions",
                ["kind", "target", "suggestion", "why", "saves $/hour"],
                [
                    [s["kind"], s["target"], s["action"], s["reason"], usd(s.get("usd_per_hour_saved"))]
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
        f"{usd(c['idle_usd_per_hour'])}/h ({usd(c['idle_usd_per_month'])}/month); "
        f"suggestions below save {usd(optimize['usd_per_hour_saved'])}/h.",
    ]
    for title, headers, rows in sections("status", status) + sections("cost", cost):
        parts += ["", f"## {title}", "", _table(headers, rows)]
    parts += ["", "## Suggestions", ""]
    if optimize["suggestions"]:
        parts.append(_table(*sections("optimize", optimize)[0][1:]))
    else:
        parts.append("No suggestions.")
    notes = [*optimize.get("notes", [])]
    if cost["unpriced_products"]:
        notes.append("no price for: " + ", ".join(cost["unpriced_products"]) + " (pass --prices FILE)")
    if notes:
        parts += ["", "Notes:", "", *(f"- {n}" for n in notes)]
    return "\n".join(parts) + "\n"
