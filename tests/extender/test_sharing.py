"""GPU sharing (`gpu-autoscaler.io/gpu-milli`) on time-slicing / MPS node pools, over the wire.

Nodes carry the labels GPU Feature Discovery writes when the device plugin shares GPUs
(`nvidia.com/gpu.sharing-strategy`, `nvidia.com/gpu.replicas`, `-SHARED` product suffix) and advertise
`nvidia.com/gpu` = physical GPUs x replicas, as the NVIDIA device plugin does.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.arrays import GPU_MILLI
from extender.core import ScoringConfig
from extender.inventory import parse_node, parse_pod
from extender.service import ExtenderService
from extender.view_adapter import NodeStateAdapter
from extender.wire import ExtenderArgs
from tests.extender.conftest import make_node, make_pod

MILLI = "gpu-autoscaler.io/gpu-milli"
INDEX = "gpu-autoscaler.io/gpu-index"


def shared_node(
    name: str,
    gpus: int = 4,
    replicas: int = 4,
    strategy: str = "time-slicing",
    rename: bool = False,
    annotate: bool = False,
) -> dict[str, Any]:
    """A node whose device plugin shares its GPUs, labelled as GFD labels it."""
    node = make_node(name, gpus=gpus, product="Tesla T4", memory_mib=15360, annotate=annotate)
    labels = node["metadata"]["labels"]
    labels["nvidia.com/gpu.product"] = "Tesla-T4" if rename else "Tesla-T4-SHARED"
    labels["nvidia.com/gpu.replicas"] = str(replicas)
    labels["nvidia.com/gpu.sharing-strategy"] = strategy
    for key in ("allocatable", "capacity"):
        res = node["status"][key]
        if rename:
            res["nvidia.com/gpu"] = "0"
            res["nvidia.com/gpu.shared"] = str(gpus * replicas)
        else:
            res["nvidia.com/gpu"] = str(gpus * replicas)
    return node


def share_pod(name: str, milli: Any, node: str | None = None, index: str | None = None) -> dict[str, Any]:
    ann = {MILLI: str(milli)}
    if index is not None:
        ann[INDEX] = index
    return make_pod(
        name,
        gpus=1,
        annotations=ann,
        node=node,
        phase="Running" if node else "Pending",
        cpu="1",
        memory="4Gi",
    )


def _schedule(client: Any, pod: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], list[Any]]:
    body = {"Pod": pod, "Nodes": None, "NodeNames": names}
    filt = client.post("/filter", json=body).json()
    prio = client.post("/prioritize", json={**body, "NodeNames": filt["NodeNames"]}).json()
    return filt, prio


def _left(comp: Any, node: str) -> list[int]:
    st_ = comp.adapter.state
    row = st_.index[node]
    return [int(x) for x in st_.gpu_left[row, : st_.gpu_count[row]]]


# -- inventory -------------------------------------------------------------------------------------------
def test_time_slicing_node_counts_physical_gpus() -> None:
    info = parse_node(shared_node("ts", gpus=4, replicas=4))
    assert info.capacity.gpu_count == 4  # allocatable 16 = 4 GPUs x 4 replicas
    assert (info.sharing, info.replicas) == ("time-slicing", 4)
    assert info.product == "Tesla-T4" and info.capacity.model == "tesla-t4"  # -SHARED stripped


def test_rename_by_default_reads_gpu_shared() -> None:
    info = parse_node(shared_node("mps", gpus=2, replicas=3, strategy="mps", rename=True))
    assert info.capacity.gpu_count == 2  # nvidia.com/gpu 0, nvidia.com/gpu.shared 6
    assert info.sharing == "mps"


def test_topology_annotation_agrees_with_physical_count() -> None:
    info = parse_node(shared_node("ts", gpus=4, replicas=2, annotate=True))
    assert info.capacity.gpu_count == 4 and info.links is not None  # not "disagrees with allocatable"


def test_plain_node_does_not_share() -> None:
    info = parse_node(make_node("plain", gpus=8))
    assert (info.sharing, info.replicas, info.capacity.gpu_count) == ("none", 1, 8)


def test_gpu_milli_annotation_parsing() -> None:
    ok = parse_pod(share_pod("p", 250))
    assert ok.req.is_shared and ok.req.gpu_milli == 250 and not ok.invalid
    for bad in ("0", "1000", "1500", "half", "-3", "0.5"):  # one rule with the trace replay: 1..999
        ask = parse_pod(share_pod("p", bad))
        assert ask.req.gpu_milli == GPU_MILLI and "1..999" in ask.invalid, bad
        assert ask.invalid.startswith("annotation gpu-autoscaler.io/gpu-milli: "), ask.invalid
    two = make_pod("p", gpus=2, annotations={MILLI: "500"})
    assert "500 needs exactly 1 nvidia.com/gpu, the pod asks 2" in parse_pod(two).invalid
    cpu_only = make_pod("p", annotations={MILLI: "500"})
    assert not parse_pod(cpu_only).wants_gpu and not parse_pod(cpu_only).invalid
    assert parse_pod(share_pod("p", 300, index="2")).pinned == (2,)
    assert parse_pod(share_pod("p", 300, index="x")).pinned == ()


# -- filter / prioritize / assume ----------------------------------------------------------------------------
def test_shared_pod_only_on_sharing_nodes(make_client: Any) -> None:
    client, _, _ = make_client([shared_node("ts"), make_node("plain", gpus=8)])
    filt, prio = _schedule(client, share_pod("p", 500), ["ts", "plain"])
    assert filt["NodeNames"] == ["ts"]
    assert "does not share GPUs" in filt["FailedAndUnresolvableNodes"]["plain"]
    assert [h["Host"] for h in prio] == ["ts"]


def test_invalid_annotation_fails_every_node_with_the_reason(make_client: Any) -> None:
    client, _, _ = make_client([shared_node("ts"), make_node("plain", gpus=8)])
    filt, _ = _schedule(client, share_pod("p", "1500"), ["ts", "plain"])
    assert filt["NodeNames"] == []
    reasons = set(filt["FailedAndUnresolvableNodes"].values())
    assert reasons == {"annotation gpu-autoscaler.io/gpu-milli: 1500 is outside 1..999"}


def test_shares_pack_per_gpu_and_the_choice_is_reported(make_client: Any) -> None:
    client, _, comp = make_client([shared_node("ts", gpus=2)])
    _schedule(client, share_pod("a", 600), ["ts"])
    _schedule(client, share_pod("b", 300), ["ts"])  # best fit: the partly used GPU 0 (400 left)
    _schedule(client, share_pod("c", 600), ["ts"])  # does not fit GPU 0 any more -> GPU 1
    assert _left(comp, "ts") == [100, 400]
    placed = client.get("/extender/placements").json()
    assert [placed[f"uid-ml-team-{p}"]["gpus"] for p in "abc"] == [[0], [0], [1]]
    assert placed["uid-ml-team-b"]["gpu_milli"] == 300
    assert comp.adapter.assume.get("uid-ml-team-b").gpus == [0]
    filt, _ = _schedule(client, share_pod("d", 500), ["ts"])  # 100 and 400 left: no GPU holds 500
    assert filt["FailedNodes"] == {"ts": "needs 500m of one GPU, the freest GPU has 400m"}


def test_bind_keeps_the_assumed_gpu(make_client: Any) -> None:
    client, cluster, comp = make_client([shared_node("ts", gpus=2)])
    _schedule(client, share_pod("a", 700), ["ts"])
    pod = share_pod("b", 200)
    _schedule(client, pod, ["ts"])
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = "ts"
    bound["status"]["phase"] = "Running"
    cluster.upsert(bound)
    assert comp.adapter.bound["uid-ml-team-b"].gpus == [0]
    assert _left(comp, "ts") == [100, 1000]
    cluster.delete("Pod", "b", "ml-team")
    assert _left(comp, "ts") == [300, 1000]


def test_running_pods_accounted_per_gpu(make_client: Any) -> None:
    objs = [
        shared_node("ts", gpus=4),
        share_pod("pinned", 700, node="ts", index="2"),  # the device plugin's choice wins
        share_pod("free1", 500, node="ts"),  # no index: best fit
        share_pod("free2", 400, node="ts"),  # best fit: the partly used GPU with least left that holds it
        share_pod("bad", "abc", node="ts"),  # unreadable share: a whole GPU (conservative), logged
    ]
    _, _, comp = make_client(objs)
    left = _left(comp, "ts")
    assert left[2] == 300
    assert sorted(left) == [0, 100, 300, 1000]  # free1+free2 on one GPU, bad takes a whole one
    assert sum(GPU_MILLI - x for x in left) == 700 + 500 + 400 + 1000


def test_gpu_index_written_after_bind_moves_the_share(make_client: Any) -> None:
    _, cluster, comp = make_client([shared_node("ts", gpus=2), share_pod("p", 400, node="ts")])
    assert _left(comp, "ts") == [600, 1000]
    cluster.upsert(share_pod("p", 400, node="ts", index="1"))
    assert _left(comp, "ts") == [1000, 600]


def test_whole_gpu_pods_on_a_shared_node_take_a_whole_gpu(make_client: Any) -> None:
    client, _, comp = make_client([shared_node("ts", gpus=2)])
    _schedule(client, make_pod("whole", gpus=1), ["ts"])
    _schedule(client, share_pod("s", 300), ["ts"])
    assert sorted(_left(comp, "ts")) == [0, 700]


# -- property ------------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gpus=st.integers(1, 4),
    ops=st.lists(
        st.tuples(st.sampled_from(["schedule", "bind", "delete"]), st.integers(0, 11), st.integers(1, 999)),
        max_size=40,
    ),
)
def test_shares_on_one_gpu_never_exceed_1000(gpus: int, ops: list[tuple[str, int, int]]) -> None:
    adapter = NodeStateAdapter(ScoringConfig())
    adapter.upsert_node(shared_node("ts", gpus=gpus))
    adapter.upsert_node(shared_node("ts2", gpus=1, strategy="mps"))
    svc = ExtenderService(adapter, adapter.config)
    milli: dict[int, int] = {}
    for op, i, m in ops:
        milli.setdefault(i, m)
        pod = share_pod(f"p{i}", milli[i])
        key = f"uid-ml-team-p{i}"
        if op == "schedule" and key not in adapter.bound:
            out = svc.filter(ExtenderArgs(Pod=pod, NodeNames=["ts", "ts2"]))
            if out["NodeNames"]:
                svc.prioritize(ExtenderArgs(Pod=pod, NodeNames=out["NodeNames"]))
        elif op == "bind":
            placed = svc.last_placement.get(key)
            if placed is not None and key in adapter.assume:
                adapter.upsert_pod(share_pod(f"p{i}", milli[i], node=placed.node))
        elif op == "delete":
            adapter.remove_pod(pod)
        st_ = adapter.state
        for node in ("ts", "ts2"):
            row = st_.index[node]
            left = st_.gpu_left[row, : st_.gpu_count[row]]
            assert (left >= 0).all() and (left <= GPU_MILLI).all()
            used = [0] * int(st_.gpu_count[row])
            for b in adapter.bound.values():
                if b.node == node:
                    for g in b.gpus:
                        used[g] += b.req.gpu_milli
            for e in adapter.assume.on_node(node):
                for g in e.gpus:
                    used[g] += e.req.gpu_milli
            assert all(u <= GPU_MILLI for u in used)
            assert [GPU_MILLI - int(x) for x in left] == used
