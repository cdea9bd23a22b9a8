"""The MIG layout controller: plans from the cluster view every `mig_interval` seconds and, with
`--mig-apply`, asks the GPU Operator's mig-manager for the chosen layout by setting `nvidia.com/mig.config`
on the node.

It never runs `nvidia-smi`, never cordons or evicts: mig-manager applies the layout and reports through
`nvidia.com/mig.config.state` (pending -> rebooting -> success | failed). Each cycle this loop follows those
states for the requests it made (annotation `gpu-autoscaler.io/mig-config-request`), reports each outcome
once (an Event on the Node and `gpu_autoscaler_mig_reconfigurations_total`), and leaves a `failed` node alone
until someone changes its label by hand. Only the leader acts; every replica serves `GET /mig/plan`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from app.cluster.selectors import parse_selector
from app.gpu.migparted import MigConfigSet
from app.metrics import REGISTRY
from app.mig.actor import LabelActor
from app.mig.config import load_mig_configs, parse_mix, split_ref
from app.mig.controller import NodeConfigController
from app.mig.inputs import (
    ANN_REQUEST,
    LABEL_CONFIG,
    LABEL_STATE,
    mig_demand,
    mig_nodes,
    pod_facts,
    recent_from_pods,
)
from app.mig.plan import IN_FLIGHT_STATES, MigNode, MigPlan, PlanParams, change_blocker, plan
from app.mig.rollout import REPORTED
from app.settings import Settings

log = logging.getLogger(__name__)

MIG_SLICES = Gauge(
    "gpu_autoscaler_mig_slices",
    "MIG slices a node advertises, by profile and state (free: no running pod holds it; used)",
    ["node", "profile", "state"],
    registry=REGISTRY,
)
MIG_RECONFIGURATIONS = Counter(
    "gpu_autoscaler_mig_reconfigurations_total",
    "MIG layout changes by result: requested (label set), success, failed, timeout, error (write refused)",
    ["node", "result"],
    registry=REGISTRY,
)


class MigComponent(NodeConfigController[MigPlan]):
    """Plans every cycle; acts only with `mig_apply` and only while leader. `GET /mig/plan` shows the plan."""

    name = "mig"
    path = "/mig/plan"

    def __init__(self, settings: Settings) -> None:
        actor = LabelActor("mig", LABEL_CONFIG, ANN_REQUEST, MIG_RECONFIGURATIONS, "Mig")
        super().__init__(actor, settings.mig_interval, settings.mig_apply)
        self.settings = settings
        self.selector = parse_selector(settings.mig_node_selector)
        self.mix = parse_mix(settings.mig_target_mix)
        self.config_note = ""
        self._pending_since: dict[str, float] = {}
        self._reported_stuck: set[tuple[str, str]] = set()
        self._exported: set[tuple[str, str, str]] = set()

    # -- planning ----------------------------------------------------------------------------------
    def configs(self) -> MigConfigSet:
        namespace, name = split_ref(self.settings.mig_config_configmap)
        cm = self.ctx.cluster.get("ConfigMap", name, namespace) if name else None
        configs, note = load_mig_configs(self.settings.mig_config, cm, self.settings.mig_config_configmap)
        if note and note != self.config_note:
            log.warning("mig config", extra={"problem": note})
        self.config_note = note
        return configs

    def recent(self, pods: list[dict[str, Any]], now: float) -> dict[str, int]:
        """Slices the webhook chose in the window: its own record when it runs here, else the pods."""
        journal = getattr(self.ctx.components.get("webhook"), "recent_slices", None)
        if journal is not None:
            return dict(journal(now - self.settings.mig_demand_window))
        return recent_from_pods(pods, now, self.settings.mig_demand_window)

    def build(self, now: float) -> tuple[list[MigNode], MigPlan]:
        """Inputs from the cluster view and the plan over them (no writes)."""
        cluster = self.ctx.cluster
        nodes_raw, pods = cluster.list("Node"), cluster.list("Pod")
        facts = pod_facts(pods)
        nodes = mig_nodes(nodes_raw, facts, self.selector, self._track_pending(nodes_raw, now))
        params = PlanParams(
            now=now,
            target_mix=self.mix,
            max_parallel=self.settings.mig_max_parallel,
            cooldown_s=self.settings.mig_cooldown,
            timeout_s=self.settings.mig_pending_timeout,
        )
        result = plan(nodes, mig_demand(facts, self.recent(pods, now)), self.configs(), params)
        if self.config_note:
            result.notes.insert(0, self.config_note)
        result.notes.extend(facts.skipped)
        return nodes, result

    # -- one cycle ---------------------------------------------------------------------------------
    async def cycle(self) -> MigPlan:
        now = self.clock()
        # planning is CPU work (about 0.2 s per 100 nodes): off the event loop the webhook and extender serve
        nodes, result = await asyncio.to_thread(self.build, now)
        self.last, self.last_cycle = result, now
        self._export(nodes)
        self.actor.log_decisions(result.nodes, unmet=result.unmet)
        await self._follow(nodes, result, now)
        await self.request_changes(result.nodes, now, self._blocker)
        return result

    def _blocker(self, fresh: MigNode | None, np: Any) -> str | None:
        if fresh is None:
            return "node gone"
        if fresh.config != (np.current or ""):
            return f"label changed to {fresh.config or '(none)'} meanwhile"
        return change_blocker(fresh, np.target, self.configs())

    async def _follow(self, nodes: list[MigNode], result: MigPlan, now: float) -> None:
        """Report once each outcome of our requests, and nodes stuck in pending without one of ours."""
        timeout = self.settings.mig_pending_timeout
        for node in nodes:
            np = result.node(node.name)
            status = np.request if np else "none"
            req = node.request
            if status in REPORTED and req is not None and req.result != status:
                text = {
                    "success": f"{LABEL_CONFIG}={req.config} is in effect (was {req.previous or '(none)'})",
                    "failed": f"mig-manager failed to apply {req.config}; the node is left alone until its "
                    f"{LABEL_CONFIG} label is changed by hand",
                    "stuck": f"{req.config} requested {now - req.at:.0f}s ago and still not in effect "
                    f"({LABEL_STATE}={node.state or '(none)'})",
                }[status]
                await self.actor.report(self.ctx, node.name, req, status, text)
            elif status == "none" and node.state in IN_FLIGHT_STATES and node.pending_since is not None:
                key = (node.name, node.config)
                if now - node.pending_since > timeout and key not in self._reported_stuck and self.apply:
                    self._reported_stuck.add(key)
                    MIG_RECONFIGURATIONS.labels(node.name, "timeout").inc()
                    text = f"mig-manager {node.state} on {node.config} for over {timeout:.0f}s"
                    await self.actor.event(self.ctx, node.name, "MigReconfigureStuck", text, "Warning")

    # -- bookkeeping -------------------------------------------------------------------------------
    def _track_pending(self, nodes: list[dict[str, Any]], now: float) -> Mapping[str, float]:
        """When each node was first seen in pending/rebooting (for nodes relabelled by someone else)."""
        seen = set()
        for obj in nodes:
            meta = obj.get("metadata") or {}
            if (meta.get("labels") or {}).get(LABEL_STATE, "") in IN_FLIGHT_STATES:
                name = str(meta.get("name"))
                seen.add(name)
                self._pending_since.setdefault(name, now)
        for name in list(self._pending_since):
            if name not in seen:
                del self._pending_since[name]
        return dict(self._pending_since)

    def _export(self, nodes: list[MigNode]) -> None:
        current: set[tuple[str, str, str]] = set()
        for node in nodes:
            for profile, total in node.allocatable.items():
                used = min(total, node.used.get(profile, 0))
                for state, value in (("free", total - used), ("used", used)):
                    MIG_SLICES.labels(node.name, profile, state).set(value)
                    current.add((node.name, profile, state))
        for labels in self._exported - current:
            MIG_SLICES.remove(*labels)
        self._exported = current
