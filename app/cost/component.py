"""The cost capability: every `cost_interval` seconds, what each pod holds now, priced, exported for the
PrometheusRule recording rules that keep the history (manifests/monitoring/); budgets read from the
`gpu-budgets` ConfigMap, their month-to-date spend read back from those rules, exported for the budget alerts
and served to the budget admission webhook. `GET /cost` shows this month per namespace and cost centre with
budgets, and the savings the waste flags suggest.

Every replica computes (so `/cost` and `/validate-budget` answer anywhere); only the leader exports series, so
a standby never doubles the cost (the rules also take `max` over replicas).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import APIRouter
from prometheus_client import Gauge

from app.context import AppContext
from app.cost import history
from app.cost.attribution import Attribution, attribute
from app.cost.budgets import Budget, BudgetStatus, ScopeKey, month_start, parse_budgets
from app.cost.prices import PriceTable, load_prices
from app.cost.report import budget_standing, cost_view
from app.loops import PeriodicLoop
from app.metrics import REGISTRY
from app.ops.inventory import cluster_facts
from app.settings import Settings

log = logging.getLogger(__name__)

POD_LABELS = ["namespace", "pod", "workload", "node", "product", "cost_center", "project"]
POD_GPUS = Gauge(
    "gpu_autoscaler_pod_gpu_equivalents",
    "GPU-equivalents a pod holds now (a MIG slice: its compute share; a GPU share: its milli-GPU / 1000)",
    POD_LABELS,
    registry=REGISTRY,
)
PRICE = Gauge(
    "gpu_autoscaler_gpu_price_usd_per_hour", "$ per GPU-hour of a GPU product", ["product"], registry=REGISTRY
)
NODE_CAPACITY = Gauge(
    "gpu_autoscaler_node_gpu_capacity",
    "GPU-equivalents a node offers (whole GPUs + the compute share of each MIG slice)",
    ["node", "product"],
    registry=REGISTRY,
)
BUDGET_LABELS = ["scope", "name"]
BUDGET_MONTHLY = Gauge(
    "gpu_autoscaler_budget_monthly_usd", "Monthly GPU budget", BUDGET_LABELS, registry=REGISTRY
)
BUDGET_SOFT = Gauge(
    "gpu_autoscaler_budget_soft_limit_usd",
    "Spend that fires GPUBudgetSoftLimit",
    BUDGET_LABELS,
    registry=REGISTRY,
)
BUDGET_HARD = Gauge(
    "gpu_autoscaler_budget_hard_limit_usd",
    "Spend that fires GPUBudgetExceeded",
    BUDGET_LABELS,
    registry=REGISTRY,
)
BUDGET_SPENT = Gauge(
    "gpu_autoscaler_budget_spent_usd",
    "GPU spend this calendar month (UTC) so far, from the recorded cost series",
    BUDGET_LABELS,
    registry=REGISTRY,
)
SAVING = Gauge(
    "gpu_autoscaler_suggestion_saving_usd_per_month",
    "Monthly saving of the suggestion for a pod flagged wasteful (kind: release | right-size)",
    ["namespace", "pod", "kind", "profile"],
    registry=REGISTRY,
)

#: month-to-date spend is re-read from Prometheus at most this often (it sums up to a month of samples)
MONTH_REFRESH_S = 300.0


class _Series:
    """One gauge's exported label sets, replaced wholesale each cycle (vanished ones removed)."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.keys: set[tuple[str, ...]] = set()

    def replace(self, values: Mapping[tuple[str, ...], float]) -> None:
        for key in self.keys - set(values):
            self.gauge.remove(*key)
        for key, v in values.items():
            self.gauge.labels(*key).set(v)
        self.keys = set(values)


class CostComponent:
    name = "cost"

    def __init__(
        self,
        settings: Settings,
        prices: PriceTable | None = None,
        clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.prices = prices
        self.clock = clock
        self._client = client
        self._ctx: AppContext | None = None
        self._loop: PeriodicLoop | None = None
        self._series = {
            g: _Series(g)
            for g in (
                POD_GPUS,
                PRICE,
                NODE_CAPACITY,
                BUDGET_MONTHLY,
                BUDGET_SOFT,
                BUDGET_HARD,
                BUDGET_SPENT,
                SAVING,
            )
        }
        self._month: dict[str, Any] | None = None
        self._month_at = 0.0
        self._month_key = ""
        self.doc: dict[str, Any] = {}
        self.savings: list[dict[str, Any]] = []
        self.budget_states: dict[ScopeKey, BudgetStatus] = {}
        self.updated: datetime | None = None

    # -- component -----------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        from webhook.budget import build_router

        r = APIRouter()

        @r.get("/cost")
        async def cost() -> dict[str, Any]:
            return self.describe()

        where = f"ConfigMap {self.settings.namespace}/{self.settings.budgets_configmap}"
        r.include_router(build_router(lambda: self.budget_states, self.settings.enforce_budgets, where))
        return r

    async def start(self, ctx: AppContext) -> None:
        self._ctx = ctx
        if self.prices is None:
            self.prices = load_prices(self.settings.prices_file)
        if self.settings.prometheus_url and self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
        self._loop = PeriodicLoop("cost", self.settings.cost_interval, self.cycle)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for s in self._series.values():  # a stopped component exports nothing (one process, one set)
            s.replace({})

    # -- one cycle -----------------------------------------------------------------------------------------
    async def cycle(self) -> dict[str, Any]:
        assert self._ctx is not None and self.prices is not None
        ctx = self._ctx
        now = datetime.fromtimestamp(self.clock(), UTC)
        facts = cluster_facts(ctx.cluster.list("Node"), ctx.cluster.list("Pod"), ctx.cluster.source)
        waste = ctx.components.get("waste")
        attr = attribute(facts, self.prices, getattr(waste, "uses", []))
        budgets, errors = self._budgets()
        month = await self._month_to_date(now)
        standing = budget_standing(facts, attr, now, budgets, month)
        self.doc = cost_view(
            facts,
            attr,
            now,
            since=month_start(now),
            history=month,
            budget_errors=errors,
            standing=standing,
            waste=getattr(waste, "last", []),
            prices_origin=self.prices.origin,
        )
        self.budget_states = {s.budget.key: s for s in standing}
        self.savings = _savings(getattr(waste, "flagged", []))
        self.updated = now
        if ctx.leadership.is_leader:
            self._export(attr, budgets, month is not None)
        else:
            for s in self._series.values():
                s.replace({})
        log.info(
            "cost cycle",
            extra={
                "source": self.doc["source"],
                "usd_per_hour": self.doc["totals"]["usd_per_hour"],
                "over_budget": [
                    f"{k[0]}/{k[1]}" for k, s in self.budget_states.items() if s.state == "exceeded"
                ],
                "budget_errors": errors[:5],
            },
        )
        return self.doc

    def _budgets(self) -> tuple[list[Budget], list[str]]:
        assert self._ctx is not None
        name, ns = self.settings.budgets_configmap, self.settings.namespace
        cm = self._ctx.cluster.get("ConfigMap", name, ns)
        return parse_budgets(cm.get("data") if cm else None, f"{ns}/{name}")

    async def _month_to_date(self, now: datetime) -> dict[str, Any] | None:
        """Recorded spend this month per namespace / cost centre (None without Prometheus or recorded data);
        re-read every MONTH_REFRESH_S, the last answer kept when Prometheus fails."""
        url = self.settings.prometheus_url
        if not url or self._client is None:
            return None
        key = now.strftime("%Y-%m")
        if key == self._month_key and self.clock() - self._month_at < MONTH_REFRESH_S:
            return self._month
        queries = {
            k: v
            for k, v in history.build_queries(month_start(now), now).items()
            if k.split(".")[0] in ("namespace", "cost_center", "cluster", "idle")
        }
        try:
            tables = history.tables(await history.fetch(self._client, url, queries))
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("month-to-date spend not read", extra={"error": f"{type(exc).__name__}: {exc}"})
            return self._month if key == self._month_key else None
        self._month, self._month_at, self._month_key = (tables or None), self.clock(), key
        return self._month

    def _export(self, attr: Attribution, budgets: list[Budget], recorded: bool) -> None:
        s = self._series
        s[POD_GPUS].replace(
            {
                (h.namespace, h.pod, h.workload, h.node, h.product, h.cost_center, h.project): h.gpus
                for h in attr.holdings
            }
        )
        s[PRICE].replace({(p,): v for p, v in attr.prices.items()})
        s[NODE_CAPACITY].replace({(n.node, n.product): n.capacity for n in attr.nodes})
        s[BUDGET_MONTHLY].replace({b.key: b.monthly_usd for b in budgets})
        s[BUDGET_SOFT].replace({b.key: b.soft_usd for b in budgets})
        s[BUDGET_HARD].replace({b.key: b.hard_usd for b in budgets})
        # spend only from the recorded history: a point-in-time guess would fire alerts on partial data
        s[BUDGET_SPENT].replace({k: st.spent_usd for k, st in self.budget_states.items()} if recorded else {})
        s[SAVING].replace(
            {
                (x["namespace"], x["pod"], x["kind"], x["profile"] or ""): x["monthly_saving_usd"]
                for x in self.savings
                if x["monthly_saving_usd"] is not None
            }
        )

    # -- views ---------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        doc = self.doc
        rows = []
        for r in doc.get("namespaces", []):
            b = r.get("budget") or {}
            rows.append(
                {
                    "namespace": r["namespace"],
                    "gpu_hours": r["gpu_hours"],
                    "cost_usd": r["cost_usd"],
                    "budget_usd": b.get("monthly_usd"),
                    "budget_used_pct": b.get("used_pct"),
                    "budget_state": b.get("state"),
                    "projected_usd": b.get("projected_usd"),
                    "gpus": r["gpus"],
                    "usd_per_hour": r["usd_per_hour"],
                    "usd_per_month": r["usd_per_month"],
                }
            )
        return {
            "updated": self.updated.isoformat() if self.updated else None,
            "enabled": self._loop is not None,
            "source": doc.get("source"),
            "month": self.updated.strftime("%Y-%m") if self.updated else None,
            "namespaces": rows,
            "cost_centers": doc.get("cost_centers", []),
            "budgets": doc.get("budgets", []),
            "budget_errors": doc.get("budget_errors", []),
            "enforce_budgets": self.settings.enforce_budgets,
            "savings": self.savings,
            "savings_usd_per_month": round(sum(x["monthly_saving_usd"] or 0.0 for x in self.savings), 2),
            "totals": doc.get("totals", {}),
            "idle": doc.get("idle", []),
            "unpriced_products": doc.get("unpriced_products", []),
            "notes": doc.get("notes", []),
        }


def _savings(flags: Any) -> list[dict[str, Any]]:
    """One row per flagged pod (its most wasteful GPU first), biggest saving first."""
    seen: set[tuple[str, str]] = set()
    out = []
    for f in flags:
        s = f.score
        if (s.namespace, s.pod) in seen:
            continue
        seen.add((s.namespace, s.pod))
        out.append(
            {
                "namespace": s.namespace,
                "pod": s.pod,
                "suggestion": f.suggestion,
                "monthly_saving_usd": f.monthly_saving_usd,
                "kind": "release" if f.release else "right-size",
                "profile": f.fit.profile,
                "waste_score": s.score,
            }
        )
    return sorted(out, key=lambda x: (-(x["monthly_saving_usd"] or 0.0), x["namespace"], x["pod"]))
