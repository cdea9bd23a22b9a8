"""The MIG layout planner, pure: a snapshot of supply and demand -> which named layout each node should take.

Demand, in slices per profile: pods Pending for `nvidia.com/mig-*` (hard), slices the webhook chose in the
last window (a forecast), and a target mix of compute classes (a shape, e.g. 70 % 1g / 20 % 2g / 10 % 3g).
Supply: each MIG node's free slices now (allocatable minus what running pods hold), and what it would have
under each layout of the mig-parted config that suits its GPU model.

The plan compares layouts by the unmet demand left in the whole cluster, in order: pending slices no free
slice covers; then max(pending, recent) slices; then the distance of the capacity's compute-class shares
from the target mix. A node changes only for a strict gain (the mix by at least MIX_MIN_GAIN), greedily the
best (node, layout) first, at most `max_parallel` nodes reconfiguring at once.

Safety: a layout that changes a GPU a running pod uses is never chosen (a node whose per-GPU use is unknown
counts every GPU as used while any GPU pod runs there); a node mig-manager is working on (`pending`,
`rebooting`), one it failed on (`failed`: hands off until someone relabels it), one still in its cooldown,
and one the node selector leaves out are not changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.gpu.mig import GpuGeometry, compute_class
from app.gpu.migparted import GpuLayout, MigConfigSet
from app.mig.rollout import NodeDecision, NodePlans, Request, Status, in_cooldown, request_status

#: mig-manager's states (label `nvidia.com/mig.config.state`)
IN_FLIGHT_STATES = ("pending", "rebooting")
FAILED_STATE = "failed"
#: the smallest improvement of the mix distance (sum of share differences, 0..2) worth a reconfiguration
MIX_MIN_GAIN = 0.05


@dataclass(frozen=True)
class MigNode:
    """One MIG-capable node as the planner sees it."""

    name: str
    product: str
    geo: GpuGeometry | None
    gpus: int  # physical GPUs (0 = unknown)
    config: str  # nvidia.com/mig.config ("" = none)
    state: str  # nvidia.com/mig.config.state ("" = none)
    allocatable: Mapping[str, int]  # profile -> MIG devices the device plugin advertises
    used: Mapping[str, int]  # profile -> slices running pods hold
    pods: tuple[str, ...] = ()  # running GPU pods (namespace/name), MIG or whole GPU
    used_gpus: frozenset[int] | None = None  # GPU indices in use (node agent); None = unknown
    managed: bool = True  # matches the controller's node selector
    request: Request | None = None  # our last label change (annotation)
    pending_since: float | None = None  # first seen in pending/rebooting without a request of ours


@dataclass(frozen=True)
class Demand:
    pending: Mapping[str, int] = field(default_factory=dict)  # profile -> slices asked by Pending pods
    recent: Mapping[str, int] = field(default_factory=dict)  # profile -> slices chosen in the window


@dataclass(frozen=True)
class PlanParams:
    now: float
    target_mix: Mapping[str, float] = field(default_factory=lambda: {"1g": 0.7, "2g": 0.2, "3g": 0.1})
    max_parallel: int = 1
    cooldown_s: float = 1800.0
    timeout_s: float = 900.0


@dataclass
class NodePlan(NodeDecision):
    """A node's decision plus its slices: free now and under the target, the GPUs that change."""

    free: dict[str, int] = field(default_factory=dict)
    target_free: dict[str, int] = field(default_factory=dict)
    changed_gpus: list[int] = field(default_factory=list)
    gpus_after: list[str] = field(default_factory=list)  # per GPU, the target layout in words

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "free": dict(self.free),
            "target_free": dict(self.target_free),
            "changed_gpus": list(self.changed_gpus),
            "gpus_after": list(self.gpus_after),
        }


@dataclass
class MigPlan(NodePlans):
    nodes: list[NodePlan]
    unmet: dict[str, int]  # pending slices no free slice covers once the plan is in effect
    demand: Demand
    config_source: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The shape of `gpu-autoscaler mig plan --output json` and `GET /mig/plan`."""
        demand = {"pending": dict(self.demand.pending), "recent": dict(self.demand.recent)}
        return {**self.base_dict(), "demand": demand}

    def node(self, name: str) -> NodePlan | None:
        found: NodePlan | None = super().node(name)
        return found


@dataclass(frozen=True)
class _Option:
    """One way a node can be: its free slices and capacity (profile -> count) under a layout."""

    layout: str | None
    free: Mapping[str, int]
    capacity: Mapping[str, int]
    changed: tuple[int, ...] = ()
    blocked_by: tuple[str, ...] = ()
    gpus_after: tuple[str, ...] = ()


def layout_capacity(gpus: Sequence[GpuLayout]) -> dict[str, int]:
    """Slices per profile a node advertises when its GPUs are laid out as `gpus`."""
    total: Counter[str] = Counter()
    for gpu in gpus:
        if gpu.mig_enabled:
            total.update(gpu.counts)
    return dict(total)


def current_gpus(node: MigNode, configs: MigConfigSet) -> list[GpuLayout] | None:
    """Per-GPU layout now, when the node's label names a config we know and mig-manager reports it done."""
    if node.geo is None or not node.gpus or node.state not in ("success", ""):
        return None
    if not configs.usable(node.config, node.geo):
        return None
    per_gpu = configs.layouts[node.config].per_gpu(node.geo, node.gpus)
    if any(g is None for g in per_gpu):
        return None
    return [g for g in per_gpu if g is not None]


def _minus(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: max(0, v - b.get(k, 0)) for k, v in a.items()}


def _current_option(node: MigNode) -> _Option:
    return _Option(None, _minus(node.allocatable, node.used), dict(node.allocatable))


def _option(
    node: MigNode, name: str, configs: MigConfigSet, now_gpus: list[GpuLayout] | None
) -> _Option | None:
    """The node under layout `name`; None when it cannot be evaluated (GPUs it leaves alone are unknown)."""
    assert node.geo is not None
    per_gpu = configs.layouts[name].per_gpu(node.geo, node.gpus)
    after: list[GpuLayout] = []
    for i, gpu in enumerate(per_gpu):
        if gpu is not None:
            after.append(gpu)
        elif now_gpus is not None:
            after.append(now_gpus[i])
        else:
            return None
    if now_gpus is not None:
        changed = tuple(i for i in range(node.gpus) if after[i] != now_gpus[i])
    else:
        changed = tuple(range(node.gpus)) if name != node.config else ()
    capacity = layout_capacity(after)
    blocked: tuple[str, ...] = ()
    if changed and node.pods:
        used_gpus = set(range(node.gpus)) if node.used_gpus is None else set(node.used_gpus)
        evicts = any(n > capacity.get(p, 0) for p, n in node.used.items() if n)
        if used_gpus & set(changed) or evicts:
            blocked = node.pods
    return _Option(
        name,
        _minus(capacity, node.used),
        capacity,
        changed,
        blocked,
        tuple(g.describe() for g in after),
    )


def _mix_distance(capacity: Mapping[str, int], mix: Mapping[str, float], geos: Mapping[str, int]) -> float:
    """Sum over compute classes of |share of compute slices - target share| (0 = on target, up to 2)."""
    if not mix:
        return 0.0
    slices: Counter[str] = Counter()
    for profile, n in capacity.items():
        cls = compute_class(profile)
        slices[cls or "other"] += n * geos.get(profile, 0)
    total = sum(slices.values())
    if total <= 0:
        return 1.0
    classes = set(slices) | set(mix)
    return sum(abs(slices.get(c, 0) / total - mix.get(c, 0.0)) for c in classes)


Score = tuple[int, int, float]


def _totals(chosen: Mapping[str, _Option]) -> tuple[Counter[str], Counter[str]]:
    """Free slices and capacity per profile of the whole cluster under `chosen`."""
    free: Counter[str] = Counter()
    capacity: Counter[str] = Counter()
    for opt in chosen.values():
        free.update(opt.free)
        capacity.update(opt.capacity)
    return free, capacity


def _score(
    totals: tuple[Counter[str], Counter[str]],
    swap: tuple[_Option, _Option] | None,
    demand: Demand,
    mix: Mapping[str, float],
    compute: Mapping[str, int],
) -> Score:
    """(unmet pending, unmet max(pending, recent), mix distance) of the cluster, with one node's option
    `swap[0]` replaced by `swap[1]` (a delta on the totals: the greedy search stays linear in nodes)."""
    free, capacity = totals
    if swap is not None:
        old, new = swap
        free, capacity = free.copy(), capacity.copy()
        free.subtract(old.free)
        free.update(new.free)
        capacity.subtract(old.capacity)
        capacity.update(new.capacity)
    pending = sum(max(0, n - free.get(p, 0)) for p, n in demand.pending.items())
    profiles = set(demand.pending) | set(demand.recent)
    forecast = sum(
        max(0, max(demand.pending.get(p, 0), demand.recent.get(p, 0)) - free.get(p, 0)) for p in profiles
    )
    positive = {p: n for p, n in capacity.items() if n > 0}
    return pending, forecast, round(_mix_distance(positive, mix, compute), 6)


def _better(a: Score, b: Score) -> bool:
    """Is score `a` a strict gain over `b` (lower unmet pending, then forecast, then a real mix gain)?"""
    if a[:2] != b[:2]:
        return a[:2] < b[:2]
    return a[2] <= b[2] - MIX_MIN_GAIN


def _unmet(chosen: Mapping[str, _Option], demand: Demand) -> dict[str, int]:
    free: Counter[str] = Counter()
    for opt in chosen.values():
        free.update(opt.free)
    return {p: n - free.get(p, 0) for p, n in sorted(demand.pending.items()) if n > free.get(p, 0)}


def _gain(before: Mapping[str, _Option], after: Mapping[str, _Option], demand: Demand, node: str) -> str:
    """What a change buys, in words: the pending / recent slices it covers, else the mix."""
    free_b: Counter[str] = Counter()
    free_a: Counter[str] = Counter()
    for opt in before.values():
        free_b.update(opt.free)
    for opt in after.values():
        free_a.update(opt.free)
    parts = []
    for what, want in (
        ("pending", demand.pending),
        ("recently chosen", {p: max(demand.pending.get(p, 0), n) for p, n in demand.recent.items()}),
    ):
        covered = {
            p: min(n, free_a.get(p, 0)) - min(n, free_b.get(p, 0))
            for p, n in want.items()
            if min(n, free_a.get(p, 0)) > min(n, free_b.get(p, 0))
        }
        if covered:
            parts.append(f"covers {', '.join(f'{c} {what} {p}' for p, c in sorted(covered.items()))}")
            break
    if not parts:
        parts.append("brings the slices closer to the target mix")
    lost = {
        p: free_b.get(p, 0) - free_a.get(p, 0)
        for p in set(before[node].free) | set(after[node].free)
        if free_b.get(p, 0) > free_a.get(p, 0)
    }
    if lost:
        parts.append(f"gives up {', '.join(f'{n} free {p}' for p, n in sorted(lost.items()))}")
    return "; ".join(parts)


def plan(nodes: Sequence[MigNode], demand: Demand, configs: MigConfigSet, params: PlanParams) -> MigPlan:
    """The whole plan for one snapshot. Pure: same inputs, same plan."""
    compute: dict[str, int] = {}
    for node in nodes:
        if node.geo is not None:
            for prof in node.geo.profiles:
                compute.setdefault(prof.name, prof.compute_slices)
    chosen: dict[str, _Option] = {n.name: _current_option(n) for n in nodes}
    plans: dict[str, NodePlan] = {}
    options: dict[str, list[_Option]] = {}
    held: dict[str, str] = {}
    in_flight = 0
    for node in nodes:
        now_gpus = current_gpus(node, configs) if node.geo is not None else None
        done = node.state == "success" and _shows(node, configs)
        status = request_status(
            node.request,
            node.config,
            failed=node.state == FAILED_STATE,
            done=done,
            now=params.now,
            timeout_s=params.timeout_s,
        )
        np = NodePlan(
            node.name,
            node.config or None,
            node.config or None,
            state=node.state,
            request=status,
            free=dict(chosen[node.name].free),
            target_free=dict(chosen[node.name].free),
        )
        plans[node.name] = np
        busy = node.state in IN_FLIGHT_STATES or status in ("in_progress", "stuck")
        if busy:
            in_flight += 1
        why = _hold_reason(node, status, params)
        if why:
            held[node.name] = why
        if node.geo is None or not node.gpus:
            continue
        opts = []
        for name in sorted(configs.layouts):
            if name == node.config or not configs.usable(name, node.geo):
                continue
            opt = _option(node, name, configs, now_gpus)
            if opt is not None and opt.changed:
                opts.append(opt)
        options[node.name] = opts

    base = _score(_totals(chosen), None, demand, params.target_mix, compute)
    slots = max(0, params.max_parallel - in_flight)
    picked: list[str] = []
    while len(picked) < slots:
        best: tuple[Score, int, str, str, _Option] | None = None
        totals = _totals(chosen)
        for name, opts in options.items():
            if name in picked or name in held:
                continue
            for opt in opts:
                if opt.blocked_by:
                    continue
                score = _score(totals, (chosen[name], opt), demand, params.target_mix, compute)
                if not _better(score, base):
                    continue
                key = (score, len(opt.changed), name, opt.layout or "", opt)
                if best is None or key[:4] < best[:4]:
                    best = key
        if best is None:
            break
        score, _, name, _, opt = best
        before = dict(chosen)
        chosen[name] = opt
        base = score
        picked.append(name)
        np = plans[name]
        np.target, np.action = opt.layout, "reconfigure"
        np.reason = f"{_gain(before, chosen, demand, name)}; changes GPU {', '.join(map(str, opt.changed))}"
        np.target_free = dict(opt.free)
        np.changed_gpus = list(opt.changed)
        np.gpus_after = list(opt.gpus_after)

    # the rest: keep, or say what holds back a better layout
    totals = _totals(chosen)
    for node in nodes:
        np = plans[node.name]
        if node.name in picked:
            continue
        opts = options.get(node.name, [])
        better = _best_alone(node.name, opts, chosen, totals, demand, params, compute, base)
        why = held.get(node.name, "")
        if node.state == FAILED_STATE or np.request == "stuck":
            np.action, np.reason = "blocked", why
            continue
        busy = node.state in IN_FLIGHT_STATES or np.request == "in_progress"
        if why and (better is None or not node.managed or busy):
            np.reason = why
            continue
        if better is None:
            np.reason = "current layout serves the demand best" + (
                "" if node.config else " (no nvidia.com/mig.config label)"
            )
            continue
        np.target, np.action = better.layout, "blocked"
        np.target_free = dict(better.free)
        np.changed_gpus = list(better.changed)
        np.gpus_after = list(better.gpus_after)
        gain = f"{better.layout} {_gain(chosen, {**chosen, node.name: better}, demand, node.name)}"
        if better.blocked_by:
            np.blocked_by = list(better.blocked_by)
            np.reason = f"{gain}, but running pods use GPU(s) it would change"
        elif why:
            np.reason = f"{gain}, but {why}"
        else:
            np.reason = f"{gain}, but at most {params.max_parallel} node(s) reconfigure at once"
    notes = configs.notes({n.geo.key for n in nodes if n.geo is not None})
    return MigPlan(
        [plans[n.name] for n in sorted(nodes, key=lambda n: n.name)],
        _unmet(chosen, demand),
        demand,
        configs.source,
        notes,
    )


def _best_alone(
    name: str,
    opts: Sequence[_Option],
    chosen: Mapping[str, _Option],
    totals: tuple[Counter[str], Counter[str]],
    demand: Demand,
    params: PlanParams,
    compute: Mapping[str, int],
    base: Score,
) -> _Option | None:
    """The best layout for one node on top of the plan, blocked ones included (to say what holds it)."""
    best: tuple[Score, int, str] | None = None
    found: _Option | None = None
    for opt in opts:
        score = _score(totals, (chosen[name], opt), demand, params.target_mix, compute)
        if not _better(score, base):
            continue
        key = (score, len(opt.changed), opt.layout or "")
        if best is None or key < best:
            best, found = key, opt
    return found


def _hold_reason(node: MigNode, status: Status, params: PlanParams) -> str:
    """Why a node may not be changed now ("" = it may)."""
    if node.geo is None:
        return f"unknown GPU model {node.product or '?'}: no MIG geometry"
    if not node.gpus:
        return "GPU count unknown (no nvidia.com/gpu.count label or topology annotation)"
    if not node.managed:
        return "not managed: the node does not match the MIG node selector"
    if node.state == FAILED_STATE:
        return (
            f"mig-manager failed to apply {node.config or '?'}: left alone until someone changes "
            "nvidia.com/mig.config by hand"
        )
    if status == "stuck":
        return (
            f"{node.config} requested and still not in effect after {params.timeout_s:.0f}s "
            f"(state {node.state or '?'})"
        )
    if node.state in IN_FLIGHT_STATES:
        since = node.request.at if status != "none" and node.request else node.pending_since
        if since is not None and params.now - since > params.timeout_s:
            return f"mig-manager {node.state} on {node.config} for over {params.timeout_s:.0f}s"
        return f"mig-manager is applying {node.config} ({node.state})"
    if status == "in_progress":
        return f"{node.config} requested; waiting for mig-manager and the device plugin"
    left = in_cooldown(node.request, params.now, params.cooldown_s)
    if left > 0:
        return f"cooldown: reconfigured lately, {left:.0f}s left"
    return ""


def _shows(node: MigNode, configs: MigConfigSet) -> bool:
    """Does the node advertise the slices its labelled config gives (the device plugin caught up)?"""
    if node.geo is None or not node.gpus or not configs.usable(node.config, node.geo):
        return True  # nothing to compare with: mig-manager's word is all there is
    per_gpu = configs.layouts[node.config].per_gpu(node.geo, node.gpus)
    if any(g is None for g in per_gpu):
        return True
    want = layout_capacity([g for g in per_gpu if g is not None])
    have = {p: n for p, n in node.allocatable.items() if n}
    return want == have


def change_blocker(node: MigNode, target: str, configs: MigConfigSet) -> str:
    """Why `node` may not take layout `target` right now ('' = it may): the check made on a fresh view just
    before the label is written, since pods may have been bound since the plan."""
    if node.geo is None or not node.gpus:
        return "GPU model or count unknown"
    if node.state in IN_FLIGHT_STATES or node.state == FAILED_STATE:
        return f"mig-manager state is {node.state}"
    if not configs.usable(target, node.geo):
        return f"layout {target} does not suit {node.geo.key}"
    opt = _option(node, target, configs, current_gpus(node, configs))
    if opt is None:
        return f"the GPUs {target} leaves alone have an unknown layout"
    if opt.blocked_by:
        return f"running pods use GPU(s) it would change: {', '.join(opt.blocked_by)}"
    return ""
