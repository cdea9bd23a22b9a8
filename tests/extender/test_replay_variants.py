"""Workload variants (the study's recipes applied to the default trace) and the generator's tune-down."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from extender.arrays import PodRequest
from extender.replay import variants
from extender.replay.arrivals import generate
from extender.replay.trace import Trace, load_trace
from tests.extender.replay_data import trace_dir


@cache
def _default() -> Trace:
    d = trace_dir()
    return load_trace(d / "openb_node_list_gpu_node.csv", d / "openb_pod_list_default.csv")


def _milli(pods: tuple[PodRequest, ...], keep: object) -> tuple[int, int]:
    total = sum(p.total_gpu_milli for p in pods)
    return sum(p.total_gpu_milli for p in pods if keep(p)), total  # type: ignore[operator]


@pytest.mark.parametrize("pct", [20, 50])
def test_multigpu_appends_copies_of_multi_gpu_pods(pct: int) -> None:
    base = _default()
    v = variants.build(base, f"multigpu{pct}")
    assert v.pods[: len(base.pods)] == base.pods  # the trace itself, then copies
    extra = v.pods[len(base.pods) :]
    assert extra and set(extra) <= {p for p in base.pods if p.gpu_count > 1}
    part, total = _milli(v.pods, lambda p: p.gpu_count > 1)
    assert pct <= 100 * part / total < pct + 0.2  # stops as soon as the share is reached


def test_multigpu50_is_a_tune_down_workload() -> None:
    v = variants.build(_default(), "multigpu50")
    target = 1.3 * v.total_gpus * 1000
    assert int(v.gpu_milli_total().sum()) > target
    a = generate(v, 42)
    assert len(a.order) < len(v.pods) and len(np.unique(a.order)) == len(a.order)
    assert int(v.gpu_milli_total()[a.order].sum()) <= target


@pytest.mark.parametrize("pct", [40, 80, 100])
def test_gpushare_redraws_gpu_pods_to_the_share(pct: int) -> None:
    base = _default()
    v = variants.build(base, f"gpushare{pct}")
    assert len(v.pods) == len(base.pods)
    assert sum(not p.wants_gpu for p in v.pods) == sum(not p.wants_gpu for p in base.pods)
    assert set(v.pods) <= set(base.pods)
    part, total = _milli(v.pods, lambda p: p.is_shared)
    assert abs(100 * part / total - pct) < 0.1


def test_gpuspec_constrains_the_share_of_gpu_pods_to_a_model_they_fit() -> None:
    base = _default()
    v = variants.build(base, "gpuspec33")
    gpu = [i for i, p in enumerate(v.pods) if p.wants_gpu]
    constrained = [i for i in gpu if v.pods[i].gpu_models]
    assert abs(len(constrained) / len(gpu) - 0.33) < 0.005
    models = {n.model for n in base.nodes}
    for i in constrained:
        p, (model,) = v.pods[i], v.pods[i].gpu_models
        assert model in models
        assert any(
            n.model == model and n.gpu_count >= p.gpu_count and n.cpu_milli >= p.cpu_milli for n in base.nodes
        )
        assert PodRequest(p.cpu_milli, p.memory_mib, p.gpu_count, p.gpu_milli) == base.pods[i]
    assert len({v.pods[i].gpu_models for i in constrained}) == len(models)  # every model is asked for


@pytest.mark.parametrize(("name", "pct"), [("cpu050", 5.0), ("cpu250", 25.0)])
def test_cpu_share_in_tenths_of_a_percent(name: str, pct: float) -> None:
    base = _default()
    v = variants.build(base, name)
    cpu = sum(not p.wants_gpu for p in v.pods)
    assert abs(100 * cpu / len(v.pods) - pct) < 0.05
    assert [p for p in v.pods if p.wants_gpu] == [p for p in base.pods if p.wants_gpu]


def test_variant_is_fixed_and_names_are_unique() -> None:
    a = variants.build(_default(), "gpuspec10")
    assert a == variants.build(_default(), "gpuspec10")
    assert len(set(a.pod_names)) == len(a.pod_names) and a.short_name == "default-gpuspec10"


@pytest.mark.parametrize("bad", ["gpuspec", "spec33", "gpushare101", "cpu1000", "multigpu5"])
def test_bad_variant_names(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        variants.parse(bad)


def test_generator_tune_down_removes_pods_keeping_the_shuffled_order() -> None:
    """§3: above the target, random pods leave the shuffled list (order kept) until the total is <= it."""
    trace = variants.build(_default(), "multigpu40")
    a = generate(trace, 7)
    shuffled = np.random.default_rng(7).permutation(len(trace.pods))
    kept = set(a.order.tolist())
    assert a.order.tolist() == [i for i in shuffled.tolist() if i in kept]
    total = int(trace.gpu_milli_total()[a.order].sum())
    assert total <= 1.3 * trace.total_gpus * 1000
    assert len(kept) < len(trace.pods)
