"""What the MIG and sharing controllers share as components: a leader-gated loop, one plan endpoint, the
dry-run switch, and running a cycle from another thread (the demo)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from fastapi import APIRouter

from app.context import AppContext
from app.loops import PeriodicLoop
from app.mig.actor import LabelActor

log = logging.getLogger(__name__)


class _Plan(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


P = TypeVar("P", bound=_Plan)


class NodeConfigController(Generic[P]):
    """Base of a component that plans node configs every `interval` seconds and acts through `actor`.

    Subclasses set `name`, `path` (the GET endpoint) and implement `cycle()` (plan, then act)."""

    name = ""
    path = ""

    def __init__(self, actor: LabelActor, interval: float, apply: bool) -> None:
        self.actor = actor
        self.actor.apply = apply
        self.interval = interval
        #: wall clock of the plans (cooldowns, timeouts); tests and the demo set their own
        self.clock: Callable[[], float] = time.time
        self.last: P | None = None
        self.last_cycle: float | None = None
        self._ctx: AppContext | None = None
        self._loop: PeriodicLoop | None = None
        self._event_loop: asyncio.AbstractEventLoop | None = None

    @property
    def apply(self) -> bool:
        """Act (write labels) or only plan and log (dry-run, the default)."""
        return self.actor.apply

    @apply.setter
    def apply(self, value: bool) -> None:
        self.actor.apply = value

    @property
    def ctx(self) -> AppContext:
        assert self._ctx is not None, f"{self.name} controller has no context"
        return self._ctx

    def router(self) -> APIRouter:
        r = APIRouter()
        r.add_api_route(self.path, self.describe, methods=["GET"], name=f"{self.name}_plan")
        return r

    def attach(self, ctx: AppContext) -> None:
        """Use `ctx` without starting the loop (the CLI plans once from a snapshot)."""
        self._ctx = ctx

    async def start(self, ctx: AppContext) -> None:
        self.attach(ctx)
        self._event_loop = asyncio.get_running_loop()
        # a view still syncing may list the nodes before their pods: never plan writes on half a cluster
        self._loop = PeriodicLoop(
            self.name, self.interval, self.cycle, gate=lambda: ctx.leadership.is_leader and ctx.cluster.ready
        )
        self._loop.start()
        log.info(f"{self.name} controller started", extra={"apply": self.apply, "interval_s": self.interval})

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None

    async def cycle(self) -> P:
        raise NotImplementedError

    def build(self, now: float) -> tuple[list[Any], P]:
        """The controller's inputs from the cluster view and the plan over them (no writes)."""
        raise NotImplementedError

    async def request_changes(
        self, node_plans: Iterable[Any], now: float, blocker: Callable[[Any, Any], str | None]
    ) -> None:
        """Ask for every planned reconfiguration. Acting, the inputs are rebuilt first: the view may have
        moved since the plan (a pod bound, the label changed), and `blocker(fresh node or None, node plan)`
        says why the change must wait (logged, skipped this cycle). Dry-run, the actor only records it."""
        for np in node_plans:
            if np.action != "reconfigure" or not np.target:
                continue
            if self.apply:
                fresh_nodes, _ = await asyncio.to_thread(self.build, now)
                fresh = next((n for n in fresh_nodes if n.name == np.node), None)
                why = blocker(fresh, np)
                if why:
                    log.info(
                        f"{self.name} change skipped",
                        extra={"node": np.node, "target": np.target, "why": why},
                    )
                    continue
            await self.actor.request(self.ctx, np.node, np.current or "", np.target, np.reason, now)

    def cycle_threadsafe(self, timeout_s: float = 30.0) -> P:
        """Run one cycle on the server's event loop from another thread (the demo drives cycles so)."""
        if self._event_loop is None:
            raise RuntimeError(f"{self.name} controller not started")
        return asyncio.run_coroutine_threadsafe(self.cycle(), self._event_loop).result(timeout_s)

    def describe(self) -> dict[str, Any]:
        """The latest plan in the CLI's JSON shape, plus whether it acts and what it last did."""
        body: dict[str, Any] = self.last.as_dict() if self.last is not None else {"nodes": [], "unmet": {}}
        body.update(apply=self.apply, last_cycle=self.last_cycle, actions=list(self.actor.actions))
        return body
