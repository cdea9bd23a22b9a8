"""The autoscaler's Prometheus metrics (on app.metrics.REGISTRY), shaped for HPA external metrics and KEDA.

`wva_*` names and labels are kept from WVA so existing prometheus-adapter rules and ScaledObjects carry over;
`model_id` is added. Series of deleted variants are removed, not left at their last value.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from app.autoscaler.saturation import Action, Decision, Reason
from app.metrics import REGISTRY

LABELS = ["variant_name", "namespace", "accelerator_type", "model_id"]

DESIRED = Gauge(
    "wva_desired_replicas", "Replicas the autoscaler wants for a variant", LABELS, registry=REGISTRY
)
CURRENT = Gauge("wva_current_replicas", "Replicas a variant's Deployment has now", LABELS, registry=REGISTRY)
RATIO = Gauge("wva_desired_ratio", "desired / current (desired when current is 0)", LABELS, registry=REGISTRY)
SCALING = Counter(
    "wva_replica_scaling",
    "Scaling decisions (after stabilisation) by direction",
    ["variant_name", "namespace", "direction", "reason"],
    registry=REGISTRY,
)
CYCLE_SECONDS = Histogram(
    "gpu_autoscaler_autoscaler_cycle_seconds",
    "Duration of one autoscaler cycle (inventory, metrics, decisions, export)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
CONFIG_ERRORS = Gauge(
    "gpu_autoscaler_autoscaler_config_errors",
    "Capacity-config entries skipped or fallen back at the last reload",
    registry=REGISTRY,
)
CONFIG_RELOAD_ERRORS = Counter(
    "gpu_autoscaler_config_reload_errors_total",
    "ConfigMap updates that were not YAML: the previous config stayed in force",
    ["configmap"],
    registry=REGISTRY,
)
METRICS_STALE = Gauge(
    "gpu_autoscaler_autoscaler_metrics_stale",
    "1 while the last Prometheus fetch failed: decisions hold their last value until data is fresh again",
    registry=REGISTRY,
)
METRICS_LAST_SUCCESS = Gauge(
    "gpu_autoscaler_autoscaler_metrics_last_success_timestamp_seconds",
    "Unix time of the last Prometheus fetch that succeeded (0: none yet)",
    registry=REGISTRY,
)
VIEW_LABELS = ["variant_name", "namespace", "model_id"]
PRED_TTFT = Gauge(
    "gpu_autoscaler_autoscaler_predicted_ttft_ms",
    "Queueing-model TTFT at current load",
    VIEW_LABELS,
    registry=REGISTRY,
)
PRED_ITL = Gauge(
    "gpu_autoscaler_autoscaler_predicted_itl_ms",
    "Queueing-model ITL at current load",
    VIEW_LABELS,
    registry=REGISTRY,
)
SLO_RATIO = Gauge(
    "gpu_autoscaler_autoscaler_slo_load_ratio",
    "Load per replica / max load meeting the SLO (>= 1: at or past the SLO)",
    VIEW_LABELS,
    registry=REGISTRY,
)


#: `reason` label of wva_replica_scaling_total: which rule moved the variant
_RULE = {
    Reason.SCALED_TO_ZERO: "scale_to_zero",
    Reason.SCALE_FROM_ZERO: "scale_from_zero",
    Reason.KEEP_ONE: "keep_one_replica",
    Reason.MIN_REPLICAS: "min_max",
    Reason.MAX_REPLICAS: "min_max",
}


def ratio(desired: int, current: int) -> float:
    """WVA's wva_desired_ratio: desired/current, or desired when current is 0."""
    return float(desired) if current == 0 else desired / current


class Exporter:
    """Publishes one cycle's decisions; remembers label sets to drop those of vanished variants."""

    def __init__(self) -> None:
        self._published: set[tuple[str, str, str, str]] = set()
        self._view: set[tuple[str, str, str]] = set()

    def _set(self, d: Decision) -> tuple[str, str, str, str]:
        v = d.variant
        labels = (v.name, v.namespace, v.accelerator, v.model_id)
        DESIRED.labels(*labels).set(d.desired)
        CURRENT.labels(*labels).set(v.current)
        RATIO.labels(*labels).set(ratio(d.desired, v.current))
        if d.desired != v.current and d.action in (Action.SCALE_UP, Action.SCALE_DOWN):
            direction = "up" if d.desired > v.current else "down"
            SCALING.labels(v.name, v.namespace, direction, _RULE.get(d.code, "saturation")).inc()
        return labels

    def publish_one(self, d: Decision) -> None:
        """One variant between cycles (a scale from zero): its gauges now, the others untouched."""
        self._published.add(self._set(d))

    def publish(self, decisions: Iterable[Decision]) -> None:
        seen = {self._set(d) for d in decisions}
        for gone in self._published - seen:
            for g in (DESIRED, CURRENT, RATIO):
                g.remove(*gone)
        self._published = seen

    def publish_view(
        self, rows: Iterable[tuple[str, str, str, float | None, float | None, float | None]]
    ) -> None:
        """(variant, namespace, model_id, ttft_ms, itl_ms, slo_load_ratio) rows of the model-based view."""
        seen: set[tuple[str, str, str]] = set()
        for name, ns, model, ttft, itl, slo in rows:
            key = (name, ns, model)
            for gauge, value in ((PRED_TTFT, ttft), (PRED_ITL, itl), (SLO_RATIO, slo)):
                if value is None:
                    if key in self._view:
                        with contextlib.suppress(KeyError):
                            gauge.remove(*key)
                else:
                    gauge.labels(*key).set(value)
            seen.add(key)
        for gone in self._view - seen:
            for gauge in (PRED_TTFT, PRED_ITL, SLO_RATIO):
                with contextlib.suppress(KeyError):
                    gauge.remove(*gone)
        self._view = seen
