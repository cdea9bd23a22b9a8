"""`gpu-autoscaler nodes plan`: a pure read of a snapshot; JSON exactly {"scale", "drain", "blocked"}."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.cli import main
from tests.nodescale.objects import NOW, group, iso, node, pod

DEMO_NOW = "2025-06-03T12:12:44Z"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["nodes", "plan", *argv, "--output", "json"]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_demo_plan(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "--cluster", "demo", "--now", DEMO_NOW)
    assert set(doc) == {"scale", "drain", "blocked"}
    # dgx-h100-1 holds one llama replica (1 of 8 GPUs); its PodDisruptionBudget allows one disruption and
    # dgx-h100-0 has room: the node goes. a100-mig-0 is as empty but its group is at its min size.
    assert doc["scale"] == [
        {"group": "gpu-cluster/dgx-h100", "from": 2, "to": 1, "reason": doc["scale"][0]["reason"]}  # type: ignore[index]
    ]
    assert doc["drain"] == [
        {
            "node": "dgx-h100-1",
            "reason": doc["drain"][0]["reason"],
            "pods": ["inference/llama-8b-h100-6c9d7f5b8d-9k2bh"],
        }  # type: ignore[index]
    ]
    assert [b["node"] for b in doc["blocked"]] == ["a100-mig-0"]  # type: ignore[union-attr,index]
    assert "min size 1" in doc["blocked"][0]["reason"]  # type: ignore[index]


def test_snapshot_file_with_a_pending_pod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h0 = node("h0", topology=True)
    objs = [
        h0,
        pod("j", gpus=8, on="h0", owner="Job"),
        pod("wait", gpus=4, created=NOW - 600),
        *group("h100", [h0]),
    ]
    path = tmp_path / "snap.yaml"
    path.write_text(yaml.safe_dump_all(objs))
    doc = run_json(capsys, "--cluster", str(path), "--now", iso(NOW))
    assert [(s["group"], s["from"], s["to"]) for s in doc["scale"]] == [("capi/h100", 1, 2)]  # type: ignore[union-attr,index]
    assert doc["drain"] == [] and doc["blocked"] == []


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "plan", "--cluster", "demo", "--now", DEMO_NOW]) == 0
    out = capsys.readouterr().out
    assert "Node groups" in out and "gpu-cluster/h100-spot" in out and "dgx-h100-1" in out
    assert "Pending GPU pods: none" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cluster", "/no/such/snapshot"], "no such file or folder"),
        (["--cluster", "demo", "--now", "yesterday"], "--now: not an ISO time"),
    ],
)
def test_user_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nodes", "plan", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
