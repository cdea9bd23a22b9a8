"""CLI: bad flags and bad settings exit 2 with one line on stderr; the console script is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import build_parser, main


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse errors
        rc = int(exc.code or 0)
    return rc, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["serve", "--port", "abc"], "argument --port: invalid int value: 'abc'"),
        (["serve", "--port", "70000"], "invalid setting port"),
        (["serve", "--config", "/nonexistent/gpu-autoscaler.yaml"], "config: file not found"),
        (
            ["serve", "--cluster", "/nonexistent/snapshot"],
            "cluster snapshot: /nonexistent/snapshot: no such file",
        ),
        (["serve", "--cluster", "kube"], "cluster kube: kubeconfig:"),
        (["serve", "--tls-cert", "/nonexistent.crt"], "tls_cert"),
        (["serve", "--log-level", "LOUD"], "argument --log-level: invalid choice"),
        (["serve", "--autoscaler-interval", "-1"], "invalid setting autoscaler_interval"),
        (["demo", "--config", "/nonexistent/c.yaml"], "config: file not found"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, err = run_main(argv, capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gpu-autoscaler: error: ")
    assert expect in lines[0]


def test_malformed_snapshot_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\n")
    rc, err = run_main(["serve", "--cluster", str(tmp_path)], capsys)
    assert rc == 2
    assert (
        err.strip()
        == "gpu-autoscaler: error: cluster snapshot: bad.yaml document 0: Pod has no metadata.name"
    )


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["serve", "--help"])
    assert exc.value.code == 0


def _console_script() -> str:
    here = Path(sys.executable).parent / "gpu-autoscaler"
    found = str(here) if here.exists() else shutil.which("gpu-autoscaler")
    if not found:
        pytest.skip("console script not installed (pip install -e .)")
    return found


def test_console_script_bad_port() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_AUTOSCALER_")}
    proc = subprocess.run(
        [_console_script(), "serve", "--port", "abc"], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu-autoscaler: error: argument --port: invalid int value: 'abc'"
    ]


def test_python_dash_m_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("gpu-autoscaler ")
