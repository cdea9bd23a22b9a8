"""Where the Alibaba trace lives for the replay tests: the copy bundled with the package (default workload,
seed 42) unless a fuller one is found (extender/replay/datasets.py); tests that need more skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from extender.replay import datasets

#: what the exact-replay tests read: the default workload, seed 42's replay files, the published results
DEFAULT_SEED42 = (
    datasets.NODES_CSV,
    datasets.pods_csv("default"),
    "replay/openb_pod_list_default_seed42_arrivals.csv.gz",
    "replay/openb_pod_list_default_seed42_node_tiebreak.csv.gz",
    "published/alloc_curves_per_seed.csv",
    "published/openb_pod_list_default_typical.csv",
)


def trace_dir(*files: str) -> Path:
    """The first trace folder holding `files` (default: DEFAULT_SEED42), else skip."""
    need = files or DEFAULT_SEED42
    found = datasets.find(*need)
    if found is None:
        pytest.skip(f"Alibaba trace files {', '.join(need)} not available (set {datasets.ENV})")
    return found
