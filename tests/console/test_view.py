"""The console's view model, pure: plain inputs in, the dicts the page renders out (no browser, no app)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.console.inputs import ConsoleInputs, GpuFacts, Holder, NodeInput
from app.console.view import (
    Filters,
    ask_text,
    build,
    gpu_map,
    layout_plan,
    money,
    node_row,
    nodescale_plan,
    num,
    nvlink_islands,
    source_label,
    util_band,
)
from app.waste.score import WasteScore
from tests.console.conftest import COST_PLAN, MIG_PLAN, NODESCALE_PLAN

NV = [["X" if i == j else "NV18" for j in range(4)] for i in range(4)]
# 4 GPUs, NVLink bridges within the pairs 0-1 and 2-3, PCIe across
PAIRS = [["X", "NV12", "SYS", "SYS"], ["NV12", "X", "SYS", "SYS"], ["SYS", "SYS", "X", "NV4"]]
PAIRS.append(["SYS", "SYS", "NV4", "X"])
PCIE = [["X", "PHB", "SYS", "SYS"], ["PHB", "X", "SYS", "SYS"], ["SYS", "SYS", "X", "PHB"]]
PCIE.append(["SYS", "SYS", "PHB", "X"])


def node(name: str = "n0", n: int = 4, links: Any = NV, **kw: Any) -> NodeInput:
    left = kw.pop("gpu_left", (1000,) * n)
    return NodeInput(
        name=name,
        product=kw.pop("product", "NVIDIA H100 80GB HBM3"),
        gpu_phys=tuple(range(n)),
        gpu_left=tuple(left),
        gpus=tuple(GpuFacts(i) for i in range(n)) if links is not None else (),
        links=None if links is None else tuple(tuple(r) for r in links),
        **kw,
    )


def pod(name: str, node: str = "n0", gpus: tuple[int, ...] = (0,), ns: str = "team", **kw: Any) -> Holder:
    return Holder(key=f"uid-{name}", namespace=ns, name=name, node=node, gpus=gpus, **kw)


def cells(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for g in row["groups"] for c in g["cells"]]


def states(cell: dict[str, Any]) -> list[tuple[str, float]]:
    return [(p["state"], p["share"]) for p in cell["parts"]]


# -- topology ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("links", "islands"),
    [
        (NV, [[0, 1, 2, 3]]),
        (PAIRS, [[0, 1], [2, 3]]),
        (PCIE, []),
        (None, []),
        ([["X"]], []),
    ],
)
def test_nvlink_islands(links: Any, islands: list[list[int]]) -> None:
    assert nvlink_islands(links, len(links) if links else 4) == islands


def test_row_groups_cells_by_island_and_says_so_in_its_text() -> None:
    row = node_row(node(links=PAIRS), [], {})
    assert [(g["kind"], g["label"], [c["label"] for c in g["cells"]]) for g in row["groups"]] == [
        ("nvlink", "NVLink NV12 island 1", ["0", "1"]),
        ("nvlink", "NVLink NV4 island 2", ["2", "3"]),
    ]
    assert "NVLink NV12 island 1: GPUs 0, 1" in row["text"]
    pcie = node_row(node(links=PCIE), [], {})
    assert [g["kind"] for g in pcie["groups"]] == ["pcie"] and "no NVLink" in pcie["text"]
    unknown = node_row(node(links=None, source="labels"), [], {})
    assert [g["label"] for g in unknown["groups"]] == ["topology unknown"]
    assert len(cells(unknown)) == 4


# -- allocation --------------------------------------------------------------------------------------------
def test_whole_gpus_held_free_assumed_and_agent() -> None:
    n = node(gpu_left=(0, 0, 1000, 0), agent_held=(3,))
    holders = [pod("train", gpus=(0,)), pod("next", gpus=(1,), assumed=True)]
    row = node_row(n, holders, {})
    c = {x["label"]: x for x in cells(row)}
    assert (
        c["0"]["alloc"] == "full" and states(c["0"]) == [("bound", 1.0)] and c["0"]["pods"] == ["team/train"]
    )
    assert c["1"]["alloc"] == "assumed" and "steered, not bound yet" in c["1"]["text"]
    assert (
        c["2"]["alloc"] == "free" and states(c["2"]) == [("free", 1.0)] and c["2"]["text"].endswith(": free")
    )
    assert c["3"]["alloc"] == "agent" and "no known pod" in c["3"]["text"]
    assert row["used"] == 3.0 and row["gpus"] == 4


def test_a_multi_gpu_pod_is_on_each_of_its_cells() -> None:
    row = node_row(node(gpu_left=(0, 0, 1000, 1000)), [pod("ddp", gpus=(0, 1))], {})
    assert [c["pods"] for c in cells(row)] == [["team/ddp"], ["team/ddp"], [], []]


def test_shared_gpu_parts_are_the_shares_and_what_is_left() -> None:
    n = node(sharing="time-slicing", gpu_left=(250, 1000, 1000, 1000), links=PCIE)
    holders = [pod("a", milli=500), pod("b", milli=250, ns="other")]
    c = cells(node_row(n, holders, {}))[0]
    assert c["kind"] == "shared" and c["alloc"] == "part"
    assert states(c) == [("bound", 0.25), ("bound", 0.5), ("free", 0.25)]  # by pod: other/b, team/a
    assert c["namespaces"] == ["other", "team"]
    assert "team/a (50%)" in c["text"] and "25% free" in c["text"]


@given(st.lists(st.integers(1, 999), min_size=1, max_size=6))
def test_shared_gpu_parts_never_exceed_one_gpu(shares: list[int]) -> None:
    """Whatever the view lags into (shares summing past 1000), a cell's parts add up to at most 1."""
    left = max(0, 1000 - sum(shares))
    n = node(sharing="mps", gpu_left=(left, 1000, 1000, 1000))
    holders = [pod(f"p{i}", milli=m) for i, m in enumerate(shares)]
    c = cells(node_row(n, holders, {}))[0]
    held = sum(p["share"] for p in c["parts"] if p["state"] != "free")
    total = sum(p["share"] for p in c["parts"])
    assert held == pytest.approx(sum(shares) / 1000, abs=1e-3)
    assert total == pytest.approx(max(1.0, held), abs=1e-3)
    assert c["alloc"] == ("full" if sum(shares) >= 999 else "part")


def mig_node(layout: dict[int, tuple[str, ...]] | None, agent: tuple[int, ...] = ()) -> NodeInput:
    return NodeInput(
        name="mig",
        product="NVIDIA A100-SXM4-80GB",
        gpus=tuple(GpuFacts(i, mig_enabled=True) for i in range(2)),
        links=(("X", "NV12"), ("NV12", "X")),
        mig_cap={"1g.10gb": 7, "3g.40gb": 2},
        mig_layout=layout or {},
        agent_held=agent,
    )


def test_mig_slices_are_parts_of_their_gpu_agent_marked_gpus_first() -> None:
    layout = {0: ("1g.10gb",) * 7, 1: ("3g.40gb", "3g.40gb")}
    holders = [
        Holder("k1", "nb", "carol", "mig", mig=(("1g.10gb", 1),)),
        Holder("k2", "ml", "eval", "mig", mig=(("3g.40gb", 1),), assumed=True),
    ]
    row = node_row(mig_node(layout), holders, {})
    g0, g1 = cells(row)
    assert g0["kind"] == "mig" and len(g0["parts"]) == 7
    assert g0["parts"][0]["state"] == "bound" and g0["parts"][0]["profile"] == "1g.10gb"
    assert g0["parts"][0]["share"] == pytest.approx(1 / 7, abs=1e-3)
    assert [p["state"] for p in g1["parts"]] == ["assumed", "free", "unused"]  # 2 x 3g leave 1/7 unused
    assert g1["parts"][2]["share"] == pytest.approx(1 / 7, abs=1e-3)
    assert "3g.40gb: ml/eval (steered, not bound yet)" in g1["text"]
    assert row["used"] == pytest.approx(4 / 7, abs=1e-3) and row["gpus"] == 2


def test_mig_without_layout_draws_one_cell_per_profile_and_lists_what_does_not_fit() -> None:
    holders = [Holder(f"k{i}", "nb", f"p{i}", "mig", mig=(("3g.40gb", 1),)) for i in range(3)]
    row = node_row(mig_node(None), holders, {})
    pools = next(g for g in row["groups"] if g["kind"] == "mig")["cells"]
    assert [(c["label"], c["kind"], len(c["parts"])) for c in pools] == [
        ("1g.10gb", "pool", 7),
        ("3g.40gb", "pool", 2),
    ]
    assert [p["state"] for p in pools[1]["parts"]] == ["bound", "bound"]
    assert row["undrawn"] == ["nb/p2 (3g.40gb)"]  # only 2 slices of that profile exist


# -- utilisation, filters, totals --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("compute", "band"),
    [(None, None), (0.0, "idle"), (0.049, "idle"), (0.05, "low"), (0.3, "mid"), (0.9, "high")],
)
def test_util_band(compute: float | None, band: str | None) -> None:
    assert util_band(compute) == band


def _inputs() -> ConsoleInputs:
    return ConsoleInputs(
        source="test",
        generated_at=1_700_000_000.0,
        nodes=[
            node("h0", gpu_left=(0, 0, 1000, 1000)),
            node("l0", product="NVIDIA L40S", links=PCIE, gpu_left=(0, 1000, 1000, 1000)),
        ],
        holders=[pod("train", "h0", (0, 1), ns="ml"), pod("nb", "l0", (0,), ns="notebooks")],
        waste=[
            WasteScore("ml", "train", "h0", "0", 10.0, 0.9, 0.8, ()),
            WasteScore("ml", "train", "h0", "1", 12.0, 0.8, 0.8, ()),
            WasteScore("notebooks", "nb", "l0", "0", 100.0, 0.01, 0.02, ("idle GPU held",)),
        ],
    )


def test_map_utilisation_from_waste_scores() -> None:
    m = gpu_map(_inputs())
    h0 = {c["label"]: c for c in cells(m["rows"][0])}
    l0 = {c["label"]: c for c in cells(m["rows"][1])}
    assert h0["0"]["util"] == 0.9 and h0["0"]["band"] == "high" and h0["0"]["mem"] == 0.8
    assert "compute 90%, memory 80%" in h0["0"]["text"]
    assert l0["0"]["band"] == "idle" and l0["0"]["waste"] == 100.0
    assert h0["2"]["util"] is None and h0["2"]["band"] is None
    assert m["totals"] == {"nodes": 2, "gpus": 8, "used": 3.0, "idle_held": 1, "assumed": 0}
    assert m["utilisation"] is True


@pytest.mark.parametrize(
    ("filters", "shown", "dimmed"),
    [
        (Filters(), ["h0", "l0"], 0),
        (Filters(product="NVIDIA L40S"), ["l0"], 0),
        (Filters(namespace="ml"), ["h0"], 2),  # h0's free GPUs are dimmed, its rows kept
        (Filters(product="NVIDIA L40S", namespace="ml"), [], 0),
        (Filters(namespace="nobody"), [], 0),
    ],
)
def test_filters(filters: Filters, shown: list[str], dimmed: int) -> None:
    m = gpu_map(_inputs(), filters)
    assert [r["name"] for r in m["rows"]] == shown
    assert sum(c["dim"] for r in m["rows"] for c in cells(r)) == dimmed
    # the choices and the totals stay those of the whole cluster
    assert m["products"] == ["NVIDIA H100 80GB HBM3", "NVIDIA L40S"] and m["namespaces"] == [
        "ml",
        "notebooks",
    ]
    assert m["totals"]["nodes"] == 2


# -- decisions and plans -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "text"),
    [("1", "1 GPU"), ("4", "4 GPUs"), ("0.25", "0.25 of a GPU"), ("mig-1g.10gb", "MIG 1g.10gb"), ("x", "x")],
)
def test_ask_text(label: str, text: str) -> None:
    assert ask_text(label) == text


def test_build_reads_every_source() -> None:
    inputs = _inputs()
    inputs.placements = [
        {"seq": 2, "at": 1_700_000_100.0, "key": "u2", "pod": "a/b", "ask": "2", "outcome": "unschedulable",
         "gpus": [], "nodes": [], "reasons": []},
        {"seq": 1, "at": 1_700_000_000.0, "key": "u1", "pod": "a/c", "ask": "1", "outcome": "placed",
         "gpus": [3], "nodes": [], "reasons": []},
    ]  # fmt: skip
    inputs.webhook = [{"at": 1.0, "namespace": "nb", "pod": "x-1", "outcome": "mutated", "profile": "1g.10gb",
                       "reasons": ["container x: -> 1g.10gb"]}]  # fmt: skip
    inputs.autoscaler = {
        "cycles": 3,
        "metrics": {"error": None},
        "decisions": [
            {"namespace": "inf", "variant": "llama", "model_id": "m", "accelerator": "L40S", "current": 2,
             "desired": 3, "action": "scale_up", "reasons": ["spare kv low"], "ready": 2},
        ],
    }  # fmt: skip
    vm = build(inputs)
    assert vm["generated"] == {"iso": "2023-11-14T22:13:20+00:00", "text": "22:13:20"}
    assert [p["ask_text"] for p in vm["placements"]] == ["2 GPUs", "1 GPU"]
    assert vm["placements"][1]["gpus_text"] == "3"
    assert [p["bound_node"] for p in vm["placements"]] == [None, None]
    inputs.holders.append(Holder("u1", "a", "c", "l0", (3,)))  # bound where kube-scheduler put it
    assert build(inputs)["placements"][1]["bound_node"] == "l0"
    assert vm["summary"]["unschedulable"] == 1 and vm["summary"]["pods"] == 2 and vm["summary"]["free"] == 5.0
    assert vm["webhook"][0]["pod"] == "nb/x-1" and vm["webhook"][0]["reasons"] == ["container x: -> 1g.10gb"]
    (v,) = vm["autoscaler"]["variants"]
    assert v["variant"] == "inf/llama" and v["delta"] == 1 and v["reasons"] == ["spare kv low"]
    assert vm["plans"] == {}
    assert build(ConsoleInputs())["placements"] is None  # no extender: the section says so


def test_layout_plan_shape() -> None:
    p = layout_plan("mig", MIG_PLAN)
    assert p["title"] == "MIG layout controller"
    assert p["nodes"][0] == {
        "node": "a100-0",
        "current": "1g.10gb=7",
        "target": "3g.40gb=2",
        "action": "relayout",
        "reason": "3 pods wait for 3g.40gb",
        "blocked_by": None,
    }
    assert p["nodes"][1]["blocked_by"] == "team/nb-1" and p["nodes"][1]["current"] == "1g.10gb, 1g.10gb"
    assert p["unmet"] == [{"profile": "1g.10gb", "count": 2}, {"profile": "3g.40gb", "count": 1}]
    assert layout_plan("sharing", {"nodes": [], "unmet": {}})["title"] == "GPU-sharing controller"


def test_nodescale_plan_shape() -> None:
    p = nodescale_plan(NODESCALE_PLAN)
    assert [(s["group"], s["direction"]) for s in p["scale"]] == [("h100-pool", "up"), ("l40s-pool", "down")]
    assert p["drain"] == [{"node": "l40s-3", "reason": "empty for 10 min", "pods": "inf/a, inf/b"}]
    assert p["blocked"] == [{"node": "h100-1", "reason": "PDB allows no disruption"}]


def test_money_with_the_cost_controller_shows_budgets_and_its_savings() -> None:
    m = money([], COST_PLAN, None, {"suggestions": [], "usd_per_hour_saved": 0.0, "notes": []})
    assert m["budgets"] is True
    assert [(n["namespace"], n["band"], n["bar_pct"]) for n in m["namespaces"]] == [
        ("ml", "over", 100.0),
        ("nb", "ok", 20.0),
        ("free", "none", None),
    ]
    assert [s["pod"] for s in m["savings"]] == ["t-0", "nb-1"]  # biggest saving first


def test_money_without_it_uses_the_point_in_time_report_and_optimize() -> None:
    report = {
        "namespaces": [
            {"namespace": "ml", "pods": 2, "gpus": 3.5, "usd_per_hour": 12.0, "usd_per_month": 8760.0}
        ],
        "totals": {"usd_per_hour": 12.0},
        "prices": "bundled",
    }
    sugg = {
        "suggestions": [{"kind": "idle", "target": "nb/x", "reason": "idle", "action": "stop",
                         "usd_per_hour_saved": 2.0}],
        "usd_per_hour_saved": 2.0,
        "notes": ["n"],
    }  # fmt: skip
    waste = [WasteScore("nb", "x", "l0", "0", 100.0, 0.0, 0.01, ("idle GPU held",))]
    m = money(waste, None, report, sugg)
    assert m["budgets"] is False and m["savings"] is None
    assert m["namespaces"][0]["usd_per_month"] == 8760.0
    assert m["suggestions"][0]["usd_per_month"] == 1460.0 and m["suggested_usd_per_month"] == 1460.0
    assert m["wasters"][0]["pod"] == "nb/x" and m["wasters"][0]["idle"] and m["notes"] == ["n"]


def test_build_renders_plans_only_for_components_that_exist() -> None:
    inputs = ConsoleInputs(plans={"mig": MIG_PLAN, "nodescale": NODESCALE_PLAN, "cost": COST_PLAN})
    vm = build(inputs)
    assert set(vm["plans"]) == {"mig", "nodescale"}  # cost goes to the money section
    assert vm["money"]["budgets"] is True


@pytest.mark.parametrize(("x", "text"), [(3, "3"), (2.5, "2.5"), (0.714285, "0.71"), (4.0, "4"), (None, "—")])
def test_num(x: Any, text: str) -> None:
    assert num(x) == text


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("snapshot:/opt/x/app/cluster/demo", "bundled demo cluster (snapshot)"),
        ("snapshot:/tmp/dump.yaml", "snapshot:/tmp/dump.yaml"),
        ("kube:https://10.0.0.1:443", "kube:https://10.0.0.1:443"),
    ],
)
def test_source_label(source: str, label: str) -> None:
    assert source_label(source) == label
