"""Where the Alibaba trace lives for the replay tests (skipped when the shared data is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CANDIDATES = (
    os.environ.get("GPU_AUTOSCALER_TRACE_DIR", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data" / "alibaba-gpu-v2023"),
    "/work/shared/data/alibaba-gpu-v2023",
)


def trace_dir() -> Path:
    for cand in _CANDIDATES:
        if cand and (Path(cand) / "openb_node_list_gpu_node.csv").is_file():
            return Path(cand)
    pytest.skip("Alibaba trace data (shared/data/alibaba-gpu-v2023) not available")
