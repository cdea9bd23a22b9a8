"""Binder mode (`bindVerb: bind`): the extender records the GPUs it chose on the pod and creates the Binding,
through the cluster-view interface (the snapshot view behaves as the API server does for both calls)."""

from __future__ import annotations

from typing import Any

from extender.view_adapter import NodeStateAdapter
from tests.extender.conftest import BRIDGED_4, make_node, make_pod

INDEX = "gpu-autoscaler.io/gpu-index"


def _schedule(client: Any, pod: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    body = {"Pod": pod, "NodeNames": names}
    filt = client.post("/filter", json=body).json()
    prio: list[dict[str, Any]] = client.post(
        "/prioritize", json={**body, "NodeNames": filt["NodeNames"]}
    ).json()
    return prio


def _bind(client: Any, pod: dict[str, Any], node: str) -> Any:
    meta = pod["metadata"]
    body = {"PodName": meta["name"], "PodNamespace": meta["namespace"], "PodUID": meta["uid"], "Node": node}
    return client.post("/bind", json=body)


def test_bind_writes_the_chosen_gpus_and_the_binding(make_client: Any) -> None:
    nodes = [make_node("a", gpus=4, links=BRIDGED_4), make_node("b", gpus=4, links=BRIDGED_4)]
    client, cluster, comp = make_client(nodes)
    pod = make_pod("trainer-0", gpus=2)
    cluster.upsert(pod)
    prio = _schedule(client, pod, ["a", "b"])
    best = next(h["Host"] for h in prio if h["Score"] == 10)
    assumed = comp.adapter.assume.get("uid-ml-team-trainer-0").gpus
    reply = _bind(client, pod, best)
    assert reply.status_code == 200 and reply.json() == {"Error": ""}
    live = cluster.get("Pod", "trainer-0", "ml-team")
    assert live["spec"]["nodeName"] == best
    assert live["metadata"]["annotations"][INDEX] == ",".join(map(str, assumed))
    assert "uid-ml-team-trainer-0" not in comp.adapter.assume
    assert comp.adapter.bound["uid-ml-team-trainer-0"].gpus == assumed

    # a second replica watching the same API learns the exact GPUs from the annotation
    other = NodeStateAdapter()
    other.attach(cluster)
    assert other.bound["uid-ml-team-trainer-0"].gpus == assumed
    row = other.state.index[best]
    assert sorted(int(c) for c in (other.state.gpu_left[row, :4] == 0).nonzero()[0]) == assumed


def test_bind_to_another_node_than_assumed_moves_the_gpus(make_client: Any) -> None:
    nodes = [make_node("a", gpus=4, links=BRIDGED_4), make_node("b", gpus=4, links=BRIDGED_4)]
    client, cluster, comp = make_client(nodes)
    pod = make_pod("p", gpus=1)
    cluster.upsert(pod)
    prio = _schedule(client, pod, ["a", "b"])
    best = next(h["Host"] for h in prio if h["Score"] == 10)
    other = "b" if best == "a" else "a"
    assert _bind(client, pod, other).json() == {"Error": ""}
    st = comp.adapter.state
    assert int(st.full_free[st.index[best]]) == 4 and int(st.full_free[st.index[other]]) == 3
    assert cluster.get("Pod", "p", "ml-team")["spec"]["nodeName"] == other


def test_refused_binding_is_an_error_and_frees_the_gpus(make_client: Any) -> None:
    client, cluster, comp = make_client([make_node("a", gpus=4)])
    pod = make_pod("p", gpus=2, node="elsewhere", phase="Running")  # already bound: the API says 409
    cluster.upsert(pod)
    reply = _bind(client, pod, "a").json()
    assert "already assigned to node elsewhere" in reply["Error"]
    st = comp.adapter.state
    assert int(st.full_free[st.index["a"]]) == 4


def test_unknown_pod_and_bad_body(make_client: Any) -> None:
    client, _, _ = make_client([make_node("a", gpus=4)])
    reply = _bind(client, make_pod("ghost", gpus=1), "a").json()
    assert "unknown to the extender" in reply["Error"]
    bad = client.post("/bind", json={"PodName": "x", "PodNamespace": "y"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("Node")
    assert client.post("/bind", content=b"[1]").status_code == 400
