"""The console capability: GET /ui (the page), /ui/sections (what changed, for the page's live refresh),
/ui/data (the view model as JSON), /ui/gpu (one GPU's details) and /ui/static/* (CSS, JS).

Read-only: it reads the other components' state and never writes to the cluster, so it needs no leader.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from app.console import render
from app.console.collect import AnnotationCache, collect, extender_state, fingerprint
from app.console.inputs import ConsoleInputs, Holder, NodeInput
from app.console.money import MoneyCache
from app.console.view import Filters, build, clock_time, gpu_map
from app.context import AppContext
from app.settings import Settings

log = logging.getLogger(__name__)

MAP_CACHE = 8  # filter combinations whose rendered map is kept


@dataclass
class Snapshot:
    """One refresh: the view model and each section's HTML with its digest."""

    inputs: ConsoleInputs
    vm: dict[str, Any]
    sections: dict[str, tuple[str, str]]  # name -> (digest, html)


class ConsoleComponent:
    name = "console"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.annotations = AnnotationCache()
        self.money = MoneyCache(settings.console_cost_interval)
        self._ctx: AppContext | None = None
        self._lock = threading.Lock()
        self._state: tuple[tuple[int, ...], tuple[list[NodeInput], list[Holder]]] | None = None
        self._maps: OrderedDict[tuple[Any, ...], tuple[dict[str, Any], str, str]] = OrderedDict()

    def router(self) -> APIRouter | None:
        if not self.settings.console_enabled:
            return None
        from app.console.routes import build_router

        return build_router(self)

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        if self.settings.console_enabled:
            self.money.get(ctx)  # first cost/savings pass in the background, ready when someone looks
            log.info(
                "console ready", extra={"path": "/ui", "refresh_s": self.settings.console_refresh_seconds}
            )

    async def stop(self) -> None:
        self.money.wait(timeout=5)

    @property
    def ctx(self) -> AppContext:
        if self._ctx is None:
            raise RuntimeError("console component not started")
        return self._ctx

    # -- building ---------------------------------------------------------------------------------------
    def snapshot(self, filters: Filters = Filters(), sections: bool = True) -> Snapshot:
        """Collect, build and render every section. The extender's state is copied and the map rendered
        only when the map's fingerprint moved (the map is most of the page's cost)."""
        ctx = self.ctx
        with self._lock:
            fp = fingerprint(ctx)
            if self._state is None or self._state[0] != fp:
                self._state = (fp, extender_state(ctx, self.annotations))
                self._maps.clear()
            inputs = collect(ctx, self.annotations, state=self._state[1])
            result = self.money.get(ctx)
            if result is not None:
                inputs.cost_report, inputs.suggestions = result.report, result.suggestions
                when = clock_time(result.computed_at)
                inputs.money_note = result.error or (f"computed at {when['text']} UTC" if when else "")
            else:
                inputs.money_note = "being computed…"
            key = (filters.product, filters.namespace)
            cached = self._maps.get(key)
            if cached is None:
                gmap = gpu_map(inputs, filters)
                html = render.render_section("map", {"map": gmap})
                cached = (gmap, html, render.digest(html))
                self._maps[key] = cached
                while len(self._maps) > MAP_CACHE:
                    self._maps.popitem(last=False)
            gmap, map_html, map_digest = cached
        vm = build(inputs, filters, gmap=gmap)
        rendered: dict[str, tuple[str, str]] = {}
        for name in render.SECTIONS if sections else ():
            if name == "map":
                rendered[name] = (map_digest, map_html)
                continue
            html = render.render_section(name, vm)
            rendered[name] = (render.digest(html), html)
        return Snapshot(inputs, vm, rendered)

    def get_gpu(self, node: str, gpu: str) -> dict[str, Any] | None:
        """One GPU cell of the (unfiltered) map, with the waste reasons of the pods on it."""
        snap = self.snapshot(sections=False)
        row = next((r for r in snap.vm["map"]["rows"] if r["name"] == node), None)
        if row is None:
            return None
        cell = next((c for g in row["groups"] for c in g["cells"] if c["label"] == gpu), None)
        if cell is None:
            return None
        group = next(g for g in row["groups"] if cell in g["cells"])
        pods = set(cell["pods"])
        holders = [h for h in snap.inputs.holders if h.node == node and h.pod in pods]
        waste = [
            w
            for w in snap.inputs.waste
            if w.node == node and f"{w.namespace}/{w.pod}" in pods and w.gpu.split("/")[0] == gpu
        ]
        return {"row": row, "cell": cell, "group": group, "holders": holders, "waste": waste}

    def describe(self) -> dict[str, Any]:
        """The whole view model (GET /ui/data)."""
        return self.snapshot(sections=False).vm
