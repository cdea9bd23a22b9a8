"""Cost history, dashboards and budgets against a real Prometheus filled with four hours of DCGM-shaped and
our own series and the backfilled recording rules (tests/monitoring/stack.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from tests.monitoring.stack import BATCH_POD, Stack, build
from tests.prom_server import PROMETHEUS, PROMTOOL

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()),
        reason="needs prometheus and promtool (the Debian prometheus package: make prometheus)",
    ),
]
DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "manifests" / "dashboards").glob("*.json"))
A100 = 3.431


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from build(tmp_path_factory.mktemp("prometheus"))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _cost(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(["cost", "--cluster", "demo", "--output", "json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_cost_reads_the_window_back(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    stack.lookback("59s")
    doc = _cost(
        capsys, "--prometheus-url", stack.url, "--since", _iso(stack.t0), "--until", _iso(stack.t_end)
    )
    assert doc["source"] == "prometheus" and doc["window"]["hours"] == 4
    ns = {r["namespace"]: r for r in doc["namespaces"]}
    # the batch pod held 2 A100s for the first three hours and is gone: it still costs its 6 GPU-hours
    assert ns["batch"]["gpu_hours"] == pytest.approx(6.0)
    assert ns["batch"]["cost_usd"] == pytest.approx(6 * A100, abs=0.01)
    assert ns["batch"]["usd_per_hour"] == 0.0
    assert ns["ml-training"]["gpu_hours"] == pytest.approx(16.0)  # 4 A100s, the whole window
    carol = next(p for p in doc["pods"] if p["pod"] == "nb-carol-0")
    assert carol["gpu_hours"] == pytest.approx(4 / 7, abs=0.01)  # a 1g.10gb slice = 1/7 of an A100
    assert carol["cost_usd"] == pytest.approx(4 * A100 / 7, abs=0.01)
    cc = {r["cost_center"]: r for r in doc["cost_centers"]}
    assert cc["research"]["gpu_hours"] == pytest.approx(
        6 + 16 + 4 / 7 + 8, abs=0.02
    )  # batch, bert, notebooks
    idle = {i["node"]: i for i in doc["idle"]}
    assert idle["hgx-a100-1"]["idle_gpu_hours"] == pytest.approx(
        6 * 4 - 6, abs=0.01
    )  # 6 idle + 2 after batch
    # from a minute after the batch pod ended (its last record may fall up to a minute after its end)
    last = _cost(capsys, "--prometheus-url", stack.url, "--since", "59m", "--until", _iso(stack.t_end))
    assert "batch" not in {r["namespace"] for r in last["namespaces"]}, [
        r for r in last["namespaces"] if r["namespace"] == "batch"
    ]
    # without Prometheus, today's point-in-time view does not know the pod that ended
    now = _cost(capsys, "--now", _iso(stack.t_end), "--since", "4h")
    assert now["source"] == "point-in-time" and "batch" not in {r["namespace"] for r in now["namespaces"]}


def test_report_totals_spent_and_savings(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["report", "--cluster", "demo", "--prometheus-url", stack.url, "--since", "4h"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"\*\*Spent \$[\d,.]+ over .* could save \$[\d,.]+/month", text), text[:2000]


def test_service_flags_waste_and_budgets_from_prometheus(stack: Stack) -> None:
    flagged = {f["pod"]: f for f in stack.waste["flagged"]}
    assert {"llama-8b-h100-6c9d7f5b8d-9k2bh", "nb-alice-0", "nb-bob-0"} <= set(flagged)
    h100 = flagged["llama-8b-h100-6c9d7f5b8d-9k2bh"]
    assert h100["profile"] == "1g.20gb" and h100["monthly_saving_usd"] == pytest.approx(
        6.88 * 6 / 7 * 730, abs=1
    )
    assert "busy" not in flagged and BATCH_POD not in flagged
    assert stack.cost["source"] == "prometheus"
    savings = {s["pod"]: s for s in stack.cost["savings"]}
    assert savings["llama-8b-h100-6c9d7f5b8d-9k2bh"]["monthly_saving_usd"] == h100["monthly_saving_usd"]
    rows = {r["namespace"]: r for r in stack.cost["namespaces"]}
    assert rows["inference"]["budget_usd"] == 120 and rows["inference"]["budget_used_pct"] is not None
    spent = stack.query("budget:gpu_autoscaler_budget_spent_usd:max")
    assert {(s["metric"]["scope"], s["metric"]["name"]) for s in spent} >= {("namespace", "inference")}
    assert stack.query("budget:gpu_autoscaler_cost_usd:projected_month_end")
    assert (
        stack.query('budget:gpu_autoscaler_budget_monthly_usd:max{name="inference"}')[0]["value"][1] == "120"
    )


# -- dashboards --------------------------------------------------------------------------------------------
def _substitute(expr: str, stack: Stack) -> str:
    """Grafana's variables as a dashboard with every variable on 'All' sends them."""
    hours = int((stack.t_end - stack.t0) // 3600)
    subs = {"$__rate_interval": "5m", "$__range": f"{hours}h", "$__interval": "1m"}
    for k, v in subs.items():
        expr = expr.replace(k, v)
    return re.sub(r"\$\{?(node|namespace|variant)\}?", ".*", expr)


def _targets(path: Path) -> list[tuple[str, dict[str, Any]]]:
    doc = json.loads(path.read_text())
    return [(p["title"], t) for p in doc["panels"] for t in p["targets"]]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_query_runs_and_has_data(stack: Stack, path: Path) -> None:
    stack.lookback("5m")
    empty = []
    for title, target in _targets(path):
        expr = _substitute(target["expr"], stack)
        if target.get("instant"):
            result = stack.query(expr)
        else:
            step = {"1h": 3600, "1d": 86400}.get(target.get("interval", ""), 60)
            result = stack.query_range(expr, stack.t0 + 1800, stack.t_end, step)
        if not result:
            empty.append(f"{title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_variable_has_values(stack: Stack, path: Path) -> None:
    stack.lookback("5m")
    doc = json.loads(path.read_text())
    for var in doc["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["definition"])
        assert m, var["definition"]
        selector, label = _substitute(m.group(1), stack), m.group(2)
        assert stack.query(f"count by ({label}) ({selector})"), var["name"]
