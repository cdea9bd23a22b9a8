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


def _usd(v: float | None) -> str:
    return "—" if v is None else f"${v:,.2f}"


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
        f"Spend {_usd(c['usd_per_hour'])}/h ({_usd(c['usd_per_month'])}/month); idle capacity "
        f"{_usd(c['idle_usd_per_hour'])}/h ({_usd(c['idle_usd_per_month'])}/month); "
        f"suggestions below save {_usd(optimize['usd_per_hour_saved'])}/h.",
        "",
        "## GPUs per product",
        "",
        _table(
            ["product", "nodes", "GPUs", "used", "free", "MIG slices", "MIG used"],
            [
                [p["product"], p["nodes"], p["gpus"], p["used"], p["free"], p["mig_slices"], p["mig_used"]]
                for p in status["products"]
            ],
        ),
        "",
        "## Nodes",
        "",
        _table(
            ["node", "product", "GPUs", "used", "free", "MIG (used/total)", "topology"],
            [
                [
                    n["name"],
                    n["product"],
                    n["gpus"],
                    n["used"],
                    n["free"],
                    ", ".join(f"{m['profile']} {m['used']}/{m['total']}" for m in n["mig"]) or "",
                    n["topology"],
                ]
                for n in status["nodes"]
            ],
        ),
        "",
        "## Pods holding GPUs",
        "",
        _table(
            ["namespace", "pod", "node", "GPUs", "phase"],
            [
                [p["namespace"], p["name"], p["node"] or "(pending)", p["gpus"], p["phase"]]
                for p in status["pods"]
            ],
        ),
        "",
        "## Cost per namespace",
        "",
        _table(
            ["namespace", "pods", "GPUs", "$/hour", "$/month", "GPU-hours so far", "$ so far"],
            [
                [
                    a["namespace"],
                    a["pods"],
                    a["gpus"],
                    _usd(a["usd_per_hour"]),
                    _usd(a["usd_per_month"]),
                    a["gpu_hours"],
                    _usd(a["usd_so_far"]),
                ]
                for a in cost["namespaces"]
            ],
        ),
        "",
        "## Cost per workload",
        "",
        _table(
            ["workload", "pods", "GPUs", "$/hour", "$/month"],
            [
                [a["workload"], a["pods"], a["gpus"], _usd(a["usd_per_hour"]), _usd(a["usd_per_month"])]
                for a in cost["workloads"]
            ],
        ),
        "",
        "## Idle GPUs",
        "",
        _table(
            ["node", "product", "idle GPUs", "$/hour", "$/month"],
            [
                [i["node"], i["product"], i["idle_gpus"], _usd(i["usd_per_hour"]), _usd(i["usd_per_month"])]
                for i in cost["idle"]
            ],
        ),
        "",
        "## Suggestions",
        "",
    ]
    if optimize["suggestions"]:
        parts.append(
            _table(
                ["kind", "target", "suggestion", "why", "saves $/hour"],
                [
                    [s["kind"], s["target"], s["action"], s["reason"], _usd(s.get("usd_per_hour_saved"))]
                    for s in optimize["suggestions"]
                ],
            )
        )
    else:
        parts.append("No suggestions.")
    notes = [*optimize.get("notes", [])]
    if cost["unpriced_products"]:
        notes.append("no price for: " + ", ".join(cost["unpriced_products"]) + " (pass --prices FILE)")
    if notes:
        parts += ["", "Notes:", "", *(f"- {n}" for n in notes)]
    return "\n".join(parts) + "\n"
