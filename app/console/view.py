"""The console's view model, pure: ConsoleInputs + filters -> plain dicts that the templates render and
`GET /ui/data` returns. No FastAPI, no cluster view, no clock: everything arrives as data.

GPU map rules (docs/console.md):
- a row per GPU node, a cell per GPU: whole-GPU columns of the extender's state, MIG-enabled GPUs of the
  topology annotation (their slices, from `gpu-autoscaler.io/mig-layout`, drawn as parts of the cell), and,
  for nodes with MIG slices but no layout, one cell per profile holding its slices;
- parts of a cell: the pods holding it (a GPU share as its fraction, a MIG slice as its compute fraction),
  pods the extender steered there and that are not bound yet ("assumed"), GPUs the node agent marks in use
  that no known pod explains ("agent"), and what is free;
- which GPU holds a MIG pod's slice is not reported by the device plugin: a slice is drawn on the first GPU
  with a free slice of its profile, GPUs the agent marks in use first;
- cells are grouped into NVLink islands (connected components of NVLink links), the rest as "no NVLink";
- utilisation comes from the waste scores (DCGM window averages) where they exist.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from app.console.inputs import ConsoleInputs, Holder, NodeInput
from app.gpu.mig import mig_compute_fraction
from app.waste.score import WasteScore
from extender.topology import is_nvlink

GPU_MILLI = 1000
HOURS_PER_MONTH = 730.0
#: utilisation bands (mean compute use over the waste window): upper bound, name
UTIL_BANDS: tuple[tuple[float, str], ...] = ((0.05, "idle"), (0.20, "low"), (0.60, "mid"), (math.inf, "high"))
TOP_WASTERS = 10
TOP_SUGGESTIONS = 10
_NV = re.compile(r"^NV(\d+)$", re.IGNORECASE)
_G = re.compile(r"^(\d+)g\.")


@dataclass(frozen=True)
class Filters:
    """The map's filters: exact GPU product and namespace; "" = all."""

    product: str = ""
    namespace: str = ""


# -- small helpers ---------------------------------------------------------------------------------------
def util_band(compute: float | None) -> str | None:
    if compute is None:
        return None
    return next(name for bound, name in UTIL_BANDS if compute < bound)


def clock_time(ts: float | None) -> dict[str, str] | None:
    """A wall-clock timestamp as `<time>` wants it: ISO for the attribute, HH:MM:SS UTC for the text."""
    if not ts:
        return None
    t = datetime.fromtimestamp(ts, UTC)
    return {"iso": t.isoformat(timespec="seconds"), "text": t.strftime("%H:%M:%S")}


def slice_fraction(profile: str, product: str) -> float:
    """A MIG slice's share of its GPU (compute slices), from the MIG geometry; `Ng.` / 7 when unknown."""
    known = mig_compute_fraction(profile, product)
    if known is not None:
        return known
    m = _G.match(profile)
    return min(1.0, int(m.group(1)) / 7) if m else 1 / 7


def num(x: Any) -> str:
    """A count that may be fractional (GPU-equivalents): at most 2 decimals, no trailing zeros."""
    if not isinstance(x, int | float):
        return "—" if x is None else str(x)
    return f"{x:.2f}".rstrip("0").rstrip(".") if isinstance(x, float) else str(x)


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def plain(value: Any) -> str:
    """Any JSON value of another component's plan as one short line."""
    if value is None:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(plain(v) for v in value) or "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def nvlink_islands(links: Sequence[Sequence[str]] | None, n: int) -> list[list[int]]:
    """Positions 0..n-1 grouped into NVLink islands (connected by NVLink links), in index order; GPUs with
    no NVLink to any other are left out."""
    if links is None or len(links) != n:
        return []
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    linked: set[int] = set()
    for i in range(n):
        row = links[i]
        for j in range(i + 1, min(n, len(row))):
            if is_nvlink(str(row[j])):
                parent[root(j)] = root(i)
                linked.update((i, j))
    groups: dict[int, list[int]] = {}
    for i in sorted(linked):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


@lru_cache(maxsize=1024)
def _islands(links: tuple[tuple[str, ...], ...] | None, n: int) -> tuple[tuple[tuple[int, ...], str], ...]:
    """NVLink islands with their labels, once per link matrix (a fleet has a handful of shapes)."""
    if links is None:
        return ()
    return tuple((tuple(m), _island_label(links, m)) for m in nvlink_islands(links, n))


def _island_label(links: Sequence[Sequence[str]], members: list[int]) -> str:
    counts = sorted(
        {
            int(m.group(1))
            for a in members
            for b in members
            if a != b and (m := _NV.match(str(links[a][b]).strip())) is not None
        }
    )
    if not counts:
        return "NVLink"
    return f"NVLink NV{counts[0]}" if len(counts) == 1 else f"NVLink NV{counts[0]} to NV{counts[-1]}"


# -- GPU map ---------------------------------------------------------------------------------------------
def _part(holder: Holder | None, share: float, state: str, profile: str | None = None) -> dict[str, Any]:
    return {
        "pod": holder.pod if holder else None,
        "ns": holder.namespace if holder else None,
        "share": round(share, 4),
        "state": state,  # bound | assumed | agent | free | unused (compute no MIG instance covers)
        "profile": profile,
    }


HELD = ("bound", "assumed", "agent")


def _alloc(parts: list[dict[str, Any]]) -> str:
    held = [p for p in parts if p["state"] in HELD]
    if not held:
        return "free"
    if any(p["state"] == "assumed" for p in held):
        return "assumed"
    if all(p["state"] == "agent" for p in held):
        return "agent"
    return "full" if sum(p["share"] for p in held) >= 0.999 else "part"


def uses_by_node(waste: Iterable[WasteScore]) -> dict[str, dict[str, list[WasteScore]]]:
    """Waste scores by node, then by GPU index (a MIG instance's '3/1' counts for GPU 3)."""
    out: dict[str, dict[str, list[WasteScore]]] = {}
    for w in waste:
        out.setdefault(w.node, {}).setdefault(w.gpu.split("/", 1)[0], []).append(w)
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def _describe(cell: dict[str, Any]) -> tuple[str, str]:
    """(who holds it, the cell's text alternative: aria-label and tooltip, with what it is and how busy);
    the node is named by the row header."""
    if cell["kind"] == "pool":
        head = f"MIG {cell['label']} slices"
    else:
        head = f"GPU {cell['label']}" + (" (MIG)" if cell["kind"] == "mig" else "")
    held = [p for p in cell["parts"] if p["state"] in HELD]
    if not held:
        what = "free"
    else:
        bits = []
        for p in held:
            who = p["pod"] or "in use (node agent; no known pod)"
            if p["state"] == "assumed":
                who += " (steered, not bound yet)"
            if p["profile"]:
                who = f"{p['profile']}: {who}"
            elif p["share"] < 0.999:
                who += f" ({p['share'] * 100:.0f}%)"
            bits.append(who)
        what = "; ".join(bits)
        free = sum(p["share"] for p in cell["parts"] if p["state"] == "free")
        if free > 0.001 and cell["kind"] != "whole":
            what += f"; {free * 100:.0f}% free"
    text = f"{head}: {what}"
    if cell["util"] is not None or cell["mem"] is not None:
        text += f" (compute {pct(cell['util'])}, memory {pct(cell['mem'])})"
    return what, text


def _cell(
    label: str,
    index: int | None,
    kind: str,
    parts: list[dict[str, Any]],
    uses: list[WasteScore],
    ns_filter: str,
) -> dict[str, Any]:
    pods = sorted({p["pod"] for p in parts if p["pod"]})
    namespaces = sorted({p["ns"] for p in parts if p["ns"]})
    util = _mean(u.compute for u in uses)
    alloc = _alloc(parts)
    cell = {
        "label": label,
        "index": index,
        "kind": kind,  # whole | shared | mig | pool
        "parts": parts,
        "alloc": alloc,
        "pods": pods,
        "namespaces": namespaces,
        "util": None if util is None else round(util, 3),
        "util_pct": None if util is None else max(0, min(100, round(util * 100))),
        "mem": None if not uses else _round(_mean(u.memory for u in uses)),
        "band": util_band(util),
        "waste": max((u.score for u in uses), default=None),
        "dim": bool(ns_filter) and ns_filter not in namespaces,
        # drawn as parts; a cell that is all one thing is drawn by its `alloc` alone
        "split": len(parts) > 1 or alloc == "part",
    }
    cell["state_text"], cell["text"] = _describe(cell)
    return cell


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _whole_cells(
    node: NodeInput, holders: Sequence[Holder], uses: Mapping[str, list[WasteScore]], ns: str
) -> dict[int, dict[str, Any]]:
    by_gpu: dict[int, list[Holder]] = {}
    for h in holders:
        if not h.mig:
            for g in h.gpus:
                by_gpu.setdefault(g, []).append(h)
    agent = set(node.agent_held)
    cells: dict[int, dict[str, Any]] = {}
    for col, phys in enumerate(node.gpu_phys):
        left = node.gpu_left[col] if col < len(node.gpu_left) else GPU_MILLI
        parts = [
            _part(h, h.milli / GPU_MILLI, "assumed" if h.assumed else "bound")
            for h in sorted(by_gpu.get(phys, []), key=lambda h: (h.assumed, h.pod))
        ]
        if phys in agent:
            parts.append(_part(None, 1.0, "agent"))
        held = sum(p["share"] for p in parts)
        free = max(0.0, min(left / GPU_MILLI, 1.0 - held))
        if free > 0.0005 or not parts:
            parts.append(_part(None, free if parts else 1.0, "free"))
        kind = "shared" if node.sharing != "none" else "whole"
        cells[phys] = _cell(str(phys), phys, kind, parts, uses.get(str(phys), []), ns)
    return cells


def _mig_cells(
    node: NodeInput, holders: Sequence[Holder], uses: Mapping[str, list[WasteScore]], ns: str
) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(cells of MIG GPUs by index, pool cells for profiles without a layout, pods not drawn)."""
    mig_gpus = [g.index for g in node.gpus if g.mig_enabled]
    laid_out = {i: node.mig_layout[i] for i in mig_gpus if node.mig_layout.get(i)}
    # slots: (gpu index | None for a pool, profile) in drawing order; agent-marked GPUs take pods first
    allocated_first = sorted(laid_out, key=lambda i: (i not in node.agent_held, i))
    free_slots: dict[str, list[tuple[int, int]]] = {}
    for i in allocated_first:
        for s, profile in enumerate(laid_out[i]):
            free_slots.setdefault(profile, []).append((i, s))
    pools = {p: n for p, n in node.mig_cap.items() if n > 0 and p not in free_slots}
    taken: dict[tuple[int, int], Holder] = {}
    pool_taken: dict[str, list[Holder]] = {}
    undrawn: list[str] = []
    for h in sorted((h for h in holders if h.mig), key=lambda h: (h.assumed, h.pod)):
        for profile, count in h.mig:
            for _ in range(count):
                if free_slots.get(profile):
                    taken[free_slots[profile].pop(0)] = h
                elif profile in pools and len(pool_taken.get(profile, [])) < pools[profile]:
                    pool_taken.setdefault(profile, []).append(h)
                else:
                    undrawn.append(f"{h.pod} ({profile})")
    cells: dict[int, dict[str, Any]] = {}
    for i in mig_gpus:
        profiles = laid_out.get(i, ())
        parts = []
        for s, profile in enumerate(profiles):
            share = slice_fraction(profile, node.product)
            holder = taken.get((i, s))
            state = "free" if holder is None else ("assumed" if holder.assumed else "bound")
            parts.append(_part(holder, share, state, profile))
        unused = 1.0 - sum(p["share"] for p in parts)
        if unused > 0.01 or not parts:  # compute slices no instance uses (e.g. 3 x 2g on a 7-slice GPU)
            parts.append(_part(None, unused, "unused") if parts else _part(None, 1.0, "free", "no layout"))
        cells[i] = _cell(str(i), i, "mig", parts, uses.get(str(i), []), ns)
    pool_cells = []
    for profile, n in sorted(pools.items()):
        holders_here = pool_taken.get(profile, [])
        parts = [_part(h, 1 / n, "assumed" if h.assumed else "bound", profile) for h in holders_here] + [
            _part(None, 1 / n, "free", profile) for _ in range(n - len(holders_here))
        ]
        pool_cells.append(_cell(profile, None, "pool", parts, [], ns))
    return cells, pool_cells, undrawn


def node_row(
    node: NodeInput,
    holders: Sequence[Holder] = (),
    uses: Mapping[str, list[WasteScore]] | None = None,
    ns: str = "",
) -> dict[str, Any]:
    """One node's row: its cells grouped by NVLink island. `uses`: the node's waste scores by GPU index;
    `ns`: the namespace filter (cells it does not hold are dimmed)."""
    uses = uses or {}
    whole = _whole_cells(node, holders, uses, ns)
    mig, pools, undrawn = _mig_cells(node, holders, uses, ns)
    by_index = {**whole, **mig}
    groups: list[dict[str, Any]] = []
    if node.gpus:
        order = [g.index for g in node.gpus]
        seen: set[int] = set()
        for k, (members, label) in enumerate(_islands(node.links, len(order)), start=1):
            island = [by_index[order[m]] for m in members if order[m] in by_index]
            seen.update(order[m] for m in members)
            if island:
                groups.append({"kind": "nvlink", "label": f"{label} island {k}", "cells": island})
        rest = [by_index[i] for i in order if i not in seen and i in by_index]
        rest += [c for i, c in sorted(by_index.items()) if i not in order]  # columns the annotation lacks
        if rest:
            kind, label = ("pcie", "no NVLink") if node.links is not None else ("unknown", "links unknown")
            groups.append({"kind": kind, "label": label, "cells": rest})
    elif by_index:
        groups.append({"kind": "unknown", "label": "topology unknown", "cells": list(by_index.values())})
    if pools:
        groups.append({"kind": "mig", "label": "MIG slices (layout not reported)", "cells": pools})
    cells = [c for g in groups for c in g["cells"]]
    used = sum(p["share"] for c in cells if c["kind"] != "pool" for p in c["parts"] if p["state"] in HELD)
    used += sum(
        slice_fraction(c["label"], node.product)
        for c in cells
        if c["kind"] == "pool"
        for p in c["parts"]
        if p["state"] in HELD
    )
    gpus = len([c for c in cells if c["kind"] != "pool"])
    namespaces = sorted({n for c in cells for n in c["namespaces"]})
    linked = [g for g in groups if g["kind"] == "nvlink"]
    desc = [node.product or "unknown product", f"{gpus} GPUs", f"{num(used)} in use"]
    if node.sharing != "none":
        desc.append(f"GPU sharing: {node.sharing}")
    if linked:
        desc.append(
            ", ".join(f"{g['label']}: GPUs {', '.join(c['label'] for c in g['cells'])}" for g in linked)
        )
    elif node.links is not None and node.gpus:
        desc.append("no NVLink")
    elif not node.gpus:
        desc.append("topology unknown")
    return {
        "name": node.name,
        "product": node.product,
        "sharing": node.sharing,
        "source": node.source,
        "gpus": gpus,
        "used": round(used, 3),
        "idle_held": sum(1 for c in cells if c["band"] == "idle" and c["alloc"] in ("full", "part")),
        "assumed": sum(1 for c in cells if c["alloc"] == "assumed"),
        "groups": groups,
        "namespaces": namespaces,
        "undrawn": undrawn,
        "text": "; ".join(desc),
    }


def map_view(
    rows: Sequence[dict[str, Any]], filters: Filters = Filters(), utilisation: bool = False
) -> dict[str, Any]:
    """The map from every node's row (built with `filters.namespace`): the rows the filters keep, the
    filter choices and the counts over the whole cluster."""
    kept = [
        r
        for r in rows
        if (not filters.product or r["product"] == filters.product)
        and (not filters.namespace or filters.namespace in r["namespaces"])
    ]
    totals = {
        "nodes": len(rows),
        "gpus": sum(r["gpus"] for r in rows),
        "used": round(sum(r["used"] for r in rows), 2),
        "idle_held": sum(r["idle_held"] for r in rows),
        "assumed": sum(r["assumed"] for r in rows),
    }
    return {
        "rows": kept,
        "shown": len(kept),
        "products": sorted({r["product"] for r in rows}),
        "namespaces": sorted({n for r in rows for n in r["namespaces"]}),
        "filters": {"product": filters.product, "namespace": filters.namespace},
        "totals": totals,
        "utilisation": utilisation,
    }


def gpu_map(inputs: ConsoleInputs, filters: Filters = Filters()) -> dict[str, Any]:
    """The whole map from the inputs (the component builds the same rows incrementally, see component.py)."""
    by_node: dict[str, list[Holder]] = {}
    for h in inputs.holders:
        by_node.setdefault(h.node, []).append(h)
    uses = uses_by_node(inputs.waste)
    rows = [
        node_row(n, by_node.get(n.name, []), uses.get(n.name), filters.namespace)
        for n in sorted(inputs.nodes, key=lambda n: n.name)
    ]
    return map_view(rows, filters, bool(inputs.waste))


# -- decisions ---------------------------------------------------------------------------------------------
def placements(
    entries: list[dict[str, Any]] | None, bound: Mapping[str, str] | None = None, limit: int = 50
) -> list[dict[str, Any]] | None:
    """The extender's recent decisions; `bound`: pod key -> the node the pod is bound to now, which may
    differ from the extender's pick (kube-scheduler adds its own scores and breaks ties itself)."""
    if entries is None:
        return None
    out = []
    for e in entries[:limit]:
        out.append(
            {
                **e,
                "bound_node": (bound or {}).get(e["key"]),
                "time": clock_time(e.get("at")),
                "ask_text": ask_text(str(e.get("ask", ""))),
                "gpus_text": ", ".join(str(g) for g in e["gpus"]),
            }
        )
    return out


def ask_text(label: str) -> str:
    """The extender's short ask ('2', '0.5', 'mig-1g.10gb,mig-2g.20gbx2') in words."""
    if label.startswith("mig-"):
        return "MIG " + ", ".join(p.removeprefix("mig-") for p in label.split(","))
    try:
        n = float(label)
    except ValueError:
        return label
    if n < 1:
        return f"{n:g} of a GPU"
    return "1 GPU" if n == 1 else f"{n:g} GPUs"


def webhook_rewrites(recent: list[dict[str, Any]] | None, limit: int = 30) -> list[dict[str, Any]] | None:
    if recent is None:
        return None
    out = []
    for r in recent[:limit]:
        ns = str(r.get("namespace") or "")
        pod = str(r.get("pod") or r.get("workload") or r.get("uid") or "?")
        out.append(
            {
                "time": clock_time(r.get("at")),
                "pod": f"{ns}/{pod}" if ns else pod,
                "outcome": str(r.get("outcome") or "?"),
                "profile": str(r.get("profile") or "none"),
                "reasons": [str(x) for x in r.get("reasons") or []],
                "dry_run": bool(r.get("dry_run")),
            }
        )
    return out


def autoscaler_view(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    variants = []
    for d in doc.get("decisions") or []:
        current, desired = d.get("current"), d.get("desired")
        variants.append(
            {
                "variant": f"{d.get('namespace')}/{d.get('variant')}",
                "model": d.get("model_id") or "",
                "accelerator": d.get("accelerator") or "",
                "current": current,
                "desired": desired,
                "ready": d.get("ready"),
                "action": str(d.get("action") or "none"),
                "delta": (desired - current)
                if isinstance(current, int) and isinstance(desired, int)
                else None,
                "reasons": [str(x) for x in d.get("reasons") or []],
            }
        )
    metrics = doc.get("metrics") or {}
    return {"cycles": doc.get("cycles", 0), "metrics_error": metrics.get("error"), "variants": variants}


def layout_plan(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The MIG or sharing controller's plan: {"nodes": [{node,current,target,action,reason,blocked_by}],
    "unmet": {profile: n}}."""
    nodes = [
        {
            "node": str(n.get("node", "")),
            "current": plain(n.get("current")),
            "target": plain(n.get("target")),
            "action": plain(n.get("action")),
            "reason": plain(n.get("reason")),
            "blocked_by": None if not n.get("blocked_by") else plain(n.get("blocked_by")),
        }
        for n in doc.get("nodes") or []
    ]
    unmet = [{"profile": str(p), "count": n} for p, n in sorted((doc.get("unmet") or {}).items())]
    title = "MIG layout controller" if name == "mig" else "GPU-sharing controller"
    return {"name": name, "title": title, "nodes": nodes, "unmet": unmet}


def nodescale_plan(doc: dict[str, Any]) -> dict[str, Any]:
    """{"scale": [{group,from,to,reason}], "drain": [{node,reason,pods}], "blocked": [{node,reason}]}."""
    scale = [
        {
            "group": str(s.get("group", "")),
            "from": s.get("from"),
            "to": s.get("to"),
            "direction": "up"
            if _num(s.get("to")) > _num(s.get("from"))
            else ("down" if _num(s.get("to")) < _num(s.get("from")) else "hold"),
            "reason": plain(s.get("reason")),
        }
        for s in doc.get("scale") or []
    ]
    drain = [
        {"node": str(d.get("node", "")), "reason": plain(d.get("reason")), "pods": plain(d.get("pods"))}
        for d in doc.get("drain") or []
    ]
    blocked = [
        {"node": str(b.get("node", "")), "reason": plain(b.get("reason"))} for b in doc.get("blocked") or []
    ]
    return {"scale": scale, "drain": drain, "blocked": blocked}


def _num(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else 0.0


# -- waste and cost ---------------------------------------------------------------------------------------
def top_wasters(waste: Iterable[WasteScore], limit: int = TOP_WASTERS) -> list[dict[str, Any]]:
    ranked = heapq.nsmallest(limit, waste, key=lambda w: (-w.score, w.namespace, w.pod, w.gpu))
    return [
        {
            "pod": f"{w.namespace}/{w.pod}",
            "node": w.node,
            "gpu": w.gpu,
            "score": round(w.score),
            "compute": pct(w.compute),
            "memory": pct(w.memory),
            "reasons": list(w.reasons),
            "idle": w.idle,
        }
        for w in ranked
    ]


def budget_band(used_pct: float | None) -> str:
    if used_pct is None:
        return "none"
    return "over" if used_pct >= 100 else ("near" if used_pct >= 80 else "ok")


def money(
    waste: list[WasteScore],
    cost_plan: dict[str, Any] | None,
    report: dict[str, Any] | None,
    suggestions: dict[str, Any] | None,
    note: str = "",
) -> dict[str, Any]:
    """Top wasters; cost per namespace (against budget with the cost controller, else the point-in-time
    cost report); suggested savings (app/ops/optimize.py) and the cost controller's per-pod savings."""
    namespaces: list[dict[str, Any]] = []
    budgets = cost_plan is not None
    if cost_plan is not None:
        for n in cost_plan.get("namespaces") or []:
            used = n.get("budget_used_pct")
            used_f = float(used) if isinstance(used, int | float) else None
            namespaces.append(
                {
                    "namespace": str(n.get("namespace", "")),
                    "gpu_hours": n.get("gpu_hours"),
                    "cost_usd": n.get("cost_usd"),
                    "budget_usd": n.get("budget_usd"),
                    "budget_used_pct": None if used_f is None else round(used_f, 1),
                    "bar_pct": None if used_f is None else max(0.0, min(100.0, used_f)),
                    "band": budget_band(used_f),
                }
            )
    elif report is not None:
        for n in report.get("namespaces") or []:
            namespaces.append(
                {
                    "namespace": n["namespace"],
                    "pods": n.get("pods"),
                    "gpus": n.get("gpus"),
                    "usd_per_hour": n.get("usd_per_hour"),
                    "usd_per_month": n.get("usd_per_month"),
                }
            )
    savings = None
    if cost_plan is not None:
        savings = [
            {
                "namespace": str(s.get("namespace", "")),
                "pod": str(s.get("pod", "")),
                "suggestion": plain(s.get("suggestion")),
                "monthly_saving_usd": s.get("monthly_saving_usd"),
            }
            for s in cost_plan.get("savings") or []
        ]
        savings.sort(key=lambda s: -_num(s["monthly_saving_usd"]))
    tips = None
    if suggestions is not None:
        tips = []
        for s in (suggestions.get("suggestions") or [])[:TOP_SUGGESTIONS]:
            hour = s.get("usd_per_hour_saved")
            tips.append(
                {
                    "kind": s.get("kind", ""),
                    "target": s.get("target", ""),
                    "reason": s.get("reason", ""),
                    "action": s.get("action", ""),
                    "usd_per_month": None if hour is None else round(hour * HOURS_PER_MONTH, 2),
                }
            )
    total_hour = (suggestions or {}).get("usd_per_hour_saved")
    return {
        "wasters": top_wasters(waste),
        "budgets": budgets,
        "namespaces": namespaces,
        "totals": (report or {}).get("totals"),
        "prices": (report or {}).get("prices"),
        "suggestions": tips,
        "suggested_usd_per_month": None if total_hour is None else round(total_hour * HOURS_PER_MONTH, 2),
        "notes": list((suggestions or {}).get("notes") or []),
        "savings": savings,
        "note": note,
    }


def source_label(source: str) -> str:
    """The cluster view's source as the header shows it: the bundled demo by name, anything else as is."""
    if source.startswith("snapshot:") and source.rstrip("/").endswith("app/cluster/demo"):
        return "bundled demo cluster (snapshot)"
    return source


# -- the page ------------------------------------------------------------------------------------------------
def build(
    inputs: ConsoleInputs, filters: Filters = Filters(), gmap: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The whole view model of one page (`gmap`: the map already built from the same inputs and filters)."""
    placed = placements(inputs.placements, {h.key: h.node for h in inputs.holders if not h.assumed})
    plans: dict[str, dict[str, Any]] = {}
    for name in ("mig", "sharing"):
        if name in inputs.plans:
            plans[name] = layout_plan(name, inputs.plans[name])
    if "nodescale" in inputs.plans:
        plans["nodescale"] = nodescale_plan(inputs.plans["nodescale"])
    gmap = gmap if gmap is not None else gpu_map(inputs, filters)
    pending = sum(1 for p in placed or [] if p["outcome"] == "unschedulable")
    return {
        "source": inputs.source,
        "source_label": source_label(inputs.source),
        "generated": clock_time(inputs.generated_at),
        "map": gmap,
        "placements": placed,
        "webhook": webhook_rewrites(inputs.webhook),
        "autoscaler": autoscaler_view(inputs.autoscaler),
        "plans": plans,
        "money": money(
            inputs.waste, inputs.plans.get("cost"), inputs.cost_report, inputs.suggestions, inputs.money_note
        ),
        "errors": dict(inputs.errors),
        "waste_enabled": inputs.waste_enabled,
        "summary": {
            **gmap["totals"],
            "free": round(gmap["totals"]["gpus"] - gmap["totals"]["used"], 2),
            "pods": len({h.key for h in inputs.holders}),
            "unschedulable": pending,
            "usd_per_hour": ((inputs.cost_report or {}).get("totals") or {}).get("usd_per_hour"),
            "idle_usd_per_hour": ((inputs.cost_report or {}).get("totals") or {}).get("idle_usd_per_hour"),
        },
    }
