"""Capacity config: parse, validate, merge over default, skip invalid entries, hard-coded fallback."""

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
        ({"any-ns": "model_id: llama\nqueueLengthThreshold: 9"}, "llama", "x", 0.70, 9, 0),
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
