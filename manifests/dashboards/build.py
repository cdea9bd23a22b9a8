"""Writes the Grafana dashboards of gpu-autoscaler (`*.json` beside this file) from one description each.

    python manifests/dashboards/build.py          # (re)write the JSON files
    python manifests/dashboards/build.py --check  # exit 1 when a file differs from what this writes

Grafana dashboard JSON model (schemaVersion 39): a `datasource` variable (any Prometheus), the variables each
dashboard filters on, and panels whose targets are PromQL over the records of
manifests/monitoring/prometheusrule-cost.yaml, the service's own series and dcgm-exporter's. The files are
shipped as the ConfigMap `gpu-autoscaler-dashboards` (kustomization.yaml beside this file), labelled
`grafana_dashboard: "1"` for the Grafana sidecar. tests/monitoring/test_dashboards.py runs every panel's
query against a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}


@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False
    interval: str = ""
    #: False for a query that may rightly return nothing (e.g. alerts that are not firing)
    expect_data: bool = True

    def json(self, ref: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "datasource": DS,
            "refId": ref,
            "expr": self.expr,
            "legendFormat": self.legend or "__auto",
            "instant": self.instant,
            "range": not self.instant,
            "editorMode": "code",
        }
        if self.table:
            out["format"] = "table"
        if self.interval:
            out["interval"] = self.interval
        return out


@dataclass
class Panel:
    type: str  # stat | timeseries | heatmap | table | bargauge | barchart
    title: str
    description: str
    targets: list[Target]
    w: int = 12
    h: int = 8
    unit: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    thresholds: list[tuple[float | None, str]] | None = None
    transformations: list[dict[str, Any]] = field(default_factory=list)
    min: float | None = None
    max: float | None = None


@dataclass
class Var:
    name: str
    query: str  # label_values(...)
    label: str = ""
    multi: bool = True


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    tags: list[str]
    panels: list[Panel]
    variables: list[Var] = field(default_factory=list)
    time_from: str = "now-24h"


def _thresholds(steps: list[tuple[float | None, str]] | None) -> dict[str, Any]:
    steps = steps or [(None, "green")]
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def _panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"thresholds": _thresholds(p.thresholds)}
    if p.unit:
        defaults["unit"] = p.unit
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    if p.custom:
        defaults["custom"] = p.custom
    if p.type in ("timeseries", "barchart"):
        defaults.setdefault("color", {"mode": "palette-classic"})
    elif p.thresholds:
        defaults["color"] = {"mode": "thresholds"}
    out: dict[str, Any] = {
        "id": pid,
        "type": p.type,
        "title": p.title,
        "description": p.description,
        "datasource": DS,
        "gridPos": {"h": p.h, "w": p.w, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": p.options,
        "targets": [t.json(chr(ord("A") + i)) for i, t in enumerate(p.targets)],
    }
    if p.transformations:
        out["transformations"] = p.transformations
    return out


def _variable(v: Var) -> dict[str, Any]:
    return {
        "type": "query",
        "name": v.name,
        "label": v.label or v.name,
        "datasource": DS,
        "definition": v.query,
        "query": {"query": v.query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "refresh": 2,
        "multi": v.multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
        "options": [],
        "regex": "",
    }


def render(d: Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model; panels flow left to right, 24 columns a row."""
    panels = []
    x = y = row_h = 0
    for i, p in enumerate(d.panels, start=1):
        if x + p.w > 24:
            x, y, row_h = 0, y + row_h, 0
        panels.append(_panel(p, i, x, y))
        x += p.w
        row_h = max(row_h, p.h)
    datasource = {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "options": [],
        "regex": "",
    }
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": ["gpu-autoscaler", *d.tags],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "timezone": "browser",
        "refresh": "1m",
        "time": {"from": d.time_from, "to": "now"},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": [datasource, *(_variable(v) for v in d.variables)]},
        "panels": panels,
    }


# -- the dashboards -----------------------------------------------------------------------------------------
STAT = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value"}
LEGEND_TABLE = {
    "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
    "tooltip": {"mode": "multi", "sort": "desc"},
}
STACKED = {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30, "lineWidth": 1}
BARS = {"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal", "group": "A"}}
DASHED = {"thresholdsStyle": {"mode": "dashed"}}
TABLE = {"showHeader": True, "cellHeight": "sm"}
BAR_GAUGE = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
Steps = list[tuple[float | None, str]]


def _hide(*columns: str) -> dict[str, Any]:
    return {"id": "organize", "options": {"excludeByName": dict.fromkeys(("Time", *columns), True)}}


def stat(title: str, description: str, expr: str, unit: str = "", thresholds: Steps | None = None) -> Panel:
    """A number, a quarter of a row wide."""
    return Panel(
        "stat", title, description, [Target(expr)], w=6, h=4, unit=unit, options=STAT, thresholds=thresholds
    )


def series(
    title: str,
    description: str,
    *targets: Target,
    w: int = 12,
    h: int = 8,
    custom: dict[str, Any] | None = None,
    **kw: Any,
) -> Panel:
    """A time series with a legend table (last, max) on the right."""
    return Panel(
        "timeseries",
        title,
        description,
        list(targets),
        w=w,
        h=h,
        custom=custom or {},
        options=LEGEND_TABLE,
        **kw,
    )


def table(
    title: str, description: str, *exprs: str, columns: dict[str, str] | None = None, **kw: Any
) -> Panel:
    """Instant queries as one table; several are merged on their labels, their values named by `columns`."""
    targets = [Target(e, instant=True, table=True) for e in exprs]
    if columns:
        rename = {
            "id": "organize",
            "options": {"renameByName": {f"Value #{chr(65 + i)}": c for i, c in enumerate(columns.values())}},
        }
        transformations = [{"id": "merge", "options": {}}, _hide(), rename]
    else:
        transformations = [_hide(*kw.pop("hide", ()))]
    return Panel("table", title, description, targets, options=TABLE, transformations=transformations, **kw)


def bars(title: str, description: str, expr: str, legend: str, steps: Steps, **kw: Any) -> Panel:
    """One horizontal bar per series (the latest value)."""
    options = {"orientation": "horizontal", "displayMode": kw.pop("mode", "gradient"), **BAR_GAUGE}
    return Panel(
        "bargauge", title, description, [Target(expr, legend=legend, instant=True)], unit="percentunit",
        min=0, options=options, thresholds=steps, **kw,
    )  # fmt: skip


NODE = 'node=~"$node"'
NS = 'namespace=~"$namespace"'

OVERVIEW = Dashboard(
    uid="gpu-autoscaler-overview",
    title="GPU cluster overview",
    description="GPU capacity, allocation per node and the utilisation of every GPU (DCGM) over time.",
    tags=["gpu", "dcgm"],
    variables=[Var("node", "label_values(node:gpu_autoscaler_gpu_capacity:max, node)")],
    panels=[
        stat(
            "GPUs",
            "GPU-equivalents the nodes offer: whole GPUs plus the compute share of each MIG slice.",
            f"sum(node:gpu_autoscaler_gpu_capacity:max{{{NODE}}})",
        ),
        stat(
            "Allocated",
            "GPU-equivalents pods hold now (a MIG slice counts its compute share, a GPU share its milli).",
            f"sum(node:gpu_autoscaler_gpu_allocated:sum{{{NODE}}})",
        ),
        stat(
            "Idle",
            "GPU-equivalents no pod holds.",
            f"sum(node:gpu_autoscaler_idle_gpu_equivalents:sum{{{NODE}}})",
            thresholds=[(None, "green"), (4, "orange")],
        ),
        stat(
            "Mean GPU utilisation",
            "Mean compute use over every GPU and MIG slice (DCGM_FI_PROF_GR_ENGINE_ACTIVE, else GPU_UTIL).",
            f"avg(node_gpu:gpu_autoscaler_dcgm_compute_use:max{{{NODE}}})",
            unit="percentunit",
            thresholds=[(None, "red"), (0.3, "orange"), (0.6, "green")],
        ),
        Panel(
            "heatmap",
            "GPU utilisation heatmap",
            "How many GPUs (and MIG slices) ran at each utilisation, over time: a low band is idle capacity.",
            [Target(f"node_gpu:gpu_autoscaler_dcgm_compute_use:max{{{NODE}}}", legend="{{node}} {{gpu}}")],
            w=24,
            h=9,
            options={
                "calculate": True,
                "calculation": {"yBuckets": {"mode": "size", "value": "0.1", "scale": {"type": "linear"}}},
                "yAxis": {"unit": "percentunit", "min": 0, "max": 1, "axisPlacement": "left"},
                "color": {
                    "mode": "scheme",
                    "scheme": "Oranges",
                    "steps": 64,
                    "exponent": 0.5,
                    "fill": "dark-orange",
                },
                "cellGap": 1,
                "tooltip": {"mode": "single", "yHistogram": True},
                "legend": {"show": True},
                "rowsFrame": {"layout": "auto"},
            },
        ),
        bars(
            "Allocation per node",
            "Share of each node's GPU capacity held by pods now.",
            f"1 - sum by (node) (node:gpu_autoscaler_idle_gpu_equivalents:sum{{{NODE}}})"
            f" / sum by (node) (node:gpu_autoscaler_gpu_capacity:max{{{NODE}}} > 0)",
            "{{node}}",
            [(None, "blue"), (0.5, "green"), (0.9, "orange")],
            w=8,
            h=9,
            max=1,
        ),
        series(
            "Allocated GPU-equivalents per node",
            "What pods hold on each node over time.",
            Target(f"node:gpu_autoscaler_gpu_allocated:sum{{{NODE}}}", legend="{{node}}"),
            w=16,
            h=9,
            custom=STACKED,
        ),
        table(
            "GPUs per product",
            "Capacity, allocation and idle GPU-equivalents per GPU product.",
            "sum by (product) (node:gpu_autoscaler_gpu_capacity:max)",
            "sum by (product) (pod:gpu_autoscaler_gpu_equivalents:max)",
            "sum by (product) (node:gpu_autoscaler_idle_gpu_equivalents:sum)",
            columns={"A": "capacity", "B": "allocated", "C": "idle"},
        ),
        series(
            "GPU memory use per GPU",
            "Framebuffer used / (used + free) per GPU and MIG slice (DCGM).",
            Target(
                f"node_gpu:gpu_autoscaler_dcgm_memory_use:max{{{NODE}}}",
                legend="{{node}} {{gpu}} {{GPU_I_ID}}",
            ),
            unit="percentunit",
            min=0,
            max=1,
        ),
    ],
)

COST = Dashboard(
    uid="gpu-autoscaler-cost",
    title="GPU cost and budgets",
    description="GPU spend per namespace, workload and cost centre from the recorded cost series; budgets.",
    tags=["gpu", "cost"],
    time_from="now-7d",
    variables=[Var("namespace", "label_values(namespace:gpu_autoscaler_cost_usd_per_hour:sum, namespace)")],
    panels=[
        stat(
            "Spend now",
            "$ per hour of the GPUs pods hold now.",
            f"sum(namespace:gpu_autoscaler_cost_usd_per_hour:sum{{{NS}}})",
            unit="currencyUSD",
        ),
        stat(
            "Last 24 hours",
            "$ spent over the last day (namespace:gpu_autoscaler_cost_usd:1d).",
            f"sum(namespace:gpu_autoscaler_cost_usd:1d{{{NS}}})",
            unit="currencyUSD",
        ),
        stat(
            "Idle capacity",
            "$ per hour of the GPU capacity no pod holds (the whole cluster).",
            "cluster:gpu_autoscaler_idle_cost_usd_per_hour:sum",
            unit="currencyUSD",
            thresholds=[(None, "green"), (10, "orange")],
        ),
        stat(
            "Projected this month",
            "Spent this month + what is held now until the month ends, over the namespaces with a budget.",
            'sum(budget:gpu_autoscaler_cost_usd:projected_month_end{scope="namespace",name=~"$namespace"})',
            unit="currencyUSD",
        ),
        series(
            "$ per hour by namespace",
            "Cost rate of what each namespace holds.",
            Target(f"namespace:gpu_autoscaler_cost_usd_per_hour:sum{{{NS}}}", legend="{{namespace}}"),
            unit="currencyUSD",
            custom=STACKED,
        ),
        series(
            "$ per day by namespace",
            "Each bar: the day's spend (namespace:gpu_autoscaler_cost_usd:1d sampled once a day).",
            Target(f"namespace:gpu_autoscaler_cost_usd:1d{{{NS}}}", legend="{{namespace}}", interval="1d"),
            unit="currencyUSD",
            custom=BARS,
        ),
        series(
            "GPU-hours per hour by namespace",
            "Each bar: the GPU-hours of one hour (namespace:gpu_autoscaler_gpu_hours:1h sampled hourly).",
            Target(f"namespace:gpu_autoscaler_gpu_hours:1h{{{NS}}}", legend="{{namespace}}", interval="1h"),
            custom=BARS,
        ),
        series(
            "$ per hour by cost centre",
            "Cost rate per `gpu-cost-center` pod label (empty: pods without the label).",
            Target("cost_center:gpu_autoscaler_cost_usd_per_hour:sum", legend="{{cost_center}}"),
            unit="currencyUSD",
            custom=STACKED,
        ),
        table(
            "Budgets this month",
            "Per namespace / cost-centre budget (ConfigMap gpu-budgets): spent, budget, used, projection.",
            "budget:gpu_autoscaler_budget_spent_usd:max",
            "budget:gpu_autoscaler_budget_monthly_usd:max",
            "budget:gpu_autoscaler_budget_used:ratio",
            "budget:gpu_autoscaler_cost_usd:projected_month_end",
            columns={"A": "spent $", "B": "budget $", "C": "used", "D": "projected month end $"},
            w=14,
        ),
        bars(
            "Budget used",
            "Spent / monthly budget; orange past the usual soft limit (80 %), red past the budget.",
            "budget:gpu_autoscaler_budget_used:ratio",
            "{{scope}} {{name}}",
            [(None, "green"), (0.8, "orange"), (1.0, "red")],
            w=10,
            max=1.2,
            mode="lcd",
        ),
        table(
            "Top workloads, last 24 hours",
            "The 20 workloads that cost most over the last day.",
            f"topk(20, namespace_workload:gpu_autoscaler_cost_usd:1d{{{NS}}})",
            unit="currencyUSD",
            hide=("__name__",),
        ),
        series(
            "Idle $ per hour by node",
            "What the capacity no pod holds costs, per node.",
            Target("node:gpu_autoscaler_idle_cost_usd_per_hour:sum", legend="{{node}}"),
            unit="currencyUSD",
            custom=STACKED,
        ),
    ],
)

WASTE = Dashboard(
    uid="gpu-autoscaler-waste",
    title="GPU waste and suggestions",
    description="Waste scores, pods flagged wasteful, idle GPUs and the savings the suggestions bring.",
    tags=["gpu", "waste"],
    variables=[Var("namespace", "label_values(gpu_autoscaler_waste_score, namespace)")],
    panels=[
        stat(
            "Pods flagged wasteful",
            "Pods whose GPU use stayed under 50 % for 5 minutes with a waste score over 50.",
            f"count(max by (namespace, pod) (gpu_autoscaler_waste_flagged{{{NS}}})) or vector(0)",
            thresholds=[(None, "green"), (1, "orange")],
        ),
        stat(
            "Could save",
            "$ per month the suggestions for the flagged pods would save.",
            f"sum(gpu_autoscaler_suggestion_saving_usd_per_month{{{NS}}}) or vector(0)",
            unit="currencyUSD",
        ),
        stat(
            "GPUs idle over an hour",
            "Held GPUs (or slices) whose compute use stayed under 5 % for the last hour (GPUIdleOverAnHour).",
            f"count(max_over_time(pod_gpu:gpu_autoscaler_dcgm_compute_use:max{{{NS}}}[1h]) < 0.05)"
            " or vector(0)",
            thresholds=[(None, "green"), (1, "red")],
        ),
        stat(
            "Wasted now",
            "$ per hour of held GPU capacity that goes unused: pod cost x its highest waste score / 100.",
            f"sum(max by (namespace, pod) (gpu_autoscaler_waste_score{{{NS}}}) / 100"
            " * on (namespace, pod) group_left ()"
            " sum by (namespace, pod) (pod:gpu_autoscaler_cost_usd_per_hour:sum))",
            unit="currencyUSD",
        ),
        table(
            "Waste scores",
            "Each held GPU's score (0 busy .. 100 idle) over the waste window.",
            f"sort_desc(gpu_autoscaler_waste_score{{{NS}}})",
            h=9,
            hide=("__name__", "instance", "job"),
            thresholds=[(None, "green"), (50, "orange"), (75, "red")],
        ),
        table(
            "Suggestions",
            "Per flagged pod: release it or the MIG profile its use fits, and the monthly saving.",
            f"sort_desc(gpu_autoscaler_suggestion_saving_usd_per_month{{{NS}}})",
            h=9,
            unit="currencyUSD",
            hide=("__name__", "instance", "job"),
        ),
        series(
            "Waste score per pod",
            "The highest score over each pod's GPUs.",
            Target(
                f"max by (namespace, pod) (gpu_autoscaler_waste_score{{{NS}}})",
                legend="{{namespace}}/{{pod}}",
            ),
            min=0,
            max=100,
        ),
        series(
            "Compute use of held GPUs",
            "DCGM compute use per held GPU / slice; 5 minutes under the dashed 50 % line: a waste flag.",
            Target(
                f"pod_gpu:gpu_autoscaler_dcgm_compute_use:max{{{NS}}}", legend="{{namespace}}/{{pod}} {{gpu}}"
            ),
            unit="percentunit",
            min=0,
            max=1,
            custom=DASHED,
            thresholds=[(None, "red"), (0.5, "green")],
        ),
    ],
)


def _quantiles(metric: str, by: tuple[str, ...], legend: str) -> list[Target]:
    return [
        Target(
            f"histogram_quantile({q}, sum by ({', '.join(('le', *by))}) "
            f"(rate({metric}_bucket[$__rate_interval])))",
            legend=f"{legend} p{round(q * 100)}",
        )
        for q in (0.5, 0.99)
    ]


def rates(title: str, description: str, metric: str, by: str, w: int = 8, h: int = 8) -> Panel:
    """Per-second rate of a counter, stacked by its labels `by`."""
    legend = " ".join("{{" + label.strip() + "}}" for label in by.split(","))
    target = Target(f"sum by ({by}) (rate({metric}[$__rate_interval]))", legend=legend)
    unit = "" if metric.endswith("events_total") else "reqps"
    return series(title, description, target, w=w, h=h, unit=unit, custom=STACKED)


def error_share(title: str, description: str, metric: str, errors: str) -> Panel:
    """Share of a counter's increments whose outcome matches `errors` (0 when there are none)."""
    expr = (
        f'(sum(rate({metric}{{outcome=~"{errors}"}}[$__rate_interval])) or vector(0))'
        f" / sum(rate({metric}[$__rate_interval]))"
    )
    return Panel(
        "stat", title, description, [Target(expr)], w=6, h=6, unit="percentunit", options=STAT,
        thresholds=[(None, "green"), (0.01, "red")],
    )  # fmt: skip


VARIANT = 'namespace=~"$namespace", variant_name=~"$variant"'
DECISIONS = Dashboard(
    uid="gpu-autoscaler-decisions",
    title="Autoscaler decisions per variant",
    description="Desired and current replicas, scaling decisions and their reasons, per model variant.",
    tags=["autoscaler", "wva"],
    variables=[
        Var("namespace", "label_values(wva_desired_replicas, namespace)"),
        Var("variant", 'label_values(wva_desired_replicas{namespace=~"$namespace"}, variant_name)'),
    ],
    panels=[
        series(
            "Desired vs current replicas",
            "What the autoscaler wants (solid) and what the Deployment has (dashed).",
            Target(f"wva_desired_replicas{{{VARIANT}}}", legend="{{variant_name}} desired"),
            Target(f"wva_current_replicas{{{VARIANT}}}", legend="{{variant_name}} current"),
        ),
        series(
            "Desired ratio",
            "desired / current replicas (> 1: scale up, < 1: scale down).",
            Target(f"wva_desired_ratio{{{VARIANT}}}", legend="{{variant_name}}"),
        ),
        series(
            "Scaling decisions",
            "Scale-ups and scale-downs (after stabilisation) per variant.",
            Target(
                "sum by (variant_name, direction) "
                f"(increase(wva_replica_scaling_total{{{VARIANT}}}[$__rate_interval]))",
                legend="{{variant_name}} {{direction}}",
            ),
            custom=BARS,
        ),
        table(
            "Decisions by reason",
            "Scaling decisions over the dashboard's time range, by variant, direction and reason.",
            "sum by (variant_name, direction, reason) "
            f"(increase(wva_replica_scaling_total{{{VARIANT}}}[$__range]))",
        ),
        series(
            "SLO load ratio",
            "Load per replica / the most that meets the SLO (>= 1: at or past the SLO).",
            Target(f"gpu_autoscaler_autoscaler_slo_load_ratio{{{VARIANT}}}", legend="{{variant_name}}"),
            thresholds=[(None, "green"), (1, "red")],
            custom=DASHED,
        ),
        series(
            "Predicted latency",
            "Queueing-model TTFT and ITL at the current load.",
            Target(
                f"gpu_autoscaler_autoscaler_predicted_ttft_ms{{{VARIANT}}}", legend="{{variant_name}} TTFT"
            ),
            Target(f"gpu_autoscaler_autoscaler_predicted_itl_ms{{{VARIANT}}}", legend="{{variant_name}} ITL"),
            unit="ms",
        ),
        series(
            "Cycle duration",
            "p50 / p99 of one autoscaler cycle (inventory, metrics, decisions, export).",
            *_quantiles("gpu_autoscaler_autoscaler_cycle_seconds", (), "cycle"),
            unit="s",
        ),
        Panel(
            "stat",
            "Config errors",
            "Capacity-config entries skipped or fallen back at the last reload.",
            [Target("max(gpu_autoscaler_autoscaler_config_errors)")],
            w=12,
            options=STAT,
            thresholds=[(None, "green"), (1, "red")],
        ),
    ],
)

LATENCY = Dashboard(
    uid="gpu-autoscaler-latency",
    title="Extender and webhook latency and errors",
    description="The scheduler extender's and the admission webhooks' answer times, outcomes and errors.",
    tags=["extender", "webhook"],
    time_from="now-6h",
    panels=[
        series(
            "Extender latency",
            "p50 / p99 time to answer /filter and /prioritize (parse, decide, serialise).",
            *_quantiles("gpu_autoscaler_extender_duration_seconds", ("verb",), "{{verb}}"),
            unit="s",
        ),
        rates(
            "Extender calls by outcome",
            "Calls per second by verb and outcome (ok, passthrough, bad_request, error).",
            "gpu_autoscaler_extender_requests_total",
            "verb, outcome",
            w=12,
        ),
        error_share(
            "Extender errors",
            "Share of extender calls answered with an error or refused as malformed.",
            "gpu_autoscaler_extender_requests_total",
            "error|bad_request",
        ),
        error_share(
            "Webhook errors",
            "Share of admission reviews the MIG webhook failed open on.",
            "gpu_autoscaler_webhook_mutations_total",
            "error",
        ),
        series(
            "Webhook latency",
            "p50 / p99 time to answer one admission review (parse, history lookup, decision).",
            *_quantiles("gpu_autoscaler_webhook_review_seconds", (), "review"),
            h=6,
            unit="s",
        ),
        rates(
            "MIG webhook outcomes",
            "Reviews per second by outcome (mutated, pinned, kept, no_fit, no_history, unknown_gpu, error…).",
            "gpu_autoscaler_webhook_mutations_total",
            "outcome",
        ),
        rates(
            "Usage-history lookups",
            "The MIG webhook's history cache: hit, stale, miss, timeout, error, disabled.",
            "gpu_autoscaler_webhook_history_lookups_total",
            "status",
        ),
        rates(
            "Budget admissions",
            "Pods checked against GPU budgets: allowed, warned (over budget, not enforced), denied.",
            "gpu_autoscaler_budget_admissions_total",
            "outcome",
        ),
        rates(
            "Kubernetes Events",
            "Events emitted by reason and outcome (sent, throttled, failed).",
            "gpu_autoscaler_events_total",
            "reason, outcome",
            w=24,
            h=6,
        ),
    ],
)

DASHBOARDS = {
    "gpu-cluster-overview.json": OVERVIEW,
    "gpu-cost-budgets.json": COST,
    "gpu-waste.json": WASTE,
    "gpu-autoscaler-decisions.json": DECISIONS,
    "gpu-autoscaler-latency.json": LATENCY,
}


def text(d: Dashboard) -> str:
    return json.dumps(render(d), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, d in DASHBOARDS.items():
        path = HERE / name
        want = text(d)
        if "--check" in argv:
            if not path.is_file() or path.read_text() != want:
                stale.append(name)
        else:
            path.write_text(want)
    if stale:
        print(f"dashboards out of date (run python manifests/dashboards/build.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
