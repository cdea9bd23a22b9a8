"""`gpu-autoscaler status --prometheus-url`: each GPU's DCGM utilisation, through the real Prometheus server
scraping a fake dcgm-exporter (labels as the exporter writes them: gpu, Hostname, GPU_I_ID on MIG)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prometheus_client import Gauge

from app.cli import main
from tests.prom_server import Exporters, job, needs_prometheus, prometheus

LABELS = ["gpu", "Hostname", "GPU_I_ID", "modelName"]


@pytest.mark.integration
@needs_prometheus
def test_status_shows_each_gpus_utilisation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exporters = Exporters()
    reg = exporters.registry("dcgm")
    gauges = {
        name: Gauge(name, name, LABELS, registry=reg)
        for name in (
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
            "DCGM_FI_DEV_GPU_UTIL",
            "DCGM_FI_DEV_FB_USED",
            "DCGM_FI_DEV_FB_FREE",
        )
    }
    h100 = ("dgx-h100-0", "", "NVIDIA H100 80GB HBM3")
    gauges["DCGM_FI_PROF_GR_ENGINE_ACTIVE"].labels("0", *h100).set(0.9)
    gauges["DCGM_FI_DEV_GPU_UTIL"].labels("0", *h100).set(95)  # GR_ENGINE_ACTIVE wins where both exist
    gauges["DCGM_FI_DEV_GPU_UTIL"].labels("1", *h100).set(40)  # older exporter: GPU_UTIL / 100
    for gpu in ("0", "1"):
        gauges["DCGM_FI_DEV_FB_USED"].labels(gpu, *h100).set(60_000)
        gauges["DCGM_FI_DEV_FB_FREE"].labels(gpu, *h100).set(20_000)
    mig = ("a100-mig-0", "1", "NVIDIA A100-SXM4-80GB")
    gauges["DCGM_FI_PROF_GR_ENGINE_ACTIVE"].labels("0", *mig).set(0.25)  # a MIG slice: its own row
    gauges["DCGM_FI_DEV_GPU_UTIL"].labels("0", *mig).set(0)  # GPU_UTIL is 0 on MIG: not used
    try:
        with prometheus(tmp_path, [job("dcgm", exporters.port)]) as url:
            deadline = time.monotonic() + 30
            while True:
                assert main(["status", "--cluster", "demo", "--prometheus-url", url, "--output", "json"]) == 0
                doc = json.loads(capsys.readouterr().out)
                if len(doc["gpu_use"]["gpus"]) == 3 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert doc["gpu_use"] == {
                "window": "5m",
                "gpus": [
                    {"node": "a100-mig-0", "gpu": "0/1", "util_pct": 25.0, "memory_pct": None},
                    {"node": "dgx-h100-0", "gpu": "0", "util_pct": 90.0, "memory_pct": 75.0},
                    {"node": "dgx-h100-0", "gpu": "1", "util_pct": 40.0, "memory_pct": 75.0},
                ],
            }
            nodes = {n["name"]: n for n in doc["nodes"]}
            assert (nodes["dgx-h100-0"]["util_pct"], nodes["dgx-h100-0"]["memory_pct"]) == (65.0, 75.0)
            assert nodes["l40s-0"]["util_pct"] is None  # no DCGM series: unknown, not 0
            # the table view shows the same
            assert main(["status", "--cluster", "demo", "--prometheus-url", url]) == 0
            out = capsys.readouterr().out
            assert "GPU utilisation (DCGM, 5m average)" in out and "90.0" in out and "65.0" in out
    finally:
        exporters.close()


def test_status_without_prometheus_says_how_to_get_utilisation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--cluster", "demo"]) == 0
    out = capsys.readouterr().out
    assert "GPU utilisation: pass --prometheus-url" in out
    assert main(["status", "--cluster", "demo", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpu_use"] is None
