"""Capacity-scaling config: parse, validate and merge the `capacity-scaling-config` ConfigMap (pure).

Format (WVA-compatible): each data key holds a YAML mapping. The `default` key sets the thresholds for every
model; any other key carrying `model_id` (and optionally `namespace`) overrides fields of `default` for that
model. Upstream dropped overrides and hard-coded defaults in late 2025; the issue asks for both, so a missing
ConfigMap or `default` falls back to 0.80 / 5 / 0.10 / 3, and an override merges field by field over
`default`. An invalid entry is reported and skipped, never half-applied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import yaml

Analyzer = Literal["saturation", "queueing"]

#: YAML field name -> dataclass attribute
_FIELDS: dict[str, str] = {
    "kvCacheThreshold": "kv_cache_threshold",
    "queueLengthThreshold": "queue_length_threshold",
    "kvSpareTrigger": "kv_spare_trigger",
    "queueSpareTrigger": "queue_spare_trigger",
    "analyzerName": "analyzer",
    "ttftSloMs": "ttft_slo_ms",
    "itlSloMs": "itl_slo_ms",
}
#: fields upstream WVA entries may carry that we accept and ignore (no error)
_IGNORED = {"model_id", "namespace", "enableLimiter", "scaleUpThreshold", "scaleDownBoundary"}


@dataclass(frozen=True)
class CapacityConfig:
    """Thresholds of the saturation engine for one model (defaults are WVA's)."""

    kv_cache_threshold: float = 0.80
    queue_length_threshold: float = 5.0
    kv_spare_trigger: float = 0.10
    queue_spare_trigger: float = 3.0
    #: `saturation` (default) or `queueing` (decide from the M/M/1/K model; needs a model profile + SLO)
    analyzer: Analyzer = "saturation"
    #: optional SLOs for the model-based view (milliseconds); None = not reported against an SLO
    ttft_slo_ms: float | None = None
    itl_slo_ms: float | None = None

    def validate(self) -> list[str]:
        """Reasons this config is invalid (empty when valid); the WVA `Validate()` rules."""
        errs: list[str] = []
        if not 0.0 <= self.kv_cache_threshold <= 1.0:
            errs.append(f"kvCacheThreshold must be in [0, 1], got {self.kv_cache_threshold}")
        if self.queue_length_threshold < 0:
            errs.append(f"queueLengthThreshold must be >= 0, got {self.queue_length_threshold}")
        if not 0.0 <= self.kv_spare_trigger <= 1.0:
            errs.append(f"kvSpareTrigger must be in [0, 1], got {self.kv_spare_trigger}")
        if self.queue_spare_trigger < 0:
            errs.append(f"queueSpareTrigger must be >= 0, got {self.queue_spare_trigger}")
        if self.kv_cache_threshold < self.kv_spare_trigger:
            errs.append(
                f"kvCacheThreshold ({self.kv_cache_threshold}) must be >= "
                f"kvSpareTrigger ({self.kv_spare_trigger})"
            )
        if self.analyzer not in ("saturation", "queueing"):
            errs.append(f"analyzerName must be 'saturation' or 'queueing', got {self.analyzer!r}")
        for name, value in (("ttftSloMs", self.ttft_slo_ms), ("itlSloMs", self.itl_slo_ms)):
            if value is not None and not value > 0:
                errs.append(f"{name} must be > 0, got {value}")
        return errs


HARD_DEFAULTS = CapacityConfig()


@dataclass(frozen=True)
class CapacityConfigSet:
    """The resolved config: `default`, per-(namespace, model_id) overrides, and what was skipped and why."""

    default: CapacityConfig = HARD_DEFAULTS
    overrides: Mapping[tuple[str, str], CapacityConfig] = field(default_factory=dict)
    #: human-readable problems ("entry 'x': ..."), one per skipped entry or fallback
    errors: tuple[str, ...] = ()
    #: where `default` came from: `configmap`, or `hard-coded` (missing/invalid)
    default_source: str = "hard-coded"

    def for_model(self, model_id: str, namespace: str) -> CapacityConfig:
        """Override for (namespace, model_id), else one for model_id in any namespace, else `default`."""
        return self.overrides.get((namespace, model_id)) or self.overrides.get(("", model_id)) or self.default


def _entry_fields(key: str, raw: Any) -> tuple[dict[str, Any], list[str]]:
    """Typed field values of one entry (only the fields it sets) and its errors."""
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            return {}, [f"entry {key!r}: not valid YAML: {str(exc).splitlines()[0]}"]
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return {}, [f"entry {key!r}: expected a mapping, got {type(raw).__name__}"]
    values: dict[str, Any] = {}
    errs: list[str] = []
    for name, value in raw.items():
        attr = _FIELDS.get(str(name))
        if attr is None:
            if name not in _IGNORED:
                errs.append(f"entry {key!r}: unknown field {name!r}")
            continue
        if attr == "analyzer":
            values[attr] = str(value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            errs.append(f"entry {key!r}: {name} must be a number, got {value!r}")
            continue
        try:
            num = float(value)
        except ValueError:
            errs.append(f"entry {key!r}: {name} must be a number, got {value!r}")
            continue
        if not math.isfinite(num):
            errs.append(f"entry {key!r}: {name} must be finite, got {value!r}")
            continue
        values[attr] = num
    return values, errs


def _scope(raw: Any) -> tuple[str, str] | None:
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError:
            return None
    if not isinstance(raw, Mapping) or not raw.get("model_id"):
        return None
    return str(raw.get("namespace") or ""), str(raw["model_id"])


def parse_capacity_config(data: Mapping[str, Any] | None) -> CapacityConfigSet:
    """Resolve a ConfigMap's `data` (None when the ConfigMap is missing) into a config set.

    `default` is validated alone; each override is validated after merging over the resolved default,
    because a partial override (only `kvCacheThreshold: 0.05`) can break a cross-field rule. Duplicate
    overrides for one model: the lexicographically first key wins (as WVA does for scale-to-zero).
    """
    if data is None:
        return CapacityConfigSet(errors=("ConfigMap not found: using hard-coded defaults",))
    errors: list[str] = []
    default = HARD_DEFAULTS
    source = "hard-coded"
    if "default" in data:
        values, errs = _entry_fields("default", data["default"])
        candidate = replace(HARD_DEFAULTS, **values) if not errs else None
        errs = errs or (candidate.validate() if candidate else [])
        if candidate is not None and not errs:
            default, source = candidate, "configmap"
        else:
            errors.extend(e if e.startswith("entry ") else f"entry 'default': {e}" for e in errs)
            errors.append("entry 'default' skipped: using hard-coded defaults")
    else:
        errors.append("no 'default' entry: using hard-coded defaults")
    overrides: dict[tuple[str, str], CapacityConfig] = {}
    for key in sorted(k for k in data if k != "default"):
        raw = data[key]
        scope = _scope(raw)
        if scope is None:
            errors.append(f"entry {key!r}: skipped, an override needs model_id")
            continue
        if scope in overrides:
            errors.append(f"entry {key!r}: skipped, model {scope[1]!r} already overridden by an earlier key")
            continue
        values, errs = _entry_fields(key, raw)
        merged = replace(default, **values) if not errs else None
        errs = errs or [f"entry {key!r}: {e}" for e in (merged.validate() if merged else [])]
        if merged is None or errs:
            errors.extend(errs)
            errors.append(f"entry {key!r} skipped")
            continue
        overrides[scope] = merged
    return CapacityConfigSet(
        default=default, overrides=overrides, errors=tuple(errors), default_source=source
    )


def unreadable_entries(data: Mapping[str, Any] | None) -> list[str]:
    """Entries that are not YAML at all: such a ConfigMap is a broken edit, and the previous config should
    stay in force (an entry that parses but breaks a rule is skipped by `parse_capacity_config`)."""
    out = []
    for key, raw in sorted((data or {}).items()):
        if isinstance(raw, str):
            try:
                yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                out.append(f"entry {key!r}: not valid YAML: {str(exc).splitlines()[0]}")
    return out


def config_fields() -> list[str]:
    """YAML field names this config understands (for docs and error messages)."""
    names = {f.name for f in fields(CapacityConfig)}
    return [k for k, v in _FIELDS.items() if v in names]
