"""The extender capability: routes /filter and /prioritize, node state fed by the cluster view."""

from __future__ import annotations

import gc
import logging

from fastapi import APIRouter

from app.context import AppContext
from app.settings import Settings
from extender.core import ScoringConfig
from extender.fragmentation import TypicalPodLearner
from extender.routes import build_router
from extender.service import ExtenderService
from extender.view_adapter import NodeStateAdapter

log = logging.getLogger(__name__)


class ExtenderComponent:
    name = "extender"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = ScoringConfig.from_settings(settings)
        # the fragmentation policy learns the typical pods from the pods it is asked about
        self.frag = TypicalPodLearner() if self.config.resource_policy == "fragmentation" else None
        self.adapter = NodeStateAdapter(
            self.config,
            assume_ttl_seconds=settings.assume_ttl_seconds,
            yield_to_scheduler=settings.assume_yields_to_scheduler,
        )
        self.adapter.learner = self.frag  # seeded from the cluster view's pods at attach, then its watch
        self.service = ExtenderService(self.adapter, self.config, self.frag)

    def router(self) -> APIRouter:
        return build_router(lambda: self.service, self.settings.extender_budget_seconds)

    async def start(self, ctx: AppContext) -> None:
        self.adapter.attach(ctx.cluster)
        # the node state lives as long as the process: keep it out of the cyclic GC's full passes, which a
        # full-Nodes request (100k+ fresh objects per call) would otherwise trigger over the whole heap
        gc.collect()
        gc.freeze()
        log.info(
            "extender ready",
            extra={
                "nodes": self.adapter.state.n,
                "pods": len(self.adapter.bound),
                "topology_shapes": len(self.adapter.topo.shapes),
                "policy": self.config.resource_policy,
                "learnt_pods": self.frag.seen if self.frag is not None else 0,
                "weights": self.config.normalised_weights,
            },
        )

    async def stop(self) -> None:
        self.adapter.detach()
