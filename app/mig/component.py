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

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter
from prometheus_client import Counter, Gauge

from app.cluster.base import ApiError
from app.cluster.selectors import parse_selector
from app.context import AppContext
from app.gpu.migparted import MigConfigSet
from app.loops import PeriodicLoop
from app.metrics import REGISTRY
from app.mig.config import load_mig_configs, parse_mix, split_ref
from app.mig.inputs import (
    ANN_REQUEST,
    LABEL_CONFIG,
    mig_demand,
    mig_nodes,
    pod_facts,
    recent_from_pods,
)
from app.mig.plan import IN_FLIGHT_STATES, MigNode, MigPlan, PlanParams, change_blocker, plan
from app.mig.rollout import REPORTED, Request, Status
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

#: Event reason and type per reported result
_EVENTS: dict[str, tuple[str, str]] = {
    "success": ("MigReconfigured", "Normal"),
    "failed": ("MigReconfigureFailed", "Warning"),
    "stuck": ("MigReconfigureStuck", "Warning"),
}
_RESULT_METRIC = {"success": "success", "failed": "failed", "stuck": "timeout"}


class MigComponent:
    """Plans every cycle; acts only with `mig_apply` and only while leader. `GET /mig/plan` shows the plan."""

    name = "mig"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.apply = settings.mig_apply
        self.selector = parse_selector(settings.mig_node_selector)
        self.mix = parse_mix(settings.mig_target_mix)
        self.clock: Callable[[], float] = time.time
        self.last: MigPlan | None = None
        self.last_cycle: float | None = None
        self.actions: list[dict[str, Any]] = []  # the latest writes (and dry-run intents), newest last
        self.config_note = ""
        self._ctx: AppContext | None = None
        self._loop: PeriodicLoop | None = None
        self._pending_since: dict[str, float] = {}
        self._reported_stuck: set[tuple[str, str]] = set()
        self._exported: set[tuple[str, str, str]] = set()
        self._logged: dict[str, tuple[str, str | None, str]] = {}

    # -- Component protocol ------------------------------------------------------------------------
    def router(self) -> APIRouter:
        r = APIRouter()

        @r.get("/mig/plan")
        async def mig_plan() -> dict[str, Any]:
            return self.describe()

        return r

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._loop = PeriodicLoop(
            "mig", self.settings.mig_interval, self.cycle, gate=lambda: ctx.leadership.is_leader
        )
        self._loop.start()
        log.info(
            "mig controller started",
            extra={
                "apply": self.apply,
                "interval_s": self.settings.mig_interval,
                "max_parallel": self.settings.mig_max_parallel,
                "node_selector": self.settings.mig_node_selector,
            },
        )

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None

    def describe(self) -> dict[str, Any]:
        """The latest plan in the CLI's JSON shape, plus whether it acts and what it last did."""
        body: dict[str, Any] = self.last.as_dict() if self.last else {"nodes": [], "unmet": {}}
        body.update(
            apply=self.apply,
            last_cycle=self.last_cycle,
            actions=list(self.actions),
            config_note=self.config_note,
        )
        return body

    # -- one cycle ---------------------------------------------------------------------------------
    def configs(self) -> MigConfigSet:
        assert self._ctx is not None
        namespace, name = split_ref(self.settings.mig_config_configmap)
        cm = self._ctx.cluster.get("ConfigMap", name, namespace) if name else None
        configs, note = load_mig_configs(self.settings.mig_config, cm, self.settings.mig_config_configmap)
        if note and note != self.config_note:
            log.warning("mig config", extra={"problem": note})
        self.config_note = note
        return configs

    def recent(self, pods: list[dict[str, Any]], now: float) -> dict[str, int]:
        """Slices the webhook chose in the window: its own record when it runs here, else the pods."""
        assert self._ctx is not None
        since = now - self.settings.mig_demand_window
        webhook = self._ctx.components.get("webhook")
        journal = getattr(webhook, "recent_slices", None)
        if journal is not None:
            return dict(journal(since))
        return recent_from_pods(pods, now, self.settings.mig_demand_window)

    def build(self, now: float) -> tuple[list[MigNode], MigPlan]:
        """Inputs from the cluster view and the plan over them (no writes)."""
        assert self._ctx is not None
        cluster = self._ctx.cluster
        nodes_raw, pods = cluster.list("Node"), cluster.list("Pod")
        facts = pod_facts(pods)
        nodes = mig_nodes(nodes_raw, facts, self.selector, self._track_pending(nodes_raw, now))
        configs = self.configs()
        params = PlanParams(
            now=now,
            target_mix=self.mix,
            max_parallel=self.settings.mig_max_parallel,
            cooldown_s=self.settings.mig_cooldown,
            timeout_s=self.settings.mig_pending_timeout,
        )
        result = plan(nodes, mig_demand(facts, self.recent(pods, now)), configs, params)
        if self.config_note:
            result.notes.insert(0, self.config_note)
        return nodes, result

    async def cycle(self) -> MigPlan:
        now = self.clock()
        nodes, result = self.build(now)
        self.last, self.last_cycle = result, now
        self._export(nodes)
        self._log(result)
        await self._follow(nodes, result, now)
        for np in result.nodes:
            if np.action == "reconfigure" and np.target:
                await self._request(np.node, np.current or "", np.target, np.reason, now)
        return result

    # -- acting ------------------------------------------------------------------------------------
    def _record(self, **action: Any) -> None:
        self.actions.append(action)
        del self.actions[:-50]

    async def _request(self, node_name: str, current: str, target: str, reason: str, now: float) -> None:
        """Set the label (with our request annotation) after checking the node once more."""
        assert self._ctx is not None
        if not self.apply:
            self._record(node=node_name, action="reconfigure", target=target, dry_run=True, at=now)
            log.info(
                "mig dry-run",
                extra={"node": node_name, "current": current, "target": target, "why": reason},
            )
            return
        # the view may have moved since the plan (a pod bound, the label changed): check again
        nodes, _ = self.build(now)
        fresh = next((n for n in nodes if n.name == node_name), None)
        blocker = change_blocker(fresh, target, self.configs()) if fresh else "node gone"
        if fresh is not None and fresh.config != current:
            blocker = f"label changed to {fresh.config or '(none)'} meanwhile"
        if blocker:
            log.info("mig change skipped", extra={"node": node_name, "target": target, "why": blocker})
            return
        request = Request(target, current, now)
        patch = {
            "metadata": {
                "labels": {LABEL_CONFIG: target},
                "annotations": {ANN_REQUEST: request.to_annotation()},
            }
        }
        try:
            obj = await self._ctx.cluster.patch("Node", node_name, "", patch)
        except ApiError as exc:
            MIG_RECONFIGURATIONS.labels(node_name, "error").inc()
            log.warning("mig label not set", extra={"node": node_name, "target": target, "error": str(exc)})
            return
        MIG_RECONFIGURATIONS.labels(node_name, "requested").inc()
        self._record(node=node_name, action="reconfigure", target=target, dry_run=False, at=now)
        log.info(
            "mig reconfigure requested",
            extra={"node": node_name, "current": current, "target": target, "why": reason},
        )
        await self._ctx.recorder.emit(
            obj,
            "MigReconfigure",
            f"nvidia.com/mig.config {current or '(none)'} -> {target}: {reason}",
            action="Reconfigure",
        )

    async def _follow(self, nodes: list[MigNode], result: MigPlan, now: float) -> None:
        """Report once each outcome of our requests, and nodes stuck in pending without one of ours."""
        assert self._ctx is not None
        for node in nodes:
            np = result.node(node.name)
            status: Status = np.request if np else "none"
            if status in REPORTED and node.request is not None and node.request.result != status:
                await self._report(node, status, now)
            elif status == "none" and node.state in IN_FLIGHT_STATES and node.pending_since is not None:
                key = (node.name, node.config)
                timeout = self.settings.mig_pending_timeout
                if now - node.pending_since > timeout and key not in self._reported_stuck:
                    self._reported_stuck.add(key)
                    MIG_RECONFIGURATIONS.labels(node.name, "timeout").inc()
                    text = f"mig-manager {node.state} on {node.config} for over {timeout:.0f}s"
                    await self._event(node.name, "MigReconfigureStuck", text, "Warning")

    async def _report(self, node: MigNode, status: Status, now: float) -> None:
        assert self._ctx is not None and node.request is not None
        if not self.apply:
            return  # dry-run writes nothing, not even the bookkeeping of an earlier run's request
        req = node.request
        reason, kind = _EVENTS[status]
        text = {
            "success": f"nvidia.com/mig.config={req.config} is in effect (was {req.previous or '(none)'})",
            "failed": f"mig-manager failed to apply {req.config}; the node is left alone until its "
            "nvidia.com/mig.config label is changed by hand",
            "stuck": f"{req.config} requested {now - req.at:.0f}s ago and still not in effect "
            f"(state {node.state or '?'})",
        }[status]
        MIG_RECONFIGURATIONS.labels(node.name, _RESULT_METRIC[status]).inc()
        log.log(
            logging.INFO if status == "success" else logging.WARNING,
            "mig reconfigure " + status,
            extra={"node": node.name, "config": req.config, "previous": req.previous, "state": node.state},
        )
        done = Request(req.config, req.previous, req.at, status)
        try:
            await self._ctx.cluster.patch(
                "Node", node.name, "", {"metadata": {"annotations": {ANN_REQUEST: done.to_annotation()}}}
            )
        except ApiError as exc:
            log.warning("mig request not updated", extra={"node": node.name, "error": str(exc)})
        await self._event(node.name, reason, text, kind)

    async def _event(self, node_name: str, reason: str, text: str, kind: str) -> None:
        assert self._ctx is not None
        obj = self._ctx.cluster.get("Node", node_name) or {"kind": "Node", "metadata": {"name": node_name}}
        obj = {"kind": "Node", "apiVersion": "v1", **obj}
        await self._ctx.recorder.emit(obj, reason, text, type="Warning" if kind == "Warning" else "Normal")

    # -- bookkeeping -------------------------------------------------------------------------------
    def _track_pending(self, nodes: list[dict[str, Any]], now: float) -> Mapping[str, float]:
        """When each node was first seen in pending/rebooting (for nodes relabelled by someone else)."""
        seen = set()
        for obj in nodes:
            meta = obj.get("metadata") or {}
            state = (meta.get("labels") or {}).get("nvidia.com/mig.config.state", "")
            if state in IN_FLIGHT_STATES:
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

    def _log(self, result: MigPlan) -> None:
        """One decision line per node whose decision changed since the last cycle."""
        for np in result.nodes:
            key = (np.action, np.target, np.reason)
            if self._logged.get(np.node) == key:
                continue
            self._logged[np.node] = key
            log.info(
                "mig decision",
                extra={
                    "node": np.node,
                    "action": np.action,
                    "current": np.current,
                    "target": np.target,
                    "why": np.reason,
                    "blocked_by": np.blocked_by,
                    "state": np.state,
                    "free": np.free,
                    "unmet": result.unmet,
                    "apply": self.apply,
                },
            )
