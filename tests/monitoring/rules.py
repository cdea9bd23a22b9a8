"""The PrometheusRule manifests as plain rule files (what `promtool` and a bare Prometheus read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests" / "monitoring"
HERE = Path(__file__).resolve().parent


def prometheus_rules() -> dict[str, dict[str, Any]]:
    """`{short name: PrometheusRule}` for every PrometheusRule manifest (`prometheusrule-<name>.yaml`)."""
    out = {}
    for path in sorted(MONITORING.glob("prometheusrule-*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["kind"] == "PrometheusRule", path
        out[path.stem.removeprefix("prometheusrule-")] = doc
    return out


def write_rule_files(folder: Path) -> list[Path]:
    """`<name>.rules.yml` (the PrometheusRule's spec: `groups`) for each manifest, in `folder`."""
    paths = []
    for name, doc in prometheus_rules().items():
        path = folder / f"{name}.rules.yml"
        path.write_text(yaml.safe_dump(doc["spec"], sort_keys=False))
        paths.append(path)
    return paths


def records() -> dict[str, str]:
    """`{record name: expression}` of every recording rule."""
    return {
        r["record"]: r["expr"]
        for doc in prometheus_rules().values()
        for g in doc["spec"]["groups"]
        for r in g["rules"]
        if "record" in r
    }


def alerts() -> dict[str, dict[str, Any]]:
    return {
        r["alert"]: r
        for doc in prometheus_rules().values()
        for g in doc["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    }
