"""The node-scaling plan: plain objects in (Nodes, Pods, MachineDeployments, Machines, PodDisruptionBudgets,
the time), a plan out. No Kubernetes client, no clock, no I/O: the loop (component.py) and the CLI feed it.

Scale up. GPU pods Pending for longer than their delay (shorter for higher priority classes) that fit no
current or upcoming node, as the extender's filter sees them, are packed onto new template nodes with the
extender's own filter and scores (simulate.py). Each round every group with room (max size, spot share)
packs the pods it can take onto as few new nodes as it needs; the round takes the group with the lowest
price per GPU placed — spot groups first — and repeats for the pods left: a greedy cheapest cover.

Scale down. A GPU node of one of our groups goes when its GPUs have been unallocated for `scale_down_idle`,
or its GPU allocation is under `scale_down_utilization` — and, in both cases, every pod on it may be evicted
(drain.py) and fits on another node (same simulation). A node that would go but may not is listed in
`blocked` with what holds it. Nothing goes down while a scale-up is planned or nodes are still coming.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.cost.prices import PriceTable
from app.nodescale.drain import PdbBudget, classify, pod_name
from app.nodescale.groups import Groups, NodeGroup, build_groups, parse_pairs, parse_time
from app.nodescale.predicates import pod_fits_node
from app.nodescale.simulate import Sim, _compute_slices
from extender.arrays import GPU_MILLI
from extender.core import ScoringConfig
from extender.fragmentation import TypicalPodLearner
from extender.inventory import InventoryError, PodAsk, parse_pod

Obj = Mapping[str, Any]

SCALE_DOWN_DISABLED = "cluster-autoscaler.kubernetes.io/scale-down-disabled"
#: on a node we cordoned to remove it (RFC 3339 time): a cordon of ours, not an operator's
ANN_SCALE_DOWN = "gpu-autoscaler.io/scale-down"


@dataclass(frozen=True)
class Params:
    scale_up_pending_s: float = 120.0
    scale_up_pending_priority_s: float = 30.0
    high_priority: int = 1000
    priority_cutoff: int = -10
    scale_down_idle_s: float = 600.0
    scale_down_utilization: float = 0.20
    scale_down_max_nodes: int = 1
    skip_system_pods: bool = True
    spot_max_share: float = 0.5
    spot_labels: tuple[tuple[str, str], ...] = ()
    provision_timeout_s: float = 900.0
    group_selector: str = ""
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    @classmethod
    def from_settings(cls, s: Any) -> Params:
        return cls(
            scale_up_pending_s=float(s.scale_up_pending),
            scale_up_pending_priority_s=float(s.scale_up_pending_priority),
            high_priority=int(s.scale_up_high_priority),
            priority_cutoff=int(s.scale_up_priority_cutoff),
            scale_down_idle_s=float(s.scale_down_idle),
            scale_down_utilization=float(s.scale_down_utilization),
            scale_down_max_nodes=int(s.scale_down_max_nodes),
            skip_system_pods=bool(s.scale_down_skip_system_pods),
            spot_max_share=float(s.spot_max_share),
            spot_labels=parse_pairs(str(s.spot_labels), "spot_labels"),
            provision_timeout_s=float(s.node_provision_timeout),
            group_selector=str(s.node_group_selector),
            scoring=ScoringConfig.from_settings(s),
        )

    def delay(self, priority: int) -> float:
        return self.scale_up_pending_priority_s if priority >= self.high_priority else self.scale_up_pending_s


@dataclass
class Inputs:
    nodes: Sequence[Obj]
    pods: Sequence[Obj]
    machine_deployments: Sequence[Obj]
    machines: Sequence[Obj]
    pdbs: Sequence[Obj]
    now: float
    prices: PriceTable
    #: node -> last time the loop saw a GPU allocated there (the loop's memory; the CLI has none)
    last_busy: Mapping[str, float] = field(default_factory=dict)
    #: group -> why it is backing off (the loop's memory of failed scale-ups)
    backoff: Mapping[str, str] = field(default_factory=dict)
    #: why scale-down waits (e.g. "10m after a scale-up"); "" = it may go
    hold_scale_down: str = ""
    #: node -> why it stays for now (e.g. an eviction was refused a minute ago)
    hold_nodes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, list_kind: Callable[[str], Sequence[Obj]], **kw: Any) -> Inputs:
        """The objects from a lister (a cluster view's `list`); the rest as keywords."""
        kinds = ("Node", "Pod", "MachineDeployment", "Machine", "PodDisruptionBudget")
        nodes, pods, mds, machines, pdbs = (list_kind(k) for k in kinds)
        return cls(nodes, pods, mds, machines, pdbs, **kw)


# -- the plan ---------------------------------------------------------------------------------------------
@dataclass
class ScaleEntry:
    group: str
    from_: int
    to: int
    reason: str
    code: str  # pending-pods | idle | under-used | provision-timeout
    pods: list[str] = field(default_factory=list)  # scale-up: the pods it is for
    machines: list[str] = field(default_factory=list)  # scale-down: Machines to mark delete-machine
    nodes: list[str] = field(default_factory=list)  # scale-down: nodes to drain first

    @property
    def direction(self) -> str:
        return "up" if self.to > self.from_ else "down"

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "from": self.from_, "to": self.to, "reason": self.reason}


@dataclass
class DrainEntry:
    node: str
    reason: str
    pods: list[str]
    code: str  # idle | under-used
    group: str
    machine: str

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "reason": self.reason, "pods": list(self.pods)}


@dataclass
class BlockedEntry:
    node: str
    reason: str
    code: str  # pdb | safe-to-evict | no-controller | kube-system | local-storage | no-room | min-size | …
    group: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "reason": self.reason}


@dataclass
class Plan:
    scale: list[ScaleEntry] = field(default_factory=list)
    drain: list[DrainEntry] = field(default_factory=list)
    blocked: list[BlockedEntry] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: groups whose Machines never became nodes (the loop backs them off)
    stuck_groups: dict[str, str] = field(default_factory=dict)
    #: GPU nodes with a GPU allocated now (the loop remembers when each was last busy)
    busy: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the CLI's JSON: {"scale": […], "drain": […], "blocked": […]}."""
        return {
            "scale": [s.to_dict() for s in self.scale],
            "drain": [d.to_dict() for d in self.drain],
            "blocked": [b.to_dict() for b in self.blocked],
        }

    def describe(self) -> dict[str, Any]:
        """The CLI's JSON plus what explains it (groups, pending pods, notes)."""
        return {**self.to_dict(), "groups": self.groups, "pending": self.pending, "notes": list(self.notes)}


# -- helpers ----------------------------------------------------------------------------------------------
def duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def gpu_units(ask: PodAsk) -> float:
    """GPUs a pod asks, MIG slices as their share of one GPU's 7 compute slices."""
    whole = ask.req.gpu_count * ask.req.gpu_milli / GPU_MILLI
    return whole + sum(_compute_slices(p) * n / 7 for p, n in ask.mig)


def _pending_since(pod: Obj) -> float | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            t = parse_time(c.get("lastTransitionTime"))
            if t is not None:
                return t
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def _priority(pod: Obj) -> int:
    value = (pod.get("spec") or {}).get("priority")
    return int(value) if isinstance(value, int) else 0


def _finished_at(pod: Obj) -> float | None:
    times = [
        parse_time(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _count(n: float, word: str) -> str:
    return f"{n:g} {word}" if n == 1 else f"{n:g} {word}s"


def _short(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


@dataclass
class _Pending:
    pod: Obj
    ask: PodAsk
    name: str
    priority: int
    since: float
    view: dict[str, Any]


# -- the planner ------------------------------------------------------------------------------------------
def plan(inp: Inputs, params: Params, frag: TypicalPodLearner | None = None) -> Plan:
    out = Plan()
    groups = build_groups(
        inp.machine_deployments,
        inp.machines,
        inp.nodes,
        now=inp.now,
        prices=inp.prices,
        selector=params.group_selector,
        spot_labels=params.spot_labels,
        provision_timeout_s=params.provision_timeout_s,
    )
    for g in groups.groups:
        if g.key in inp.backoff and not g.problem:
            g.problem = f"backoff: {inp.backoff[g.key]}"
        if g.stuck:
            out.stuck_groups[g.key] = g.problem
    out.groups = [g.view() for g in groups.groups]
    out.groups += [
        {"group": k, "problem": f"not managed: {why}"} for k, why in sorted(groups.skipped.items())
    ]

    sim = Sim(params.scoring, frag)
    sim.load(inp.nodes, inp.pods)
    for g in groups.groups:
        for name in g.leaving:
            sim.close(name)
    real = [n for n in sim.nodes]
    gpu_before = {n: sim.gpu_use(n) for n in real}
    upcoming = {
        g.key: [sim.add_virtual(g.template, f"{g.name}(upcoming)") for _ in range(g.upcoming)]
        for g in groups.groups
        if g.template is not None and g.upcoming
    }

    unplaced, hosting = _fit_pending(inp, params, sim, real, upcoming, out)
    planned = _scale_up(params, sim, groups, unplaced, out)
    _stuck(groups, out)
    hold = inp.hold_scale_down
    if planned:
        hold = hold or "a scale-up is planned in this cycle"
    elif any(g.upcoming for g in groups.groups):
        coming = [g.key for g in groups.groups if g.upcoming]
        hold = hold or f"nodes are still coming in {', '.join(coming)}"
    _scale_down(inp, params, sim, groups, real, gpu_before, hosting, hold, out)
    return out


def _fit_pending(
    inp: Inputs, params: Params, sim: Sim, real: list[str], upcoming: dict[str, list[str]], out: Plan
) -> tuple[list[_Pending], dict[str, list[str]]]:
    """Place the pods Pending long enough on current and upcoming nodes; return those that fit nowhere and,
    per node, the pending pods this simulation put there."""
    coming = {n: g for g, names in upcoming.items() for n in names}
    candidates: list[_Pending] = []
    for pod in inp.pods:
        spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
        if (
            spec.get("nodeName")
            or status.get("phase", "Pending") != "Pending"
            or meta.get("deletionTimestamp")
        ):
            continue
        try:
            ask = parse_pod(dict(pod))
        except InventoryError:
            continue
        if not ask.wants_gpu:
            continue  # CPU pods are the cluster autoscaler's
        name, prio = pod_name(pod), _priority(pod)
        since = _pending_since(pod) or inp.now
        view: dict[str, Any] = {
            "pod": name,
            "gpus": ask.gpu_label,
            "priority": prio,
            "pending_s": round(inp.now - since),
        }
        out.pending.append(view)
        if prio < params.priority_cutoff:
            view["status"] = f"ignored: priority {prio} is below the cutoff {params.priority_cutoff}"
        elif spec.get("schedulingGates"):
            view["status"] = "ignored: scheduling gates not lifted"
        elif status.get("nominatedNodeName"):
            view["status"] = f"preempting on {status['nominatedNodeName']}"
        elif inp.now - since < params.delay(prio):
            view["status"] = f"waiting: scale-up after {duration(params.delay(prio))} pending"
        else:
            candidates.append(_Pending(pod, ask, name, prio, since, view))
    candidates.sort(key=lambda c: (-c.priority, -gpu_units(c.ask), c.since, c.name))
    names = real + list(coming)
    unplaced: list[_Pending] = []
    hosting: dict[str, list[str]] = {}
    for c in candidates:
        fit = sim.fit(c.pod, c.ask, names)
        if fit.node is None:
            c.view["status"] = f"fits no node: {fit.why()}"
            unplaced.append(c)
            continue
        sim.place(c.ask, fit.node)
        hosting.setdefault(fit.node, []).append(c.name)
        where = f"an upcoming node of {coming[fit.node]}" if fit.node in coming else f"node {fit.node}"
        c.view["status"] = f"fits {where}: no scale-up"
    return unplaced, hosting


def _try_group(
    sim: Sim, g: NodeGroup, room: int, pods: list[_Pending], why: dict[str, dict[str, str]]
) -> tuple[int, list[_Pending]]:
    """Pack `pods` (in order) onto at most `room` new nodes of the group; placements stay in `sim`."""
    assert g.template is not None
    new: list[str] = []
    placed: list[_Pending] = []
    for c in pods:
        mismatch = pod_fits_node(c.pod, g.template)
        if mismatch:
            why.setdefault(c.name, {})[g.key] = mismatch
            continue
        fit = sim.fit(c.pod, c.ask, new) if new else None
        node = fit.node if fit is not None else None
        if node is None:
            if len(new) >= room:
                why.setdefault(c.name, {}).setdefault(g.key, f"group would exceed its max size {g.max_size}")
                continue
            mark = sim.mark()
            fresh = sim.add_virtual(g.template, f"{g.name}(new)")
            fit = sim.fit(c.pod, c.ask, [fresh])
            if fit.node is None:
                sim.rollback(mark)
                why.setdefault(c.name, {})[g.key] = fit.why()
                continue
            new.append(fresh)
            node = fresh
        sim.place(c.ask, node)
        placed.append(c)
    return len(new), placed


def _spot_room(sim: Sim, g: NodeGroup, params: Params) -> float:
    """How many more nodes of spot group g keep spot GPUs within `spot_max_share` of all GPUs (current,
    upcoming and planned nodes alike; a node is spot when it carries one of `spot_labels`)."""
    share = params.spot_max_share
    if share >= 1.0:
        return math.inf
    if g.gpus <= 0:
        return 0.0
    total = spot_gpus = 0.0
    for name, node in sim.nodes.items():
        if name not in sim.open:
            continue
        gpus = sim.gpu_use(name)[1]
        labels = (node.get("metadata") or {}).get("labels") or {}
        total += gpus
        spot_gpus += gpus if any(labels.get(k) == v for k, v in params.spot_labels) else 0.0
    return max(0.0, math.floor((share * total - spot_gpus) / ((1.0 - share) * g.gpus) + 1e-9))


def _scale_up(
    params: Params, sim: Sim, groups: Groups, unplaced: list[_Pending], out: Plan
) -> dict[str, int]:
    planned: dict[str, int] = {}
    why: dict[str, dict[str, str]] = {}
    chosen: dict[str, list[_Pending]] = {}
    left = list(unplaced)
    eligible = [g for g in groups.groups if g.template is not None and not g.problem]
    for g in groups.groups:
        if g.problem:
            for c in left:
                why.setdefault(c.name, {})[g.key] = g.problem
    while left:
        best: tuple[tuple[Any, ...], NodeGroup, float] | None = None
        for g in eligible:
            room = float(g.max_size - g.replicas - planned.get(g.key, 0))
            reason = f"group is at its max size {g.max_size}"
            if g.spot and room > 0:
                room = min(room, _spot_room(sim, g, params))
                reason = f"spot GPUs would exceed {params.spot_max_share:.0%} of the cluster's GPUs"
            if room <= 0:
                for c in left:
                    why.setdefault(c.name, {})[g.key] = reason
                continue
            mark = sim.mark()
            k, placed = _try_group(sim, g, int(min(room, 1_000_000)), left, why)
            sim.rollback(mark)
            if not placed:
                continue
            price = g.usd_per_node_hour
            cost = price * k if price is not None else math.inf
            units = sum(gpu_units(c.ask) for c in placed) or 1.0
            key = (0 if g.spot else 1, cost / units, -len(placed), k, g.key)
            if best is None or key < best[0]:
                best = (key, g, room)
        if best is None:
            break
        _, g, room = best
        k, placed = _try_group(sim, g, int(min(room, 1_000_000)), left, why)
        planned[g.key] = planned.get(g.key, 0) + k
        chosen.setdefault(g.key, []).extend(placed)
        done = {id(c) for c in placed}
        left = [c for c in left if id(c) not in done]
    for c in left:
        reasons = why.get(c.name, {})
        detail = "; ".join(f"{key}: {v}" for key, v in sorted(reasons.items())) or "no node group"
        c.view["status"] = f"no node group fits: {detail}"
    for g in groups.groups:
        k = planned.get(g.key, 0)
        if not k:
            continue
        pods = chosen[g.key]
        names = [c.name for c in pods]
        gpus = sum(gpu_units(c.ask) for c in pods)
        oldest = max(0.0, max(c.view["pending_s"] for c in pods))
        per_node = g.usd_per_node_hour
        price_text = f" at ${per_node * k:,.2f}/h" if per_node is not None else " (price unknown)"
        kind = f"{g.gpus}x {g.product or 'GPU'}{' spot' if g.spot else ''}"
        reason = (
            f"pending-pods: {_count(len(pods), 'pod')} asking {_count(gpus, 'GPU')} fit no current node "
            f"({_short(names)}; pending up to {duration(oldest)}); "
            f"{_count(k, 'new node')} of {kind}{price_text}"
        )
        out.scale.append(ScaleEntry(g.key, g.replicas, g.replicas + k, reason, "pending-pods", pods=names))
        for c in pods:
            c.view["status"] = f"scale-up {g.key} ({g.replicas}->{g.replicas + k})"
    return planned


def _stuck(groups: Groups, out: Plan) -> None:
    """Machines that never became nodes: give them back (mark them, lower replicas), down to min size."""
    for g in groups.groups:
        removable = [m for m in g.stuck if not m.marked][: max(0, g.replicas - g.min_size)]
        if not removable:
            continue
        to = g.replicas - len(removable)
        out.scale.append(
            ScaleEntry(
                g.key,
                g.replicas,
                to,
                f"provision-timeout: {g.problem}",
                "provision-timeout",
                machines=[m.key for m in removable],
            )
        )
        g.replicas = to


def _idle_since(node: Obj, pods: Iterable[Obj], last_busy: Mapping[str, float]) -> float:
    name = str(node["metadata"]["name"])
    t = parse_time((node.get("metadata") or {}).get("creationTimestamp")) or 0.0
    for pod in pods:
        try:
            wants = parse_pod(dict(pod)).wants_gpu
        except InventoryError:
            wants = False
        done = _finished_at(pod) if wants else None
        if done is not None:
            t = max(t, done)
    return max(t, last_busy.get(name, 0.0))


def _scale_down(
    inp: Inputs,
    params: Params,
    sim: Sim,
    groups: Groups,
    real: list[str],
    gpu_before: Mapping[str, tuple[float, float]],
    hosting: Mapping[str, list[str]],
    hold: str,
    out: Plan,
) -> None:
    by_node: dict[str, list[Obj]] = {}
    for pod in inp.pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            by_node.setdefault(str(node), []).append(pod)
    node_objs = {str(n["metadata"]["name"]): n for n in inp.nodes if (n.get("metadata") or {}).get("name")}
    leaving = {n for g in groups.groups for n in g.leaving}
    candidates: list[tuple[int, float, str, str, str]] = []
    for name in real:
        used, total = gpu_before.get(name, (0.0, 0.0))
        if total <= 0 or name in leaving or name not in node_objs:
            continue
        if used > 0:
            out.busy.append(name)
        if used <= 0:
            idle = inp.now - _idle_since(node_objs[name], by_node.get(name, []), inp.last_busy)
            if idle >= params.scale_down_idle_s:
                limit = duration(params.scale_down_idle_s)
                candidates.append(
                    (0, -idle, name, "idle", f"no GPU allocated for {duration(idle)} (threshold {limit})")
                )
        elif used / total < params.scale_down_utilization:
            detail = (
                f"{round(used, 2):g} of {round(total, 2):g} GPUs allocated ({used / total:.0%}, "
                f"threshold {params.scale_down_utilization:.0%})"
            )
            candidates.append((1, used / total, name, "under-used", detail))
    candidates.sort()
    budget = PdbBudget(inp.pdbs)
    removed: dict[str, int] = {}
    drains: dict[str, list[DrainEntry]] = {}
    others = [n for n in real if n not in leaving]
    for _, _, name, code, detail in candidates:
        g = groups.node_group.get(name)
        text = f"{code}: {detail}"

        def block(
            why: str, code: str, node: str = name, group: NodeGroup | None = g, text: str = text
        ) -> None:
            out.blocked.append(BlockedEntry(node, f"{text}; but {why}", code, group.key if group else ""))

        node_obj = node_objs[name]
        ann = (node_obj.get("metadata") or {}).get("annotations") or {}
        if g is None:
            block("it is in no node group this autoscaler manages", "not-managed")
        elif hosting.get(name):
            block(f"pending pod {_short(hosting[name])} will go here", "pending")
        elif name in inp.hold_nodes:
            block(inp.hold_nodes[name], "held")
        elif (node_obj.get("spec") or {}).get("unschedulable") and ANN_SCALE_DOWN not in ann:
            block("it was cordoned by someone else", "cordoned")
        elif str(ann.get(SCALE_DOWN_DISABLED, "")).lower() == "true":
            block(f'it is annotated {SCALE_DOWN_DISABLED}: "true"', "scale-down-disabled")
        elif g.replicas - removed.get(g.key, 0) <= g.min_size:
            block(f"group {g.key} is at its min size {g.min_size}", "min-size")
        else:
            evict, blocker = classify(
                by_node.get(name, []), budget, inp.now, parse_time, params.skip_system_pods
            )
            if blocker is not None:
                block(f"pod {blocker.pod}: {blocker.text}", blocker.code)
                continue
            mark = sim.mark()
            sim.close(name)
            stuck = _move(sim, evict, [n for n in others if n != name])
            if stuck or hold or sum(len(v) for v in drains.values()) >= params.scale_down_max_nodes:
                sim.rollback(mark)
                sim.open.add(name)
                if stuck:
                    block(stuck, "no-room")
                elif hold:
                    block(f"held: {hold}", "held")
                else:
                    block(f"waits: at most {params.scale_down_max_nodes} node(s) drained per cycle", "limit")
                continue
            budget.spend(evict)
            moved = f"; {_count(len(evict), 'pod')} to move, all fit other nodes" if evict else ""
            machine = groups.node_machine[name]
            entry = DrainEntry(name, text + moved, [pod_name(p) for p in evict], code, g.key, machine.key)
            drains.setdefault(g.key, []).append(entry)
            out.drain.append(entry)
            removed[g.key] = removed.get(g.key, 0) + 1
    for key, entries in drains.items():
        g = groups.get(key)
        assert g is not None
        reason = "; ".join(f"{e.code}: node {e.node}, {e.reason.split(': ', 1)[1]}" for e in entries)
        codes = {e.code for e in entries}
        out.scale.append(
            ScaleEntry(
                key,
                g.replicas,
                g.replicas - len(entries),
                reason,
                codes.pop() if len(codes) == 1 else "idle",
                machines=[e.machine for e in entries],
                nodes=[e.node for e in entries],
            )
        )


def _move(sim: Sim, pods: list[Obj], targets: list[str]) -> str:
    """Place each pod on one of `targets` (placements stay in `sim`); '' or why one fits nowhere."""
    for pod in pods:
        try:
            ask = parse_pod(dict(pod))
        except InventoryError as exc:
            return f"pod {pod_name(pod)} cannot be read: {exc}"
        fit = sim.fit(pod, ask, targets)
        if fit.node is None:
            return f"pod {pod_name(pod)} fits no other node: {fit.why()}"
        sim.place(ask, fit.node)
    return ""
