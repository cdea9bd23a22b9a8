"""The console capability: GET /ui (the page), /ui/sections (what changed, for the page's live refresh),
/ui/data (the view model as JSON), /ui/gpu (one GPU's details) and /ui/static/* (CSS, JS).

Read-only: it reads the other components' state and never writes to the cluster, so it needs no leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from fastapi import APIRouter
from markupsafe import Markup

from app.console import render
from app.console.collect import NodeState, StateCache, collect
from app.console.inputs import ConsoleInputs
from app.console.money import MoneyCache
from app.console.view import Filters, build, clock_time, map_view, node_row, uses_by_node
from app.context import AppContext
from app.loops import PeriodicLoop
from app.settings import Settings
from app.waste.score import WasteScore

log = logging.getLogger(__name__)

ROWS_PER_NODE = 4  # namespace filters whose rendered rows are kept, per node
#: rows in the page's first paint; the page's script fetches the rest right after (see docs/console.md)
FIRST_ROWS = 100
WARM_MIN_S = 5.0
VIEWED_TTL_S = 600.0


class Row(NamedTuple):
    """One node's row of the map as the page gets it: replaced on the page when its digest changes."""

    node: str
    digest: str
    html: str


@dataclass
class Snapshot:
    """One refresh: the view model, each section's HTML with its digest, the map's rows in order."""

    inputs: ConsoleInputs
    vm: dict[str, Any]
    sections: dict[str, tuple[str, str]]  # name -> (digest, html)
    rows: list[Row]


class ConsoleComponent:
    name = "console"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.money = MoneyCache(settings.console_cost_interval)
        self._ctx: AppContext | None = None
        self._lock = threading.Lock()
        self.state = StateCache()
        self._rows: dict[tuple[str, str], tuple[Any, dict[str, Any], Row]] = {}
        self._decisions_cache: tuple[Any, tuple[str, str]] | None = None
        self._warmer: PeriodicLoop | None = None
        self._viewed: float | None = None
        self.first_rows = FIRST_ROWS  # time.monotonic() of the last page or refresh
        self._waste_seen: Any = None
        self._by_node: dict[str, dict[str, list[WasteScore]]] = {}
        self._use_keys: dict[str, Any] = {}

    def router(self) -> APIRouter | None:
        if not self.settings.console_enabled:
            return None
        from app.console.routes import build_router

        return build_router(self)

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        if not self.settings.console_enabled:
            return
        self.money.get(ctx)  # first cost/savings pass in the background, ready when someone looks
        # keep the rendered map up to date as the cluster changes, so a page never waits for a full
        # rebuild (start, a waste cycle): one changed row costs ~1 ms, nothing changed ~nothing
        interval = max(WARM_MIN_S, self.settings.console_refresh_seconds)
        self._warmer = PeriodicLoop("console", interval, self._warm)
        self._warmer.start()
        log.info("console ready", extra={"path": "/ui", "refresh_s": self.settings.console_refresh_seconds})

    async def stop(self) -> None:
        if self._warmer is not None:
            await self._warmer.stop()
            self._warmer = None
        # a cost pass in flight finishes in its own thread; never hold the event loop (and SIGTERM) for it.
        # At interpreter exit the default executor may be gone already: then there is nothing to wait in.
        with contextlib.suppress(RuntimeError):
            await asyncio.to_thread(self.money.wait, 1.0)

    async def _warm(self) -> None:
        # cost and savings walk every pod per node (seconds at 1,000 nodes): only while someone looks
        looked = self._viewed is not None and time.monotonic() - self._viewed < VIEWED_TTL_S
        await asyncio.to_thread(self.snapshot, Filters(), True, looked)

    def viewed(self) -> None:
        """A page or a refresh asked: cost and savings are worth keeping fresh for a while."""
        self._viewed = time.monotonic()

    @property
    def ctx(self) -> AppContext:
        if self._ctx is None:
            raise RuntimeError("console component not started")
        return self._ctx

    # -- building ---------------------------------------------------------------------------------------
    def _uses(self, ctx: AppContext) -> tuple[dict[str, dict[str, list[WasteScore]]], dict[str, Any]]:
        """The waste scores by node and GPU, and a key per node that changes with its scores; rebuilt
        only when the waste component produced a new list (once per waste cycle)."""
        last = getattr(ctx.components.get("waste"), "last", None)
        if last is not self._waste_seen:
            by_node = uses_by_node(last or [])
            keys = {
                node: tuple(
                    (g, tuple((w.namespace, w.pod, w.compute, w.memory, w.score) for w in ws))
                    for g, ws in sorted(gpus.items())
                )
                for node, gpus in by_node.items()
            }
            self._waste_seen, self._by_node, self._use_keys = last, by_node, keys
        return self._by_node, self._use_keys

    def _map(
        self, states: list[NodeState], filters: Filters, utilisation: bool
    ) -> tuple[dict[str, Any], list[Row]]:
        """The map's view model and its rows (after filters, in order). Each node's row (model, HTML,
        digest) is rebuilt only when its state, its waste scores or the namespace filter changed: one pod
        bound re-renders one row, and the page replaces that one row."""
        by_node, use_keys = self._uses(self.ctx)
        ns = filters.namespace
        models: list[dict[str, Any]] = []
        row_of: dict[int, Row] = {}
        live: set[str] = set()
        for st in states:
            if st.node is None:
                continue
            name = st.node.name
            live.add(name)
            key = (st.key, use_keys.get(name))
            hit = self._rows.get((name, ns))
            if hit is None or hit[0] != key:
                model = node_row(st.node, st.holders, by_node.get(name), ns)
                digest = render.digest(repr((name, ns, key)))
                html = Markup(render.render_fragment("row.html", row=model, digest=digest))
                hit = (key, model, Row(name, digest, html))
                self._rows[(name, ns)] = hit
            models.append(hit[1])
            row_of[id(hit[1])] = hit[2]
        if len(self._rows) > ROWS_PER_NODE * max(1, len(models)):  # filters come and go: drop the old ones
            self._rows = {k: v for k, v in self._rows.items() if k[1] == ns and k[0] in live}
        gmap = map_view(models, filters, utilisation)
        return gmap, [row_of[id(m)] for m in gmap["rows"]]

    def snapshot(self, filters: Filters = Filters(), sections: bool = True, money: bool = True) -> Snapshot:
        """Collect, build and render every section (the map incrementally, see `_map`). `money`: start a
        recomputation of cost and savings when due (else show the last one)."""
        ctx = self.ctx
        with self._lock:
            states = self.state.read(ctx)
            inputs = collect(ctx, states)
            result = self.money.get(ctx) if money else self.money.result
            if result is not None:
                inputs.cost_report, inputs.suggestions = result.report, result.suggestions
                when = clock_time(result.computed_at)
                inputs.money_note = result.error or (f"computed at {when['text']} UTC" if when else "")
            else:
                inputs.money_note = "being computed…"
            gmap, rows = self._map(states, filters, bool(inputs.waste))
        vm = build(inputs, filters, gmap=gmap)
        rendered: dict[str, tuple[str, str]] = {}
        for name in render.SECTIONS if sections else ():
            if name == "decisions":
                rendered[name] = self._decisions(vm)
            else:
                html = render.render_section(name, vm)
                rendered[name] = (render.digest(html), html)
        return Snapshot(inputs, vm, rendered, rows)

    def _decisions(self, vm: dict[str, Any]) -> tuple[str, str]:
        """The decisions section, re-rendered only when a decision, a review or the autoscaler's last
        cycle changed (50 decisions with their score tables are the page's second-largest part)."""
        hook = vm["webhook"]
        key = (
            tuple((p["seq"], p["bound_node"]) for p in vm["placements"] or ()),
            None if hook is None else (len(hook), hook[0]["time"] if hook else None),
            json.dumps(vm["autoscaler"], sort_keys=True, default=str),
            tuple(sorted(vm["errors"].items())),
        )
        with self._lock:
            if self._decisions_cache is not None and self._decisions_cache[0] == key:
                return self._decisions_cache[1]
        html = render.render_section("decisions", vm)
        result = (render.digest(html), html)
        with self._lock:
            self._decisions_cache = (key, result)
        return result

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

    def get_decision(self, key: str) -> dict[str, Any] | None:
        """One of the recent scheduling decisions (by pod key), as the page lists it."""
        placements = self.snapshot(sections=False).vm["placements"] or []
        return next((p for p in placements if p["key"] == key), None)

    def describe(self) -> dict[str, Any]:
        """The whole view model (GET /ui/data)."""
        return self.snapshot(sections=False).vm
