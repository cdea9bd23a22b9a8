"""Capacity-scaling config: parse, validate and merge the `capacity-scaling-config` ConfigMap (pure).

Format (WVA-compatible): each data key holds a YAML mapping. The `default` key sets the thresholds for every
model; any other key carrying `model_id` and `namespace` overrides fields of `default` for that model in that
namespace (an override without `namespace` would match the model everywhere: it is rejected). Upstream
dropped overrides and hard-coded defaults in late 2025; the issue asks for both, so a missing ConfigMap or
`default` falls back to 0.80 / 5 / 0.10 / 3, and an override merges field by field over `default`. An invalid
entry is reported and skipped, never half-applied. Older key names users still write (WVA's generated docs,
EPP's saturationDetector) are read as today's keys, with a deprecation warning naming the entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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
    "minNonSaturatedReplicas": "min_non_saturated_replicas",
}
#: fields upstream WVA entries may carry that we accept and ignore (no error)
_IGNORED = {"model_id", "namespace", "enableLimiter", "scaleUpThreshold", "scaleDownBoundary"}
#: older key -> (today's key, value conversion). `kvCacheUtilizationThreshold`, `queueDepthThreshold` and
#: `minSlackReplicas` are the names of WVA's generated docs (Jan 2026); `kvCacheUtilThreshold` is EPP's.
#: `minSlackReplicas: s` keeps s non-saturated replicas *after* a scale-down step, i.e. the step needs s + 1
#: of them now (WVA's built-in 2 = the docs' example `minSlackReplicas: 1`).
_OLDER: dict[str, tuple[str, Callable[[float], float]]] = {
    "kvCacheUtilizationThreshold": ("kvCacheThreshold", lambda v: v),
    "kvCacheUtilThreshold": ("kvCacheThreshold", lambda v: v),
    "queueDepthThreshold": ("queueLengthThreshold", lambda v: v),
    "minSlackReplicas": ("minNonSaturatedReplicas", lambda v: v + 1),
}
#: keys whose value counts something: 5.5 is an error, not rounded
_INTEGER = {"minNonSaturatedReplicas", "minSlackReplicas", "queueDepthThreshold"}


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
    #: scale down only while at least this many replicas are non-saturated (WVA's
    #: MinNonSaturatedReplicasForScaleDown; the one-replica-removed arithmetic needs >= 2)
    min_non_saturated_replicas: int = 2

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
        if self.min_non_saturated_replicas < 2:
            errs.append(f"minNonSaturatedReplicas must be >= 2, got {self.min_non_saturated_replicas}")
        return errs


HARD_DEFAULTS = CapacityConfig()


@dataclass(frozen=True)
class CapacityConfigSet:
    """The resolved config: `default`, per-(namespace, model_id) overrides, and what was skipped and why."""

    default: CapacityConfig = HARD_DEFAULTS
    overrides: Mapping[tuple[str, str], CapacityConfig] = field(default_factory=dict)
    #: human-readable problems ("entry 'x': ..."), one per skipped entry or fallback
    errors: tuple[str, ...] = ()
    #: applied, but should be changed (older key names)
    warnings: tuple[str, ...] = ()
    #: where `default` came from: `configmap`, or `hard-coded` (missing/invalid)
    default_source: str = "hard-coded"

    def for_model(self, model_id: str, namespace: str) -> CapacityConfig:
        """The override for (namespace, model_id), else `default`."""
        return self.overrides.get((namespace, model_id)) or self.default


def _load(key: str, raw: Any) -> tuple[Mapping[str, Any] | None, str | None]:
    """One entry as a mapping (a ConfigMap value is YAML text; tests may pass it parsed), or why not."""
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            return None, f"entry {key!r}: not valid YAML: {str(exc).splitlines()[0]}"
    if raw is None:
        return {}, None
    if not isinstance(raw, Mapping):
        return None, f"entry {key!r}: expected a mapping, got {type(raw).__name__}"
    return raw, None


def _number(key: str, name: str, value: Any) -> tuple[float | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, f"entry {key!r}: {name} must be a number, got {value!r}"
    try:
        num = float(value)
    except ValueError:
        return None, f"entry {key!r}: {name} must be a number, got {value!r}"
    if not math.isfinite(num):
        return None, f"entry {key!r}: {name} must be finite, got {value!r}"
    if name in _INTEGER and not num.is_integer():
        return None, f"entry {key!r}: {name} must be a whole number, got {value!r}"
    return num, None


def _entry_fields(key: str, raw: Any) -> tuple[dict[str, Any], list[str], list[str]]:
    """Typed field values of one entry (only the fields it sets), its errors and its warnings."""
    entry, err = _load(key, raw)
    if entry is None:
        return {}, [err or f"entry {key!r}: unreadable"], []
    values: dict[str, Any] = {}
    errs: list[str] = []
    warns: list[str] = []
    for name, value in entry.items():
        name = str(name)
        older = _OLDER.get(name)
        today = older[0] if older else name
        attr = _FIELDS.get(today)
        if attr is None:
            if name not in _IGNORED:
                errs.append(f"entry {key!r}: unknown field {name!r}")
            continue
        if older is not None and today in entry:
            errs.append(f"entry {key!r}: both {today} and its older name {name} are set; keep {today}")
            continue
        if attr == "analyzer":
            values[attr] = str(value)
            continue
        num, err = _number(key, name, value)
        if num is None:
            errs.append(err or f"entry {key!r}: {name} is invalid")
            continue
        if older is not None:
            if name == "minSlackReplicas" and num < 1:
                errs.append(f"entry {key!r}: minSlackReplicas must be >= 1, got {value!r}")
                continue
            num = older[1](num)
            warns.append(
                f"entry {key!r}: {name} is deprecated, read as {today}: {num:g}; rename it to {today}"
            )
        values[attr] = int(num) if today in _INTEGER else num
    return values, errs, warns


def _scope(raw: Any) -> tuple[str, str] | None:
    entry, _ = _load("", raw)
    if not entry or not entry.get("model_id"):
        return None
    return str(entry.get("namespace") or ""), str(entry["model_id"])


def parse_capacity_config(data: Mapping[str, Any] | None) -> CapacityConfigSet:
    """Resolve a ConfigMap's `data` (None when the ConfigMap is missing) into a config set.

    `default` is validated alone; each override is validated after merging over the resolved default,
    because a partial override (only `kvCacheThreshold: 0.05`) can break a cross-field rule. Duplicate
    overrides for one model: the lexicographically first key wins (as WVA does for scale-to-zero).
    """
    if data is None:
        return CapacityConfigSet(errors=("ConfigMap not found: using hard-coded defaults",))
    errors: list[str] = []
    warnings: list[str] = []
    default = HARD_DEFAULTS
    source = "hard-coded"
    if "default" in data:
        values, errs, warns = _entry_fields("default", data["default"])
        candidate = replace(HARD_DEFAULTS, **values) if not errs else None
        errs = errs or (candidate.validate() if candidate else [])
        if candidate is not None and not errs:
            default, source = candidate, "configmap"
            warnings.extend(warns)
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
        if not scope[0]:
            errors.append(
                f"entry {key!r}: skipped, an override needs namespace "
                f"(without it, model {scope[1]!r} would match in every namespace)"
            )
            continue
        if scope in overrides:
            errors.append(f"entry {key!r}: skipped, model {scope[1]!r} already overridden by an earlier key")
            continue
        values, errs, warns = _entry_fields(key, raw)
        merged = replace(default, **values) if not errs else None
        errs = errs or [f"entry {key!r}: {e}" for e in (merged.validate() if merged else [])]
        if merged is None or errs:
            errors.extend(errs)
            errors.append(f"entry {key!r} skipped")
            continue
        overrides[scope] = merged
        warnings.extend(warns)
    return CapacityConfigSet(
        default=default,
        overrides=overrides,
        errors=tuple(errors),
        warnings=tuple(warnings),
        default_source=source,
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
