"""Saturation engine rules, one table per rule, plus properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.autoscaler.config import CapacityConfig, CapacityConfigSet
from app.autoscaler.saturation import (
    Action,
    EngineParams,
    QueueingInput,
    Reason,
    Replica,
    ReplicaMetrics,
    ReplicaState,
    Variant,
    analyze,
    classify,
    decide,
    decide_model,
)

CFG = CapacityConfig()
P = EngineParams(stale_after_s=90)


def m(kv: float, q: float = 0, age: float | None = 1.0) -> ReplicaMetrics:
    return ReplicaMetrics(kv=kv, queue=q, age_s=age)


def variant(
    name: str,
    cost: float,
    loads: list[tuple[float, float]],
    *,
    current: int | None = None,
    ready: int | None = None,
    min_r: int = 1,
    max_r: int | None = None,
    model: str = "m",
) -> Variant:
    reps = tuple(Replica(pod=f"{name}-{i}", ready=True, metrics=m(kv, q)) for i, (kv, q) in enumerate(loads))
    cur = len(loads) if current is None else current
    return Variant(
        name=name,
        namespace="ns",
        model_id=model,
        accelerator="H100",
        cost=cost,
        current=cur,
        ready=cur if ready is None else ready,
        replicas=reps,
        min_replicas=min_r,
        max_replicas=max_r,
    )


def desired(decisions: list, name: str) -> int:  # type: ignore[type-arg]
    return next(d.desired for d in decisions if d.variant.name == name)


@pytest.mark.parametrize(
    ("kv", "q", "state"),
    [
        (0.79, 4, ReplicaState.OK),
        (0.80, 0, ReplicaState.SATURATED),  # kv >= threshold
        (0.10, 5, ReplicaState.SATURATED),  # queue >= threshold
        (0.10, 4.99, ReplicaState.OK),
    ],
)
def test_saturated_when_kv_or_queue_at_threshold(kv: float, q: float, state: ReplicaState) -> None:
    assert classify(Replica("p", True, m(kv, q)), CFG, P) is state


@pytest.mark.parametrize(
    ("metrics", "ready", "state"),
    [
        (None, True, ReplicaState.UNKNOWN),  # no sample: unknown, never idle
        (ReplicaMetrics(kv=0.1, queue=None), True, ReplicaState.UNKNOWN),  # one metric missing
        (ReplicaMetrics(kv=None, queue=0), True, ReplicaState.UNKNOWN),
        (ReplicaMetrics(kv=0.1, queue=0, age_s=None), True, ReplicaState.UNKNOWN),  # series gone
        (ReplicaMetrics(kv=0.1, queue=0, age_s=91), True, ReplicaState.UNKNOWN),  # stale
        (ReplicaMetrics(kv=0.1, queue=0, age_s=89), True, ReplicaState.OK),
        (ReplicaMetrics(kv=0.1, queue=0), False, ReplicaState.STARTING),
    ],
)
def test_freshness(metrics: ReplicaMetrics | None, ready: bool, state: ReplicaState) -> None:
    assert classify(Replica("p", ready, metrics), CFG, P) is state


@pytest.mark.parametrize(
    ("loads", "spare_kv", "spare_q", "up", "down"),
    [
        ([(0.9, 0), (0.2, 0)], 0.6, 5, False, False),  # saturated one excluded; n=1 -> no scale-down
        ([(0.9, 0), (0.9, 9)], 0.0, 0.0, True, False),  # all saturated -> spare 0 -> up
        ([(0.75, 0), (0.65, 0)], 0.1, 5, False, False),  # spare == trigger is not < trigger
        ([(0.76, 0), (0.66, 0)], 0.09, 5, True, False),  # mean kv > 0.70
        ([(0.1, 3), (0.1, 2)], 0.7, 2.5, True, False),  # mean queue > 2
        ([(0.1, 0), (0.1, 0)], 0.7, 5, False, True),  # idle: one removed replica fits
        ([(0.45, 0), (0.35, 0)], 0.4, 5, False, False),  # kv after = 0.8 - 0.4*2 = 0 < 0.1
        ([(0.2, 1), (0.2, 1), (0.2, 1)], 0.6, 4, False, True),  # q after = 5-1*1.5 = 3.5 >= 3
        ([(0.2, 2), (0.2, 2), (0.2, 2)], 0.6, 3, False, False),  # q after = 5-2*1.5 = 2 < 3
        ([(0.5, 0), (0.5, 0), (0.5, 0)], 0.3, 5, False, False),  # kv after = 0.8-0.75 = 0.05 < 0.1
        ([(0.4, 0), (0.4, 0), (0.4, 0)], 0.4, 5, False, True),  # kv after = 0.8-0.6 = 0.2
        ([(0.85, 0), (0.1, 0), (0.1, 0)], 0.7, 5, False, False),  # a saturated replica blocks scale-down
    ],
)
def test_spare_and_triggers(
    loads: list[tuple[float, float]], spare_kv: float, spare_q: float, up: bool, down: bool
) -> None:
    a = analyze([m(kv, q) for kv, q in loads], CFG)
    assert a.spare_kv == pytest.approx(spare_kv)
    assert a.spare_queue == pytest.approx(spare_q)
    assert (a.should_scale_up, a.scale_down_safe) == (up, down)


def test_scale_down_boundary_exact() -> None:
    # binary-exact numbers: after removal kv = 0.75 - 0.25*2 = 0.25, equal to the trigger -> safe (>=)
    cfg = CapacityConfig(kv_cache_threshold=0.75, kv_spare_trigger=0.25)
    assert analyze([m(0.25, 0), m(0.25, 0)], cfg).scale_down_safe
    assert not analyze([m(0.3125, 0), m(0.3125, 0)], cfg).scale_down_safe


HOT = [(0.78, 3.0)]
IDLE = [(0.05, 0.0)]


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        # scale up: the cheapest variant gets +1, only one variant moves
        ([variant("a", 40, HOT), variant("b", 15, HOT)], {"a": 1, "b": 2}),
        # ties on cost: alphabetically first
        ([variant("b", 10, HOT), variant("a", 10, HOT)], {"a": 2, "b": 1}),
        # cheapest has pending replicas -> whole model holds (starting)
        ([variant("a", 40, HOT), variant("b", 15, HOT, current=2, ready=1)], {"a": 1, "b": 2}),
        # cheapest at max -> next cheapest
        ([variant("a", 40, HOT), variant("b", 15, HOT, max_r=1)], {"a": 2, "b": 1}),
        # every variant at max -> no change
        ([variant("a", 40, HOT, max_r=1), variant("b", 15, HOT, max_r=1)], {"a": 1, "b": 1}),
        # scale down: the most expensive variant gets -1
        ([variant("a", 40, IDLE * 2), variant("b", 15, IDLE * 2)], {"a": 1, "b": 2}),
        # ties on cost: alphabetically last
        ([variant("a", 10, IDLE * 2), variant("b", 10, IDLE * 2)], {"a": 2, "b": 1}),
        # most expensive at min -> next most expensive
        ([variant("a", 40, IDLE), variant("b", 15, IDLE * 2)], {"a": 1, "b": 1}),
        # every variant at min -> no change
        ([variant("a", 40, IDLE), variant("b", 15, IDLE)], {"a": 1, "b": 1}),
        # minReplicas 0 lets a variant go to 0 while the model keeps others
        ([variant("a", 40, IDLE, min_r=0), variant("b", 15, IDLE)], {"a": 0, "b": 1}),
        # below min: raised to min whatever the load
        ([variant("a", 40, IDLE * 2, min_r=3)], {"a": 3}),
        # above max: lowered to max
        ([variant("a", 40, HOT * 3, max_r=2)], {"a": 2}),
        # one unknown replica -> no action on the whole model
        ([variant("a", 40, HOT), variant("b", 15, [(0.78, float("nan"))])], {"a": 1, "b": 1}),
    ],
)
def test_decisions(variants: list[Variant], expected: dict[str, int]) -> None:
    out = decide_model(variants, CFG, P)
    assert {d.variant.name: d.desired for d in out} == expected
    changed = [d for d in out if d.desired != d.variant.current and d.action is not Action.HOLD]
    assert len(changed) <= 1 or all(
        "minReplicas" in r or "maxReplicas" in r for d in changed for r in d.reasons
    )


def test_unknown_data_holds_with_reason() -> None:
    v = variant("a", 10, HOT * 2)
    stale = Variant(**{**v.__dict__, "replicas": (v.replicas[0], Replica("a-1", True, m(0.9, 9, age=600)))})
    out = decide_model([stale], CFG, P)
    assert out[0].action is Action.HOLD and out[0].desired == 2
    assert "metrics older than 90s for a-1" in out[0].reasons[0]
    assert out[0].code is Reason.METRICS_STALE
    no_metrics = Variant(
        **{**v.__dict__, "replicas": (Replica("a-0", True, None), Replica("a-1", True, None))}
    )
    (held,) = decide_model([no_metrics], CFG, P)
    assert held.action is Action.HOLD and held.code is Reason.METRICS_MISSING
    assert "no fresh metrics for a-0, a-1" in held.reasons[0]


COLD = [(0.1, 0)]


@pytest.mark.parametrize(
    ("variants", "codes"),
    [
        # every replica saturated -> the cheap one scales up, the other has no change this cycle
        ([variant("cheap", 10, HOT), variant("dear", 40, HOT)], {"cheap": "ScaleUp", "dear": "NoChange"}),
        (
            [variant("cheap", 10, COLD * 2), variant("dear", 40, COLD * 2)],
            {"cheap": "NoChange", "dear": "ScaleDown"},
        ),
        ([variant("a", 10, [(0.5, 0)])], {"a": "WithinBand"}),
        ([variant("a", 10, HOT, max_r=1)], {"a": "AtMaxReplicas"}),
        ([variant("a", 10, COLD * 2, min_r=2)], {"a": "AtMinReplicas"}),
        ([variant("a", 10, HOT, current=2, ready=1)], {"a": "ReplicasStarting"}),
        # bounds: a variant below its minReplicas is raised whatever the engine said
        ([variant("a", 10, [(0.5, 0)], min_r=3)], {"a": "MinReplicas"}),
        ([variant("a", 10, [(0.5, 0)] * 3, max_r=2)], {"a": "MaxReplicas"}),
    ],
)
def test_reason_codes(variants: list[Variant], codes: dict[str, str]) -> None:
    assert {d.variant.name: d.code.value for d in decide_model(variants, CFG, P)} == codes


@pytest.mark.parametrize(
    ("min_non_saturated", "loads", "down"),
    [
        (2, [(0.1, 0)] * 2, True),  # WVA's built-in: 2 non-saturated replicas may lose one
        (3, [(0.1, 0)] * 2, False),  # minSlackReplicas: 2 -> needs 3
        (3, [(0.1, 0)] * 3, True),
    ],
)
def test_min_non_saturated_replicas(
    min_non_saturated: int, loads: list[tuple[float, float]], down: bool
) -> None:
    cfg = CapacityConfig(min_non_saturated_replicas=min_non_saturated)
    assert analyze([m(kv, q) for kv, q in loads], cfg).scale_down_safe is down


@pytest.mark.parametrize(
    ("current", "ready", "pods_ready", "n_pods"),
    [(3, 2, [True, True], 2), (2, 2, [True, False], 2), (2, 2, [True], 1), (2, 2, [True, True, True], 3)],
)
def test_starting_replicas_hold(current: int, ready: int, pods_ready: list[bool], n_pods: int) -> None:
    reps = tuple(Replica(f"a-{i}", r, m(0.95, 9)) for i, r in enumerate(pods_ready))
    v = Variant("a", "ns", "m", "H100", 10, current, ready, reps)
    out = decide_model([v, variant("b", 5, HOT)], CFG, P)
    assert all(d.action is Action.HOLD for d in out)
    assert {d.variant.name: d.desired for d in out} == {"a": current, "b": 1}
    assert "starting" in out[0].reasons[0]


def test_decide_groups_models_and_uses_their_config() -> None:
    cfgs = CapacityConfigSet(
        overrides={("ns", "m2"): CapacityConfig(kv_cache_threshold=0.95, kv_spare_trigger=0.1)}
    )
    vs = [variant("a", 10, [(0.78, 0)], model="m1"), variant("b", 10, [(0.78, 0)], model="m2")]
    out = {d.variant.name: d.desired for d in decide(vs, cfgs)}
    assert out == {"a": 2, "b": 1}  # m1: spare 0.02 -> up; m2 (threshold .95): spare .17 -> none


def test_queueing_analyzer_when_configured() -> None:
    cfg = CapacityConfig(analyzer="queueing", ttft_slo_ms=500)
    vs = [variant("a", 40, IDLE), variant("b", 10, IDLE)]
    # capacity a: 4 req/s per replica (cost 10 per req/s), b: 1 req/s (cost 10 per req/s) -> tie: "a"
    up = decide_model(vs, cfg, P, QueueingInput(rate=6.0, capacity={"a": 4.0, "b": 1.0}))
    assert {d.variant.name: d.desired for d in up} == {"a": 2, "b": 1}
    none = decide_model(vs, cfg, P, QueueingInput(rate=4.5, capacity={"a": 4.0, "b": 1.0}))
    assert all(d.desired == 1 for d in none)
    # missing capacity for a variant -> falls back to saturation (idle, both at min -> nothing)
    fb = decide_model(vs, cfg, P, QueueingInput(rate=60.0, capacity={"a": 4.0}))
    assert all(d.desired == 1 for d in fb)


loads = st.lists(st.tuples(st.floats(0, 0.79), st.integers(0, 4)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(loads=loads, bump=st.floats(0, 0.79), qbump=st.integers(0, 4), idx=st.integers(0, 7))
def test_more_load_never_fewer_replicas(
    loads: list[tuple[float, int]], bump: float, qbump: int, idx: int
) -> None:
    """Raising a replica's load (staying below saturation) never lowers the model's desired total."""
    i = idx % len(loads)
    kv, q = loads[i]
    heavier = list(loads)
    heavier[i] = (max(kv, bump), max(q, qbump))
    split = max(1, len(loads) // 2)

    def total(ls: list[tuple[float, int]]) -> int:
        vs = [variant("a", 20, ls[:split])] + ([variant("b", 10, ls[split:])] if ls[split:] else [])
        return sum(d.desired for d in decide_model(vs, CFG, P))

    assert total(heavier) >= total(loads)


@settings(max_examples=200, deadline=None)
@given(
    loads=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 10)), min_size=1, max_size=8),
    sat=st.integers(0, 7),
)
def test_saturating_a_replica_never_scales_down(loads: list[tuple[float, int]], sat: int) -> None:
    """Whatever the others do, a model with a saturated replica never loses a replica."""
    ls = list(loads)
    ls[sat % len(ls)] = (0.95, 0)
    out = decide_model([variant("a", 20, ls)], CFG, P)
    assert out[0].desired >= out[0].variant.current


@settings(max_examples=100, deadline=None)
@given(loads=loads)
def test_at_most_one_step_per_cycle(loads: list[tuple[float, int]]) -> None:
    vs = [variant("a", 20, loads), variant("b", 10, loads), variant("c", 30, loads)]
    out = decide_model(vs, CFG, P)
    steps = [abs(d.desired - d.variant.current) for d in out]
    assert sum(steps) <= 1
