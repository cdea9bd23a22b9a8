"""GPU budgets: the `gpu-budgets` ConfigMap read into plain budgets, and where each one stands this month.

ConfigMap data (every key holds a YAML list; split teams over keys as you like):

    budgets.yaml: |
      - namespace: ml-research      # or costCenter: cc-1234 (the pods' `gpu-cost-center` label)
        monthlyUSD: 20000
        softPercent: 80             # default 80: the GPUBudgetSoftLimit alert
        hardPercent: 100            # default 100: GPUBudgetExceeded, and --enforce-budgets rejects new pods

Months are calendar months in UTC. Month-end projection = spent so far + the current $/hour x the hours left,
the same formula the PrometheusRule alerts use.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

SCOPES = {"namespace": "namespace", "costCenter": "cost-center"}
DEFAULT_SOFT = 80.0
DEFAULT_HARD = 100.0

ScopeKey = tuple[str, str]  # (scope, name): ("namespace", "ml-research") or ("cost-center", "cc-1234")


@dataclass(frozen=True, slots=True)
class Budget:
    scope: str  # namespace | cost-center
    name: str
    monthly_usd: float
    soft_pct: float = DEFAULT_SOFT
    hard_pct: float = DEFAULT_HARD

    @property
    def key(self) -> ScopeKey:
        return (self.scope, self.name)

    @property
    def soft_usd(self) -> float:
        return self.monthly_usd * self.soft_pct / 100

    @property
    def hard_usd(self) -> float:
        return self.monthly_usd * self.hard_pct / 100


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    budget: Budget
    spent_usd: float  # this month so far
    usd_per_hour: float  # held now
    projected_usd: float  # at month end if today's holdings stay
    now: datetime

    @property
    def used_pct(self) -> float:
        return 100.0 * self.spent_usd / self.budget.monthly_usd if self.budget.monthly_usd else 0.0

    @property
    def state(self) -> str:
        """ok | soft (past the soft limit) | exceeded (past the hard limit)."""
        if self.spent_usd >= self.budget.hard_usd:
            return "exceeded"
        if self.spent_usd >= self.budget.soft_usd:
            return "soft"
        return "ok"

    @property
    def over_by_usd(self) -> float:
        return max(0.0, self.spent_usd - self.budget.hard_usd)

    def as_dict(self) -> dict[str, Any]:
        b = self.budget
        return {
            "scope": b.scope,
            "name": b.name,
            "monthly_usd": round(b.monthly_usd, 2),
            "soft_usd": round(b.soft_usd, 2),
            "hard_usd": round(b.hard_usd, 2),
            "spent_usd": round(self.spent_usd, 2),
            "used_pct": round(self.used_pct, 1),
            "usd_per_hour": round(self.usd_per_hour, 2),
            "projected_usd": round(self.projected_usd, 2),
            "state": self.state,
            "over_by_usd": round(self.over_by_usd, 2),
            "month": self.now.strftime("%Y-%m"),
        }


def _number(entry: Mapping[str, Any], key: str, default: float | None, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{where}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def parse_budgets(
    data: Mapping[str, Any] | None, origin: str = "gpu-budgets"
) -> tuple[list[Budget], list[str]]:
    """(budgets, errors) from a ConfigMap's `data`. A bad entry is skipped and named; the rest stand. When two
    entries name the same scope, the later wins (and the earlier is reported)."""
    budgets: dict[ScopeKey, Budget] = {}
    errors: list[str] = []
    for key, text in sorted((data or {}).items()):
        try:
            entries = yaml.safe_load(text) if isinstance(text, str) else None
        except yaml.YAMLError as exc:
            errors.append(f"{origin}/{key}: not valid YAML: {str(exc).splitlines()[0]}")
            continue
        if entries is None:
            continue
        if not isinstance(entries, list):
            errors.append(f"{origin}/{key}: expected a list of budgets")
            continue
        for i, e in enumerate(entries):
            where = f"{origin}/{key}[{i}]"
            try:
                budget = _entry(e, where)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            if budget.key in budgets:
                errors.append(f"{where}: {budget.scope} {budget.name} has two budgets; the later one counts")
            budgets[budget.key] = budget
    return sorted(budgets.values(), key=lambda b: b.key), errors


def _entry(e: Any, where: str) -> Budget:
    if not isinstance(e, dict):
        raise ValueError(f"{where}: expected a mapping with namespace or costCenter and monthlyUSD")
    named = [(scope, e[k]) for k, scope in SCOPES.items() if k in e]
    if len(named) != 1 or not isinstance(named[0][1], str) or not named[0][1]:
        raise ValueError(f"{where}: needs exactly one of namespace or costCenter (a name)")
    unknown = set(e) - {*SCOPES, "monthlyUSD", "softPercent", "hardPercent"}
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    monthly = _number(e, "monthlyUSD", None, where)
    soft = _number(e, "softPercent", DEFAULT_SOFT, where)
    hard = _number(e, "hardPercent", DEFAULT_HARD, where)
    if soft > hard:
        raise ValueError(f"{where}: softPercent {soft:g} is above hardPercent {hard:g}")
    return Budget(named[0][0], named[0][1], monthly, soft, hard)


# -- the calendar month -----------------------------------------------------------------------------------
def month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def hours_left_in_month(now: datetime) -> float:
    now = now.astimezone(UTC)
    days = calendar.monthrange(now.year, now.month)[1]
    end = month_start(now).timestamp() + days * 86400
    return max(0.0, (end - now.timestamp()) / 3600)


def statuses(
    budgets: Iterable[Budget],
    spent: Mapping[ScopeKey, float],
    rate: Mapping[ScopeKey, float],
    now: datetime,
) -> list[BudgetStatus]:
    """Where each budget stands: spent this month, the rate held now, the month-end projection."""
    left = hours_left_in_month(now)
    out = []
    for b in budgets:
        s = spent.get(b.key, 0.0)
        r = rate.get(b.key, 0.0)
        out.append(BudgetStatus(b, s, r, s + r * left, now))
    return out
