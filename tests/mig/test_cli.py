"""`gpu-autoscaler mig plan` / `sharing plan`: a pure read of a snapshot, JSON in the documented shape."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from app.cli import main
from app.cluster.snapshot import demo_snapshot_path
from tests.mig.conftest import mig_pod

KEYS = {"node", "current", "target", "action", "reason", "blocked_by"}


def demo_with(tmp_path: Path, *extra: dict) -> Path:
    folder = tmp_path / "cluster"
    shutil.copytree(demo_snapshot_path(), folder)
    (folder / "zz-extra.yaml").write_text(yaml.safe_dump_all(list(extra)))
    return folder


def test_mig_plan_json_on_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mig", "plan", "--cluster", "demo", "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"nodes", "unmet"} and doc["unmet"] == {}
    mig = next(n for n in doc["nodes"] if n["node"] == "a100-mig-0")
    assert set(mig) >= KEYS
    assert (mig["current"], mig["action"]) == ("demo-mixed", "keep")
    assert "gpu-operator/default-mig-parted-config" in doc["config_source"]


def test_mig_plan_replans_for_pending_slices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cluster = demo_with(tmp_path, *(mig_pod(f"llm-{i}", "3g.40gb") for i in range(4)))
    assert main(["mig", "plan", "--cluster", str(cluster), "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    mig = next(n for n in doc["nodes"] if n["node"] == "a100-mig-0")
    assert (mig["action"], mig["target"]) == ("reconfigure", "demo-inference")
    assert mig["changed_gpus"] == [1, 2]  # GPU 0 holds nb-carol's slice: untouched
    assert main(["mig", "plan", "--cluster", str(cluster)]) == 0
    table = capsys.readouterr().out
    assert "a100-mig-0" in table and "reconfigure" in table and "unmet: none" in table


def test_mig_plan_with_a_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: v1\nmig-configs:\n  too-many:\n    - devices: all\n      mig-enabled: true\n"
        '      mig-devices: {"3g.40gb": 3}\n'
    )
    assert main(["mig", "plan", "--cluster", "demo", "--mig-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too-many" in err and err.startswith("gpu-autoscaler: error: ")
    good = tmp_path / "good.yaml"
    good.write_text(
        "version: v1\nmig-configs:\n  all-1g.10gb:\n    - devices: all\n      mig-enabled: true\n"
        '      mig-devices: {"1g.10gb": 7}\n'
    )
    assert main(["mig", "plan", "--cluster", "demo", "--mig-config", str(good), "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config_source"] == str(good)
    mig = next(n for n in doc["nodes"] if n["node"] == "a100-mig-0")
    assert "current layout" in mig["reason"]  # demo-mixed is unknown to this file: its GPUs are left alone


def test_sharing_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sharing", "plan", "--cluster", "demo", "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"nodes", "unmet", "pool"} and all(set(n) >= KEYS for n in doc["nodes"])
    cm = tmp_path / "cm.yaml"
    cm.write_text("kind: Deployment\n")
    assert main(["sharing", "plan", "--cluster", "demo", "--sharing-config", str(cm)]) == 2
    assert "expected a ConfigMap" in capsys.readouterr().err
