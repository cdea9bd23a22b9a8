"""Every user-facing error is one line naming the thing, exit 2, before any work starts; no traceback reaches
a user (issue 11, item 7). Each case runs the real CLI entry point."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from certs.generate import write_certs
from tests.app.test_cli import run_main
from tests.app.test_serve_process import clean_env
from tests.extender.test_replay_cli import NODES, PODS


def one_line(rc: int, err: str) -> str:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-autoscaler: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    good = write_certs(tmp_path / "a", "gpu-autoscaler", "gpu-system")
    other = write_certs(tmp_path / "b", "gpu-autoscaler", "gpu-system")
    not_pem = tmp_path / "not-pem.crt"
    not_pem.write_text("this is not a certificate\n")
    banana = tmp_path / "banana.yaml"
    banana.write_text("history_window: banana\n")
    one_x = tmp_path / "onex.yaml"
    one_x.write_text("waste_window: 1x\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("port: [8080\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("prot: 8080\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    nodes, pods = tmp_path / "nodes.csv", tmp_path / "pods.csv"
    nodes.write_text(NODES)
    pods.write_text(PODS)
    return {
        "cert": good.cert,
        "key": good.key,
        "other_key": other.key,
        "ca": good.ca_cert,
        "not_pem": not_pem,
        "banana": banana,
        "onex": one_x,
        "broken": broken,
        "unknown": unknown,
        "under_a_file": a_file / "out",
        "nodes": nodes,
        "pods": pods,
    }


CASES: list[tuple[str, list[str], str]] = [
    ("bad flag value", ["serve", "--max-body-bytes", "lots"], "argument --max-body-bytes: invalid int value"),
    ("unknown flag", ["serve", "--prot", "8080"], "unrecognized arguments: --prot"),
    ("setting out of range", ["serve", "--max-body-bytes", "10"], "invalid setting max_body_bytes"),
    ("config not YAML", ["serve", "--config", "{broken}"], "is not valid YAML"),
    ("config unknown key", ["serve", "--config", "{unknown}"], "invalid setting prot"),
    ("history_window banana", ["serve", "--config", "{banana}"], "invalid setting history_window"),
    ("waste_window 1x", ["serve", "--config", "{onex}"], "invalid setting waste_window"),
    ("tls file not PEM", ["serve", "--tls-cert", "{not_pem}", "--tls-key", "{key}"], "--tls-cert"),
    ("tls key not PEM", ["serve", "--tls-cert", "{cert}", "--tls-key", "{not_pem}"], "--tls-key"),
    ("tls pair mismatch", ["serve", "--tls-cert", "{cert}", "--tls-key", "{other_key}"], "does not belong"),
    ("tls key missing", ["serve", "--tls-cert", "{cert}"], "tls_cert and tls_key must be given together"),
    (
        "client CA not PEM",
        ["serve", "--tls-cert", "{cert}", "--tls-key", "{key}", "--tls-client-ca", "{not_pem}"],
        "--tls-client-ca",
    ),
    ("client CA without TLS", ["serve", "--tls-client-ca", "{ca}"], "tls_client_ca needs tls_cert"),
    (
        "history timeout over the webhook budget",
        ["serve", "--history-timeout-seconds", "3", "--webhook-budget-seconds", "2"],
        "history_timeout_seconds must be < webhook_budget_seconds",
    ),
    (
        "simulate into an unwritable folder",
        ["simulate", "--nodes", "{nodes}", "--pods", "{pods}", "--out", "{under_a_file}"],
        "--out",
    ),
    (
        "certs into an unwritable folder",
        ["certs", "--service", "s", "--namespace", "n", "--out", "{under_a_file}"],
        "--out",
    ),
]


@pytest.mark.parametrize(("case", "argv", "expect"), CASES, ids=[c for c, _, _ in CASES])
def test_user_error_is_one_line_and_exit_2(
    case: str, argv: list[str], expect: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line(*run_main([a.format(**files) for a in argv], capsys))
    assert expect in line, line


def test_busy_port_is_one_line_before_the_cluster_loads(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # a snapshot that does not exist: the port is checked first, so that is not the error
        line = one_line(*run_main(["serve", "--port", str(port), "--cluster", "/nonexistent"], capsys))
    assert f"--port {port} on 127.0.0.1: Address already in use" in line


def test_simulate_checks_out_before_running(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--nodes", str(files["nodes"]), "--pods", str(files["pods"]), "--seeds", "42-141"]
    line = one_line(*run_main([*argv, "--out", str(files["under_a_file"])], capsys))
    assert "cannot write there" in line  # 100 runs would take minutes: the folder is checked first


@pytest.mark.integration
def test_tls_file_that_is_not_pem_prints_no_traceback(files: dict[str, Path]) -> None:
    """The real process, as a user runs it (this printed a Python traceback and exited 1)."""
    cmd = [
        sys.executable,
        "-m",
        "app",
        "serve",
        "--tls-cert",
        str(files["not_pem"]),
        "--tls-key",
        str(files["key"]),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=clean_env())
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"gpu-autoscaler: error: --tls-cert {files['not_pem']}: not a PEM certificate"
    )
    assert proc.stdout == ""
