"""The GPU-sharing controller: plans the sharing pool every `sharing_interval` seconds and, with
`--sharing-apply`, moves nodes in or out of it by setting `nvidia.com/device-plugin.config` (a key of the
device plugin's ConfigMap). The device plugin applies it; GPU Feature Discovery then labels the node
`nvidia.com/gpu.sharing-strategy` and `nvidia.com/gpu.replicas`, which is how a request is seen done.
Only the leader acts; every replica serves `GET /sharing/plan`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import Counter, Gauge

from app.cluster.selectors import parse_selector
from app.metrics import REGISTRY
from app.mig.actor import LabelActor
from app.mig.config import split_ref
from app.mig.controller import NodeConfigController
from app.mig.inputs import pod_facts
from app.mig.rollout import REPORTED
from app.settings import Settings
from app.sharing.config import LABEL_CONFIG, parse_configmap
from app.sharing.inputs import ANN_REQUEST, pending_shares, share_nodes
from app.sharing.plan import ShareNode, SharingParams, SharingPlan, plan

log = logging.getLogger(__name__)

SHARING_RECONFIGURATIONS = Counter(
    "gpu_autoscaler_sharing_reconfigurations_total",
    "Device-plugin config changes by result: requested, success, timeout, error (write refused)",
    ["node", "result"],
    registry=REGISTRY,
)
SHARED_GPUS = Gauge(
    "gpu_autoscaler_sharing_pool_gpus",
    "Physical GPUs of the sharing pool: shared now (current) and needed by the plan (needed)",
    ["state"],
    registry=REGISTRY,
)


class SharingComponent(NodeConfigController[SharingPlan]):
    """Plans every cycle; acts only with `sharing_apply` and only while leader. `GET /sharing/plan`."""

    name = "sharing"
    path = "/sharing/plan"

    def __init__(self, settings: Settings) -> None:
        actor = LabelActor("sharing", LABEL_CONFIG, ANN_REQUEST, SHARING_RECONFIGURATIONS, "Sharing")
        super().__init__(actor, settings.sharing_interval, settings.sharing_apply)
        self.settings = settings
        self.selector = parse_selector(settings.sharing_node_selector)

    def build(self, now: float) -> tuple[list[ShareNode], SharingPlan]:
        """Inputs from the cluster view and the plan over them (no writes)."""
        cluster = self.ctx.cluster
        pods = cluster.list("Pod")
        facts = pod_facts(pods)
        nodes, skipped = share_nodes(cluster.list("Node"), facts, self.selector)
        namespace, name = split_ref(self.settings.sharing_configmap)
        cm = cluster.get("ConfigMap", name, namespace) if name else None
        configs = parse_configmap(cm, self.settings.sharing_configmap)
        webhook = self.ctx.components.get("webhook")
        wanted = getattr(webhook, "recent_wanted_shares", None)
        recent = list(wanted(now - self.settings.mig_demand_window)) if wanted is not None else []
        params = SharingParams(
            now=now,
            strategy=self.settings.sharing_strategy,
            off_config=self.settings.sharing_off_config,
            max_parallel=self.settings.sharing_max_parallel,
            cooldown_s=self.settings.sharing_cooldown,
            timeout_s=self.settings.sharing_timeout,
        )
        result = plan(nodes, pending_shares(facts) + recent, configs, params)
        result.notes.extend(skipped + facts.skipped)
        if recent:
            result.notes.append(
                f"{len(recent)} share(s) the webhook wanted lately while no pool could take them"
            )
        return nodes, result

    async def cycle(self) -> SharingPlan:
        now = self.clock()
        nodes, result = await asyncio.to_thread(self.build, now)  # CPU work, off the event loop
        self.last, self.last_cycle = result, now
        SHARED_GPUS.labels("current").set(result.pool.get("gpus_shared", 0))
        SHARED_GPUS.labels("needed").set(result.pool.get("gpus_needed", 0))
        self.actor.log_decisions(result.nodes, pool=result.pool, unmet=result.unmet)
        for node in nodes:
            np = result.node(node.name)
            req = node.request
            if np is None or req is None or np.request not in REPORTED or req.result == np.request:
                continue
            text = {
                "success": f"{LABEL_CONFIG}={req.config} is in effect ({np.sharing})",
                "stuck": f"{req.config} asked {now - req.at:.0f}s ago; the node still shows {np.sharing}",
                "failed": f"{req.config} failed",
            }[np.request]
            await self.actor.report(self.ctx, node.name, req, np.request, text)
        await self.request_changes(result.nodes, now, _changed_meanwhile)
        return result


def _changed_meanwhile(fresh: ShareNode | None, np: Any) -> str | None:
    """A node must still be empty and on the config the plan saw."""
    if fresh is None or fresh.pods or fresh.config != (np.current or ""):
        return "the node changed meanwhile"
    return None
