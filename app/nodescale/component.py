"""The node-autoscaling loop: feed the pure planner from the cluster view, act on its plan (or only say what
it would do), and remember what a plan cannot see — when each GPU node was last busy, when we last scaled up,
which groups back off and which nodes refused a drain.

Modes (`--node-autoscaling`): `off` (no loop), `dry-run` (default: plan, log, Events, metric; no change to any
object but Events), `apply` (act). Only the leader acts (`PeriodicLoop(gate=…)`).

Acting follows Cluster Autoscaler's Cluster API provider: scale-up patches `spec.replicas` through the
MachineDeployment's scale subresource; scale-down cordons the node (`spec.unschedulable`, our annotation
`gpu-autoscaler.io/scale-down`), evicts its pods through the Eviction API (a refusal — a PodDisruptionBudget —
uncordons it and holds the node for a while), marks its Machine `cluster.x-k8s.io/delete-machine` and lowers
`spec.replicas` by one (if that fails, the mark is taken back), so the MachineSet deletes that Machine.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from prometheus_client import Counter

from app.cluster.base import ApiError, NotFound, Obj
from app.context import AppContext
from app.cost.prices import PriceTable, load_prices
from app.loops import PeriodicLoop
from app.metrics import REGISTRY
from app.nodescale.groups import ANN_DELETE_MACHINE
from app.nodescale.planner import ANN_SCALE_DOWN, DrainEntry, Inputs, Params, Plan, ScaleEntry, duration, plan
from app.settings import Settings

log = logging.getLogger(__name__)

DECISIONS = Counter(
    "gpu_autoscaler_node_scale_decisions_total",
    "Node-scaling decisions: direction up | down | none (a node held back), reason pending-pods | idle | "
    "under-used | provision-timeout, or what holds a node (pdb, local-storage, min-size…). A repeated "
    "dry-run decision counts once.",
    ["group", "direction", "reason"],
    registry=REGISTRY,
)

#: a node whose drain was refused is left alone this long
DRAIN_RETRY_S = 300.0
#: a group whose Machines did not become nodes backs off this long, doubling per failure up to the max
BACKOFF_S, BACKOFF_MAX_S = 300.0, 1800.0
#: informational Events (dry-run, blocked, not triggering) repeat at most this often per object
EVENT_INTERVAL_S = 600.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _split(key: str) -> tuple[str, str]:
    ns, _, name = key.partition("/")
    return ns, name


class NodeScaleComponent:
    """Node autoscaling through Cluster API (issue 14). `GET /nodes/plan` shows the latest plan."""

    name = "nodescale"

    def __init__(self, settings: Settings, prices: PriceTable | None = None) -> None:
        self.settings = settings
        self.mode: str = settings.node_autoscaling
        self.params = Params.from_settings(settings)
        self.prices = prices or load_prices()
        #: wall clock; the demo swaps in simulated time
        self.clock: Callable[[], float] = time.time
        #: False: cycles run only when driven (`run_cycle`), as the demo does
        self.background = True
        self.plan: Plan | None = None
        self.planned_at: float | None = None
        self.last_busy: dict[str, float] = {}
        self.last_scale_up: float | None = None
        self.backoff: dict[str, tuple[float, str, int]] = {}  # group -> (until, why, failures)
        self.held_nodes: dict[str, tuple[float, str]] = {}  # node -> (until, why)
        self.actions: deque[dict[str, Any]] = deque(maxlen=50)
        self.cycles = 0
        self._counted: set[tuple[str, ...]] = set()
        self._ctx: AppContext | None = None
        self._loop: PeriodicLoop | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    # -- Component protocol ------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        r = APIRouter()

        @r.get("/nodes/plan")
        async def nodes_plan() -> dict[str, Any]:
            return self.describe()

        return r

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._event_loop = asyncio.get_running_loop()
        start = self.clock()
        # what happened before we started is unknown: a node idle now counts as idle from now on
        for node in ctx.cluster.list("Node"):
            self.last_busy.setdefault(str(node["metadata"]["name"]), start)
        if self.mode == "off":
            log.info("node autoscaling off")
            return
        self._loop = PeriodicLoop(
            "nodescale",
            self.settings.node_autoscaling_interval,
            self._tick,
            gate=lambda: ctx.leadership.is_leader,
        )
        self._loop.start()
        log.info(
            "node autoscaling started",
            extra={"mode": self.mode, "interval_s": self.settings.node_autoscaling_interval},
        )

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()

    # -- the cycle ---------------------------------------------------------------------------------------
    async def _tick(self) -> None:
        if self.background:
            await self.run_cycle()

    def inputs(self, now: float) -> Inputs:
        assert self._ctx is not None
        c = self._ctx.cluster
        hold = ""
        delay = self.settings.scale_down_delay_after_add
        if self.last_scale_up is not None and now - self.last_scale_up < delay:
            left = delay - (now - self.last_scale_up)
            hold = f"scale-down waits {duration(delay)} after a scale-up ({duration(left)} left)"
        return Inputs.read(
            c.list,
            now=now,
            prices=self.prices,
            last_busy=dict(self.last_busy),
            backoff={g: why for g, (until, why, _) in self.backoff.items() if until > now},
            hold_scale_down=hold,
            hold_nodes={n: why for n, (until, why) in self.held_nodes.items() if until > now},
        )

    async def run_cycle(self) -> Plan:
        """Plan once and, in apply mode, act; returns the plan."""
        assert self._ctx is not None
        async with self._lock:
            now = self.clock()
            inputs = self.inputs(now)
            ext = self._ctx.components.get("extender")
            frag = copy.deepcopy(getattr(ext, "frag", None))  # the extender's learnt typical pods, a copy
            # off the event loop: the extender answers /filter meanwhile
            new = await asyncio.to_thread(plan, inputs, self.params, frag)
            for node in new.busy:
                self.last_busy[node] = now
            for group, why in new.stuck_groups.items():
                self._back_off(group, why, now)
            self._report(new, now)
            await self._inform(new)
            if self.mode == "apply":
                await self._apply(new, now)
            self.plan, self.planned_at = new, now
            self.cycles += 1
            return new

    def run_cycle_threadsafe(self, timeout_s: float = 60.0) -> Plan:
        """Run one cycle on the server's event loop from another thread (the demo drives cycles so)."""
        if self._event_loop is None:
            raise RuntimeError("nodescale not started")
        return asyncio.run_coroutine_threadsafe(self.run_cycle(), self._event_loop).result(timeout_s)

    def _back_off(self, group: str, why: str, now: float) -> None:
        _, _, failures = self.backoff.get(group, (0.0, "", 0))
        if self.backoff.get(group, (0.0,))[0] > now:
            return  # already backing off for this
        span = min(BACKOFF_MAX_S, BACKOFF_S * 2**failures)
        self.backoff[group] = (
            now + span,
            f"{why.removeprefix('backoff: ')} ({duration(span)} backoff)",
            failures + 1,
        )

    # -- reporting ---------------------------------------------------------------------------------------
    def _count(
        self, group: str, direction: str, reason: str, key: tuple[str, ...], seen: set[tuple[str, ...]]
    ) -> None:
        """Count a decision: each one acted on; a dry-run or blocked one only when it is new."""
        seen.add(key)
        if self.mode == "apply" and direction != "none":
            return  # counted when acted on
        if key not in self._counted:
            DECISIONS.labels(group, direction, reason).inc()

    def _report(self, p: Plan, now: float) -> None:
        seen: set[tuple[str, ...]] = set()
        for s in p.scale:
            key = ("scale", s.group, str(s.from_), str(s.to))
            if key not in self._counted:
                log.info(
                    "node scale decision",
                    extra={
                        "mode": self.mode,
                        "group": s.group,
                        "direction": s.direction,
                        "from": s.from_,
                        "to": s.to,
                        "trigger": s.code,
                        "reason": s.reason,
                        "pods": s.pods,
                        "nodes": s.nodes,
                        "machines": s.machines,
                    },
                )
            self._count(s.group, s.direction, s.code, key, seen)
        for b in p.blocked:
            key = ("blocked", b.node, b.code, "")
            if key not in self._counted:
                log.info(
                    "node scale-down blocked",
                    extra={"node": b.node, "group": b.group, "holder": b.code, "reason": b.reason},
                )
            self._count(b.group, "none", b.code, key, seen)
        self._counted = seen

    async def _event(
        self, obj: Obj | None, reason: str, message: str, warning: bool = False, throttle: bool = False
    ) -> None:
        if obj is None or self._ctx is None:
            return
        await self._ctx.recorder.emit(
            obj,
            reason,
            message,
            type="Warning" if warning else "Normal",
            min_interval_s=EVENT_INTERVAL_S if throttle else 0.0,
        )

    async def _inform(self, p: Plan) -> None:
        """Events a person reads with `kubectl describe`: what a dry-run would do, why a pod scales nothing
        up, why a node stays (each repeated at most every EVENT_INTERVAL_S)."""
        assert self._ctx is not None
        c = self._ctx.cluster
        if self.mode != "apply":
            for s in p.scale:
                ns, name = _split(s.group)
                reason = "DryRunScaleUp" if s.direction == "up" else "DryRunScaleDown"
                msg = f"would scale {s.from_}->{s.to} (dry-run): {s.reason}"
                await self._event(c.get("MachineDeployment", name, ns), reason, msg, throttle=True)
        for view in p.pending:
            status = str(view.get("status", ""))
            if status.startswith("no node group fits"):
                ns, name = _split(str(view["pod"]))
                msg = f"pod didn't trigger scale-up: {status}"
                await self._event(c.get("Pod", name, ns), "NotTriggerScaleUp", msg, throttle=True)
        for b in p.blocked:
            if b.code != "not-managed":
                await self._event(c.get("Node", b.node), "ScaleDownBlocked", b.reason, throttle=True)

    # -- acting ----------------------------------------------------------------------------------------
    async def _apply(self, p: Plan, now: float) -> None:
        assert self._ctx is not None
        drains = {d.node: d for d in p.drain}
        for s in p.scale:
            try:
                if s.direction == "up":
                    await self._scale_up(s, now)
                else:
                    await self._scale_down(s, drains, now)
            except ApiError as exc:
                log.warning("node scale action failed", extra={"group": s.group, "error": str(exc)})
                ns, name = _split(s.group)
                obj = self._ctx.cluster.get("MachineDeployment", name, ns)
                await self._event(
                    obj, "ScaleUpFailed" if s.direction == "up" else "ScaleDownFailed", str(exc), True
                )

    def _unchanged(self, s: ScaleEntry) -> Obj | None:
        """The MachineDeployment, if its spec.replicas is still what the plan was made from (else None:
        someone else scaled it; the next cycle plans again)."""
        assert self._ctx is not None
        ns, name = _split(s.group)
        md = self._ctx.cluster.get("MachineDeployment", name, ns)
        current = (md.get("spec") or {}).get("replicas") if md else None
        if md is None or current != s.from_:
            log.info(
                "node scale skipped: replicas changed since the plan",
                extra={"group": s.group, "direction": s.direction, "planned_from": s.from_, "now": current},
            )
            return None
        return md

    def _act(self, what: str, **facts: Any) -> None:
        entry = {"at": _iso(self.clock()), "action": what, **facts}
        self.actions.append(entry)
        log.info("node scale action", extra={"action": what, **facts})

    async def _scale_up(self, s: ScaleEntry, now: float) -> None:
        assert self._ctx is not None
        c = self._ctx.cluster
        md = self._unchanged(s)
        if md is None:
            return
        ns, name = _split(s.group)
        await c.scale("MachineDeployment", name, ns, s.to)
        self.last_scale_up = now
        DECISIONS.labels(s.group, "up", s.code).inc()
        self._act("scale-up", group=s.group, **{"from": s.from_, "to": s.to}, pods=s.pods)
        await self._event(md, "ScaledUpGroup", f"{s.from_}->{s.to}: {s.reason}")
        for key in s.pods:
            pns, pname = _split(key)
            await self._event(
                c.get("Pod", pname, pns),
                "TriggeredScaleUp",
                f"pod triggered scale-up: {s.group} {s.from_}->{s.to}",
            )

    async def _scale_down(self, s: ScaleEntry, drains: dict[str, DrainEntry], now: float) -> None:
        assert self._ctx is not None
        c = self._ctx.cluster
        md = self._unchanged(s)
        if md is None:
            return
        if s.nodes:  # drain each node first; only the machines of drained nodes go
            machines = [
                m for n, m in zip(s.nodes, s.machines, strict=True) if await self._drain(drains[n], now)
            ]
        else:  # machines that never became nodes: nothing to drain
            machines = list(s.machines)
        if not machines:
            return
        for m in machines:
            mns, mname = _split(m)
            await c.patch(
                "Machine", mname, mns, {"metadata": {"annotations": {ANN_DELETE_MACHINE: _iso(now)}}}
            )
        to = s.from_ - len(machines)
        ns, name = _split(s.group)
        try:
            await c.scale("MachineDeployment", name, ns, to)
        except ApiError:
            for m in machines:  # as the provider does: a failed scale takes the marks back
                mns, mname = _split(m)
                try:
                    await c.patch(
                        "Machine", mname, mns, {"metadata": {"annotations": {ANN_DELETE_MACHINE: None}}}
                    )
                except ApiError:
                    log.warning("cannot unmark machine", extra={"machine": m})
            for node in s.nodes:
                await self._uncordon(node)
            raise
        reasons = {drains[n].code for n in s.nodes if n in drains} or {s.code}
        for reason in reasons:
            DECISIONS.labels(s.group, "down", reason).inc()
        self._act(
            "scale-down", group=s.group, **{"from": s.from_, "to": to}, machines=machines, nodes=s.nodes
        )
        await self._event(md, "ScaledDownGroup", f"{s.from_}->{to}: {s.reason}")

    async def _drain(self, d: DrainEntry, now: float) -> bool:
        """Cordon, then evict every pod; on a refusal uncordon and hold the node. True when all went."""
        assert self._ctx is not None
        c = self._ctx.cluster
        node = c.get("Node", d.node)
        if node is None:
            return True  # already gone: its Machine may go too
        await c.patch(
            "Node",
            d.node,
            "",
            {"spec": {"unschedulable": True}, "metadata": {"annotations": {ANN_SCALE_DOWN: _iso(now)}}},
        )
        self._act("cordon", node=d.node, reason=d.reason)
        await self._event(
            node, "ScaleDown", f"draining to remove the node ({d.reason}); evicting {len(d.pods)} pod(s)"
        )
        for key in d.pods:
            ns, name = _split(key)
            try:
                await c.evict(name, ns)
                self._act("evict", node=d.node, pod=key)
            except NotFound:
                continue
            except ApiError as exc:  # TooManyRequests: a PodDisruptionBudget said no
                why = f"eviction of {key} refused ({exc.status}: {exc.message})"
                self.held_nodes[d.node] = (
                    now + DRAIN_RETRY_S,
                    f"{why} {duration(DRAIN_RETRY_S)} ago at most",
                )
                await self._uncordon(d.node)
                self._act("drain-failed", node=d.node, pod=key, error=str(exc))
                await self._event(c.get("Node", d.node), "ScaleDownFailed", why, warning=True)
                return False
        return True

    async def _uncordon(self, node: str) -> None:
        assert self._ctx is not None
        try:
            await self._ctx.cluster.patch(
                "Node",
                node,
                "",
                {"spec": {"unschedulable": None}, "metadata": {"annotations": {ANN_SCALE_DOWN: None}}},
            )
        except ApiError as exc:
            log.warning("cannot uncordon node", extra={"node": node, "error": str(exc)})

    # -- what the console shows ------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        base: dict[str, Any] = {
            "scale": [],
            "drain": [],
            "blocked": [],
            "groups": [],
            "pending": [],
            "notes": [],
        }
        if self.plan is not None:
            base = self.plan.describe()
        leader = self._ctx.leadership.is_leader if self._ctx is not None else None
        return {
            **base,
            "mode": self.mode,
            "leader": leader,
            "planned_at": _iso(self.planned_at) if self.planned_at is not None else None,
            "cycles": self.cycles,
            "backoff": {g: why for g, (until, why, _) in self.backoff.items() if until > self.clock()},
            "actions": list(self.actions),
        }
