"""Cost per namespace and savings suggestions for the console, computed off the request path.

They reuse the operator CLI's pure views (app/cost/report.py, app/ops/optimize.py) over the cluster view.
Those walk every pod for every node (seconds at 1,000 nodes), so a worker thread recomputes them when the
cluster or the waste scores changed and the last result is at least `interval` seconds old; the page shows
the last result with its time, and "being computed" before the first one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.context import AppContext
from app.cost.prices import PriceTable, load_prices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MoneyResult:
    report: dict[str, Any] | None
    suggestions: dict[str, Any] | None
    computed_at: float
    error: str = ""


def _usage(ctx: AppContext) -> Mapping[Any, Any]:
    """Usage history for MIG suggestions: what the webhook's history source has recorded, when it keeps a
    table (the demo's recorded history); a live Prometheus is asked per workload by `optimize` instead."""
    hook = ctx.components.get("webhook")
    source = getattr(getattr(hook, "history", None), "source", None)
    table = getattr(source, "table", None)
    return table if isinstance(table, Mapping) else {}


def compute(ctx: AppContext, prices: PriceTable, now: datetime | None = None) -> MoneyResult:
    """One pass: cluster facts -> cost report + optimize suggestions (both JSON-ready)."""
    from app.cost.attribution import attribute
    from app.cost.report import point_in_time
    from app.ops.inventory import cluster_facts
    from app.ops.optimize import optimize

    waste = list(getattr(ctx.components.get("waste"), "last", []) or [])
    nodes = ctx.cluster.list("Node")
    facts = cluster_facts(nodes, ctx.cluster.list("Pod"), ctx.cluster.source)
    report = point_in_time(facts, attribute(facts, prices), now or datetime.now(UTC), waste)
    usage = _usage(ctx)
    notes = []
    if not usage:
        notes.append("MIG right-sizing needs usage history: `gpu-autoscaler optimize --prometheus-url URL`")
    if not waste:
        notes.append("no waste scores yet (waste scoring needs prometheus_url)")
    s = ctx.settings
    sugg = optimize(facts, nodes, prices, usage, waste, s.mig_underuse_threshold, s.mig_headroom, notes=notes)
    return MoneyResult(report, sugg, time.time())


class MoneyCache:
    """The last MoneyResult; `get` starts a recomputation in a daemon thread when due, never waits for it."""

    def __init__(self, interval: float = 60.0, prices: PriceTable | None = None) -> None:
        self.interval = interval
        self.prices = prices
        self.result: MoneyResult | None = None
        self._key: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @staticmethod
    def key(ctx: AppContext) -> tuple[int, int]:
        waste = getattr(ctx.components.get("waste"), "last", None)
        return ctx.cluster.generation, id(waste)

    def due(self, ctx: AppContext) -> bool:
        if self.result is None:
            return True
        age = time.time() - self.result.computed_at
        return self.key(ctx) != self._key and age >= self.interval

    def refresh(self, ctx: AppContext) -> MoneyResult:
        """Compute now (in the caller's thread) and keep the result."""
        key = self.key(ctx)
        try:
            if self.prices is None:
                self.prices = load_prices(None)
            result = compute(ctx, self.prices)
        except Exception as exc:  # a view must not break the page; say why instead
            log.exception("console: cost/savings computation failed")
            result = MoneyResult(None, None, time.time(), f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.result, self._key = result, key
        return result

    def get(self, ctx: AppContext) -> MoneyResult | None:
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            if not running and self.due(ctx):
                self._thread = threading.Thread(
                    target=self.refresh, args=(ctx,), name="console-money", daemon=True
                )
                self._thread.start()
            return self.result

    def wait(self, timeout: float = 30.0) -> None:
        """Block until a running computation ends (tests, the demo)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
