"""Shared data for the console tests: the describe() shapes of the controllers other issues build (mig /
sharing, nodescale, cost), exactly as their briefs give them, and a fake component that serves one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.context import AppContext

MIG_PLAN = {
    "nodes": [
        {"node": "a100-0", "current": {"1g.10gb": 7}, "target": {"3g.40gb": 2}, "action": "relayout",
         "reason": "3 pods wait for 3g.40gb", "blocked_by": None},
        {"node": "a100-1", "current": ["1g.10gb"] * 2, "target": "all 7g", "action": "wait",
         "reason": "busy", "blocked_by": ["team/nb-1"]},
    ],
    "unmet": {"3g.40gb": 1, "1g.10gb": 2},
}  # fmt: skip
NODESCALE_PLAN = {
    "scale": [{"group": "h100-pool", "from": 2, "to": 3, "reason": "2 pods pending"},
              {"group": "l40s-pool", "from": 4, "to": 3, "reason": "idle node"}],
    "drain": [{"node": "l40s-3", "reason": "empty for 10 min", "pods": ["inf/a", "inf/b"]}],
    "blocked": [{"node": "h100-1", "reason": "PDB allows no disruption"}],
}  # fmt: skip
COST_PLAN = {
    "namespaces": [
        {"namespace": "ml", "gpu_hours": 120.5, "cost_usd": 900.0, "budget_usd": 800.0,
         "budget_used_pct": 112.5},
        {"namespace": "nb", "gpu_hours": 3.0, "cost_usd": 20.0, "budget_usd": 100.0, "budget_used_pct": 20.0},
        {"namespace": "free", "gpu_hours": 1.0, "cost_usd": 5.0, "budget_usd": None, "budget_used_pct": None},
    ],
    "savings": [{"namespace": "nb", "pod": "nb-1", "suggestion": "use 1g.10gb", "monthly_saving_usd": 50.0},
                {"namespace": "ml", "pod": "t-0", "suggestion": "stop idle", "monthly_saving_usd": 500.0}],
}  # fmt: skip


class FakePlan:
    """A component that only has a describe() (or one that fails, when given an exception)."""

    def __init__(self, name: str, doc: dict[str, Any] | Exception) -> None:
        self.name = name
        self.doc = doc

    def router(self) -> APIRouter | None:
        return None

    async def start(self, ctx: AppContext) -> None:
        return None

    async def stop(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        if isinstance(self.doc, Exception):
            raise self.doc
        return self.doc
