"""Where the Alibaba `openb` trace is read from.

The package ships the default workload (node and pod CSVs), the published arrival order and node tie-break
ranks of seed 42, the default workload's typical pods and the study's per-seed curves for seed 42
(`data/alibaba-gpu-v2023/`, see its README), so `demo`, the docs' examples and the exact-replay tests run for
any user. A fuller copy in the same layout (every seed, more workloads) is used first when one is found:
`$GPU_AUTOSCALER_TRACE_DIR`, or the `shared/data/alibaba-gpu-v2023/` folder beside a source checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "GPU_AUTOSCALER_TRACE_DIR"
NODES_CSV = "openb_node_list_gpu_node.csv"
BUNDLED = Path(__file__).resolve().parent / "data" / "alibaba-gpu-v2023"
#: a source checkout's sibling `shared/` (as the project's CI lays it out)
_CHECKOUT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "alibaba-gpu-v2023"


def pods_csv(workload: str) -> str:
    """`default` → `openb_pod_list_default.csv`."""
    return f"openb_pod_list_{workload}.csv"


def candidates() -> list[Path]:
    """Trace folders, most complete first: the environment's, a checkout's shared copy, the bundled one."""
    env = os.environ.get(ENV, "").strip()
    return [*([Path(env)] if env else []), _CHECKOUT_SHARED, BUNDLED]


def find(*files: str) -> Path | None:
    """The first trace folder holding every one of `files` (paths relative to the folder), or None."""
    for folder in candidates():
        if all((folder / f).is_file() for f in files):
            return folder
    return None
