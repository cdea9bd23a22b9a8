"""Operator CLI against the bundled demo cluster: JSON parsed and checked, tables and markdown printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.cost.prices import PriceError, load_prices, parse_prices

NOW = "2025-06-03T12:12:44Z"  # three hours after most demo pods started


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--cluster", "demo", "--output", "json", "--now", NOW]) == 0
    return json.loads(capsys.readouterr().out)


def test_status(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "status")
    assert doc["totals"] == {
        "nodes": 7,
        "gpus": 40,
        "used": 14,
        "free": 26,
        "mig_slices": 19,
        "mig_used": 1,
        "pods": 10,
    }
    by = {p["product"]: p for p in doc["products"]}
    assert by["NVIDIA H100 80GB HBM3"]["used"] == 4 and by["NVIDIA L40S"]["free"] == 4
    mig = next(n for n in doc["nodes"] if n["name"] == "a100-mig-0")
    assert {"profile": "1g.10gb", "total": 14, "used": 1, "free": 13} in mig["mig"]
    assert any(p["name"] == "nb-carol-0" and p["gpus"] == "mig-1g.10gb" for p in doc["pods"])


def test_cost(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "cost")
    ns = {a["namespace"]: a for a in doc["namespaces"]}
    # ml-training: 4 A100-80GB at 3.431 $/GPU-h
    assert ns["ml-training"]["usd_per_hour"] == pytest.approx(13.72)
    assert ns["ml-training"]["usd_per_month"] == pytest.approx(13.72 * 730)
    llama = next(p for p in doc["pods"] if p["pod"] == "llama-8b-h100-6c9d7f5b8d-pcd5r")
    assert llama["gpu_hours"] == pytest.approx(3.0) and llama["usd_so_far"] == pytest.approx(20.64)
    carol = next(p for p in doc["pods"] if p["pod"] == "nb-carol-0")
    assert carol["gpus"] == pytest.approx(1 / 7, abs=1e-4)
    idle = {i["node"]: i for i in doc["idle"]}
    assert idle["dgx-h100-1"]["idle_gpus"] == 7 and idle["dgx-h100-1"]["usd_per_hour"] == pytest.approx(48.16)
    assert doc["unpriced_products"] == ["NVIDIA L40S"]
    assert doc["totals"]["idle_usd_per_hour"] > 0


def test_cost_with_price_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"L40S": 1.5, "H100": 2.0, "A100": 1.0}))
    doc = run_json(capsys, "cost", "--prices", str(prices))
    assert doc["unpriced_products"] == []
    assert {a["namespace"]: a for a in doc["namespaces"]}["notebooks"]["usd_per_hour"] == pytest.approx(
        3 + 1 / 7, abs=0.01
    )


def test_optimize(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "optimize")
    kinds = {(s["kind"], s["target"]) for s in doc["suggestions"]}
    assert ("mig", "notebooks/StatefulSet/nb-alice") in kinds
    assert ("consolidate", "dgx-h100-1") in kinds
    assert ("fragmented", "l40s-0") in kinds  # GPUs 1 and 3 free, across sockets
    alice = next(s for s in doc["suggestions"] if s["target"] == "notebooks/StatefulSet/nb-alice")
    assert alice["profile"] == "1g.10gb" and alice["resource"] == "nvidia.com/mig-1g.10gb"
    bob = next(s for s in doc["suggestions"] if s["target"] == "notebooks/StatefulSet/nb-bob")
    assert bob["profile"] == "2g.20gb"
    assert not any(s["target"].endswith("llama-8b-h100") and s["kind"] == "mig" for s in doc["suggestions"])
    assert all(0 <= w["score"] <= 100 for w in doc["waste"])
    assert doc["notes"] and "recorded demo history" in doc["notes"][0]


def test_report_json_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "report")
    assert set(doc) == {"status", "cost", "optimize"}
    assert main(["report", "--cluster", "demo", "--now", NOW]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# GPU cluster report")
    for heading in ("## Nodes", "## Cost per namespace", "## Idle GPUs", "## Suggestions"):
        assert heading in text
    assert "| dgx-h100-1 |" in text


@pytest.mark.parametrize("view", ["status", "cost", "optimize"])
def test_tables(view: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([view, "--cluster", "demo", "--now", NOW]) == 0
    assert "dgx-h100" in capsys.readouterr().out or view == "optimize"


def test_bad_output_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["status", "--cluster", "demo", "--output", "xml"])
    assert exc.value.code == 2
    assert "--output" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["cost", "--cluster", "/no/such/place"], "cluster snapshot"),
        (["cost", "--cluster", "demo", "--now", "yesterday"], "--now"),
        (["cost", "--cluster", "demo", "--prices", "/no/prices.json"], "--prices"),
    ],
)
def test_user_errors_exit_2(argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_snapshot_path_without_usage(demo_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = demo_path / "nodes.yaml"
    assert main(["optimize", "--cluster", str(nodes), "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert not any(s["kind"] == "mig" for s in doc["suggestions"])
    assert "--prometheus-url" in doc["notes"][0]


def test_prices() -> None:
    table = load_prices()
    assert table.per_hour("NVIDIA H100 80GB HBM3") == 6.88
    assert table.per_hour("NVIDIA-H100-NVL") == 6.98
    assert table.per_hour("NVIDIA A100-SXM4-80GB") == 3.431
    assert table.per_hour("NVIDIA A100-SXM4-40GB") == 2.745
    assert table.per_hour("NVIDIA L40S") is None
    with pytest.raises(PriceError, match="usd_per_gpu_hour"):
        parse_prices({"prices": [{"match": "X", "usd_per_gpu_hour": -1}]}, "f")
    with pytest.raises(PriceError, match="expected"):
        parse_prices([1, 2], "f")


def test_cost_budget_column_and_window(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "cost", "--since", "1h")
    assert doc["window"]["hours"] == 1 and doc["source"] == "point-in-time"
    ns = {a["namespace"]: a for a in doc["namespaces"]}
    assert ns["inference"]["gpu_hours"] == pytest.approx(8.0)  # 8 GPUs over the last hour
    assert ns["ml-training"]["budget"]["state"] == "exceeded"  # the demo's gpu-budgets ConfigMap
    assert {b["name"] for b in doc["budgets"]} == {"inference", "ml-training", "notebooks", "research"}
    assert main(["cost", "--cluster", "demo", "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "budget (month)" in out and "exceeded" in out and "Cost per cost centre" in out


def test_optimize_and_report_carry_monthly_savings(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "optimize")
    priced = [s for s in doc["suggestions"] if s["usd_per_hour_saved"] is not None]
    assert priced and all(
        s["usd_per_month_saved"] == pytest.approx(s["usd_per_hour_saved"] * 730, abs=0.01) for s in priced
    )
    assert doc["usd_per_month_saved"] == pytest.approx(doc["usd_per_hour_saved"] * 730, abs=0.01)
    assert main(["report", "--cluster", "demo", "--now", NOW]) == 0
    text = capsys.readouterr().out
    assert "**Spent $" in text and f"could save ${doc['usd_per_month_saved']:,.2f}/month" in text
    assert "| saves $/hour | saves $/month |" in text


@pytest.mark.parametrize(
    ("since", "match"),
    [
        ("yesterday", "--since: not an ISO time or a duration"),
        ("2030-01-01T00:00:00Z", "must be before --until"),
    ],
)
def test_bad_since_exits_2(since: str, match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--cluster", "demo", "--now", NOW, "--since", since]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
