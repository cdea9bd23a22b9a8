"""Assume cache (back-to-back pods, expiry, reconcile on bind), MIG slices and gang scheduling, over HTTP."""

from __future__ import annotations

import copy
from typing import Any

from tests.extender.conftest import BRIDGED_4, make_node, make_pod


def _schedule(
    client: Any, pod: dict[str, Any], names: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    body = {"Pod": pod, "Nodes": None, "NodeNames": names}
    filt = client.post("/filter", json=body).json()
    prio = client.post("/prioritize", json={**body, "NodeNames": filt["NodeNames"]}).json()
    return filt, prio


def test_back_to_back_pods_do_not_share_gpus(make_client: Any) -> None:
    client, _, comp = make_client([make_node("a", gpus=4, links=BRIDGED_4)])
    filt, _ = _schedule(client, make_pod("p1", gpus=2), ["a"])
    assert filt["NodeNames"] == ["a"]
    first = comp.service.last_placement["uid-ml-team-p1"].gpus
    assert first == [0, 1]
    filt, _ = _schedule(client, make_pod("p2", gpus=2), ["a"])
    second = comp.service.last_placement["uid-ml-team-p2"].gpus
    assert second == [2, 3]
    assert int(comp.adapter.state.full_free[0]) == 0  # both held until the watch shows them bound


def test_assumptions_yield_to_kube_scheduler_counts(make_client: Any) -> None:
    """kube-scheduler counts nvidia.com/gpu itself: when it offers a node our assumptions fill, they are
    wrong (the pods went elsewhere) and must not hide the node; only as many as needed are dropped."""
    client, _, comp = make_client([make_node("a", gpus=4, links=BRIDGED_4)])
    for name in ("p1", "p2"):
        _schedule(client, make_pod(name, gpus=2), ["a"])
    filt, prio = _schedule(client, make_pod("p3", gpus=2), ["a"])
    assert filt["NodeNames"] == ["a"] and prio == [{"Host": "a", "Score": 10}]
    assume = comp.adapter.assume
    assert [e.key for e in assume.on_node("a")] == ["uid-ml-team-p1", "uid-ml-team-p3"]
    assert assume.get("uid-ml-team-p2").node == ""  # type: ignore[union-attr]  # placed, not here
    assert comp.service.last_placement["uid-ml-team-p3"].gpus == [2, 3]


def test_assumptions_hold_when_yielding_is_off(make_client: Any) -> None:
    client, _, _ = make_client([make_node("a", gpus=4)], assume_yields_to_scheduler=False)
    for name in ("p1", "p2"):
        _schedule(client, make_pod(name, gpus=2), ["a"])
    filt, _ = _schedule(client, make_pod("p3", gpus=2), ["a"])
    assert filt["NodeNames"] == [] and filt["FailedNodes"] == {"a": "needs 2 free GPUs, node has 0"}


def test_retry_of_the_same_pod_does_not_block_itself(make_client: Any) -> None:
    client, _, _ = make_client([make_node("a", gpus=2)])
    pod = make_pod("p", gpus=2)
    for _ in range(3):
        filt, _ = _schedule(client, pod, ["a"])
        assert filt["NodeNames"] == ["a"]


def test_assumption_expires(make_client: Any) -> None:
    client, _, comp = make_client([make_node("a", gpus=2)])
    now = [1000.0]
    comp.adapter.assume.clock = lambda: now[0]
    comp.adapter.yields = False
    _schedule(client, make_pod("p1", gpus=2), ["a"])
    assert _schedule(client, make_pod("p2", gpus=2), ["a"])[0]["NodeNames"] == []
    now[0] += comp.adapter.assume.ttl + 1  # the scheduler never bound p1
    assert _schedule(client, make_pod("p2", gpus=2), ["a"])[0]["NodeNames"] == ["a"]


def test_bind_reconciles_and_keeps_the_chosen_gpus(make_client: Any) -> None:
    client, cluster, comp = make_client([make_node("a", gpus=4, links=BRIDGED_4)])
    pod = make_pod("p1", gpus=2)
    _schedule(client, make_pod("x", gpus=1), ["a"])
    _schedule(client, pod, ["a"])
    chosen = comp.service.last_placement["uid-ml-team-p1"].gpus
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = "a"
    bound["status"]["phase"] = "Running"
    cluster.upsert(bound)
    assert "uid-ml-team-p1" not in comp.adapter.assume
    assert comp.adapter.bound["uid-ml-team-p1"].gpus == chosen
    st = comp.adapter.state
    assert int(st.full_free[st.index["a"]]) == 1  # x (assumed) + p1 (bound)
    cluster.delete("Pod", "p1", "ml-team")
    assert int(st.full_free[st.index["a"]]) == 3


def test_agent_allocated_gpus_count_as_used(make_client: Any) -> None:
    client, _, _ = make_client([make_node("a", gpus=4, allocated=(0, 1, 2))])
    filt, _ = _schedule(client, make_pod("p", gpus=2), ["a"])
    assert filt["FailedNodes"] == {"a": "needs 2 free GPUs, node has 1"}


def test_running_pods_hold_gpus(make_client: Any) -> None:
    objs = [make_node("a", gpus=4), make_pod("old", gpus=3, node="a", phase="Running")]
    client, _, _ = make_client(objs)
    filt, _ = _schedule(client, make_pod("p", gpus=2), ["a"])
    assert filt["FailedNodes"] == {"a": "needs 2 free GPUs, node has 1"}


def test_mig_slices(make_client: Any) -> None:
    objs = [
        make_node("mig", gpus=0, mig={"1g.10gb": 2, "3g.40gb": 1}, annotate=False),
        make_node("plain", gpus=8),
        make_pod("holder", mig="3g.40gb", node="mig", phase="Running"),
    ]
    client, _, _ = make_client(objs)
    filt, _ = _schedule(client, make_pod("small", mig="1g.10gb"), ["mig", "plain"])
    assert filt["NodeNames"] == ["mig"]
    assert filt["FailedAndUnresolvableNodes"] == {"plain": "node offers no mig-1g.10gb slices"}
    filt, _ = _schedule(client, make_pod("big", mig="3g.40gb"), ["mig", "plain"])
    assert filt["FailedNodes"] == {"mig": "needs 1 free mig-3g.40gb slice, node has 0"}
    filt, _ = _schedule(client, make_pod("huge", mig="7g.80gb"), ["mig"])
    assert filt["FailedAndUnresolvableNodes"] == {"mig": "node offers no mig-7g.80gb slices"}


def test_product_and_memory_filters(make_client: Any) -> None:
    objs = [
        make_node("h100", gpus=8),
        make_node("l40s", gpus=4, product="NVIDIA L40S", memory_mib=46068),
    ]
    client, _, _ = make_client(objs)
    pod = make_pod("p", gpus=1, annotations={"gpu-autoscaler.io/gpu-product": "H100"})
    filt, _ = _schedule(client, pod, ["h100", "l40s"])
    assert filt["NodeNames"] == ["h100"]
    assert filt["FailedAndUnresolvableNodes"]["l40s"].startswith("GPU product")
    pod = make_pod("q", gpus=1, annotations={"gpu-autoscaler.io/gpu-memory": "48Gi"})
    filt, _ = _schedule(client, pod, ["h100", "l40s"])
    assert filt["FailedAndUnresolvableNodes"] == {"l40s": "needs 48 GiB per GPU, node's GPUs have 45 GiB"}


GANG = {"gpu-autoscaler.io/pod-group": "ddp", "gpu-autoscaler.io/pod-group-min": "3"}


def test_gang_waits_for_quorum(make_client: Any) -> None:
    client, cluster, _ = make_client([make_node("a", gpus=8), make_node("b", gpus=8)])
    w0 = make_pod("w0", gpus=4, labels=GANG)
    cluster.upsert(w0)
    filt, _ = _schedule(client, w0, ["a", "b"])
    assert filt["NodeNames"] == []
    assert set(filt["FailedNodes"].values()) == {
        "pod group ddp: 1 of 3 members exist; waiting for the rest before placing any"
    }


def test_gang_waits_for_room_then_places(make_client: Any) -> None:
    client, cluster, comp = make_client([make_node("a", gpus=8), make_node("b", gpus=4)])
    pods = [make_pod(f"w{i}", gpus=4, labels=GANG) for i in range(3)]
    for p in pods:
        cluster.upsert(p)
    hog = make_pod("hog", gpus=2, node="b", phase="Running")
    cluster.upsert(hog)
    filt, _ = _schedule(client, pods[0], ["a", "b"])
    assert filt["NodeNames"] == []
    assert "needs room for 3 pods of 4 GPU(s) at once, the cluster has room for 2" in filt["FailedNodes"]["a"]
    cluster.delete("Pod", "hog", "ml-team")
    for p in pods:  # now 3 x 4 GPUs fit: each member passes in turn (earlier ones are assumed)
        filt, _ = _schedule(client, p, ["a", "b"])
        assert filt["NodeNames"], filt
    assert len(comp.adapter.assume) == 3
