"""Scale to zero and back: the WVA ConfigMap, Go durations, the zero rules after the engine, who wakes."""

from __future__ import annotations

from typing import Any

import pytest

from app.autoscaler.config import CapacityConfigSet
from app.autoscaler.saturation import Action, EngineParams, Reason, Variant, decide
from app.autoscaler.zero import (
    DEFAULT_RETENTION_S,
    ZeroInput,
    enforce,
    models_at_zero,
    parse_go_duration,
    parse_scale_to_zero_config,
    prom_duration,
    wake_choice,
)
from tests.autoscaler.test_saturation import variant


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10m", 600),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("90s", 90),
        ("300ms", 0.3),
        ("2m30s", 150),
        ("1h0m0s", 3600),
        ("0", 0),
        ("-5m", -300),
        (".5s", 0.5),
        ("1500us", 0.0015),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "10 m", "1d", "m", "5m3", "1h-5m", "ten minutes", "1.2.3s"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="Go duration"):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(600, "600s"), (1.5, "1500ms"), (0.0001, "1ms"), (5400, "5400s")]
)
def test_prometheus_ranges(seconds: float, text: str) -> None:
    assert prom_duration(seconds) == text


LLAMA = "model_id: llama\n"


@pytest.mark.parametrize(
    ("data", "env", "model", "ns", "enabled", "retention"),
    [
        (None, False, "llama", "inf", False, DEFAULT_RETENTION_S),  # nothing anywhere: off, 10 min
        (None, True, "llama", "inf", True, DEFAULT_RETENTION_S),  # environment
        ({"default": "enable_scale_to_zero: true"}, False, "llama", "inf", True, 600),
        ({"default": "enable_scale_to_zero: false"}, True, "llama", "inf", False, 600),  # ConfigMap > env
        ({"default": "retention_period: 5m"}, True, "llama", "inf", True, 300),  # inherits env switch
        # model entry > default, field by field
        (
            {
                "default": "enable_scale_to_zero: true\nretention_period: 5m",
                "a": LLAMA + "retention_period: 1h",
            },
            False,
            "llama",
            "inf",
            True,
            3600,
        ),
        (
            {"default": "enable_scale_to_zero: true", "a": LLAMA + "enable_scale_to_zero: false"},
            False,
            "llama",
            "inf",
            False,
            600,
        ),
        ({"a": LLAMA + "enable_scale_to_zero: true"}, False, "qwen", "inf", False, 600),  # other model
        # namespace narrows an entry (our extension); without it the entry applies everywhere (WVA)
        ({"a": LLAMA + "namespace: inf\nenable_scale_to_zero: true"}, False, "llama", "other", False, 600),
        (
            {
                "a": LLAMA + "enable_scale_to_zero: true",
                "b": LLAMA + "namespace: inf\nenable_scale_to_zero: false",
            },
            False,
            "llama",
            "inf",
            False,
            600,
        ),
        # duplicate model_id: the lexicographically first key wins
        (
            {"b": LLAMA + "retention_period: 2m", "a": LLAMA + "retention_period: 3m"},
            False,
            "llama",
            "inf",
            False,
            180,
        ),
        # an invalid field falls through to the next level (upstream)
        (
            {"default": "retention_period: 5m", "a": LLAMA + "retention_period: soon"},
            True,
            "llama",
            "inf",
            True,
            300,
        ),
        ({"default": "retention_period: 0s"}, True, "llama", "inf", True, 600),
        ({"default": "retention_period: -1m"}, True, "llama", "inf", True, 600),
        ({"default": "enable_scale_to_zero: 'yes please'"}, False, "llama", "inf", False, 600),
        ({"default": "[not a mapping"}, True, "llama", "inf", True, 600),
    ],
)
def test_config_precedence(
    data: dict[str, Any] | None, env: bool, model: str, ns: str, enabled: bool, retention: float
) -> None:
    cfg = parse_scale_to_zero_config(data, env_enabled=env)
    assert (cfg.enabled(model, ns), cfg.retention_s(model, ns)) == (enabled, retention)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"a": LLAMA + "retention_period: soon"}, "retention_period not a Go duration"),
        ({"default": "retention_period: 0s"}, "must be > 0"),
        ({"default": "enable_scale_to_zero: 1"}, "must be true or false"),
        ({"default": "enable: true"}, "unknown field 'enable'"),
        ({"x": "enable_scale_to_zero: true"}, "needs model_id"),
        ({"a": LLAMA, "b": LLAMA}, "already set by an earlier key"),
        ({"default": "[1"}, "not valid YAML"),
    ],
)
def test_config_problems_are_reported(data: dict[str, Any], problem: str) -> None:
    errors = parse_scale_to_zero_config(data).errors
    assert any(problem in e for e in errors), errors


def v(
    name: str,
    cost: float,
    current: int,
    *,
    kv: float = 0.5,
    min_r: int = 0,
    max_r: int | None = None,
    model: str = "llama",
    ready: bool = True,
) -> Variant:
    """`current` replicas at `kv` (inside the band for 1 or 2 replicas); not ready: starting."""
    loads = [(kv, 0.0)] * current
    return variant(name, cost, loads, ready=None if ready else 0, min_r=min_r, max_r=max_r, model=model)


ON = {"enabled": True}
IDLE = {"enabled": True, "requests": 0.0}
BUSY = {"enabled": True, "requests": 12.0}


@pytest.mark.parametrize(
    ("variants", "zero", "desired", "code"),
    [
        # --- scale to zero: enabled, and no successful request in the retention window -> every variant 0
        ([v("cheap", 10, 1), v("dear", 40, 1)], IDLE, {"cheap": 0, "dear": 0}, "ScaledToZero"),
        # requests in the window: the engine's targets stay
        ([v("cheap", 10, 1), v("dear", 40, 1)], BUSY, {"cheap": 1, "dear": 1}, "WithinBand"),
        # query failed / no series: targets kept
        ([v("cheap", 10, 1)], {"enabled": True, "requests": None}, {"cheap": 1}, "WithinBand"),
        # disabled: never to zero, whatever the count
        ([v("cheap", 10, 1)], {"enabled": False, "requests": 0.0}, {"cheap": 1}, "WithinBand"),
        # never while the engine holds (a starting replica) -> unknown is not idle
        ([v("cheap", 10, 1, ready=False)], IDLE, {"cheap": 1}, "ReplicasStarting"),
        # minReplicas bounds the zero rule: only variants allowing 0 go there
        ([v("cheap", 10, 1), v("dear", 40, 1, min_r=1)], IDLE, {"cheap": 0, "dear": 1}, None),
        ([v("cheap", 10, 2, min_r=1)], IDLE, {"cheap": 1}, "MinReplicas"),
        # --- at zero
        (
            [v("cheap", 10, 0), v("dear", 40, 0)],
            {**ON, "queued": 0.0},
            {"cheap": 0, "dear": 0},
            "ScaledToZero",
        ),
        (
            [v("cheap", 10, 0), v("dear", 40, 0)],
            {**ON, "queued": None},
            {"cheap": 0, "dear": 0},
            "ScaledToZero",
        ),
        # requests queued at the gateway: only the cheapest variant wakes, at once
        (
            [v("cheap", 10, 0), v("dear", 40, 0)],
            {**ON, "queued": 3.0},
            {"cheap": 1, "dear": 0},
            "ScaleFromZero",
        ),
        (
            [v("b", 10, 0), v("a", 10, 0)],
            {**ON, "queued": 1.0},
            {"a": 1, "b": 0},
            "ScaleFromZero",
        ),  # tie: name
        # ... also when scale-to-zero is off (someone scaled the Deployments to 0)
        ([v("cheap", 10, 0), v("dear", 40, 0)], {"queued": 2.0}, {"cheap": 1, "dear": 0}, "ScaleFromZero"),
        # scale-to-zero off and nothing queued: the cheapest keeps one replica (upstream's floor)
        ([v("cheap", 10, 0), v("dear", 40, 0)], {"queued": 0.0}, {"cheap": 1, "dear": 0}, "KeepOneReplica"),
        # minReplicas 1 on a variant at zero: raised, whatever the rule
        ([v("cheap", 10, 0, min_r=1)], {**ON, "queued": 0.0}, {"cheap": 1}, "MinReplicas"),
    ],
)
def test_zero_rules(
    variants: list[Variant], zero: dict[str, Any], desired: dict[str, int], code: str | None
) -> None:
    out = enforce(decide(variants, CapacityConfigSet(), EngineParams()), {("ns", "llama"): ZeroInput(**zero)})
    assert {d.variant.name: d.desired for d in out} == desired
    if code is not None:
        assert {d.code.value for d in out} == {code}, [d.reasons for d in out]


def test_scale_to_zero_reason_and_action() -> None:
    out = enforce(
        decide([v("cheap", 10, 2)], CapacityConfigSet(), EngineParams()),
        {("ns", "llama"): ZeroInput(enabled=True, retention_s=900, requests=0.0)},
    )
    (d,) = out
    assert d.action is Action.SCALE_DOWN and d.code is Reason.SCALED_TO_ZERO
    assert "no successful request in the last 15m" in d.reasons[-1]


def test_unknown_count_is_said() -> None:
    out = enforce(
        decide([v("cheap", 10, 1)], CapacityConfigSet(), EngineParams()),
        {("ns", "llama"): ZeroInput(enabled=True, requests=None, problem="request count query failed: 503")},
    )
    assert "request count unknown (request count query failed: 503), targets kept" in out[0].reasons[-1]


def test_models_are_independent() -> None:
    variants = [v("l", 10, 1), v("q", 10, 0, model="qwen")]
    out = enforce(
        decide(variants, CapacityConfigSet(), EngineParams()),
        {("ns", "llama"): ZeroInput(enabled=True, requests=0.0), ("ns", "qwen"): ZeroInput(queued=4.0)},
    )
    assert {d.variant.name: (d.desired, d.code.value) for d in out} == {
        "l": (0, "ScaledToZero"),
        "q": (1, "ScaleFromZero"),
    }


@pytest.mark.parametrize(
    ("variants", "chosen"),
    [
        ([v("dear", 40, 0), v("cheap", 10, 0)], "cheap"),
        ([v("b", 10, 0), v("a", 10, 0)], "a"),
        ([v("cheap", 10, 0, max_r=0), v("dear", 40, 0)], "dear"),  # maxReplicas 0 never wakes
        ([v("cheap", 10, 0, max_r=0)], None),
    ],
)
def test_wake_choice(variants: list[Variant], chosen: str | None) -> None:
    pick = wake_choice(variants)
    assert (pick.name if pick else None) == chosen


def test_models_at_zero() -> None:
    variants = [v("a", 10, 0), v("b", 40, 1), v("q", 10, 0, model="qwen"), v("r", 20, 0, model="qwen")]
    assert {k: [x.name for x in vs] for k, vs in models_at_zero(variants).items()} == {
        ("ns", "qwen"): ["q", "r"]
    }
