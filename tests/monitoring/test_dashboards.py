"""The Grafana dashboards: generated JSON up to date, a valid dashboard model, shipped for the sidecar."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "manifests" / "dashboards"
FILES = sorted(FOLDER.glob("*.json"))


def _build() -> Any:
    spec = importlib.util.spec_from_file_location("dashboards_build", FOLDER / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_json_files_are_what_build_py_writes() -> None:
    build = _build()
    assert sorted(build.DASHBOARDS) == [p.name for p in FILES]
    assert build.main(["--check"]) == 0, "run: python manifests/dashboards/build.py"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_model(path: Path) -> None:
    d = json.loads(path.read_text())
    assert d["uid"].startswith("gpu-autoscaler") and len(d["uid"]) <= 40 and d["schemaVersion"] >= 36
    ds = d["templating"]["list"][0]
    assert (ds["type"], ds["name"], ds["query"]) == ("datasource", "datasource", "prometheus")
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and p["description"]
        assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])
    # panels do not overlap
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        box = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & box, p["title"]
        cells |= box


def test_the_issue_s_panels_are_there() -> None:
    titles = {path.stem: {p["title"] for p in json.loads(path.read_text())["panels"]} for path in FILES}
    assert "GPU utilisation heatmap" in titles["gpu-cluster-overview"]
    assert "Allocation per node" in titles["gpu-cluster-overview"]
    heatmap = next(
        p
        for p in json.loads((FOLDER / "gpu-cluster-overview.json").read_text())["panels"]
        if p["type"] == "heatmap"
    )
    assert heatmap["options"]["calculate"] is True
    assert {"Budgets this month", "$ per hour by namespace"} <= titles["gpu-cost-budgets"]
    assert {"Suggestions", "Waste scores"} <= titles["gpu-waste"]
    assert "Desired vs current replicas" in titles["gpu-autoscaler-decisions"]
    assert {"Extender latency", "Webhook latency", "Extender errors"} <= titles["gpu-autoscaler-latency"]


def test_kustomization_ships_every_dashboard_for_the_sidecar() -> None:
    k = yaml.safe_load((FOLDER / "kustomization.yaml").read_text())
    assert k["generatorOptions"]["labels"]["grafana_dashboard"] == "1"
    assert k["generatorOptions"]["disableNameSuffixHash"] is True
    (gen,) = k["configMapGenerator"]
    assert sorted(gen["files"]) == [p.name for p in FILES]
    monitoring = yaml.safe_load((ROOT / "manifests" / "monitoring" / "kustomization.yaml").read_text())
    listed = set(monitoring["resources"])
    assert "../dashboards" in listed
    assert listed - {"../dashboards"} == {
        p.name for p in (ROOT / "manifests" / "monitoring").glob("*.yaml")
    } - {"kustomization.yaml"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the kustomization")
def test_kubectl_kustomize_renders_the_configmap() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "manifests" / "monitoring")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    cm = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "gpu-autoscaler-dashboards"
    )
    assert (
        cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        and cm["metadata"]["namespace"] == "gpu-autoscaler"
    )
    assert sorted(cm["data"]) == [p.name for p in FILES]
    assert all(json.loads(v)["uid"] for v in cm["data"].values())
    assert {d["kind"] for d in docs} == {"ConfigMap", "PrometheusRule", "ServiceMonitor"}
