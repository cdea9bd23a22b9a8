"""What `simulate` writes: the contract's JSON, a table, the curves CSV and the allocation plot (Fig. 9)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from extender.replay.engine import SAMPLE_POINTS, RunResult


def summary(results: list[RunResult]) -> list[dict[str, Any]]:
    """Per policy (in first-seen order): its seeds and the mean allocation at arrived = 100 %."""
    out: list[dict[str, Any]] = []
    for policy in dict.fromkeys(r.policy for r in results):
        runs = [r for r in results if r.policy == policy]
        vals = [r.curve[100] for r in runs if 100 in r.curve]
        out.append(
            {
                "policy": policy,
                "seeds": [r.seed for r in runs],
                "alloc_mean_at_100": round(sum(vals) / len(vals), 2) if vals else None,
            }
        )
    return out


def to_json(workload: str, nodes: int, gpus: int, results: list[RunResult]) -> dict[str, Any]:
    return {
        "workload": workload,
        "nodes": nodes,
        "gpus": gpus,
        "runs": [r.to_json() for r in results],
        "summary": summary(results),
    }


def write_curves(path: Path, results: list[RunResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["workload", "policy", "seed", "arrived_pct", "alloc_pct"])
        for r in results:
            for k, v in sorted(r.curve.items()):
                w.writerow([r.workload, r.policy, r.seed, k, f"{v:.2f}"])


def write_plot(path: Path, workload: str, results: list[RunResult]) -> bool:
    """Allocation % against arrived % per policy (median over seeds). False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    import warnings

    import numpy as np

    warnings.filterwarnings("ignore", message="All-NaN slice", category=RuntimeWarning)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ks = np.arange(0, 131)
    for policy in dict.fromkeys(r.policy for r in results):
        runs = [r for r in results if r.policy == policy]
        ys = np.array([[r.curve.get(int(k), np.nan) for k in ks] for r in runs], dtype=np.float64)
        med = np.nanmedian(ys, axis=0)
        ax.plot(ks, med, label=f"{policy} ({len(runs)} seed{'s' if len(runs) > 1 else ''})", lw=1.4)
        if len(runs) > 1:
            ax.fill_between(
                ks, np.nanpercentile(ys, 25, axis=0), np.nanpercentile(ys, 75, axis=0), alpha=0.15
            )
    ax.plot(ks, np.minimum(ks, 100), color="grey", ls=":", lw=1, label="ideal")
    ax.set_xlim(60, 130)
    ax.set_ylim(60, 100)
    ax.set_xlabel("arrived workload (% of GPU capacity)")
    ax.set_ylabel("GPU allocation (%)")
    ax.set_title(f"{workload}: GPU allocation vs arrived workload")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def table_rows(results: list[RunResult]) -> list[list[str]]:
    rows = []
    for r in results:
        cells = [f"{r.curve[k]:.2f}" if k in r.curve else "—" for k in SAMPLE_POINTS]
        rows.append(
            [r.policy, str(r.seed), str(r.arrived_pods), str(r.failed_pods), f"{r.seconds:.1f}", *cells]
        )
    return rows
