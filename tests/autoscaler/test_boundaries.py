"""The saturation engine at its exact thresholds (issue 11, item 8): each test pins a value *on* a boundary,
where `<` and `<=` part ways, and the exact reasons a decision gives (they reach logs and the status)."""

from __future__ import annotations

import pytest

from app.autoscaler.config import CapacityConfig, CapacityConfigSet
from app.autoscaler.saturation import (
    Action,
    EngineParams,
    QueueingInput,
    Replica,
    ReplicaMetrics,
    ReplicaState,
    Variant,
    analyze,
    classify,
    decide,
    decide_model,
)

#: thresholds exactly representable in binary, so "on the boundary" really is
CFG = CapacityConfig(
    kv_cache_threshold=0.75, queue_length_threshold=5, kv_spare_trigger=0.25, queue_spare_trigger=3
)
P = EngineParams(stale_after_s=90)


def rm(kv: float, q: float = 0.0, age: float | None = 1.0) -> ReplicaMetrics:
    return ReplicaMetrics(kv=kv, queue=q, age_s=age)


def var(name: str, loads: list[tuple[float, float]], cost: float = 10.0, **kw: int | None) -> Variant:
    reps = tuple(Replica(f"{name}-{i}", True, rm(kv, q)) for i, (kv, q) in enumerate(loads))
    current = int(kw.pop("current", None) or len(reps))
    return Variant(name, "ns", "m", "A100", cost, current, current, reps, **kw)  # type: ignore[arg-type]


# -- staleness ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("age", "state"), [(89.0, "ok"), (90.0, "ok"), (90.001, "unknown")])
def test_a_sample_exactly_stale_after_seconds_old_is_still_fresh(age: float, state: str) -> None:
    assert classify(Replica("p", True, rm(0.1, age=age)), CFG, P) is ReplicaState(state)


# -- saturation --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kv", "q", "saturated"),
    [(0.75, 0, 1), (0.7499, 0, 0), (0.0, 0, 0), (0.1, 5, 1), (0.1, 4.99, 0)],
    ids=["kv at threshold", "kv below", "kv zero", "queue at threshold", "queue below"],
)
def test_saturated_at_the_threshold_itself(kv: float, q: float, saturated: int) -> None:
    a = analyze([rm(kv, q), rm(0.1, 0)], CFG)
    assert (a.replicas, a.saturated, a.non_saturated) == (2, saturated, 2 - saturated)


def test_saturated_replicas_are_counted_one_each() -> None:
    a = analyze([rm(0.9), rm(0.8), rm(0.1), rm(0.2)], CFG)
    assert (a.replicas, a.saturated, a.non_saturated) == (4, 2, 2)


@pytest.mark.parametrize(
    ("kv", "q", "up"),
    [(0.5, 0.0, False), (0.5001, 0.0, True), (0.1, 2.0, False), (0.1, 2.001, True)],
    ids=["spare kv = trigger", "spare kv below", "spare queue = trigger", "spare queue below"],
)
def test_scale_up_only_below_the_trigger(kv: float, q: float, up: bool) -> None:
    assert analyze([rm(kv, q)], CFG).should_scale_up is up


@pytest.mark.parametrize(
    ("kv", "q", "down"),
    [(0.25, 0.5, True), (0.2501, 0.5, False), (0.1, 1.0, True), (0.1, 1.001, False)],
    ids=["kv after = trigger", "kv after below", "queue after = trigger", "queue after below"],
)
def test_scale_down_safe_down_to_the_trigger_itself(kv: float, q: float, down: bool) -> None:
    # two replicas: removing one doubles the load on the other; spare after = trigger is still safe
    a = analyze([rm(kv, q), rm(kv, q)], CFG)
    assert a.scale_down_safe is down and not a.should_scale_up


# -- clamping and the action it implies --------------------------------------------------------------------
def test_min_and_max_themselves_are_not_clamped() -> None:
    at_min = var("a", [(0.1, 0), (0.1, 0)], min_replicas=2)
    [d] = decide_model([at_min], CFG, P)  # scale-down safe, but the variant is at its min
    assert (d.desired, d.action) == (2, Action.NONE)
    assert d.reasons[-1].startswith("scale-down safe but every variant is at minReplicas: spareKv=0.650")
    at_max = var("b", [(0.7, 0)], max_replicas=1)
    [d] = decide_model([at_max], CFG, P)
    assert (d.desired, d.action) == (1, Action.NONE)
    assert d.reasons[-1].startswith("scale-up needed but every variant is at maxReplicas: spareKv=0.050")


def test_clamping_turns_into_the_move_it_makes() -> None:
    above_max = var("a", [(0.4, 1), (0.45, 1), (0.5, 1)], max_replicas=2)  # within band at 3
    [d] = decide_model([above_max], CFG, P)
    assert (d.desired, d.action) == (2, Action.SCALE_DOWN) and d.reasons[-1] == "lowered to maxReplicas 2"
    below_min = var("b", [(0.3, 0)], min_replicas=2)
    [d] = decide_model([below_min], CFG, P)
    assert (d.desired, d.action) == (2, Action.SCALE_UP) and d.reasons[-1] == "raised to minReplicas 2"
    assert d.analysis is not None and d.analysis.replicas == 1


# -- reasons -----------------------------------------------------------------------------------------------
def test_hold_reasons_name_what_is_starting_or_unknown() -> None:
    starting = Variant(
        "s", "ns", "m", "A100", 10, 2, 1, (Replica("s-0", True, rm(0.1)), Replica("s-1", False))
    )
    other = Variant("t", "ns", "m", "A100", 20, 1, 0, (Replica("t-0", False),))
    out = decide_model([starting, other], CFG, P)
    assert [d.reasons for d in out] == [
        ("hold: s starting (ready 1/2, pods 2); t starting (ready 0/1, pods 1)",)
    ] * 2
    assert all(d.action is Action.HOLD and d.desired == d.variant.current and d.analysis is None for d in out)
    blind = [Replica(f"u-{i}", True, rm(0.1, age=None)) for i in range(5)]
    out = decide_model([Variant("u", "ns", "m", "A100", 10, 5, 5, tuple(blind))], CFG, P)
    assert out[0].reasons == ("hold: no fresh metrics for u-0, u-1, u-2 and 2 more",)
    three = decide_model([Variant("u", "ns", "m", "A100", 10, 3, 3, tuple(blind[:3]))], CFG, P)
    assert three[0].reasons == ("hold: no fresh metrics for u-0, u-1, u-2",)
    four = decide_model([Variant("u", "ns", "m", "A100", 10, 4, 4, tuple(blind[:4]))], CFG, P)
    assert four[0].reasons == ("hold: no fresh metrics for u-0, u-1, u-2 and 1 more",)


def test_a_model_with_no_running_replica_holds() -> None:
    idle = Variant("z", "ns", "m", "A100", 10, 0, 0, (), min_replicas=0)
    [d] = decide_model([idle], CFG, P)
    assert (d.variant, d.desired, d.action, d.reasons) == (
        idle,
        0,
        Action.HOLD,
        ("hold: model has no running replica",),
    )


def test_within_band_reason_and_analysis_are_given_to_every_variant() -> None:
    a, b = var("a", [(0.4, 1), (0.5, 1)]), var("b", [(0.45, 1)], cost=20)
    out = decide_model([a, b], CFG, P)
    assert [(d.desired, d.action) for d in out] == [(2, Action.NONE), (1, Action.NONE)]
    assert out[0].reasons == (
        "within band: spareKv=0.300 (trigger 0.25), spareQ=4.00 (trigger 3), saturated 0/3",
    )
    assert out[0].reasons == out[1].reasons and out[0].analysis is out[1].analysis is not None


def test_scale_down_picks_the_dearest_and_says_so() -> None:
    a, b = var("a", [(0.1, 0), (0.1, 0)]), var("b", [(0.1, 0), (0.1, 0)], cost=30)
    out = decide_model([a, b], CFG, P)
    assert [(d.desired, d.action) for d in out] == [(2, Action.NONE), (1, Action.SCALE_DOWN)]
    assert out[1].reasons[0].startswith("scale down dearest variant above min, b (cost 30): spareKv=0.650")
    assert out[1].analysis is not None and out[1].analysis.non_saturated == 4


# -- the queueing analyzer ---------------------------------------------------------------------------------
QCFG = CapacityConfig(analyzer="queueing")


@pytest.mark.parametrize(("rate", "action"), [(20.0, Action.NONE), (20.5, Action.SCALE_UP)])
def test_queueing_scales_up_only_past_the_supply(rate: float, action: Action) -> None:
    a = var("a", [(0.1, 0), (0.1, 0)])  # 2 replicas x 10 req/s = supply 20
    [d] = decide_model([a], QCFG, P, QueueingInput(rate=rate, capacity={"a": 10.0}))
    assert d.action is action


def test_queueing_up_skips_pending_and_full_variants() -> None:
    pending = Variant("a", "ns", "m", "A100", 1, 2, 1, (Replica("a-0", True, rm(0.1)),))
    full = var("b", [(0.1, 0)], cost=2, max_replicas=1)
    free = var("c", [(0.1, 0)], cost=50)
    q = QueueingInput(rate=100.0, capacity={"a": 10.0, "b": 10.0, "c": 10.0})
    out = decide_model([pending, full, free], QCFG, EngineParams(), q)
    assert out[0].action is Action.HOLD  # a is starting: the model holds
    out = decide_model([full, free], QCFG, P, q)
    assert [d.action for d in out] == [Action.NONE, Action.SCALE_UP]
    assert (
        out[1].reasons[0]
        == "queueing: scale up c (cheapest per req/s): arrival 100.00 req/s, SLO capacity 20.00 req/s"
    )
    at_max = decide_model([full], QCFG, P, QueueingInput(rate=100.0, capacity={"b": 10.0}))
    assert at_max[0].reasons[0].startswith("queueing: scale-up needed but every variant is at maxReplicas")


def test_queueing_down_orders_by_cost_per_request() -> None:
    # a: 15 for 30 req/s (0.5 per req/s), b: 10 for 10 req/s (1.0): b is dearest per req/s though cheaper
    a = var("a", [(0.1, 0)], cost=15, min_replicas=0)
    b = var("b", [(0.1, 0)], cost=10, min_replicas=0)
    out = decide_model([a, b], QCFG, P, QueueingInput(rate=30.0, capacity={"a": 30.0, "b": 10.0}))
    assert [(d.variant.name, d.action) for d in out] == [("a", Action.NONE), ("b", Action.SCALE_DOWN)]


def test_queueing_never_proposes_a_variant_at_its_min() -> None:
    a = var("a", [(0.1, 0)])  # current 1 = min 1; no traffic at all
    [d] = decide_model([a], QCFG, P, QueueingInput(rate=0.0, capacity={"a": 100.0}))
    assert (d.action, d.reasons) == (
        Action.NONE,
        ("queueing: within SLO capacity: arrival 0.00 req/s, SLO capacity 100.00 req/s",),
    )


def test_a_move_clamped_back_to_where_it_was_is_no_move() -> None:
    from app.autoscaler.saturation import Reason, finish

    at_max = var("a", [(0.1, 0)], max_replicas=1)
    d = finish(at_max, 2, Action.SCALE_UP, ["scale up"], None, Reason.SCALE_UP)
    assert (d.desired, d.action, d.reasons) == (1, Action.NONE, ("scale up", "lowered to maxReplicas 1"))
    assert d.code == Reason.MAX_REPLICAS
    at_min = var("b", [(0.1, 0)], min_replicas=1)
    d = finish(at_min, 0, Action.SCALE_DOWN, ["scale down"], None, Reason.SCALE_DOWN)
    assert (d.desired, d.action, d.code) == (1, Action.NONE, Reason.MIN_REPLICAS)


def test_queueing_down_takes_the_dearest_per_request_and_keeps_min() -> None:
    # a: cost 10 for 10 req/s (1.0 per req/s); b: cost 15 for 30 req/s (0.5): a is dearest per req/s,
    # though b costs more per replica
    a, b = var("a", [(0.1, 0)], min_replicas=0), var("b", [(0.1, 0)], cost=15)
    q = QueueingInput(rate=30.0, capacity={"a": 10.0, "b": 30.0})  # supply 40; 40 - 10 = 30 >= rate
    out = decide_model([a, b], QCFG, P, q)
    assert [(d.variant.name, d.action) for d in out] == [("a", Action.SCALE_DOWN), ("b", Action.NONE)]
    assert out[0].desired == 0
    busier = decide_model([a, b], QCFG, P, QueueingInput(rate=30.5, capacity={"a": 10.0, "b": 30.0}))
    assert all(d.action is Action.NONE for d in busier)
    assert (
        busier[0].reasons[0] == "queueing: within SLO capacity: arrival 30.50 req/s, SLO capacity 40.00 req/s"
    )


def test_queueing_input_is_used_only_by_the_queueing_analyzer() -> None:
    a = var("a", [(0.1, 0), (0.1, 0)])
    q = {("ns", "m"): QueueingInput(rate=100.0, capacity={"a": 10.0})}
    saturation = decide([a], CapacityConfigSet(default=CFG), P, q)
    assert saturation[0].action is Action.SCALE_DOWN  # the saturation rule: plenty of spare
    queueing = decide([a], CapacityConfigSet(default=QCFG), P, q)
    assert queueing[0].action is Action.SCALE_UP  # the queueing model: 100 req/s > 20
