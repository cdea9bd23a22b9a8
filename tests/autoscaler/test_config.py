"""Capacity config: parse, validate, merge over default, skip invalid entries, hard-coded fallback,
older key names, whole-number fields."""

from __future__ import annotations

from typing import Any

import pytest

from app.autoscaler.config import HARD_DEFAULTS, CapacityConfig, parse_capacity_config

DEFAULT = "kvCacheThreshold: 0.70\nqueueLengthThreshold: 4\nkvSpareTrigger: 0.2\nqueueSpareTrigger: 2\n"
LLAMA = "model_id: llama\nnamespace: inference\nkvCacheThreshold: 0.9\n"


@pytest.mark.parametrize(
    ("data", "source", "kv", "q", "kv_spare", "q_spare", "n_errors"),
    [
        (None, "hard-coded", 0.80, 5, 0.10, 3, 1),
        ({}, "hard-coded", 0.80, 5, 0.10, 3, 1),
        ({"default": DEFAULT}, "configmap", 0.70, 4, 0.2, 2, 0),
        ({"default": "kvCacheThreshold: 0.9"}, "configmap", 0.90, 5, 0.10, 3, 0),
        ({"default": "kvCacheThreshold: 1.5"}, "hard-coded", 0.80, 5, 0.10, 3, 2),
        ({"default": "kvCacheThreshold: 0.05"}, "hard-coded", 0.80, 5, 0.10, 3, 2),  # < kvSpareTrigger
        ({"default": "queueLengthThreshold: -1"}, "hard-coded", 0.80, 5, 0.10, 3, 2),
        ({"default": "kvSpareTrigger: -0.1"}, "hard-coded", 0.80, 5, 0.10, 3, 2),
        ({"default": "queueSpareTrigger: -3"}, "hard-coded", 0.80, 5, 0.10, 3, 2),
        ({"default": "kvCacheThreshold: high"}, "hard-coded", 0.80, 5, 0.10, 3, 2),
        ({"default": "kvCacheThreshold: [1"}, "hard-coded", 0.80, 5, 0.10, 3, 2),  # bad YAML
        ({"default": "- a list"}, "hard-coded", 0.80, 5, 0.10, 3, 2),
        ({"default": "bogus: 1"}, "hard-coded", 0.80, 5, 0.10, 3, 2),
        ({"default": "enableLimiter: true\nkvCacheThreshold: 0.85"}, "configmap", 0.85, 5, 0.10, 3, 0),
        ({"default": {"kvCacheThreshold": "0.6"}}, "configmap", 0.6, 5, 0.10, 3, 0),  # already parsed
    ],
)
def test_default_entry(
    data: dict[str, Any] | None,
    source: str,
    kv: float,
    q: float,
    kv_spare: float,
    q_spare: float,
    n_errors: int,
) -> None:
    cfgs = parse_capacity_config(data)
    d = cfgs.default
    assert (cfgs.default_source, d.kv_cache_threshold, d.queue_length_threshold) == (source, kv, q)
    assert (d.kv_spare_trigger, d.queue_spare_trigger) == (kv_spare, q_spare)
    assert len(cfgs.errors) == n_errors, cfgs.errors


@pytest.mark.parametrize(
    ("overrides", "model", "ns", "expected_kv", "expected_q", "n_errors"),
    [
        ({"llama": LLAMA}, "llama", "inference", 0.9, 4, 0),  # merged over default: q from default
        ({"llama": LLAMA}, "llama", "other", 0.70, 4, 0),  # namespace scoped
        ({"llama": LLAMA}, "qwen", "inference", 0.70, 4, 0),
        # an override without namespace would match every namespace: rejected, default applies
        ({"any-ns": "model_id: llama\nqueueLengthThreshold: 9"}, "llama", "x", 0.70, 4, 1),
        ({"any-ns": "model_id: llama\nqueueLengthThreshold: 9"}, "llama", "inference", 0.70, 4, 1),
        (
            {"bad": "model_id: llama\nnamespace: inference\nkvCacheThreshold: 0.1"},
            "llama",
            "inference",
            0.70,
            4,
            2,
        ),
        ({"no-model": "kvCacheThreshold: 0.9"}, "llama", "inference", 0.70, 4, 1),
        ({"a": LLAMA, "b": LLAMA.replace("0.9", "0.95")}, "llama", "inference", 0.9, 4, 1),  # first key wins
    ],
)
def test_overrides_merge_over_default(
    overrides: dict[str, str], model: str, ns: str, expected_kv: float, expected_q: float, n_errors: int
) -> None:
    cfgs = parse_capacity_config({"default": DEFAULT, **overrides})
    cfg = cfgs.for_model(model, ns)
    assert (cfg.kv_cache_threshold, cfg.queue_length_threshold) == (expected_kv, expected_q)
    assert len(cfgs.errors) == n_errors, cfgs.errors


def test_override_without_default_merges_over_hard_defaults() -> None:
    cfgs = parse_capacity_config({"llama": LLAMA})
    assert cfgs.for_model("llama", "inference") == CapacityConfig(kv_cache_threshold=0.9)
    assert cfgs.default == HARD_DEFAULTS


def test_queueing_fields() -> None:
    cfgs = parse_capacity_config({"default": "analyzerName: queueing\nttftSloMs: 500\nitlSloMs: 50"})
    assert (cfgs.default.analyzer, cfgs.default.ttft_slo_ms, cfgs.default.itl_slo_ms) == ("queueing", 500, 50)
    bad = parse_capacity_config({"default": "analyzerName: magic"})
    assert bad.default == HARD_DEFAULTS and bad.errors


@pytest.mark.parametrize(
    ("entry", "attr", "value", "warning"),
    [
        ("kvCacheUtilizationThreshold: 0.85", "kv_cache_threshold", 0.85, "kvCacheUtilizationThreshold"),
        ("kvCacheUtilThreshold: 0.7", "kv_cache_threshold", 0.7, "kvCacheUtilThreshold"),
        ("queueDepthThreshold: 10", "queue_length_threshold", 10, "queueDepthThreshold"),
        # s slack replicas kept after the step -> the step needs s + 1 non-saturated replicas now
        ("minSlackReplicas: 1", "min_non_saturated_replicas", 2, "minSlackReplicas"),
        ("minSlackReplicas: 3", "min_non_saturated_replicas", 4, "minSlackReplicas"),
        ("minNonSaturatedReplicas: 3", "min_non_saturated_replicas", 3, None),
        ("queueLengthThreshold: 5.5", "queue_length_threshold", 5.5, None),  # WVA's float64: kept
    ],
)
def test_older_keys_are_mapped_with_a_warning(
    entry: str, attr: str, value: float, warning: str | None
) -> None:
    for key, data in (
        ("default", {"default": entry}),
        ("llama", {"llama": f"model_id: llama\nnamespace: inference\n{entry}"}),
    ):
        cfgs = parse_capacity_config(data)
        cfg = cfgs.default if key == "default" else cfgs.for_model("llama", "inference")
        assert getattr(cfg, attr) == value
        assert not [e for e in cfgs.errors if key in e], cfgs.errors
        if warning is None:
            assert cfgs.warnings == ()
        else:
            (w,) = cfgs.warnings
            assert f"entry {key!r}" in w and warning in w and "deprecated" in w


def test_older_key_entry_from_the_issue_is_no_longer_dropped() -> None:
    cfgs = parse_capacity_config(
        {"default": "kvCacheUtilizationThreshold: 0.85\nqueueDepthThreshold: 10\nminSlackReplicas: 1\n"}
    )
    assert cfgs.default_source == "configmap" and cfgs.errors == ()
    d = cfgs.default
    assert (d.kv_cache_threshold, d.queue_length_threshold, d.min_non_saturated_replicas) == (0.85, 10, 2)
    assert len(cfgs.warnings) == 3


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("minSlackReplicas: 5.5", "whole number"),
        ("queueDepthThreshold: 5.5", "whole number"),
        ("minNonSaturatedReplicas: 2.5", "whole number"),
        ("minNonSaturatedReplicas: 1", ">= 2"),
        ("minSlackReplicas: 0", ">= 1"),
        ("minSlackReplicas: true", "must be a number"),
        ("kvCacheThreshold: 0.8\nkvCacheUtilizationThreshold: 0.9", "both kvCacheThreshold"),
        ("kvCacheUtilizationThreshold: 1.5", "kvCacheThreshold must be in [0, 1]"),
    ],
)
def test_invalid_entries_are_skipped_whole(entry: str, problem: str) -> None:
    cfgs = parse_capacity_config({"default": entry})
    assert cfgs.default == HARD_DEFAULTS and cfgs.default_source == "hard-coded"
    assert any(problem in e for e in cfgs.errors), cfgs.errors
    over = parse_capacity_config({"default": DEFAULT, "x": f"model_id: llama\nnamespace: inference\n{entry}"})
    assert "x" not in str(over.overrides) and any("entry 'x'" in e for e in over.errors)
    assert over.for_model("llama", "inference") == over.default


def test_whole_numbers_accept_integral_values() -> None:
    cfgs = parse_capacity_config({"default": "minNonSaturatedReplicas: 3.0\nqueueDepthThreshold: '7'"})
    assert cfgs.default.min_non_saturated_replicas == 3
    assert isinstance(cfgs.default.min_non_saturated_replicas, int)
    assert cfgs.default.queue_length_threshold == 7
