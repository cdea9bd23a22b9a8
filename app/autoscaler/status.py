"""VariantAutoscaling status (pure): what `kubectl get va` and `kubectl describe va` show.

    status:
      currentAlloc: {accelerator, numReplicas}                        # what the Deployment has now
      desiredOptimizedAlloc: {lastRunTime, accelerator, numReplicas}  # WVA's field: what we want
      actuation: {applied}                                            # current == desired
      conditions: TargetResolved, MetricsAvailable, OptimizationReady (metav1.Condition)

`OptimizationReady`'s reason is the decision's one-word reason (ScaleUp, ScaledToZero, MetricsStale…), the
CRD's `Reason` printer column. A status is written only when something a person reads changes (a number, a
condition's status or reason) or the last write is older than the refresh interval, so a steady fleet of
1,000 variants does not cost 33 writes per second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.autoscaler.saturation import Action, Decision, Variant

Obj = dict[str, Any]
MAX_MESSAGE = 1000


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(raw: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _condition(ctype: str, status: str, reason: str, message: str) -> Obj:
    return {"type": ctype, "status": status, "reason": reason, "message": message[:MAX_MESSAGE]}


def metrics_condition(v: Variant, stale_after_s: float, fetch_error: str | None) -> Obj:
    """MetricsAvailable: are the variant's ready replicas reporting fresh kv and queue samples?"""
    ready = [r for r in v.replicas if r.ready]
    if v.current == 0 and not v.replicas:
        return _condition("MetricsAvailable", "Unknown", "NoReplicas", "no replicas: no vLLM metrics to read")
    if not ready:
        return _condition("MetricsAvailable", "Unknown", "ReplicasStarting", "no ready replica yet")
    stale = [
        r.pod
        for r in ready
        if r.metrics is not None and r.metrics.age_s is not None and r.metrics.age_s > stale_after_s
    ]
    missing = [
        r.pod
        for r in ready
        if r.pod not in stale
        and (r.metrics is None or r.metrics.kv is None or r.metrics.queue is None or r.metrics.age_s is None)
    ]
    err = f"; last Prometheus error: {fetch_error}" if fetch_error else ""
    if stale:
        return _condition(
            "MetricsAvailable",
            "False",
            "MetricsStale",
            f"newest sample older than {stale_after_s:g}s for {', '.join(stale[:5])}{err}",
        )
    if missing:
        reason = "PrometheusError" if fetch_error else "MetricsMissing"
        return _condition(
            "MetricsAvailable",
            "False",
            reason,
            f"no vllm:kv_cache_usage_perc / vllm:num_requests_waiting for {', '.join(missing[:5])}{err}",
        )
    return _condition("MetricsAvailable", "True", "MetricsFound", f"{len(ready)} ready replicas reporting")


def variant_status(d: Decision, now: float, stale_after_s: float, fetch_error: str | None) -> Obj:
    """The whole status of one decided variant (lastTransitionTime is filled in by `status_patch`)."""
    v = d.variant
    return {
        "currentAlloc": {"accelerator": v.accelerator, "numReplicas": v.current},
        "desiredOptimizedAlloc": {
            "lastRunTime": rfc3339(now),
            "accelerator": v.accelerator,
            "numReplicas": d.desired,
        },
        "actuation": {"applied": v.current == d.desired},
        "conditions": [
            _condition("TargetResolved", "True", "TargetFound", f"Deployment {v.deployment} found"),
            metrics_condition(v, stale_after_s, fetch_error),
            _condition(
                "OptimizationReady",
                "False" if d.action is Action.HOLD else "True",
                d.code.value,
                "; ".join(d.reasons),
            ),
        ],
    }


def unresolved_status(why: str, now: float) -> Obj:
    """Status of a VariantAutoscaling the engine cannot use (no Deployment, no modelID…)."""
    return {
        "desiredOptimizedAlloc": {"lastRunTime": rfc3339(now)},
        "conditions": [
            _condition("TargetResolved", "False", "TargetNotFound", why),
            _condition("OptimizationReady", "False", "InvalidConfiguration", why),
        ],
    }


def _unchanged(existing: Obj, new: Obj) -> bool:
    """Does `existing` already say everything `new` says (times and messages aside)?"""
    for key, value in new.items():
        if key == "conditions":
            old = {c.get("type"): (c.get("status"), c.get("reason")) for c in existing.get(key) or []}
            if any(old.get(c["type"]) != (c["status"], c["reason"]) for c in value):
                return False
        elif isinstance(value, dict):
            current = existing.get(key) or {}
            if any(current.get(k) != v for k, v in value.items() if k != "lastRunTime"):
                return False
        elif existing.get(key) != value:
            return False
    return True


def status_patch(existing: Obj | None, new: Obj, now: float, refresh_s: float) -> Obj | None:
    """The merge patch writing `new` over the object's `existing` status, or None when nothing a person
    reads changed and the last write is younger than `refresh_s`. A condition keeps its
    lastTransitionTime while its status stays the same (metav1.Condition semantics)."""
    existing = existing or {}
    last = _parse_time((existing.get("desiredOptimizedAlloc") or {}).get("lastRunTime"))
    if _unchanged(existing, new) and last is not None and now - last < refresh_s:
        return None
    before = {c.get("type"): c for c in existing.get("conditions") or []}
    conditions = []
    for c in new.get("conditions") or []:
        old = before.get(c["type"]) or {}
        same = old.get("status") == c["status"] and old.get("lastTransitionTime")
        conditions.append({**c, "lastTransitionTime": old["lastTransitionTime"] if same else rfc3339(now)})
    return {"status": {**new, "conditions": conditions}}
