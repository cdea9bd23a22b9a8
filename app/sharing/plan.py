"""The GPU-sharing planner, pure: which nodes form the sharing pool, and with how many replicas per GPU.

Demand is a list of shares (milli-GPU): pods carrying `gpu-autoscaler.io/gpu-milli` (Pending, or already on
the pool), whole-GPU pods already on pool nodes (a replica of unknown size: 1000 m), and shares the webhook
wanted in the last window while no pool could take them. For each device-plugin config of the pool's
strategy (time-slicing or MPS, N replicas per GPU) the shares are packed first-fit decreasing into GPUs of
1000 m and N replicas each (MPS also caps one replica at 1000/N m: its memory and compute limit), and the
config needing the fewest GPUs wins (ties: fewer replicas, less oversubscription).

The pool then grows by nodes that run no GPU pod (the smallest that covers the shortfall, else the largest
first), shrinks by pool nodes that run none (back to `off_config`), and pool nodes on another replica count
move to the chosen one when they are idle. The device plugin applies a node's config to all its GPUs and a
change re-advertises every GPU, so a node running any GPU pod is never changed (`blocked_by` names them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.mig.rollout import NodeDecision, NodePlans, Request, Status, in_cooldown, request_status
from app.sharing.config import SharingConfig, SharingConfigSet

GPU_MILLI = 1000


@dataclass(frozen=True)
class ShareNode:
    """One whole-GPU node as the sharing planner sees it."""

    name: str
    product: str
    gpus: int  # physical GPUs
    config: str  # nvidia.com/device-plugin.config ("" = none: the ConfigMap's default)
    strategy: str  # GFD nvidia.com/gpu.sharing-strategy in effect: none | time-slicing | mps
    replicas: int  # GFD nvidia.com/gpu.replicas in effect
    pods: tuple[str, ...] = ()  # running GPU pods (namespace/name)
    shares: tuple[int, ...] = ()  # milli each running GPU pod holds (1000 for a whole GPU)
    managed: bool = True
    request: Request | None = None


@dataclass(frozen=True)
class SharingParams:
    now: float
    strategy: str = "time-slicing"
    off_config: str = "default"
    max_parallel: int = 1
    cooldown_s: float = 1800.0
    timeout_s: float = 600.0


@dataclass
class ShareNodePlan(NodeDecision):
    gpus: int = 0
    sharing: str = ""  # what the node shares now, in words
    target_sharing: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "gpus": self.gpus,
            "sharing": self.sharing,
            "target_sharing": self.target_sharing,
        }


@dataclass
class SharingPlan(NodePlans):
    nodes: list[ShareNodePlan]
    unmet: dict[str, int]  # {"gpus": shared GPUs still missing, "pods": shares no config can place}
    pool: dict[str, Any]
    config_source: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The shape of `gpu-autoscaler sharing plan --output json` and `GET /sharing/plan`."""
        return {**self.base_dict(), "pool": dict(self.pool)}

    def node(self, name: str) -> ShareNodePlan | None:
        found: ShareNodePlan | None = super().node(name)
        return found


def pack(shares: Sequence[int], replicas: int, mps: bool) -> tuple[int, int]:
    """(GPUs, shares that fit no replica) when `shares` are packed first-fit decreasing into GPUs of 1000 m
    and `replicas` replicas each; with MPS a replica holds at most 1000 // replicas m."""
    cap = GPU_MILLI // replicas if mps else GPU_MILLI
    gpus: list[list[int]] = []  # per GPU: [milli used, replicas used]
    misfit = 0
    for share in sorted(shares, reverse=True):
        if share > cap:
            misfit += 1
            continue
        for gpu in gpus:
            if gpu[0] + share <= GPU_MILLI and gpu[1] < replicas:
                gpu[0] += share
                gpu[1] += 1
                break
        else:
            gpus.append([share, 1])
    return len(gpus), misfit


def shows(node: ShareNode, config: SharingConfig | None) -> bool:
    """Does the node run `config` (GFD labels caught up with the device plugin)?"""
    if config is None:
        return False
    if config.strategy == "none":
        return node.strategy in ("none", "") and node.replicas <= 1
    return node.strategy == config.strategy and node.replicas == config.replicas


def plan(
    nodes: Sequence[ShareNode],
    demand: Sequence[int],
    configs: SharingConfigSet,
    params: SharingParams,
) -> SharingPlan:
    """The whole sharing plan for one snapshot. Pure: same inputs, same plan."""
    mps = params.strategy == "mps"
    candidates = sorted(
        (c for c in configs.configs.values() if c.strategy == params.strategy), key=lambda c: c.replicas
    )
    off = configs.configs.get(params.off_config)
    notes = list(configs.errors)
    if off is not None and off.strategy != "none":
        notes.append(
            f"off config {params.off_config} shares GPUs ({off.describe()}): nodes never leave the pool"
        )
        off = None
    in_pool = {
        n.name
        for n in nodes
        if n.strategy == params.strategy
        or (n.config in configs.configs and configs.configs[n.config].strategy == params.strategy)
    }
    # the shares the pool must hold: what is asked plus what already runs on it
    shares = list(demand)
    for n in nodes:
        if n.name in in_pool:
            shares.extend(n.shares)
    # ties go to the config the pool already runs (no churn), then to fewer replicas
    running = Counter(n.config for n in nodes if n.name in in_pool)
    best: tuple[int, int, int, int, SharingConfig] | None = None
    for c in candidates:
        gpus, misfit = pack(shares, c.replicas, mps)
        key = (misfit, gpus, -running.get(c.name, 0), c.replicas, c)
        if best is None or key[:4] < best[:4]:
            best = key
    chosen = best[4] if best else None
    needed = best[1] if best else 0
    misfit = best[0] if best else len(shares)
    if not candidates:
        notes.append(f"no {params.strategy} config in {configs.source}: nothing to share GPUs with")

    plans: dict[str, ShareNodePlan] = {}
    held: dict[str, str] = {}
    in_flight = 0
    for n in nodes:
        current = configs.configs.get(n.config)
        status = request_status(
            n.request,
            n.config,
            failed=False,
            done=shows(n, current),
            now=params.now,
            timeout_s=params.timeout_s,
        )
        np = ShareNodePlan(
            n.name,
            n.config or None,
            n.config or None,
            state=_state(n),
            request=status,
            gpus=n.gpus,
            sharing=_state(n),
            target_sharing=_state(n),
        )
        plans[n.name] = np
        if status in ("in_progress", "stuck"):
            in_flight += 1
        why = _hold_reason(n, status, params)
        if why:
            held[n.name] = why
    slots = max(0, params.max_parallel - in_flight)
    changes: list[tuple[str, SharingConfig, str]] = []  # (node, config, why), in priority order
    blocked: dict[str, tuple[SharingConfig, str]] = {}

    def consider(n: ShareNode, target: SharingConfig, why: str) -> bool:
        """Queue a change, or record what holds it back. True when it will happen (a slot is left)."""
        if any(name == n.name for name, _, _ in changes) or n.name in blocked:
            return False
        if n.pods:
            blocked[n.name] = (target, f"{why}, but running GPU pods would lose their devices")
            return False
        if n.name in held:
            blocked[n.name] = (target, f"{why}, but {held[n.name]}")
            return False
        if len(changes) >= slots:
            blocked[n.name] = (target, f"{why}, but at most {params.max_parallel} node(s) change at once")
            return False
        changes.append((n.name, target, why))
        return True

    # which pool nodes stay: every busy one, then idle ones (largest first) until the need is covered
    members = sorted((n for n in nodes if n.name in in_pool), key=lambda n: (not n.pods, -n.gpus, n.name))
    staying: list[ShareNode] = []
    kept = 0
    for n in members:
        if n.pods or (chosen is not None and kept < needed) or off is None or not n.managed:
            staying.append(n)
            kept += n.gpus
        else:
            why = (
                f"the pool needs {needed} shared GPU(s), has {kept} without it"
                if chosen
                else "nothing to share"
            )
            consider(n, off, why)
    if chosen is not None:
        for n in staying:  # idle pool nodes on another replica count follow the pool's
            idle = not n.pods and n.name not in held
            if idle and n.managed and n.config != chosen.name and n.replicas != chosen.replicas:
                consider(n, chosen, f"the pool runs {chosen.describe()}")
        deficit = needed - kept
        spare = [n for n in nodes if n.name not in in_pool and n.managed and n.gpus > 0]
        while deficit > 0 and spare:
            free = [n for n in spare if not n.pods and n.name not in held]
            fits = sorted((n for n in free if n.gpus >= deficit), key=lambda n: (n.gpus, n.name))
            if fits:
                pick = fits[0]
            elif free:
                pick = max(free, key=lambda n: (n.gpus, n.name))
            else:  # nothing free: say what holds the best candidate back, then stop
                pick = max(spare, key=lambda n: (n.gpus, n.name))
            spare.remove(pick)
            if consider(pick, chosen, f"the pool needs {needed} shared GPU(s), has {needed - deficit}"):
                deficit -= pick.gpus
            elif not free:
                break
    for name, target, why in changes:
        np = plans[name]
        np.target, np.action, np.reason = target.name, "reconfigure", why
        np.target_sharing = target.describe()
    for name, (target, why) in blocked.items():
        np = plans[name]
        if np.action == "reconfigure":
            continue
        np.target, np.action, np.reason = target.name, "blocked", why
        np.target_sharing = target.describe()
        node = next(n for n in nodes if n.name == name)
        np.blocked_by = list(node.pods) if node.pods else []
    for n in nodes:
        np = plans[n.name]
        if np.action != "keep":
            continue
        if n.name in held:
            np.reason = held[n.name]
        elif n.name in in_pool:
            np.reason = f"in the sharing pool ({np.sharing})"
        else:
            np.reason = "not needed in the sharing pool"
    after = {name: target for name, target, _ in changes}
    shared_after = sum(
        n.gpus
        for n in nodes
        if (after[n.name].strategy == params.strategy if n.name in after else n.name in in_pool)
    )
    unmet = {"gpus": max(0, needed - shared_after), "pods": misfit}
    summary = {
        "strategy": params.strategy,
        "config": chosen.name if chosen else None,
        "replicas": chosen.replicas if chosen else None,
        "gpus_needed": needed,
        "gpus_shared": sum(n.gpus for n in nodes if n.name in in_pool),
        "shares": len(shares),
        "milli": sum(shares),
    }
    return SharingPlan(
        [plans[n.name] for n in sorted(nodes, key=lambda n: n.name)], unmet, summary, configs.source, notes
    )


def _state(n: ShareNode) -> str:
    if n.strategy in ("", "none"):
        return "no sharing"
    return f"{n.strategy} x{n.replicas}"


def _hold_reason(n: ShareNode, status: Status, params: SharingParams) -> str:
    if not n.managed:
        return "not managed: the node does not match the sharing node selector"
    if status == "stuck":
        return f"{n.config} requested and still not in effect after {params.timeout_s:.0f}s"
    if status == "in_progress":
        return f"{n.config} requested; waiting for the device plugin"
    left = in_cooldown(n.request, params.now, params.cooldown_s)
    if left > 0:
        return f"cooldown: changed lately, {left:.0f}s left"
    return ""
