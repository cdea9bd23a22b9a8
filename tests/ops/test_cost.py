"""Cost attribution (table-driven), budgets, the history documents, the cost component and /cost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext
from app.cost import history
from app.cost.attribution import attribute
from app.cost.budgets import (
    Budget,
    hours_left_in_month,
    month_start,
    parse_budgets,
    statuses,
)
from app.cost.component import BUDGET_SPENT, POD_GPUS, CostComponent
from app.cost.prices import load_prices, parse_prices
from app.cost.report import cost_view, from_history, point_in_time
from app.metrics import render
from app.ops.inventory import cluster_facts
from app.settings import Settings
from app.waste.score import GpuUse

PRICES = load_prices()
A100_80 = 3.431
H100 = 6.88
NOW = datetime(2025, 6, 3, 12, 0, tzinfo=UTC)


def node(name: str, product: str, gpus: int = 8, mig: dict[str, int] | None = None) -> dict[str, Any]:
    alloc: dict[str, Any] = {"cpu": "96", "memory": "1Ti", "nvidia.com/gpu": str(gpus)}
    for profile, n in (mig or {}).items():
        alloc[f"nvidia.com/mig-{profile}"] = str(n)
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product.replace(" ", "-")}},
        "status": {"allocatable": alloc, "capacity": alloc},
    }


def pod(
    name: str,
    node_name: str,
    resources: dict[str, str],
    ns: str = "team",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    started: datetime = NOW - timedelta(hours=3),
    phase: str = "Running",
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "resources": {"limits": resources}}],
        },
        "status": {"phase": phase, "startTime": started.isoformat()},
    }


NODES = [
    node("a100", "NVIDIA A100-SXM4-80GB", gpus=0, mig={"1g.10gb": 7}),
    node("h100", "NVIDIA H100 80GB HBM3"),
    node("shared", "NVIDIA H100 80GB HBM3", gpus=1),
    node("l40s", "NVIDIA L40S", gpus=4),
]


@pytest.mark.parametrize(
    ("case", "pods", "expect"),
    [
        (
            "a 1g.10gb slice on an A100-80GB costs 1/7 of that GPU's price",
            [pod("slice", "a100", {"nvidia.com/mig-1g.10gb": "1"})],
            {"slice": (1 / 7, A100_80 / 7)},
        ),
        (
            "two slices: 2/7",
            [pod("two", "a100", {"nvidia.com/mig-1g.10gb": "2"})],
            {"two": (2 / 7, 2 * A100_80 / 7)},
        ),
        (
            "whole GPUs",
            [pod("whole", "h100", {"nvidia.com/gpu": "4"})],
            {"whole": (4.0, 4 * H100)},
        ),
        (
            "a GPU share costs its milli",
            [
                pod(
                    "share",
                    "shared",
                    {"nvidia.com/gpu": "1"},
                    annotations={"gpu-autoscaler.io/gpu-milli": "250"},
                )
            ],
            {"share": (0.25, 0.25 * H100)},
        ),
        (
            "an unpriced product holds GPUs without a price",
            [pod("l", "l40s", {"nvidia.com/gpu": "1"})],
            {"l": (1.0, None)},
        ),
        (
            "a finished pod holds nothing",
            [pod("done", "h100", {"nvidia.com/gpu": "1"}, phase="Succeeded")],
            {},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_attribution(
    case: str, pods: list[dict[str, Any]], expect: dict[str, tuple[float, float | None]]
) -> None:
    attr = attribute(cluster_facts(NODES, pods), PRICES)
    got = {h.pod: (h.gpus, h.usd_per_hour) for h in attr.holdings}
    assert set(got) == set(expect)
    for name, (gpus, usd) in expect.items():
        assert got[name][0] == pytest.approx(gpus)
        assert got[name][1] == (pytest.approx(usd) if usd is not None else None)


def test_cost_labels_and_idle_capacity() -> None:
    pods = [
        pod(
            "slice",
            "a100",
            {"nvidia.com/mig-1g.10gb": "1"},
            labels={"gpu-cost-center": "cc-1", "gpu-project": "p"},
        ),
        pod("whole", "h100", {"nvidia.com/gpu": "2"}),
    ]
    attr = attribute(cluster_facts(NODES, pods), PRICES)
    slice_ = next(h for h in attr.holdings if h.pod == "slice")
    assert (slice_.cost_center, slice_.project) == ("cc-1", "p")
    idle = {n.node: n for n in attr.nodes}
    assert idle["a100"].capacity == pytest.approx(1.0) and idle["a100"].idle == pytest.approx(6 / 7)
    assert idle["h100"].idle == 6 and idle["h100"].idle_usd_per_hour == pytest.approx(6 * H100)
    assert idle["l40s"].idle_usd_per_hour is None and "NVIDIA L40S" in attr.unpriced
    assert attr.prices == {"NVIDIA A100 SXM4 80GB": A100_80, "NVIDIA H100 80GB HBM3": H100}


SHARED = [
    pod("a", "shared", {"nvidia.com/gpu": "1"}, annotations={"gpu-autoscaler.io/gpu-milli": "500"}),
    pod("b", "shared", {"nvidia.com/gpu": "1"}, annotations={"gpu-autoscaler.io/gpu-milli": "300"}),
]


@pytest.mark.parametrize(
    ("case", "uses", "expect"),
    [
        ("no DCGM: the milli stand", [], {"a": 0.5, "b": 0.3}),
        (
            "DCGM tells them apart: the 0.8 GPU they hold is split by use",
            [
                GpuUse("team", "a", "shared", "0", compute=0.1),
                GpuUse("team", "b", "shared", "0", compute=0.3),
            ],
            {"a": 0.2, "b": 0.6},
        ),
        (
            "the same figure for both (the device's, copied to each pod): the milli stand",
            [
                GpuUse("team", "a", "shared", "0", compute=0.4),
                GpuUse("team", "b", "shared", "0", compute=0.4),
            ],
            {"a": 0.5, "b": 0.3},
        ),
        (
            "one of them unmeasured: the milli stand",
            [GpuUse("team", "a", "shared", "0", compute=0.1), GpuUse("team", "b", "shared", "0")],
            {"a": 0.5, "b": 0.3},
        ),
        (
            "on different GPUs: nothing to split",
            [
                GpuUse("team", "a", "shared", "0", compute=0.1),
                GpuUse("team", "b", "shared", "1", compute=0.3),
            ],
            {"a": 0.5, "b": 0.3},
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_shared_gpu_split_by_use(case: str, uses: list[GpuUse], expect: dict[str, float]) -> None:
    attr = attribute(cluster_facts(NODES, SHARED), PRICES, uses)
    got = {h.pod: h.gpus for h in attr.holdings}
    assert got == pytest.approx(expect)
    assert sum(got.values()) == pytest.approx(0.8)  # the split never changes what the sharers hold together
    assert next(n for n in attr.nodes if n.node == "shared").idle == pytest.approx(0.2)


# -- history: what Prometheus answers -> the same document ---------------------------------------------
def vec(*rows: tuple[dict[str, str], float]) -> list[dict[str, Any]]:
    return [{"metric": m, "value": [0, str(v)]} for m, v in rows]


def test_a_pod_that_ran_yesterday_still_costs_its_hours_today() -> None:
    """History tables (as the recording rules answer) count a pod that is gone; point-in-time cannot."""
    since, until = NOW - timedelta(days=1), NOW
    answers = {
        "namespace.gpu_hours": vec(({"namespace": "batch"}, 6.0), ({"namespace": "team"}, 2.0)),
        "namespace.cost_usd": vec(({"namespace": "batch"}, 6 * A100_80), ({"namespace": "team"}, 2 * H100)),
        "namespace.usd_per_hour": vec(({"namespace": "team"}, H100)),
        "namespace.gpus": vec(({"namespace": "team"}, 1.0)),
        "cost_center.cost_usd": vec(({"cost_center": "cc-1"}, 6 * A100_80), ({}, 2 * H100)),
        "idle.gpu_hours": vec(({"node": "h100", "product": "NVIDIA H100 80GB HBM3"}, 168.0)),
        "idle.cost_usd": vec(({"node": "h100", "product": "NVIDIA H100 80GB HBM3"}, 168 * H100)),
        "pod.gpu_hours": vec(({"namespace": "batch", "pod": "train-0", "workload": "batch/Job/train"}, 6.0)),
        "cluster.cost_usd": vec(({}, 6 * A100_80 + 2 * H100)),
    }
    doc = from_history(history.tables(answers), since, until)
    ns = {r["namespace"]: r for r in doc["namespaces"]}
    assert ns["batch"]["gpu_hours"] == 6.0 and ns["batch"]["cost_usd"] == pytest.approx(20.59)
    assert ns["batch"]["usd_per_hour"] == 0.0 and ns["team"]["usd_per_month"] == pytest.approx(
        H100 * 730, abs=0.01
    )
    assert {r["cost_center"] for r in doc["cost_centers"]} == {"cc-1", "(unassigned)"}
    assert doc["idle"][0]["idle_gpu_hours"] == 168 and doc["window"]["hours"] == 24
    assert doc["totals"]["cost_usd"] == pytest.approx(6 * A100_80 + 2 * H100, abs=0.01)
    # the point-in-time view of the same cluster only knows what runs now
    now = point_in_time(cluster_facts(NODES, []), attribute(cluster_facts(NODES, []), PRICES), NOW)
    assert now["namespaces"] == []


def test_history_queries_are_constant_and_windowed() -> None:
    q = history.build_queries(NOW - timedelta(hours=3), NOW)
    assert len(q) == len(history.build_queries(NOW - timedelta(days=30), NOW))
    assert (
        "sum_over_time(namespace:gpu_autoscaler_cost_usd_per_hour:sum[10799999ms:60s] @ 1748952000.000)"
        in q["namespace.cost_usd"]
    )
    assert (
        history.build_queries(NOW - timedelta(seconds=5), NOW)["cluster.cost_usd"].count("[59999ms:60s]") == 1
    )
    assert history.tables({"namespace.cost_usd": [{"metric": {"namespace": "x"}, "value": [0, "NaN"]}]}) == {}


# -- budgets -----------------------------------------------------------------------------------------------
def test_parse_budgets_table() -> None:
    data = {
        "budgets.yaml": """
- namespace: ml
  monthlyUSD: 1000
- costCenter: cc-1
  monthlyUSD: 5000
  softPercent: 50
  hardPercent: 90
- namespace: bad
  monthlyUSD: -1
- {namespace: x, costCenter: y, monthlyUSD: 1}
- {namespace: z, monthlyUSD: 1, softPercent: 90, hardPercent: 80}
- {namespace: w, monthlyUSD: 1, typo: 2}
""",
        "more.yaml": "- {namespace: ml, monthlyUSD: 2000}\n",
        "broken.yaml": "- [unclosed\n",
        "notalist.yaml": "namespace: ml\n",
    }
    budgets, errors = parse_budgets(data, "gpu-autoscaler/gpu-budgets")
    assert [(b.scope, b.name, b.monthly_usd, b.soft_usd, b.hard_usd) for b in budgets] == [
        ("cost-center", "cc-1", 5000, 2500, 4500),
        ("namespace", "ml", 2000, 1600, 2000),  # the later entry (more.yaml) wins, and it is said
    ]
    joined = "\n".join(errors)
    for part in (
        "budgets.yaml[2]: monthlyUSD must be a number >= 0",
        "budgets.yaml[3]: needs exactly one of namespace or costCenter",
        "budgets.yaml[4]: softPercent 90 is above hardPercent 80",
        "budgets.yaml[5]: unknown key(s) typo",
        "broken.yaml: not valid YAML",
        "notalist.yaml: expected a list of budgets",
        "more.yaml[0]: namespace ml has two budgets",
    ):
        assert part in joined, (part, joined)
    assert parse_budgets(None) == ([], [])


@pytest.mark.parametrize(
    ("now", "left"),
    [
        (datetime(2025, 6, 1, tzinfo=UTC), 720.0),
        (datetime(2025, 6, 30, 23, 30, tzinfo=UTC), 0.5),
        (datetime(2024, 2, 28, tzinfo=UTC), 48.0),  # leap year
        (datetime(2025, 12, 31, 12, tzinfo=UTC), 12.0),
    ],
)
def test_month(now: datetime, left: float) -> None:
    assert hours_left_in_month(now) == pytest.approx(left)
    assert month_start(now) == now.replace(day=1, hour=0, minute=0)


@pytest.mark.parametrize(
    ("spent", "state", "over"),
    [(700, "ok", 0), (800, "soft", 0), (999.99, "soft", 0), (1000, "exceeded", 0), (1240, "exceeded", 240)],
)
def test_budget_states(spent: float, state: str, over: float) -> None:
    b = Budget("namespace", "ml", 1000)
    (s,) = statuses([b], {b.key: spent}, {b.key: 2.0}, datetime(2025, 6, 30, 12, tzinfo=UTC))
    assert s.state == state and s.over_by_usd == pytest.approx(over)
    assert s.projected_usd == pytest.approx(spent + 2.0 * 12)
    assert s.as_dict()["used_pct"] == pytest.approx(spent / 10, abs=0.05)


def test_cost_view_attaches_budgets_point_in_time() -> None:
    pods = [pod("w", "h100", {"nvidia.com/gpu": "2"}, labels={"gpu-cost-center": "cc-1"})]
    facts = cluster_facts(NODES, pods)
    budgets = [
        Budget("namespace", "team", 30),
        Budget("cost-center", "cc-1", 1000),
        Budget("namespace", "idle", 5),
    ]
    doc = cost_view(facts, attribute(facts, PRICES), NOW, budgets=budgets)
    ns = {r["namespace"]: r for r in doc["namespaces"]}
    # started 3 h ago, in this month: 2 x $6.88 x 3 h = $41.28 of a $30 budget
    assert (
        ns["team"]["budget"]["spent_usd"] == pytest.approx(41.28)
        and ns["team"]["budget"]["state"] == "exceeded"
    )
    assert (
        ns["idle"]["budget"]["spent_usd"] == 0 and ns["idle"]["gpu_hours"] == 0
    )  # a budget row with no pods
    assert {r["cost_center"]: r["budget"]["state"] for r in doc["cost_centers"]} == {"cc-1": "ok"}


# -- the component ----------------------------------------------------------------------------------------
def test_component_exports_describes_and_serves_budgets() -> None:
    cluster = SnapshotCluster()
    settings = Settings(cluster="demo")
    comp = CostComponent(
        settings, prices=PRICES, clock=lambda: datetime(2025, 6, 3, 12, 12, 44, tzinfo=UTC).timestamp()
    )

    async def go() -> dict[str, Any]:
        await cluster.start()
        comp._ctx = AppContext(settings=settings, cluster=cluster)
        await comp.cycle()
        return comp.describe()

    doc = asyncio.run(go())
    text = render().decode()
    assert (
        'gpu_autoscaler_pod_gpu_equivalents{cost_center="research",namespace="notebooks",node="a100-mig-0",'
        'pod="nb-carol-0",product="NVIDIA A100-SXM4-80GB",project="notebooks",'
        'workload="notebooks/StatefulSet/nb-carol"} 0.14285714285714285' in text
    )
    assert 'gpu_autoscaler_gpu_price_usd_per_hour{product="NVIDIA H100 80GB HBM3"} 6.88' in text
    assert 'gpu_autoscaler_budget_monthly_usd{name="inference",scope="namespace"} 120.0' in text
    assert 'gpu_autoscaler_budget_soft_limit_usd{name="ml-training",scope="namespace"} 225.0' in text
    assert not comp._series[BUDGET_SPENT].keys  # no recorded history: no spend for the alerts
    row = next(r for r in doc["namespaces"] if r["namespace"] == "ml-training")
    assert set(row) >= {"namespace", "gpu_hours", "cost_usd", "budget_usd", "budget_used_pct"}
    assert row["budget_usd"] == 300 and row["budget_used_pct"] > 100 and doc["source"] == "point-in-time"
    assert doc["savings"] == [] and doc["month"] == "2025-06"
    assert comp.budget_states[("namespace", "ml-training")].state == "exceeded"


def test_component_clears_its_series_when_not_leader() -> None:
    class Standby:
        is_leader = False
        identity = "b"

    cluster = SnapshotCluster()
    settings = Settings(cluster="demo")
    comp = CostComponent(settings, prices=parse_prices({"Z100": 1.0}, "t"))

    async def go() -> None:
        await cluster.start()
        ctx = AppContext(settings=settings, cluster=cluster)
        comp._ctx = ctx
        await comp.cycle()
        assert comp._series[POD_GPUS].keys
        ctx.leadership = Standby()
        await comp.cycle()

    asyncio.run(go())
    assert all(not s.keys for s in comp._series.values())
    assert comp.describe()["namespaces"]  # a standby still answers /cost
