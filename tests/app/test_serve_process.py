"""The real process: `gpu-autoscaler serve` answers over a socket; `gpu-autoscaler demo` exits 0."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys

import httpx
import pytest

from app.logging_setup import setup_logging
from tests.waiting import until_http_ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GPU_AUTOSCALER_")}


@pytest.mark.integration
def test_serve_answers_health_ready_and_metrics() -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "app", "serve", "--cluster", "demo", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        base = f"http://127.0.0.1:{port}"
        until_http_ok(base + "/healthz", proc)
        assert httpx.get(base + "/readyz").status_code == 200
        metrics = httpx.get(base + "/metrics")
        assert "gpu_autoscaler_build_info" in metrics.text
        assert "process_cpu_seconds_total" not in metrics.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal (exit -15)
    assert proc.returncode in (0, -15)
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "cluster view loaded" and r["objects"] == 47 for r in logs), err
    assert any(r["msg"] == "service stopped" for r in logs), "lifespan shutdown ran"
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in logs)


@pytest.mark.integration
def test_demo_runs_and_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app", "demo"], capture_output=True, text=True, timeout=300, env=clean_env()
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "demo finished" in proc.stdout
    assert "dgx-h100-0" in proc.stdout


def test_json_logs_carry_extra_fields() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("INFO", stream)
        logging.getLogger("app.test").info("decided", extra={"pod": "p1", "score": 7, "color_message": "x"})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    record = json.loads(stream.getvalue())
    assert record["msg"] == "decided" and record["pod"] == "p1" and record["score"] == 7
    assert record["level"] == "INFO" and record["logger"] == "app.test"
    assert record["ts"].endswith("+00:00") and "color_message" not in record
