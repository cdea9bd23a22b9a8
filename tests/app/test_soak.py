"""The 30 s soak (issue 11, item 6): the real `serve` process over HTTPS under the webhook and extender load
together. Asserts what a shared CI machine can promise: zero errors and bounded memory. Latency is measured
by `make soak` (10 minutes, full rate) and written in docs/reliability.md, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import run_load

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_thirty_seconds_of_load_no_errors_bounded_memory() -> None:
    # a quarter of the full rate: CI's two cores run the load generator too
    r = run_load(seconds=30, webhook_rps=50, extender_cps=25, nodes=1000)
    assert r["errors"] == 0, {k: r[k]["error_kinds"] for k in ("mutate", "filter", "prioritize")}
    assert (
        r["mutate"]["requests"] >= 1000 and r["filter"]["requests"] >= 500 and r["prioritize"]["requests"] > 0
    )
    # bounded: the steady part (after the first 20 %) grows by less than a quarter, and stays small
    assert r["rss_growth_pct"] < 25, r["rss"]
    assert r["rss_mib_to"] < 400, r["rss"]


def test_view_of_1000_nodes_and_10000_pods_stays_small(tmp_path: Path) -> None:
    """The memory target is measured at 5,000 nodes / 50,000 pods by `make soak`; CI checks a tenth, in a
    fresh interpreter as `make soak` does (in this long-lived test process the heap of earlier tests blurs
    RSS by several MiB). Measured 56-59 MiB with every component of the service attached; the bound is a
    regression guard with room for allocator noise, not the target."""
    out = tmp_path / "memory.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.soak",
        "memory",
        "--nodes",
        "1000",
        "--pods",
        "10000",
        "--json",
        str(out),
    ]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=300)
    r = json.loads(out.read_text())
    assert r["view_pods"] == 10000 and r["extender_pods"] == 10000
    assert r["rss_mib"] - r["rss_mib_before"] < 75, r
