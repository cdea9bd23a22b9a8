"""Scale to zero and back (pure): WVA's `wva-model-scale-to-zero-config`, the rules applied after the
saturation engine, and which variant wakes.

Config (WVA format): each data key is a YAML mapping with `enable_scale_to_zero` (bool) and
`retention_period` (Go duration, default 10m, > 0). `default` applies to every model; any other key carries
`model_id` (and, our extension, optionally `namespace` to narrow it). Precedence for each field: model entry
> `default` > environment > off (a model entry that leaves a field out inherits it). Duplicate model entries:
the lexicographically first key wins, as upstream.

Rules, per model, after the saturation engine (upstream's enforcer plus the scale-from-zero engine):
- all variants at 0 and requests queued at the gateway -> the cheapest variant (cost, then name) gets 1;
- all variants at 0, nothing queued, scale-to-zero on -> stay at 0;
- scale-to-zero on and no successful request in the retention window -> every variant 0; an unknown count
  (query failed or no series) keeps the targets; never while the engine holds (unknown data, starting pods);
- scale-to-zero off and every target 0 -> the cheapest variant keeps 1;
- every result is bounded by the variant's [minReplicas, maxReplicas] (minReplicas 0 allows zero).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from app.autoscaler.saturation import Action, Decision, Reason, Variant, finish, group_models

CONFIGMAP = "wva-model-scale-to-zero-config"
DEFAULT_RETENTION_S = 600.0

_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds of a Go `time.ParseDuration` string ("10m", "1h30m", "1.5h", "300ms"); else ValueError."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ValueError(f"not a Go duration (e.g. 10m, 1h30m, 90s): {text!r}")
    return sign * total


def prom_duration(seconds: float) -> str:
    """A Prometheus range for `seconds` (whole seconds when exact, else milliseconds)."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class ZeroEntry:
    """One ConfigMap entry; None = not set here (inherit)."""

    enabled: bool | None = None
    retention_s: float | None = None


@dataclass(frozen=True)
class ScaleToZeroConfig:
    default: ZeroEntry = ZeroEntry()
    #: (namespace or "" for every namespace, model_id) -> entry
    models: Mapping[tuple[str, str], ZeroEntry] = field(default_factory=dict)
    #: the environment's switch (setting `scale_to_zero`, else WVA_SCALE_TO_ZERO)
    env_enabled: bool = False
    errors: tuple[str, ...] = ()

    def _chain(self, model_id: str, namespace: str) -> list[ZeroEntry]:
        chain = [self.models.get((namespace, model_id)), self.models.get(("", model_id)), self.default]
        return [e for e in chain if e is not None]

    def enabled(self, model_id: str, namespace: str) -> bool:
        for entry in self._chain(model_id, namespace):
            if entry.enabled is not None:
                return entry.enabled
        return self.env_enabled

    def retention_s(self, model_id: str, namespace: str) -> float:
        for entry in self._chain(model_id, namespace):
            if entry.retention_s is not None:
                return entry.retention_s
        return DEFAULT_RETENTION_S


def _entry(key: str, raw: object) -> tuple[ZeroEntry, dict[str, object], list[str]]:
    """The entry, its raw mapping and its problems (an invalid field is dropped: the entry inherits it)."""
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            return ZeroEntry(), {}, [f"entry {key!r}: not valid YAML: {str(exc).splitlines()[0]}"]
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        return ZeroEntry(), {}, [f"entry {key!r}: expected a mapping, got {type(raw).__name__}"]
    errs: list[str] = []
    for name in raw:
        if name not in ("enable_scale_to_zero", "retention_period", "model_id", "namespace"):
            errs.append(f"entry {key!r}: unknown field {name!r}")
    enabled = raw.get("enable_scale_to_zero")
    if enabled is not None and not isinstance(enabled, bool):
        errs.append(f"entry {key!r}: enable_scale_to_zero must be true or false, got {enabled!r}")
        enabled = None
    retention: float | None = None
    period = raw.get("retention_period")
    if period is not None:
        try:
            retention = parse_go_duration(str(period))
            if retention <= 0:
                raise ValueError(f"must be > 0, got {period!r}")
        except ValueError as exc:
            errs.append(f"entry {key!r}: retention_period {exc}")
            retention = None
    return ZeroEntry(enabled, retention), dict(raw), errs


def parse_scale_to_zero_config(
    data: Mapping[str, object] | None, env_enabled: bool = False
) -> ScaleToZeroConfig:
    """Resolve the ConfigMap's `data` (None: no ConfigMap) into the config; problems are reported, and the
    field at fault falls back to the next level of precedence (as upstream)."""
    if not data:
        return ScaleToZeroConfig(env_enabled=env_enabled)
    errors: list[str] = []
    default = ZeroEntry()
    models: dict[tuple[str, str], ZeroEntry] = {}
    for key in sorted(data):
        entry, raw, errs = _entry(key, data[key])
        errors.extend(errs)
        if key == "default":
            default = entry
            continue
        model_id = str(raw.get("model_id") or "")
        if not model_id:
            if raw or not errs:
                errors.append(f"entry {key!r}: skipped, a model entry needs model_id")
            continue
        scope = (str(raw.get("namespace") or ""), model_id)
        if scope in models:
            errors.append(f"entry {key!r}: skipped, model {model_id!r} already set by an earlier key")
            continue
        models[scope] = entry
    return ScaleToZeroConfig(default, models, env_enabled, tuple(errors))


@dataclass(frozen=True)
class ZeroInput:
    """What the zero rules need to know about one model this cycle."""

    enabled: bool = False
    retention_s: float = DEFAULT_RETENTION_S
    #: sum(increase(vllm:request_success_total[retention])); None = query failed or no series
    requests: float | None = None
    #: requests waiting in the gateway's flow-control queue; None = unknown
    queued: float | None = None
    #: why `requests` / `queued` are unknown (shown in the reasons)
    problem: str | None = None


#: decisions with their own timing (retention window, queued requests): not delayed by stabilisation
UNSTABILISED = frozenset({Reason.SCALED_TO_ZERO, Reason.SCALE_FROM_ZERO, Reason.KEEP_ONE})


def wake_choice(variants: Iterable[Variant]) -> Variant | None:
    """The variant that wakes a model from zero: the cheapest (then alphabetically first) allowed >= 1."""
    allowed = [v for v in variants if v.max_replicas is None or v.max_replicas >= 1]
    return min(allowed, key=lambda v: (v.cost, v.name)) if allowed else None


def at_zero(variants: Sequence[Variant]) -> bool:
    return bool(variants) and all(v.current == 0 for v in variants)


def models_at_zero(variants: Iterable[Variant]) -> dict[tuple[str, str], list[Variant]]:
    """(namespace, model_id) -> variants, for the models whose every variant has 0 replicas."""
    return {k: vs for k, vs in group_models(variants).items() if at_zero(vs)}


def _action(current: int, desired: int) -> Action:
    if desired > current:
        return Action.SCALE_UP
    return Action.SCALE_DOWN if desired < current else Action.NONE


def _one_variant(ds: Sequence[Decision], pick: Variant, code: Reason, why: str) -> list[Decision]:
    """`pick` gets 1 replica, every other variant of the model 0 (then each is bounded by min/max)."""
    out = []
    for d in ds:
        v = d.variant
        n, text = (1, why) if v.name == pick.name else (0, f"{why}; this variant stays at 0")
        out.append(finish(v, n, _action(v.current, n), [text], None, code))
    return out


def _human(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def enforce_model(ds: Sequence[Decision], z: ZeroInput) -> list[Decision]:
    """The zero rules for one model's decisions (see the module doc)."""
    variants = [d.variant for d in ds]
    if not ds:
        return []
    if at_zero(variants):
        pick = wake_choice(variants)
        if z.queued is not None and z.queued > 0 and pick is not None:
            why = (
                f"scale from zero: {z.queued:g} requests queued at the gateway, "
                f"cheapest variant {pick.name} wakes"
            )
            return _one_variant(ds, pick, Reason.SCALE_FROM_ZERO, why)
        if z.enabled:
            queue = "queue unknown" if z.queued is None else "nothing queued at the gateway"
            why = f"scaled to zero: no replicas, {queue}"
            if z.problem:
                why += f" ({z.problem})"
            return [finish(d.variant, 0, Action.NONE, [why], None, Reason.SCALED_TO_ZERO) for d in ds]
        if pick is not None:
            why = f"scale-to-zero is off for this model: cheapest variant {pick.name} keeps one replica"
            return _one_variant(ds, pick, Reason.KEEP_ONE, why)
        return list(ds)
    if not z.enabled:
        if sum(d.desired for d in ds) == 0:
            pick = wake_choice(variants)
            if pick is not None:
                why = f"scale-to-zero is off for this model: cheapest variant {pick.name} keeps one replica"
                return _one_variant(ds, pick, Reason.KEEP_ONE, why)
        return list(ds)
    if any(d.action is Action.HOLD for d in ds):
        return list(ds)  # never act on unknown data: the hold's reason already says why
    if z.requests is None:
        note = f"scale-to-zero: request count unknown ({z.problem or 'no series'}), targets kept"
        return [_with_reason(d, note) for d in ds]
    if z.requests > 0:
        return list(ds)
    why = f"scaled to zero: no successful request in the last {_human(z.retention_s)}"
    return [
        finish(d.variant, 0, _action(d.variant.current, 0), [why], d.analysis, Reason.SCALED_TO_ZERO)
        for d in ds
    ]


def _with_reason(d: Decision, note: str) -> Decision:
    return Decision(d.variant, d.desired, d.action, (*d.reasons, note), d.analysis, d.code)


def enforce(decisions: Iterable[Decision], inputs: Mapping[tuple[str, str], ZeroInput]) -> list[Decision]:
    """The zero rules for every model; a model without input gets the defaults (scale-to-zero off)."""
    by_model: dict[tuple[str, str], list[Decision]] = {}
    for d in decisions:
        by_model.setdefault((d.variant.namespace, d.variant.model_id), []).append(d)
    out: list[Decision] = []
    for key, ds in by_model.items():
        out.extend(enforce_model(ds, inputs.get(key, ZeroInput())))
    return out
