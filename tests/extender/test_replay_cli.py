"""`gpu-autoscaler simulate`: the contract's JSON, --out files, one-line errors (exit 2) on bad input."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from app.cli import main
from extender.replay.cli import parse_seeds
from tests.extender.replay_data import trace_dir

NODES = (
    "sn,cpu_milli,memory_mib,gpu,model\n"
    "n0,32000,131072,2,T4\nn1,64000,262144,4,V100M16\nn2,8000,32768,1,P100\n"
)
PODS = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
    "p0,4000,8192,1,500,\np1,2000,4096,1,1000,V100M16\np2,8000,16384,2,1000,\np3,1000,1024,0,0,\n"
    "p4,4000,8192,1,250,T4|P100\np5,4000,8192,4,1000,\n"
)


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "nodes.csv").write_text(NODES)
    (tmp_path / "pods.csv").write_text(PODS)
    return tmp_path / "nodes.csv", tmp_path / "pods.csv"


def _sim(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["simulate", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_output_has_the_contract_shape(
    tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = tiny
    rc, out, _ = _sim(
        capsys,
        "--nodes",
        str(nodes),
        "--pods",
        str(pods),
        "--policy",
        "bestfit,fgd",
        "--seeds",
        "1-2",
        "--output",
        "json",
    )
    assert rc == 0
    doc = json.loads(out)
    assert doc["workload"] == "pods" and doc["nodes"] == 3 and doc["gpus"] == 7
    assert [(r["policy"], r["seed"]) for r in doc["runs"]] == [
        ("bestfit", 1),
        ("bestfit", 2),
        ("fgd", 1),
        ("fgd", 2),
    ]
    run = doc["runs"][0]
    assert set(run) == {"policy", "seed", "arrived_pods", "failed_pods", "seconds", "alloc_pct_at"}
    assert set(run["alloc_pct_at"]) <= {"90", "100", "110", "120", "130"}
    assert doc["summary"][0]["policy"] == "bestfit" and doc["summary"][0]["seeds"] == [1, 2]


def test_out_writes_curves_and_plot(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = tiny
    out_dir = tmp_path / "out"
    rc, out, _ = _sim(
        capsys, "--nodes", str(nodes), "--pods", str(pods), "--policy", "packing", "--out", str(out_dir)
    )
    assert rc == 0 and "packing" in out
    with (out_dir / "pods_curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"workload", "policy", "seed", "arrived_pct", "alloc_pct"}
    assert (out_dir / "pods_alloc.png").stat().st_size > 1000


def test_parallel_jobs_give_the_same_numbers(
    tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = tiny
    base = [
        "--nodes",
        str(nodes),
        "--pods",
        str(pods),
        "--policy",
        "bestfit,dotprod",
        "--seeds",
        "3,4",
        "--output",
        "json",
    ]
    _, one, _ = _sim(capsys, *base)
    _, two, _ = _sim(capsys, *base, "--jobs", "2")
    strip = lambda d: [{k: v for k, v in r.items() if k != "seconds"} for r in json.loads(d)["runs"]]  # noqa: E731
    assert strip(one) == strip(two)


@pytest.mark.parametrize(
    ("nodes_text", "pods_text", "extra", "message"),
    [
        (NODES.replace("memory_mib,", "mem,"), PODS, [], "missing column 'memory_mib'"),
        (NODES, PODS.replace("p3,1000,", "p3,-1000,"), [], "negative cpu_milli"),
        (NODES, PODS.replace("p0,4000,8192,1,500", "p0,4000,8192,1,abc"), [], "not a number"),
        (NODES.replace("n2,", "n1,"), PODS, [], "duplicate node 'n1'"),
        (NODES.replace("n2,", ","), PODS, [], "empty node name"),
        (NODES, PODS.replace("p5,", "p4,"), [], "duplicate pod 'p4'"),
        (NODES, PODS.replace("p5,", ","), [], "empty pod name"),
        (NODES, PODS, ["--policy", "tetris"], "unknown policy 'tetris'"),
        (NODES, PODS, ["--seeds", "x-y"], "--seeds"),
        (NODES, PODS, ["--replay", "/nonexistent-dir"], "is not a folder"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    nodes_text: str,
    pods_text: str,
    extra: list[str],
    message: str,
) -> None:
    (tmp_path / "n.csv").write_text(nodes_text)
    (tmp_path / "p.csv").write_text(pods_text)
    rc, _, err = _sim(capsys, "--nodes", str(tmp_path / "n.csv"), "--pods", str(tmp_path / "p.csv"), *extra)
    assert rc == 2
    assert message in err and err.count("\n") == 1 and err.startswith("gpu-autoscaler: error:")


def test_replay_file_that_does_not_match_the_pod_list(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = tiny
    rdir = tmp_path / "replay"
    rdir.mkdir()
    with gzip.open(rdir / "pods_seed42_arrivals.csv.gz", "wt") as fh:
        fh.write("pos,orig_index,clone_no\n0,0,-1\n1,99,-1\n")
    with gzip.open(rdir / "pods_seed42_node_tiebreak.csv.gz", "wt") as fh:
        fh.write("node_name,tiebreak_rank\nn0,0\nn1,1\nn2,2\n")
    rc, _, err = _sim(
        capsys, "--nodes", str(nodes), "--pods", str(pods), "--policy", "bestfit", "--replay", str(rdir)
    )
    assert rc == 2 and "does not match the pod list" in err and err.count("\n") == 1
    with gzip.open(rdir / "pods_seed42_arrivals.csv.gz", "wt") as fh:
        fh.write("pos,orig_index,clone_no\n" + "".join(f"{i},{i},-1\n" for i in range(6)))
    with gzip.open(rdir / "pods_seed42_node_tiebreak.csv.gz", "wt") as fh:
        fh.write("node_name,tiebreak_rank\nn0,0\nnX,1\nn2,2\n")
    rc, _, err = _sim(
        capsys, "--nodes", str(nodes), "--pods", str(pods), "--policy", "bestfit", "--replay", str(rdir)
    )
    assert rc == 2 and "does not match the node list" in err


def test_published_replay_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    d = trace_dir()
    rc, out, _ = _sim(
        capsys,
        "--nodes",
        str(d / "openb_node_list_gpu_node.csv"),
        "--pods",
        str(d / "openb_pod_list_default.csv"),
        "--policy",
        "bestfit",
        "--replay",
        str(d / "replay"),
        "--seeds",
        "42",
        "--output",
        "json",
    )
    assert rc == 0
    doc = json.loads(out)
    assert doc["nodes"] == 1213 and doc["gpus"] == 6212
    assert doc["runs"][0]["arrived_pods"] == 10866 and doc["runs"][0]["alloc_pct_at"]["100"] == 92.94


def test_parse_seeds() -> None:
    assert parse_seeds("42-44") == [42, 43, 44]
    assert parse_seeds("42,45-46,42") == [42, 45, 46]


def _files(tiny: tuple[Path, Path]) -> list[str]:
    return ["--nodes", str(tiny[0]), "--pods", str(tiny[1])]


def _write_replay(
    rdir: Path, arrivals: str, ties: str = "node_name,tiebreak_rank\nn0,0\nn1,1\nn2,2\n"
) -> None:
    rdir.mkdir(exist_ok=True)
    with gzip.open(rdir / "pods_seed42_arrivals.csv.gz", "wt") as fh:
        fh.write("pos,orig_index,clone_no\n" + arrivals)
    with gzip.open(rdir / "pods_seed42_node_tiebreak.csv.gz", "wt") as fh:
        fh.write(ties)


def test_replay_that_drops_pods_is_accepted(
    tiny: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The study's tune-down removes random pods from the shuffled list: a valid published replay."""
    _write_replay(tmp_path / "replay", "0,4,-1\n1,0,-1\n2,5,-1\n3,2,-1\n")  # pods 1 and 3 dropped
    policies = "bestfit,fgd,extender-binpack"
    replay = ["--replay", str(tmp_path / "replay"), "--output", "json"]
    rc, out, _ = _sim(capsys, *_files(tiny), "--policy", policies, *replay)
    assert rc == 0
    runs = json.loads(out)["runs"]
    assert [r["policy"] for r in runs] == ["bestfit", "fgd", "extender-binpack"]
    assert all(r["arrived_pods"] == 4 for r in runs)


@pytest.mark.parametrize(
    ("arrivals", "ties", "where", "message"),
    [
        ("0,0,-1\n1,0,-1\n", None, "arrivals.csv.gz:3:", "original pod 0 repeats line 2"),
        ("0,0,-1\n1,6,-1\n", None, "arrivals.csv.gz:3:", "orig_index 6 does not match the pod list"),
        ("0,0,-1\n1,-1,-1\n", None, "arrivals.csv.gz:3:", "orig_index -1"),
        ("0,0,-1\n2,1,-1\n", None, "arrivals.csv.gz:3:", "pos 2, expected 1"),
        ("0,0,-1\n1,x,-1\n", None, "arrivals.csv.gz:3:", "orig_index is not an integer"),
        ("0,0,-1\n1,1,0\n2,2,0\n", None, "arrivals.csv.gz:4:", "copy 0 repeats line 3"),
        ("0,0,-1\n1,1,-2\n", None, "arrivals.csv.gz:3:", "clone_no -2"),
        (
            "0,0,-1\n",
            "node_name,tiebreak_rank\nn0,0\nnX,1\nn2,2\n",
            "tiebreak.csv.gz:3:",
            "unknown node 'nX'",
        ),
        (
            "0,0,-1\n",
            "node_name,tiebreak_rank\nn0,0\nn1,0\nn2,2\n",
            "tiebreak.csv.gz:3:",
            "rank 0 repeats line 2",
        ),
        ("0,0,-1\n", "node_name,tiebreak_rank\nn0,0\nn0,1\nn2,2\n", "tiebreak.csv.gz:3:", "ranked twice"),
        ("0,0,-1\n", "node_name,tiebreak_rank\nn0,0\nn2,2\n", "tiebreak.csv.gz", "no rank for node 'n1'"),
    ],
)
def test_bad_replay_row_is_one_line_naming_file_and_line(
    tiny: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arrivals: str,
    ties: str | None,
    where: str,
    message: str,
) -> None:
    if ties is None:
        _write_replay(tmp_path / "replay", arrivals)
    else:
        _write_replay(tmp_path / "replay", arrivals, ties)
    rc, _, err = _sim(capsys, *_files(tiny), "--policy", "bestfit", "--replay", str(tmp_path / "replay"))
    assert rc == 2 and err.count("\n") == 1
    assert where in err and message in err, err


def test_every_documented_policy_is_accepted(
    tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes, pods = tiny
    names = "random,dotprod,clustering,packing,bestfit,fgd,extender,extender-binpack,extender-spread"
    rc, out, _ = _sim(
        capsys, "--nodes", str(nodes), "--pods", str(pods), "--policy", names, "--output", "json"
    )
    assert rc == 0
    assert [r["policy"] for r in json.loads(out)["runs"]] == names.split(",")


def test_variant_flag(tiny: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = [*_files(tiny), "--policy", "bestfit", "--output", "json"]
    rc, out, _ = _sim(capsys, *base, "--variant", "multigpu60")
    assert rc == 0 and json.loads(out)["workload"] == "pods-multigpu60"
    rc, _, err = _sim(capsys, *base, "--variant", "gpuspecXX")
    assert rc == 2 and "unknown variant 'gpuspecXX'" in err and err.count("\n") == 1
    rc, _, err = _sim(capsys, *base, "--variant", "cpu500", "--replay", "/nonexistent-dir")
    assert rc == 2 and "drop --replay" in err


def test_bundled_trace_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    """No --nodes / --pods: the default workload shipped with the package, and its seed-42 replay."""
    rc, out, _ = _sim(capsys, "--policy", "bestfit", "--replay", "bundled", "--output", "json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["workload"] == "openb_pod_list_default" and doc["gpus"] == 6212
    assert doc["runs"][0]["alloc_pct_at"]["100"] == 92.94  # the study's published BestFit, seed 42
