"""The $/GPU-hour table: bundled `prices.json` or a user file, matched against a node's GPU product."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

#: hours in an average month (365 x 24 / 12): $/month = $/hour x this, wherever a month is projected
HOURS_PER_MONTH = 730.0


class PriceError(ValueError):
    """The price file cannot be used; one line naming the file and the entry."""


@dataclass(frozen=True)
class Price:
    pattern: re.Pattern[str]
    usd_per_gpu_hour: float
    source: str = ""


@dataclass(frozen=True)
class PriceTable:
    prices: tuple[Price, ...]
    origin: str = "bundled"

    def lookup(self, product: str) -> Price | None:
        """First entry whose pattern is found in the product name ('-'/'_' read as spaces); None if none."""
        text = re.sub(r"[-_]+", " ", product)
        return next((p for p in self.prices if p.pattern.search(text)), None)

    def per_hour(self, product: str) -> float | None:
        found = self.lookup(product)
        return found.usd_per_gpu_hour if found else None


def parse_prices(data: Any, origin: str) -> PriceTable:
    """`{"prices": [{"match", "usd_per_gpu_hour", "source"?}, …]}` or a flat `{"pattern": price}` mapping."""
    if isinstance(data, dict) and isinstance(data.get("prices"), list):
        entries = data["prices"]
    elif isinstance(data, dict) and data and all(isinstance(v, int | float) for v in data.values()):
        entries = [{"match": k, "usd_per_gpu_hour": v} for k, v in data.items()]
    else:
        raise PriceError(
            f"{origin}: expected {{'prices': [...]}} or a mapping of product pattern to $/GPU-hour"
        )
    out: list[Price] = []
    for i, e in enumerate(entries):
        where = f"{origin}: prices[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("match"), str):
            raise PriceError(f"{where}: needs a 'match' string")
        value = e.get("usd_per_gpu_hour")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise PriceError(f"{where}: usd_per_gpu_hour must be a number >= 0, got {value!r}")
        try:
            pattern = re.compile(e["match"], re.IGNORECASE)
        except re.error as exc:
            raise PriceError(f"{where}: bad pattern {e['match']!r}: {exc}") from exc
        out.append(Price(pattern, float(value), str(e.get("source", ""))))
    return PriceTable(tuple(out), origin)


def load_prices(path: Path | None = None) -> PriceTable:
    """The bundled table, or `path` (JSON)."""
    if path is None:
        text = resources.files("app.cost").joinpath("prices.json").read_text()
        return parse_prices(json.loads(text), "bundled prices.json")
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise PriceError(f"{path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise PriceError(f"{path}: not valid JSON: {exc}") from exc
    return parse_prices(data, str(path))
