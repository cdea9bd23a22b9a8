"""The saturation engine (pure): per model, across its variants, decide which variant moves by ±1.

Rules (WVA saturation analyzer V1, with the issue's safety additions):
- a replica is *saturated* when kv >= kvCacheThreshold or queue >= queueLengthThreshold;
- spare KV / spare queue are averaged over the *non-saturated* replicas of all variants of the model
  (0 when every replica is saturated);
- scale up when spareKv < kvSpareTrigger or spareQ < queueSpareTrigger: the cheapest variant below its max
  gets +1 (ties: alphabetically first name);
- scale down when at least `minNonSaturatedReplicas` (2) replicas are non-saturated, none is saturated,
  and the load of one removed replica spread over the rest keeps both spares >= their triggers: the most
  expensive variant above its min gets -1 (ties: alphabetically last name);
- at most one variant changes, by one replica, per model and cycle; scale-up wins;
- never act on unknown data (a ready replica without a fresh sample) and hold while replicas are starting;
- every decision ends in `finish`, bounded by the variant's [minReplicas, maxReplicas].
Scale to and from zero run after this engine (`zero.py`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from app.autoscaler.config import CapacityConfig, CapacityConfigSet


class Action(StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    NONE = "none"
    HOLD = "hold"


class Reason(StrEnum):
    """The one-word reason of a decision: the VariantAutoscaling's `OptimizationReady` condition reason,
    the `Reason` printer column, and `reason` in `GET /autoscaler/decisions`."""

    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    WITHIN_BAND = "WithinBand"
    NO_CHANGE = "NoChange"  # another variant of the model moves this cycle
    AT_MAX = "AtMaxReplicas"
    AT_MIN = "AtMinReplicas"
    MIN_REPLICAS = "MinReplicas"  # the decision was raised to spec.minReplicas
    MAX_REPLICAS = "MaxReplicas"  # the decision was lowered to spec.maxReplicas
    METRICS_STALE = "MetricsStale"
    METRICS_MISSING = "MetricsMissing"
    STARTING = "ReplicasStarting"
    NO_REPLICAS = "NoReplicas"
    STABILIZED = "Stabilized"
    SCALED_TO_ZERO = "ScaledToZero"
    SCALE_FROM_ZERO = "ScaleFromZero"
    KEEP_ONE = "KeepOneReplica"


class ReplicaState(StrEnum):
    SATURATED = "saturated"
    OK = "ok"
    UNKNOWN = "unknown"
    STARTING = "starting"


@dataclass(frozen=True)
class ReplicaMetrics:
    """1-min peaks of one replica's vLLM gauges, and how old its newest sample is."""

    kv: float | None
    queue: float | None
    running: float | None = None
    #: seconds since the newest scraped sample; None = no sample at all
    age_s: float | None = 0.0


@dataclass(frozen=True)
class Replica:
    pod: str
    ready: bool
    metrics: ReplicaMetrics | None = None


@dataclass(frozen=True)
class Variant:
    """One VariantAutoscaling: a Deployment of a model on one accelerator, at a cost."""

    name: str
    namespace: str
    model_id: str
    accelerator: str
    cost: float
    #: Deployment status.replicas (else spec.replicas)
    current: int
    #: Deployment status.readyReplicas
    ready: int
    replicas: tuple[Replica, ...] = ()
    min_replicas: int = 1
    max_replicas: int | None = None
    #: the Deployment's name (spec.scaleTargetRef.name); "" = same as the VariantAutoscaling's
    target: str = ""

    @property
    def deployment(self) -> str:
        return self.target or self.name

    @property
    def pending(self) -> int:
        """Replicas the Deployment wants that are not ready yet."""
        return max(0, self.current - self.ready)


@dataclass(frozen=True)
class ModelAnalysis:
    """The model-level numbers every decision of the model is based on."""

    replicas: int
    saturated: int
    non_saturated: int
    spare_kv: float
    spare_queue: float
    should_scale_up: bool
    scale_down_safe: bool


@dataclass(frozen=True)
class Decision:
    """What one variant should have, and why (logged, exported, shown by the demo)."""

    variant: Variant
    desired: int
    action: Action
    reasons: tuple[str, ...]
    analysis: ModelAnalysis | None = None
    code: Reason = Reason.WITHIN_BAND

    @property
    def key(self) -> tuple[str, str]:
        return self.variant.namespace, self.variant.name


@dataclass(frozen=True)
class EngineParams:
    """Engine knobs that are not per-model thresholds."""

    #: a replica whose newest sample is older than this is unknown
    stale_after_s: float = 90.0


@dataclass
class _Model:
    namespace: str
    model_id: str
    variants: list[Variant] = field(default_factory=list)


def classify(replica: Replica, cfg: CapacityConfig, params: EngineParams) -> ReplicaState:
    """Saturated / ok / unknown (no fresh kv *and* queue sample) / starting (not ready)."""
    if not replica.ready:
        return ReplicaState.STARTING
    m = replica.metrics
    if m is None or m.kv is None or m.queue is None or m.age_s is None or m.age_s > params.stale_after_s:
        return ReplicaState.UNKNOWN
    if not (math.isfinite(m.kv) and math.isfinite(m.queue)):
        return ReplicaState.UNKNOWN
    if m.kv >= cfg.kv_cache_threshold or m.queue >= cfg.queue_length_threshold:
        return ReplicaState.SATURATED
    return ReplicaState.OK


def analyze(samples: Sequence[ReplicaMetrics], cfg: CapacityConfig) -> ModelAnalysis:
    """Spare capacity and the up/down conditions over known, ready replicas (the WVA formulas)."""
    t_kv, t_q = cfg.kv_cache_threshold, cfg.queue_length_threshold
    ns_kv = 0.0
    ns_q = 0.0
    n = 0
    saturated = 0
    for m in samples:
        kv = m.kv or 0.0
        q = m.queue or 0.0
        if kv >= t_kv or q >= t_q:
            saturated += 1
            continue
        n += 1
        ns_kv += t_kv - kv
        ns_q += t_q - q
    spare_kv = ns_kv / n if n else 0.0
    spare_q = ns_q / n if n else 0.0
    up = spare_kv < cfg.kv_spare_trigger or spare_q < cfg.queue_spare_trigger
    down = False
    if n >= max(2, cfg.min_non_saturated_replicas) and saturated == 0:
        scale = n / (n - 1)
        kv_after = t_kv - (t_kv - spare_kv) * scale
        q_after = t_q - (t_q - spare_q) * scale
        down = kv_after >= cfg.kv_spare_trigger and q_after >= cfg.queue_spare_trigger
    return ModelAnalysis(
        replicas=len(samples),
        saturated=saturated,
        non_saturated=n,
        spare_kv=spare_kv,
        spare_queue=spare_q,
        should_scale_up=up,
        scale_down_safe=down and not up,
    )


def _clamp(v: Variant, desired: int) -> tuple[int, str | None]:
    lo = max(0, v.min_replicas)
    hi = v.max_replicas
    if desired < lo:
        return lo, f"raised to minReplicas {lo}"
    if hi is not None and desired > hi:
        return hi, f"lowered to maxReplicas {hi}"
    return desired, None


def finish(
    v: Variant,
    desired: int,
    action: Action,
    reasons: list[str],
    a: ModelAnalysis | None,
    code: Reason,
) -> Decision:
    """A decision bounded by the variant's [minReplicas, maxReplicas]: every rule ends here."""
    clamped, why = _clamp(v, desired)
    if why is not None:
        reasons = [*reasons, why]
        code = Reason.MIN_REPLICAS if clamped > desired else Reason.MAX_REPLICAS
        if clamped != v.current:
            action = Action.SCALE_UP if clamped > v.current else Action.SCALE_DOWN
        elif action in (Action.SCALE_UP, Action.SCALE_DOWN):
            action = Action.NONE
    return Decision(variant=v, desired=clamped, action=action, reasons=tuple(reasons), analysis=a, code=code)


@dataclass(frozen=True)
class QueueingInput:
    """For `analyzerName: queueing`: the model's arrival rate and each variant's SLO capacity per replica."""

    rate: float  # req/s over the whole model
    capacity: dict[str, float]  # variant name -> req/s one replica serves within the SLO


def _queueing_choice(
    ordered: Sequence[Variant], q: QueueingInput
) -> tuple[Variant | None, Action, str] | None:
    """±1 from the queueing model, or None when some variant has no capacity figure (fall back)."""
    if any(q.capacity.get(v.name, 0.0) <= 0 for v in ordered):
        return None
    supply = sum(v.current * q.capacity[v.name] for v in ordered)
    facts = f"arrival {q.rate:.2f} req/s, SLO capacity {supply:.2f} req/s"
    if q.rate > supply:
        ups = [
            v for v in ordered if v.pending == 0 and (v.max_replicas is None or v.current < v.max_replicas)
        ]
        if not ups:
            return (
                None,
                Action.NONE,
                f"queueing: scale-up needed but every variant is at maxReplicas: {facts}",
            )
        v = min(ups, key=lambda v: (v.cost / q.capacity[v.name], v.name))
        return v, Action.SCALE_UP, f"queueing: scale up {v.name} (cheapest per req/s): {facts}"
    downs = [v for v in ordered if v.current > max(v.min_replicas, 0)]
    if downs:
        v = max(downs, key=lambda v: (v.cost / q.capacity[v.name], v.name))
        if q.rate <= supply - q.capacity[v.name]:
            return v, Action.SCALE_DOWN, f"queueing: scale down {v.name} (dearest per req/s): {facts}"
    return None, Action.NONE, f"queueing: within SLO capacity: {facts}"


def decide_model(
    variants: Sequence[Variant],
    cfg: CapacityConfig,
    params: EngineParams,
    queueing: QueueingInput | None = None,
) -> list[Decision]:
    """Decisions for every variant of one model (same model_id, same namespace)."""
    ordered = sorted(variants, key=lambda v: v.name)

    def hold(reason: str, code: Reason) -> list[Decision]:
        return [finish(v, v.current, Action.HOLD, [reason], None, code) for v in ordered]

    # 1. hold while replicas are starting (pending, pods not matching the count, or a pod not ready)
    starting = []
    for v in ordered:
        not_ready = sum(1 for r in v.replicas if not r.ready)
        if v.pending or not_ready or len(v.replicas) != v.current:
            starting.append(f"{v.name} starting (ready {v.ready}/{v.current}, pods {len(v.replicas)})")
    if starting:
        return hold("hold: " + "; ".join(starting), Reason.STARTING)
    # 2. never act on unknown data
    samples: list[ReplicaMetrics] = []
    unknown: list[str] = []
    stale = False
    for v in ordered:
        for r in v.replicas:
            if classify(r, cfg, params) is ReplicaState.UNKNOWN:
                unknown.append(r.pod)
                age = None if r.metrics is None else r.metrics.age_s
                stale = stale or (age is not None and age > params.stale_after_s)
            elif r.metrics is not None:
                samples.append(r.metrics)
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        if stale:
            return hold(
                f"hold: metrics older than {params.stale_after_s:g}s for {shown}", Reason.METRICS_STALE
            )
        return hold(f"hold: no fresh metrics for {shown}", Reason.METRICS_MISSING)
    if not samples:
        return hold("hold: model has no running replica", Reason.NO_REPLICAS)
    # 3. analysis over all replicas of the model
    a = analyze(samples, cfg)
    facts = (
        f"spareKv={a.spare_kv:.3f} (trigger {cfg.kv_spare_trigger:g}), spareQ={a.spare_queue:.2f} "
        f"(trigger {cfg.queue_spare_trigger:g}), saturated {a.saturated}/{a.replicas}"
    )
    chosen: Variant | None = None
    action = Action.NONE
    why = f"within band: {facts}"
    code = Reason.WITHIN_BAND
    picked = _queueing_choice(ordered, queueing) if cfg.analyzer == "queueing" and queueing else None
    if picked is not None:
        chosen, action, why = picked
        if action is Action.SCALE_UP:
            code = Reason.SCALE_UP
        elif action is Action.SCALE_DOWN:
            code = Reason.SCALE_DOWN
        elif "maxReplicas" in why:
            code = Reason.AT_MAX
    elif a.should_scale_up:
        ups = [
            v for v in ordered if v.pending == 0 and (v.max_replicas is None or v.current < v.max_replicas)
        ]
        if ups:
            chosen = min(ups, key=lambda v: (v.cost, v.name))
            action, code = Action.SCALE_UP, Reason.SCALE_UP
            why = f"scale up cheapest variant {chosen.name} (cost {chosen.cost:g}): {facts}"
        else:
            why = f"scale-up needed but every variant is at maxReplicas: {facts}"
            code = Reason.AT_MAX
    elif a.scale_down_safe:
        downs = [v for v in ordered if v.current > max(v.min_replicas, 0)]
        if downs:
            chosen = max(downs, key=lambda v: (v.cost, v.name))
            action, code = Action.SCALE_DOWN, Reason.SCALE_DOWN
            why = f"scale down dearest variant above min, {chosen.name} (cost {chosen.cost:g}): {facts}"
        else:
            why = f"scale-down safe but every variant is at minReplicas: {facts}"
            code = Reason.AT_MIN
    out: list[Decision] = []
    for v in ordered:
        if chosen is not None and v.name == chosen.name:
            step = 1 if action is Action.SCALE_UP else -1
            out.append(finish(v, v.current + step, action, [why], a, code))
        else:
            other = Reason.NO_CHANGE if chosen is not None else code
            out.append(finish(v, v.current, Action.NONE, [why], a, other))
    return out


def group_models(variants: Iterable[Variant]) -> dict[tuple[str, str], list[Variant]]:
    """(namespace, model_id) -> its variants: same modelID in a namespace is one model."""
    models: dict[tuple[str, str], list[Variant]] = {}
    for v in variants:
        models.setdefault((v.namespace, v.model_id), []).append(v)
    return models


def decide(
    variants: Iterable[Variant],
    configs: CapacityConfigSet,
    params: EngineParams | None = None,
    queueing: Mapping[tuple[str, str], QueueingInput] | None = None,
) -> list[Decision]:
    """Decisions for every variant of every model, each model with its own (merged) config."""
    params = params or EngineParams()
    out: list[Decision] = []
    for (ns, model_id), group in group_models(variants).items():
        q = queueing.get((ns, model_id)) if queueing else None
        out.extend(decide_model(group, configs.for_model(model_id, ns), params, q))
    return out
