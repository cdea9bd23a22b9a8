"""Workload variants built from one trace by the FGD study's recipes, to check a policy on mixes it was not
tuned on.

The study stresses one kind of pod at a time (Weng et al., ATC'23, §6; `openb_pod_list_<kind><pct>.csv`).
Its recipes, read off the published workloads (docs/simulation.md, "Workload variants"):

- `multigpu<P>`: the trace plus copies of its multi-GPU pods, drawn uniformly with replacement, until
  multi-GPU pods carry >= P % of the GPU demand (the study's multigpu20..50: the default trace + 172..909
  such copies). Above ~30 % the demand passes 130 % of capacity, so the replay tunes it down.
- `gpushare<P>`: CPU-only pods kept; the same number of GPU pods redrawn with replacement from the trace's
  sharing pods and its other GPU pods so that sharing pods carry P % of the GPU demand (each draw takes a
  sharing pod while their share is below P).
- `gpuspec<P>`: P % of the GPU pods, drawn at random, must run on one GPU model, drawn uniformly among the
  models with a node the pod fits when empty (so small pools are asked more than their size: the study's
  production constraints ask 122 % of the T4 GPUs).
- `cpu<PPP>`: the GPU pods kept; CPU-only pods subsampled (or topped up with copies) to PPP / 10 % of all
  pods (the study's naming: cpu050 = 5 %, cpu250 = 25 %).

`P` is a percentage, 0..100 (`cpu`: tenths of a percent). The variant is a fixed function of (trace,
recipe, `seed`): the arrival seeds of a replay shuffle and tune it as they do the trace itself.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from extender.arrays import NodeCapacity, PodRequest
from extender.replay.trace import Trace

RECIPES = ("multigpu", "gpushare", "gpuspec", "cpu")
_NAME = re.compile(r"^(multigpu|gpushare|gpuspec|cpu)(\d{2,3})$")
#: the variant seed (fixed, so a variant name means one workload)
VARIANT_SEED = 2023


def parse(name: str) -> tuple[str, float]:
    """`gpuspec33` → ("gpuspec", 33.0); `cpu050` → ("cpu", 5.0): the study writes CPU shares in tenths of a
    percent (cpu037 = 3.7 %). ValueError (one line) for anything else."""
    m = _NAME.match(name.strip().lower())
    if m:
        recipe, digits = m.group(1), m.group(2)
        pct = int(digits) / 10.0 if recipe == "cpu" else float(digits)
        if 0 <= pct <= 100:
            return recipe, pct
    raise ValueError(
        f"unknown variant {name!r}: use <recipe><percent> (cpu: tenths of a percent, cpu250 = 25 %), "
        f"recipe one of {', '.join(RECIPES)}"
    )


def build(trace: Trace, name: str, seed: int = VARIANT_SEED) -> Trace:
    """The variant `name` (e.g. `multigpu50`) of `trace`; pods renamed `<variant>-<n>` in pod order."""
    recipe, pct = parse(name)
    rng = np.random.default_rng(seed)
    pods = list(trace.pods)
    if recipe == "multigpu":
        out = _multigpu(pods, pct / 100.0, rng)
    elif recipe == "gpushare":
        out = _gpushare(pods, pct / 100.0, rng)
    elif recipe == "gpuspec":
        out = _gpuspec(trace, pods, pct / 100.0, rng)
    else:
        out = _cpu(pods, pct / 100.0, rng)
    label = name.strip().lower()
    names = tuple(f"{label}-{i:05d}" for i in range(len(out)))
    return Trace(workload=f"{trace.workload}-{label}", nodes=trace.nodes, pod_names=names, pods=tuple(out))


def _pick(pool: list[PodRequest], rng: np.random.Generator) -> PodRequest:
    return pool[int(rng.integers(len(pool)))]


def _multigpu(pods: list[PodRequest], share: float, rng: np.random.Generator) -> list[PodRequest]:
    multi = [p for p in pods if p.gpu_count > 1]
    if not multi:
        raise ValueError("multigpu: the trace has no multi-GPU pod to copy")
    if share >= 1.0:
        raise ValueError("multigpu: the share must stay below 100 %")
    total = sum(p.total_gpu_milli for p in pods)
    part = sum(p.total_gpu_milli for p in multi)
    out = list(pods)
    while part < share * total:
        p = _pick(multi, rng)
        out.append(p)
        part += p.total_gpu_milli
        total += p.total_gpu_milli
    return out


def _gpushare(pods: list[PodRequest], share: float, rng: np.random.Generator) -> list[PodRequest]:
    shared = [p for p in pods if p.is_shared]
    whole = [p for p in pods if p.wants_gpu and not p.is_shared]
    n_gpu = sum(1 for p in pods if p.wants_gpu)
    if (share > 0 and not shared) or (share < 1 and not whole):
        raise ValueError("gpushare: the trace lacks sharing or whole-GPU pods to draw from")
    out = [p for p in pods if not p.wants_gpu]
    s_milli = w_milli = 0
    for _ in range(n_gpu):
        take_shared = share >= 1.0 or (share > 0 and s_milli <= share * (s_milli + w_milli))
        p = _pick(shared if take_shared else whole, rng)
        out.append(p)
        if take_shared:
            s_milli += p.total_gpu_milli
        else:
            w_milli += p.total_gpu_milli
    return out


def _gpuspec(
    trace: Trace, pods: list[PodRequest], share: float, rng: np.random.Generator
) -> list[PodRequest]:
    models = sorted({n.model for n in trace.nodes if n.gpu_count})
    gpu_rows = [i for i, p in enumerate(pods) if p.wants_gpu]
    chosen = rng.choice(len(gpu_rows), size=round(share * len(gpu_rows)), replace=False)
    out = list(pods)
    for j in sorted(int(c) for c in chosen):
        i = gpu_rows[j]
        p = pods[i]
        fits = [m for m in models if any(_fits_empty(p, n) for n in trace.nodes if n.model == m)]
        if fits:
            out[i] = replace(p, gpu_models=(fits[int(rng.integers(len(fits)))],))
    return out


def _fits_empty(p: PodRequest, node: NodeCapacity) -> bool:
    return node.gpu_count >= p.gpu_count and node.cpu_milli >= p.cpu_milli and node.memory_mib >= p.memory_mib


def _cpu(pods: list[PodRequest], share: float, rng: np.random.Generator) -> list[PodRequest]:
    cpu_only = [p for p in pods if not p.wants_gpu]
    gpu = [p for p in pods if p.wants_gpu]
    if share >= 1.0 or (share > 0 and not cpu_only):
        raise ValueError("cpu: the share must stay below 100 % and the trace needs CPU-only pods")
    want = round(share * len(gpu) / (1.0 - share))
    if want <= len(cpu_only):
        keep = sorted(int(i) for i in rng.choice(len(cpu_only), size=want, replace=False))
        extra = [cpu_only[i] for i in keep]
    else:
        extra = cpu_only + [_pick(cpu_only, rng) for _ in range(want - len(cpu_only))]
    return gpu + extra
