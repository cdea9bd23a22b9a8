"""Gang scheduling (pods sharing `gpu-autoscaler.io/pod-group`, quorum `gpu-autoscaler.io/pod-group-min`).

What an extender CAN do: refuse to place a member until the group can be placed — enough members exist
(quorum) and the cluster has room, right now, for every member not yet placed. It then lets members through
one by one; each placed member is counted from then on (bound pods, plus our assume cache).

What it CANNOT guarantee (docs/scheduling.md): atomicity. kube-scheduler binds members one at a time and an
extender has no Permit/"wait" phase, so between two members another pod can take the room (the check is
re-run for every member, so the later member fails rather than over-commits), and a member already bound is
never rolled back. Capacity is counted for pods of this member's shape, cluster-wide, GPUs only (not CPU,
memory, affinity or taints). For all-or-nothing, use a co-scheduling plugin (scheduler-plugins
Coscheduling, Volcano, KAI).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from extender.arrays import GPU_MILLI, ClusterState
from extender.inventory import PodAsk
from extender.kube_arrays import GpuClusterState


@dataclass(frozen=True)
class GroupStatus:
    """Members of one group as the extender sees them (this pod included in `members`)."""

    members: int
    placed: int  # bound or assumed, this pod excluded


def room_for(state: ClusterState, ask: PodAsk) -> int:
    """How many pods shaped like `ask` the free capacity of all live nodes holds at once (GPUs only)."""
    n = state.n
    alive = state.alive[:n]
    if ask.products:
        alive = alive & state.model_mask(ask.products, "substring")
    if ask.mig:
        if not isinstance(state, GpuClusterState):
            return 0
        fits = []
        for profile, c in ask.mig:
            pid = state.mig_id(profile, create=False)
            if pid < 0:
                return 0
            fits.append(np.maximum(state.mig_left[:n, pid], 0) // max(c, 1))
        per_node = np.minimum.reduce(fits)
        return int(per_node[alive].sum())
    req = ask.req
    if req.gpu_milli >= GPU_MILLI:
        return int((state.full_free[:n][alive] // max(req.gpu_count, 1)).sum())
    return int((state.gpu_left[:n][alive] // max(req.gpu_milli, 1)).sum())


def gang_reason(state: ClusterState, ask: PodAsk, status: GroupStatus) -> str | None:
    """None when this member may be placed; else why the whole group must wait."""
    if not ask.group or ask.group_min <= 1:
        return None
    if status.members < ask.group_min:
        return (
            f"pod group {ask.group}: {status.members} of {ask.group_min} members exist; "
            "waiting for the rest before placing any"
        )
    remaining = ask.group_min - status.placed
    if remaining <= 1:
        return None  # quorum already placed, or this pod completes it (the node filter checks its fit)
    room = room_for(state, ask)
    if room < remaining:
        return (
            f"pod group {ask.group} needs room for {remaining} pods of {ask.gpu_label} GPU(s) at once, "
            f"the cluster has room for {room}"
        )
    return None
