"""Waste scoring: the formula (table), its invariants (hypothesis), the collector's join, the component."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext
from app.cost.prices import load_prices
from app.events import EventRecorder
from app.metrics import render
from app.ops.inventory import cluster_facts
from app.settings import Settings
from app.waste.collector import build_queries, uses_from_vectors
from app.waste.component import WasteComponent
from app.waste.flag import Holder, flag, holders
from app.waste.score import GpuUse, score_one, waste_scores

use = st.one_of(st.none(), st.floats(min_value=-0.5, max_value=1.5, allow_nan=False))
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@pytest.mark.parametrize(
    ("compute", "memory", "score", "reason"),
    [
        (0.0, 0.0, 100.0, "idle GPU held"),
        (0.01, None, 100.0, "idle GPU held"),
        (0.6, 0.9, 0.0, None),
        (0.05, 0.9, 63.0, "low compute"),  # vLLM pre-allocated memory, no load
        (0.5, 0.1, 24.0, "low memory"),
        (0.25, 0.25, 50.0, None),
        (None, 0.5, 0.0, None),
    ],
)
def test_table(compute: float | None, memory: float | None, score: float, reason: str | None) -> None:
    got = score_one(compute, memory)
    assert got is not None
    assert got[0] == pytest.approx(score)
    if reason:
        assert any(r.startswith(reason) for r in got[1])


def test_no_data_no_score() -> None:
    assert score_one(None, None) is None
    assert waste_scores([GpuUse("a", "p", "n", "0")]) == []


@given(use, use)
def test_score_is_0_to_100(c: float | None, m: float | None) -> None:
    got = score_one(c, m)
    assert got is None or 0.0 <= got[0] <= 100.0


@given(unit, unit, unit, unit)
def test_more_use_never_more_waste(c: float, m: float, dc: float, dm: float) -> None:
    base = score_one(c, m)
    more = score_one(min(1.0, c + dc), min(1.0, m + dm))
    assert base is not None and more is not None
    assert more[0] <= base[0]


@given(unit, unit)
def test_more_use_never_more_waste_one_measure(c: float, dc: float) -> None:
    assert score_one(min(1.0, c + dc), None)[0] <= score_one(c, None)[0]  # type: ignore[index]
    assert score_one(None, min(1.0, c + dc))[0] <= score_one(None, c)[0]  # type: ignore[index]


def test_scores_sorted_most_wasteful_first() -> None:
    out = waste_scores([GpuUse("a", "busy", "n", "0", 0.9, 0.9), GpuUse("a", "idle", "n", "1", 0.0, 0.0)])
    assert [w.pod for w in out] == ["idle", "busy"] and out[0].idle


def test_queries_constant_and_join() -> None:
    q = build_queries("30m")
    assert set(q) == {"memory", "compute"} and all("[30m]" in v for v in q.values())
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE" in q["compute"] and "DCGM_FI_DEV_GPU_UTIL" in q["compute"]
    vec = {
        "memory": [
            {"metric": {"namespace": "ns", "pod": "p", "node": "n1", "gpu": "0"}, "value": [0, "0.5"]},
            {
                "metric": {"namespace": "ns", "pod": "m", "node": "n2", "gpu": "1", "GPU_I_ID": "3"},
                "value": [0, "0.1"],
            },
            {"metric": {"pod": "no-namespace"}, "value": [0, "0.1"]},
        ],
        "compute": [
            {"metric": {"namespace": "ns", "pod": "p", "node": "n1", "gpu": "0"}, "value": [0, "NaN"]}
        ],
    }
    uses = uses_from_vectors(vec)
    assert uses == [
        GpuUse("ns", "m", "n2", "1/3", compute=None, memory=0.1),
        GpuUse("ns", "p", "n1", "0", compute=None, memory=0.5),
    ]


class _Fake:
    def __init__(self, uses: list[GpuUse]) -> None:
        self.uses = uses

    async def fetch(self) -> list[GpuUse]:
        return list(self.uses)


def test_component_exports_and_drops_series() -> None:
    cluster = SnapshotCluster()
    fake = _Fake(
        [
            GpuUse("notebooks", "nb-alice-0", "wrong-node", "0", 0.0, 0.01),
            GpuUse("x", "gone", "n", "0", 0.9, 0.9),
        ]
    )
    comp = WasteComponent(Settings(), source=fake)

    async def go() -> None:
        await cluster.start()
        comp._ctx = AppContext(settings=Settings(), cluster=cluster)
        await comp.cycle()
        text = render().decode()
        assert (
            'gpu_autoscaler_waste_score{gpu="0",namespace="notebooks",node="l40s-0",pod="nb-alice-0"} 100.0'
            in text
        )
        assert 'pod="gone"' in text
        fake.uses = fake.uses[:1]
        await comp.cycle()
        assert 'pod="gone"' not in render().decode()

    asyncio.run(go())


def test_component_off_without_prometheus() -> None:
    comp = WasteComponent(Settings())

    async def go() -> None:
        await comp.start(AppContext(settings=Settings(), cluster=SnapshotCluster()))
        assert comp._loop is None
        await comp.stop()

    asyncio.run(go())


def test_collector_over_http() -> None:
    import httpx

    from app.waste.collector import WasteCollector

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params["query"]
        seen.append(q)
        value = "0.02" if "GR_ENGINE" in q else "0.01"
        sample = {
            "metric": {"namespace": "ns", "pod": "p", "Hostname": "x", "node": "n1", "gpu": "3"},
            "value": [0, value],
        }
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": [sample]}}
        )

    async def go() -> list[GpuUse]:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        collector = WasteCollector("http://prom:9090/", "15m", client=client)
        try:
            return await collector.fetch()
        finally:
            await collector.aclose()

    uses = asyncio.run(go())
    assert len(seen) == 2
    assert uses == [GpuUse("ns", "p", "n1", "3", compute=0.02, memory=0.01)]
    assert waste_scores(uses)[0].idle


# -- flags and Events --------------------------------------------------------------------------------------
H100 = 6.88


def _holders() -> dict[tuple[str, str], Holder]:
    return {
        ("inference", "llama"): Holder("NVIDIA H100 80GB HBM3", 1.0),
        ("notebooks", "nb"): Holder("NVIDIA H100 80GB HBM3", 1.0),
        ("train", "big"): Holder("NVIDIA H100 80GB HBM3", 1.0, count=4),
        ("notebooks", "carol"): Holder("NVIDIA A100-SXM4-80GB", 1 / 7, slice_profile="1g.10gb"),
    }


@pytest.mark.parametrize(
    ("case", "use", "flagged"),
    [
        ("low use that stayed low", GpuUse("inference", "llama", "n", "0", 0.12, 0.15, peak=0.3), True),
        (
            "a peak over 50 % in the last 5 minutes",
            GpuUse("inference", "llama", "n", "0", 0.12, 0.15, peak=0.6),
            False,
        ),
        ("no peak measured", GpuUse("inference", "llama", "n", "0", 0.12, 0.15), False),
        ("score not over 50", GpuUse("inference", "llama", "n", "0", 0.3, 0.4, peak=0.4), False),
        ("a pod the cluster does not know", GpuUse("gone", "x", "n", "0", 0.0, 0.0, peak=0.0), False),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_flag_rule(case: str, use: GpuUse, flagged: bool) -> None:
    got = flag(waste_scores([use]), [use], _holders(), load_prices())
    assert bool(got) is flagged


def test_flag_messages_name_reason_score_profile_and_saving() -> None:
    uses = [
        GpuUse("inference", "llama", "dgx-0", "0", 0.12, 0.15, peak=0.3),
        GpuUse("notebooks", "nb", "dgx-0", "1", 0.01, 0.02, peak=0.02),
        GpuUse("train", "big", "dgx-1", "2", 0.05, 0.9, peak=0.1),
        GpuUse("notebooks", "carol", "a100-mig-0", "0/7", 0.04, 0.2, peak=0.05),
    ]
    flags = {f.score.pod: f for f in flag(waste_scores(uses), uses, _holders(), load_prices())}
    llama = flags["llama"]
    assert (
        llama.fit.profile == "1g.20gb"
        and llama.suggestion == "request nvidia.com/mig-1g.20gb on H100-80GB instead"
    )
    assert llama.monthly_saving_usd == pytest.approx(H100 * 6 / 7 * 730, abs=0.01)
    msg = llama.message("5m", 0.5)
    assert msg.startswith(
        "GPU 0 on dgx-0 mostly unused: compute 12%, memory 15% on average, compute peak 30% "
    )
    assert (
        "stayed under 50% for 5m; waste score 74/100 (low compute: 12% < 20%; low memory: 15% < 25%)" in msg
    )
    assert msg.endswith(f"saves ${H100 * 6 / 7 * 730:,.2f}/month.")
    idle = flags["nb"]
    assert idle.release and idle.monthly_saving_usd == pytest.approx(H100 * 730)
    assert "release the GPU" in idle.message(
        "5m", 0.5
    ) and "(or nvidia.com/mig-1g.10gb, saves $" in idle.message("5m", 0.5)
    assert flags["big"].suggestion.startswith("ask for fewer GPUs (this one of 4")
    assert flags["big"].monthly_saving_usd == pytest.approx(H100 * 730)
    carol = flags["carol"]
    assert carol.fit.profile is None and carol.monthly_saving_usd is None  # already the smallest slice
    assert "saves" not in carol.message("5m", 0.5)


def test_holders_per_gpu() -> None:
    cluster = SnapshotCluster()
    asyncio.run(cluster.start())
    h = holders(cluster_facts(cluster.list("Node"), cluster.list("Pod")))
    assert h[("ml-training", "bert-pretrain-0")] == Holder("NVIDIA A100-SXM4-80GB", 1.0, None, 4)
    assert h[("notebooks", "nb-carol-0")].slice_profile == "1g.10gb"
    assert h[("notebooks", "nb-carol-0")].gpus == pytest.approx(1 / 7)


class _Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


def test_component_tells_a_flagged_pod_once_an_hour() -> None:
    cluster = SnapshotCluster()
    idle = GpuUse("inference", "llama-8b-h100-6c9d7f5b8d-9k2bh", "dgx-h100-1", "0", 0.12, 0.15, peak=0.2)
    busy = GpuUse("inference", "qwen-32b-h100-84d7c9b6f5-sfb99", "dgx-h100-0", "1", 0.8, 0.9, peak=0.9)
    comp = WasteComponent(Settings(), source=_Fake([idle, busy]))
    comp.prices = load_prices()
    clock = _Clock()

    async def go() -> None:
        await cluster.start()
        ctx = AppContext(settings=Settings(), cluster=cluster, events=EventRecorder(cluster, clock=clock))
        comp._ctx = ctx
        await comp.cycle()
        clock.now += 1800
        await comp.cycle()  # within the hour: no second Event
        clock.now += 1801
        await comp.cycle()

    asyncio.run(go())
    events = [e for e in cluster.others["Event"].values() if e["reason"] == "GPUWasteful"]
    assert len(events) == 2
    e = events[0]
    assert e["type"] == "Warning" and e["involvedObject"]["name"] == "llama-8b-h100-6c9d7f5b8d-9k2bh"
    assert "nvidia.com/mig-1g.20gb" in e["message"] and "/month" in e["message"]
    assert (
        'gpu_autoscaler_waste_flagged{gpu="0",namespace="inference",node="dgx-h100-1",'
        'pod="llama-8b-h100-6c9d7f5b8d-9k2bh"} 1.0' in render().decode()
    )
    doc = comp.describe()
    assert [f["pod"] for f in doc["flagged"]] == ["llama-8b-h100-6c9d7f5b8d-9k2bh"] and doc["window"] == "10m"


def test_waste_loop_runs_on_the_leader_only() -> None:
    class Standby:
        is_leader = False
        identity = "b"

        def add_listener(self, listener: Any) -> None:
            pass

        def describe(self) -> dict[str, Any]:
            return {"leader": False, "identity": self.identity}

    calls: list[int] = []

    class Counting(_Fake):
        async def fetch(self) -> list[GpuUse]:
            calls.append(1)
            return []

    comp = WasteComponent(Settings(), source=Counting([]))

    async def go() -> None:
        ctx = AppContext(settings=Settings(), cluster=SnapshotCluster(), leadership=Standby())
        await comp.start(ctx)
        assert comp._loop is not None
        assert await comp._loop.run_once() and comp._loop.skipped >= 1
        await comp.stop()

    asyncio.run(go())
    assert calls == []


def test_collector_asks_the_peak_over_the_flag_range() -> None:
    q = build_queries("10m", "5m")
    assert set(q) == {"memory", "compute", "peak"}
    assert 'max_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{pod!=""}[5m])' in q["peak"]
    vec = {
        "peak": [{"metric": {"namespace": "ns", "pod": "p", "node": "n1", "gpu": "0"}, "value": [0, "0.3"]}]
    }
    assert uses_from_vectors(vec) == [GpuUse("ns", "p", "n1", "0", peak=0.3)]
