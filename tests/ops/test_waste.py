"""Waste scoring: the formula (table), its invariants (hypothesis), the collector's join, the component."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext
from app.metrics import render
from app.settings import Settings
from app.waste.collector import build_queries, uses_from_vectors
from app.waste.component import WasteComponent
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
