"""The PrometheusRule manifests through the real promtool: `check rules`, and `test rules` with the unit tests
beside this file (input series -> every recording rule and alert); plus the names the code relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from app.cost import history
from tests.monitoring.rules import HERE, alerts, prometheus_rules, records, write_rule_files
from tests.prom_server import PROMTOOL

needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).exists(), reason="needs promtool (the Debian prometheus package: make prometheus)"
)
UNIT_TESTS = sorted(HERE.glob("*_test.yml"))


@pytest.mark.integration
@needs_promtool
def test_promtool_check_rules(tmp_path: Path) -> None:
    files = write_rule_files(tmp_path)
    out = subprocess.run([PROMTOOL, "check", "rules", *map(str, files)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(files)


@pytest.mark.integration
@needs_promtool
@pytest.mark.parametrize("unit", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(unit: Path, tmp_path: Path) -> None:
    write_rule_files(tmp_path)
    shutil.copy(unit, tmp_path / unit.name)
    out = subprocess.run(
        [PROMTOOL, "test", "rules", unit.name], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _tested() -> tuple[str, set[str]]:
    exprs = ""
    alert_names: set[str] = set()
    for unit in UNIT_TESTS:
        doc = yaml.safe_load(unit.read_text())
        for t in doc["tests"]:
            exprs += " ".join(e["expr"] for e in t.get("promql_expr_test", [])) + " "
            alert_names |= {a["alertname"] for a in t.get("alert_rule_test", [])}
    return exprs, alert_names


def test_every_record_and_alert_has_a_unit_test() -> None:
    exprs, alert_names = _tested()
    untested = [r for r in records() if not re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", exprs)]
    assert not untested, f"add promtool tests (tests/monitoring/*_test.yml) for: {untested}"
    assert set(alerts()) <= alert_names, set(alerts()) - alert_names


def test_alerts_the_issue_names() -> None:
    assert {"GPUBudgetSoftLimit", "GPUBudgetExceeded", "GPUIdleOverAnHour"} <= set(alerts())
    for rule in alerts().values():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= rule["annotations"].keys()


def test_manifests_are_prometheus_operator_objects() -> None:
    for doc in prometheus_rules().values():
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert doc["metadata"]["namespace"] == "gpu-autoscaler"
        names = [g["name"] for g in doc["spec"]["groups"]]
        assert len(names) == len(set(names))


def test_history_reads_the_recorded_names_at_the_rule_interval() -> None:
    """The CLI's window queries name records that exist, and assume the 1m group they come from."""
    groups = {g["name"]: g for doc in prometheus_rules().values() for g in doc["spec"]["groups"]}
    assert groups["gpu-autoscaler-cost"]["interval"] == f"{history.RULE_INTERVAL_S // 60}m"
    minute = {r["record"] for r in groups["gpu-autoscaler-cost"]["rules"] if "record" in r}
    since, until = datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 6, 3, tzinfo=UTC)
    used = set()
    for q in history.build_queries(since, until).values():
        used |= set(re.findall(r"\b([a-z_]+:gpu_autoscaler_[a-z_]+:[a-z0-9_]+)", q))
    assert used and used <= minute, used - minute
    assert all(
        "[172799999ms:60s] @ 1748908800.000" in q
        for q in history.build_queries(since, until).values()
        if "sum_over_time" in q
    )
