"""`optimize`: concrete suggestions, each with its reason and its saving per hour and per month (x 730) where
one can be priced.

- mig: a 1-GPU workload whose usage history fits a MIG slice (the webhook's own `choose_profile`, over the
  profiles some node offers) -> which profile on which GPU product;
- idle / low-use: a held GPU whose waste score says it sits idle (100) or mostly unused (>= LOW_USE_SCORE),
  with the MIG profile its measured use fits (app/cost/savings.py);
- fragmented: a node whose free GPUs cannot give a 2+ GPU pod a set better connected than SYS although
  the node has such links (the free GPUs are scattered across sockets/NVLink domains);
- consolidate: a partly used node whose whole-GPU pods fit on the free GPUs of other nodes of the same
  product, so moving them frees the whole node (first-fit decreasing, each node drained at most once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations
from typing import Any

from app.cost.prices import HOURS_PER_MONTH, PriceTable
from app.cost.savings import right_size
from app.gpu.mig import geometry_for, offered_profiles
from app.ops.inventory import ClusterFacts, GpuPod, gpu_equivalent
from app.ops.status import node_usage
from app.waste.score import WasteScore
from webhook.history import WorkloadKey
from webhook.mig import Decision, Usage, choose_profile, smaller

LOW_USE_SCORE = 75.0
#: link tokens a multi-GPU pod is happy with (anything short of crossing sockets)
GOOD_LINKS = ("PIX", "PXB", "PHB", "NODE")


def _good(token: str) -> bool:
    t = token.upper()
    return t.startswith("NV") or t in GOOD_LINKS


def _largest_good_set(links: tuple[tuple[str, ...], ...], cols: list[int]) -> int:
    """Size of the largest subset of columns whose every pair is a good link (nodes have <= 8 GPUs)."""
    for size in range(len(cols), 1, -1):
        for combo in combinations(cols, size):
            if all(_good(links[a][b]) for a, b in combinations(combo, 2)):
                return size
    return 1 if cols else 0


def mig_suggestions(
    facts: ClusterFacts,
    nodes: Iterable[Mapping[str, Any]],
    usage: Mapping[WorkloadKey, Mapping[str, Usage]],
    prices: PriceTable,
    threshold: float = 0.5,
    headroom: float = 0.2,
) -> list[dict[str, Any]]:
    offered = offered_profiles(nodes)
    product_of = {n.name: n.product for n in facts.nodes}
    by_workload: dict[WorkloadKey, list[GpuPod]] = {}
    for pod in facts.holding():
        if pod.gpus == 1 and not pod.mig:
            by_workload.setdefault(pod.workload, []).append(pod)
    out: list[dict[str, Any]] = []
    for key, pods in sorted(by_workload.items(), key=lambda kv: str(kv[0])):
        containers = usage.get(key)
        if not containers:
            continue
        # a 1-GPU pod: the container that used the most memory decides
        use = max(containers.values(), key=lambda u: u.peak_memory_mib)
        best: Decision | None = None
        for product, profiles in sorted(offered.items()):
            d = choose_profile(use, product, profiles, threshold, headroom)
            best = d if best is None else smaller(best, d)
        if best is None or best.profile is None:
            continue
        current = prices.per_hour(product_of.get(pods[0].node, ""))
        geo = geometry_for(best.gpu or "")
        prof = geo.profile(best.profile) if geo else None
        target = prices.per_hour(best.gpu or "")
        saving = None
        if current is not None and target is not None and prof is not None:
            saving = round(len(pods) * (current - target * prof.compute_fraction), 2)
        out.append(
            {
                "kind": "mig",
                "target": str(key),
                "pods": [f"{p.namespace}/{p.name}" for p in pods],
                "profile": best.profile,
                "gpu": best.gpu,
                "resource": f"nvidia.com/mig-{best.profile.replace('+', '.')}",
                "reason": best.reason,
                "usd_per_hour_saved": saving,
                "action": f"request nvidia.com/mig-{best.profile} on {best.gpu} instead of a whole GPU "
                f"(or label namespace {key.namespace} gpu-autoscaler.io/mig-rewrite=enabled)",
            }
        )
    return out


def waste_suggestions(
    facts: ClusterFacts,
    waste: Iterable[WasteScore],
    prices: PriceTable,
    threshold: float = 0.5,
    headroom: float = 0.2,
) -> list[dict[str, Any]]:
    """Idle GPUs (release: saves what the pod holds) and low-use ones (right-size: the MIG profile its use
    fits, and what that saves; without a fitting profile the unused share of the price as an estimate)."""
    product_of = {n.name: n.product for n in facts.nodes}
    pods = {(p.namespace, p.name): p for p in facts.holding()}
    out: list[dict[str, Any]] = []
    for w in waste:
        if w.score < LOW_USE_SCORE:
            continue
        product = product_of.get(w.node, "")
        price = prices.per_hour(product)
        pod = pods.get((w.namespace, w.pod))
        held = gpu_equivalent(pod, product) if pod else 1.0
        slice_profile = pod.mig[0][0] if pod and len(pod.mig) == 1 and pod.mig[0][1] == 1 else None
        fit = right_size(
            w.compute,
            w.memory,
            product,
            held,
            prices,
            slice_profile=slice_profile,
            threshold=threshold,
            headroom=headroom,
        )
        if w.idle:
            saving = round(price * held, 2) if price is not None else None
            action = "release the GPU (scale the workload to zero / stop the notebook)"
        elif fit.profile is not None:
            saving = round(fit.usd_per_hour_saved, 2) if fit.usd_per_hour_saved is not None else None
            action = f"right-size to nvidia.com/mig-{fit.profile} on {fit.gpu}"
        else:
            saving = round(price * min(1.0, held) * w.score / 100, 2) if price is not None else None
            action = "right-size: a smaller MIG slice or a shared GPU would do"
        out.append(
            {
                "kind": "idle" if w.idle else "low-use",
                "target": f"{w.namespace}/{w.pod}",
                "node": w.node,
                "gpu": w.gpu,
                "waste_score": w.score,
                "profile": fit.profile,
                "reason": "; ".join(w.reasons) or f"waste score {w.score:.0f}",
                "usd_per_hour_saved": saving,
                "action": action,
            }
        )
    return out


def fragmentation_suggestions(facts: ClusterFacts, prices: PriceTable) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    free_of: dict[str, int] = {}
    for n in facts.nodes:
        used, _ = node_usage(facts, n.name)
        free_of[n.name] = max(0, n.gpus - used)
    for n in facts.nodes:
        free = free_of[n.name]
        if n.links is None or free < 2 or free == n.gpus:
            continue
        used_cols = _used_columns(facts, n.name, len(n.gpu_phys))
        free_cols = [c for c in range(len(n.gpu_phys)) if c not in used_cols]
        node_best = _largest_good_set(n.links, list(range(len(n.gpu_phys))))
        free_best = _largest_good_set(n.links, free_cols)
        if free_best < min(free, node_best):
            out.append(
                {
                    "kind": "fragmented",
                    "target": n.name,
                    "free_gpus": free,
                    "largest_connected_free_set": free_best,
                    "reason": f"{free} GPUs free, at most {free_best} of them connected better than SYS",
                    "usd_per_hour_saved": None,
                    "action": "repack: move the node's pods so its free GPUs share a socket/NVLink domain "
                    "(use resource_policy=fragmentation for new pods)",
                }
            )
    # consolidation: drain partly used nodes into the free GPUs of others with the same product
    drained: set[str] = set()
    receivers = {name: free for name, free in free_of.items()}
    partly = sorted(
        (n for n in facts.nodes if n.gpus and 0 < n.gpus - free_of[n.name] < n.gpus),
        key=lambda n: (n.gpus - free_of[n.name], n.name),
    )
    for n in partly:
        pods = sorted(facts.holding(n.name), key=lambda p: -p.gpus)
        if not pods or any(p.mig for p in pods):
            continue
        peers = [
            m for m in facts.nodes if m.name != n.name and m.product == n.product and m.name not in drained
        ]
        plan: list[tuple[GpuPod, str]] = []
        room = {
            m.name: receivers[m.name] for m in peers if receivers[m.name] < m.gpus
        }  # only partly used ones
        for pod in pods:
            dest = next((name for name, r in sorted(room.items()) if r >= pod.gpus), None)
            if dest is None:
                plan = []
                break
            room[dest] -= pod.gpus
            plan.append((pod, dest))
        if not plan:
            continue
        for name, r in room.items():
            receivers[name] = r
        drained.add(n.name)
        receivers[n.name] = n.gpus
        price = prices.per_hour(n.product)
        out.append(
            {
                "kind": "consolidate",
                "target": n.name,
                "moves": [{"pod": f"{p.namespace}/{p.name}", "gpus": p.gpus, "to": d} for p, d in plan],
                "reason": f"{n.gpus - free_of[n.name]} of {n.gpus} GPUs used; "
                f"its pods fit on other {n.product} nodes",
                "usd_per_hour_saved": round(price * n.gpus, 2) if price is not None else None,
                "action": f"cordon and drain {n.name}, then scale the node pool down by one",
            }
        )
    return out


def _used_columns(facts: ClusterFacts, node: str, n_cols: int) -> set[int]:
    """Columns of the link matrix held by pods: the agent's `allocated` GPUs when they account for every
    held GPU, else the lowest columns (the device plugin's order) - a hint, not a fact."""
    used, _ = node_usage(facts, node)
    n = facts.node(node)
    if n is not None and len(n.allocated) == used:
        cols = {c for c, p in enumerate(n.gpu_phys) if p in n.allocated}
        if len(cols) == used:
            return cols
    return set(range(min(used, n_cols)))


def optimize(
    facts: ClusterFacts,
    nodes: Iterable[Mapping[str, Any]],
    prices: PriceTable,
    usage: Mapping[WorkloadKey, Mapping[str, Usage]] | None = None,
    waste: Iterable[WasteScore] = (),
    threshold: float = 0.5,
    headroom: float = 0.2,
    notes: Iterable[str] = (),
) -> dict[str, Any]:
    """Every suggestion, biggest priced saving first."""
    suggestions = [
        *mig_suggestions(facts, nodes, usage or {}, prices, threshold, headroom),
        *waste_suggestions(facts, waste, prices, threshold, headroom),
        *fragmentation_suggestions(facts, prices),
    ]
    for s in suggestions:
        hourly = s.get("usd_per_hour_saved")
        s["usd_per_month_saved"] = None if hourly is None else round(hourly * HOURS_PER_MONTH, 2)
    suggestions.sort(key=lambda s: (-(s.get("usd_per_hour_saved") or 0.0), s["kind"], s["target"]))
    total = sum(s.get("usd_per_hour_saved") or 0.0 for s in suggestions)
    return {
        "suggestions": suggestions,
        "usd_per_hour_saved": round(total, 2),
        "usd_per_month_saved": round(total * HOURS_PER_MONTH, 2),
        "notes": list(notes),
    }
