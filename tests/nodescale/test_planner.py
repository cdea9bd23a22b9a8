"""The planner, table-driven: each scale-up trigger, each scale-down trigger, each "never", and a property
that no plan evicts a pod a PodDisruptionBudget protects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cluster.selectors import selector_matches
from app.nodescale.planner import Params, Plan
from tests.nodescale.objects import (
    A100,
    NOW,
    Obj,
    group,
    machine,
    machine_deployment,
    node,
    nvlink_topology,
    pdb,
    pod,
    run_plan,
)

SPOT_TOLERATION = [{"key": "lifecycle", "operator": "Equal", "value": "spot", "effect": "NoSchedule"}]
SPOT = Params(spot_labels=(("node.kubernetes.io/lifecycle", "spot"),))


def busy_h100(name: str = "h0", used: int = 8) -> list[Obj]:
    """A DGX-like node with `used` GPUs taken by one pod."""
    n = node(name, topology=True)
    return [n, pod(f"{name}-job", gpus=used, on=name, owner="Job")] if used else [n]


def spot_group(replicas: int = 0, hi: int = 4) -> list[Obj]:
    ann = {
        "capacity.cluster-autoscaler.kubernetes.io/cpu": "192",
        "capacity.cluster-autoscaler.kubernetes.io/memory": "2000Gi",
        "capacity.cluster-autoscaler.kubernetes.io/gpu-type": "nvidia.com/gpu",
        "capacity.cluster-autoscaler.kubernetes.io/gpu-count": "8",
        "capacity.cluster-autoscaler.kubernetes.io/labels": "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3,"
        "nvidia.com/gpu.memory=81559,node.kubernetes.io/lifecycle=spot",
        "capacity.cluster-autoscaler.kubernetes.io/taints": "lifecycle=spot:NoSchedule",
        "gpu-autoscaler.io/topology": nvlink_topology(8),
    }
    return [machine_deployment("h100-spot", replicas, 0, hi, annotations=ann)]


# -- scale up --------------------------------------------------------------------------------------------
@dataclass
class Up:
    name: str
    objs: Callable[[], list[Obj]]
    want: dict[str, tuple[int, int]]  # group -> (from, to)
    status: str = ""  # substring of the (first) pending pod's status
    params: Params = field(default_factory=Params)


def _h100_group(used: int = 8, replicas: int | None = None, hi: int = 4) -> list[Obj]:
    objs = busy_h100("h0", used)
    return objs + group("h100", [objs[0]], replicas=replicas, hi=hi)


UP = [
    Up(
        "pending 8-GPU pod, no node fits -> one more node",
        lambda: [*_h100_group(), pod("big", gpus=8, created=NOW - 300)],
        {"capi/h100": (1, 2)},
        "scale-up capi/h100",
    ),
    Up(
        "pending for less than 2 min -> wait",
        lambda: [*_h100_group(), pod("big", gpus=8, created=NOW - 60)],
        {},
        "waiting: scale-up after 2m",
    ),
    Up(
        "higher priority class waits 30 s only",
        lambda: [*_h100_group(), pod("big", gpus=8, created=NOW - 60, priority=100000)],
        {"capi/h100": (1, 2)},
    ),
    Up(
        "priority below the cutoff never scales up",
        lambda: [*_h100_group(), pod("big", gpus=8, created=NOW - 900, priority=-100)],
        {},
        "ignored: priority",
    ),
    Up(
        "fits a current node -> no scale-up",
        lambda: [*_h100_group(used=4), pod("small", gpus=4, created=NOW - 900)],
        {},
        "fits node h0",
    ),
    Up(
        "fits an upcoming node (replicas above registered nodes) -> no scale-up",
        lambda: [*_h100_group(replicas=2), pod("big", gpus=8, created=NOW - 900)],
        {},
        "fits an upcoming node",
    ),
    Up(
        "group at its max size",
        lambda: [*_h100_group(hi=1), pod("big", gpus=8, created=NOW - 900)],
        {},
        "max size 1",
    ),
    Up(
        "product the group cannot give",
        lambda: [
            *_h100_group(),
            pod("a", gpus=1, created=NOW - 900, annotations={"gpu-autoscaler.io/gpu-product": "B200"}),
        ],
        {},
        "is not one of b200",
    ),
    Up(
        "topology required is simulated on the template's NVLink table",
        lambda: [
            *_h100_group(),
            pod("nv", gpus=8, created=NOW - 900, annotations={"gpu-autoscaler.io/topology": "required"}),
        ],
        {"capi/h100": (1, 2)},
    ),
    Up(
        "several pods share the new nodes (4 x 2 GPUs -> one 8-GPU node)",
        lambda: _h100_group() + [pod(f"p{i}", gpus=2, created=NOW - 900) for i in range(4)],
        {"capi/h100": (1, 2)},
    ),
    Up(
        "cheapest group per GPU placed: A100 over H100 for a pod that takes either",
        lambda: [
            *_h100_group(),
            (a0 := node("a0", product=A100)),
            *group("a100", [a0]),
            pod("a0-job", gpus=8, on="a0", owner="Job"),
            pod("any", gpus=8, created=NOW - 900),
        ],
        {"capi/a100": (1, 2)},
    ),
    Up(
        "scale from zero with the capacity annotations",
        lambda: (
            busy_h100("h0")
            + spot_group()
            + [pod("sp", gpus=8, created=NOW - 900, tolerations=SPOT_TOLERATION)]
        ),
        {"capi/h100-spot": (0, 1)},
        params=SPOT,
    ),
    Up(
        "spot first for a pod that tolerates it",
        lambda: (
            _h100_group() + spot_group() + [pod("sp", gpus=8, created=NOW - 900, tolerations=SPOT_TOLERATION)]
        ),
        {"capi/h100-spot": (0, 1)},
        params=SPOT,
    ),
    Up(
        "a pod that does not tolerate the spot taint goes on-demand",
        lambda: _h100_group() + spot_group() + [pod("od", gpus=8, created=NOW - 900, tolerations=[])],
        {"capi/h100": (1, 2)},
        params=SPOT,
    ),
    Up(
        "spot share cap: no spot past spot_max_share",
        lambda: (
            _h100_group() + spot_group() + [pod("sp", gpus=8, created=NOW - 900, tolerations=SPOT_TOLERATION)]
        ),
        {"capi/h100": (1, 2)},
        params=replace(SPOT, spot_max_share=0.25),
    ),
    Up(
        "nodeSelector the template lacks -> no group",
        lambda: [*_h100_group(), pod("sel", gpus=1, created=NOW - 900, node_selector={"pool": "other"})],
        {},
        "nodeSelector pool=other",
    ),
    Up(
        "CPU-only pods are not ours",
        lambda: [*_h100_group(), pod("cpu", gpus=0, cpu="500", created=NOW - 900)],
        {},
    ),
    Up(
        "a Machine that never became a node: its group backs off, the Machine is given back",
        lambda: [
            *_h100_group(replicas=2),
            machine("h100-stuck", "h100", None, created=NOW - 3600, phase="Provisioning"),
            pod("big", gpus=8, created=NOW - 900),
        ],
        {"capi/h100": (2, 1)},
        "backoff: machine h100-stuck",
    ),
]


@pytest.mark.parametrize("case", UP, ids=lambda c: c.name)
def test_scale_up(case: Up) -> None:
    p = run_plan(case.objs(), params=case.params)
    assert {s.group: (s.from_, s.to) for s in p.scale} == case.want, p.describe()
    if case.status:
        assert case.status in p.pending[0]["status"], p.pending
    for s in p.scale:
        if s.direction == "up":
            assert s.reason.startswith("pending-pods:") and s.pods


def test_scale_up_packs_pods_onto_as_few_nodes_as_fit() -> None:
    p = run_plan(_h100_group() + [pod(f"p{i}", gpus=4, created=NOW - 900) for i in range(5)])
    (s,) = p.scale
    assert (s.from_, s.to) == (1, 4) and len(s.pods) == 5  # 5 x 4 GPUs need three 8-GPU nodes


def test_scale_up_respects_max_size_and_says_so() -> None:
    p = run_plan(_h100_group(hi=2) + [pod(f"p{i}", gpus=8, created=NOW - 900) for i in range(3)])
    assert [(s.from_, s.to) for s in p.scale] == [(1, 2)]
    statuses = sorted(v["status"] for v in p.pending)
    assert sum("scale-up" in s for s in statuses) == 1 and sum("max size 2" in s for s in statuses) == 2


def test_backoff_from_the_loop_keeps_a_group_out() -> None:
    objs = _h100_group() + spot_group() + [pod("sp", gpus=8, created=NOW - 900, tolerations=SPOT_TOLERATION)]
    p = run_plan(objs, params=SPOT, backoff={"capi/h100-spot": "no spot capacity"})
    assert [(s.group, s.to) for s in p.scale] == [("capi/h100", 2)]


# -- scale down ------------------------------------------------------------------------------------------
@dataclass
class Down:
    name: str
    objs: Callable[[], list[Obj]]
    drained: list[str]
    blocked: dict[str, str]  # node -> code
    text: str = ""  # substring of the blocked reason
    inputs: dict[str, Any] | None = None
    params: Params = field(default_factory=Params)


def two_nodes(
    pods_on_n1: list[Obj], used_n0: int = 2, lo: int = 0, idle_for: float = 3600, **n1: Any
) -> list[Obj]:
    """Group of n0 (some GPUs used) and n1 (the candidate); n1 was created `idle_for` ago."""
    n0, n1_obj = node("n0"), node("n1", created=NOW - idle_for, **n1)
    return [
        n0,
        n1_obj,
        pod("n0-job", gpus=used_n0, on="n0", owner="Job"),
        *pods_on_n1,
        *group("g", [n0, n1_obj], lo=lo),
    ]


def on_n1(name: str = "w", gpus: int = 1, **kw: Any) -> Obj:
    return pod(name, gpus=gpus, on="n1", **kw)


DOWN = [
    Down("idle past scale_down_idle -> drain", lambda: two_nodes([]), ["n1"], {}),
    Down("idle for less than scale_down_idle -> stays", lambda: two_nodes([], idle_for=300), [], {}),
    Down(
        "idle counts from the last finished GPU pod",
        lambda: two_nodes([on_n1("done", gpus=8, phase="Succeeded", owner="Job", finished=NOW - 120)]),
        [],
        {},
    ),
    Down(
        "idle counts from when the loop last saw a GPU allocated",
        lambda: two_nodes([]),
        [],
        {},
        inputs={"last_busy": {"n1": NOW - 60}},
    ),
    Down("under 20 % and its pod fits elsewhere -> drain", lambda: two_nodes([on_n1()]), ["n1"], {}),
    Down("at 25 % -> stays", lambda: two_nodes([on_n1(gpus=2)]), [], {}),
    Down(
        "under 20 % but the pod fits nowhere else -> blocked",
        lambda: two_nodes([on_n1()], used_n0=8),
        [],
        {"n1": "no-room"},
        "fits no other node",
    ),
    Down(
        "PDB with no disruption allowed -> blocked",
        lambda: two_nodes([on_n1(labels={"app": "w"}), pdb("w", "ml", {"app": "w"}, 0)]),
        [],
        {"n1": "pdb"},
        "allows 0 disruptions",
    ),
    Down(
        "PDB with a disruption left -> drain",
        lambda: two_nodes([on_n1(labels={"app": "w"}), pdb("w", "ml", {"app": "w"}, 1)]),
        ["n1"],
        {},
    ),
    Down(
        'safe-to-evict "false" -> blocked',
        lambda: two_nodes([on_n1(annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"})]),
        [],
        {"n1": "safe-to-evict"},
    ),
    Down(
        "bare pod without controller -> blocked",
        lambda: two_nodes([on_n1(owner=None)]),
        [],
        {"n1": "no-controller"},
    ),
    Down(
        'bare pod with safe-to-evict "true" -> drain',
        lambda: two_nodes(
            [on_n1(owner=None, annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"})]
        ),
        ["n1"],
        {},
    ),
    Down(
        "emptyDir on disk -> blocked",
        lambda: two_nodes([on_n1(volumes=[{"name": "scratch", "emptyDir": {}}])]),
        [],
        {"n1": "local-storage"},
        "scratch",
    ),
    Down(
        "hostPath -> blocked",
        lambda: two_nodes([on_n1(volumes=[{"name": "h", "hostPath": {"path": "/data"}}])]),
        [],
        {"n1": "local-storage"},
    ),
    Down(
        "emptyDir in memory is not local storage -> drain",
        lambda: two_nodes([on_n1(volumes=[{"name": "shm", "emptyDir": {"medium": "Memory"}}])]),
        ["n1"],
        {},
    ),
    Down(
        "local volume named safe to evict -> drain",
        lambda: two_nodes(
            [
                on_n1(
                    volumes=[{"name": "scratch", "emptyDir": {}}],
                    annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes": "scratch"},
                )
            ]
        ),
        ["n1"],
        {},
    ),
    Down(
        "kube-system pod without PDB -> blocked",
        lambda: two_nodes([on_n1("dns", gpus=0, ns="kube-system"), pod("gpu-w", gpus=0, on="n1")]),
        [],
        {"n1": "kube-system"},
    ),
    Down(
        "DaemonSet and mirror pods do not hold an idle node",
        lambda: two_nodes(
            [
                on_n1("ds", gpus=0, owner="DaemonSet"),
                on_n1("static", gpus=0, owner=None, annotations={"kubernetes.io/config.mirror": "x"}),
            ]
        ),
        ["n1"],
        {},
    ),
    Down("group at min size -> blocked", lambda: two_nodes([], lo=2), [], {"n1": "min-size"}),
    Down(
        "scale-down-disabled annotation -> blocked",
        lambda: two_nodes([], annotations={"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"}),
        [],
        {"n1": "scale-down-disabled"},
    ),
    Down(
        "cordoned by someone else -> blocked",
        lambda: two_nodes([], unschedulable=True),
        [],
        {"n1": "cordoned"},
    ),
    Down(
        "node in no group of ours -> blocked",
        lambda: [
            node("n0"),
            node("lonely"),
            pod("j", gpus=2, on="n0", owner="Job"),
            *group("g", [node("n0")]),
        ],
        [],
        {"lonely": "not-managed"},
    ),
    Down(
        "scale-down waits after a scale-up",
        lambda: two_nodes([]),
        [],
        {"n1": "held"},
        "after a scale-up",
        inputs={"hold_scale_down": "scale-down waits 10m after a scale-up"},
    ),
    Down(
        "a node whose eviction was refused waits",
        lambda: two_nodes([]),
        [],
        {"n1": "held"},
        "refused",
        inputs={"hold_nodes": {"n1": "eviction refused"}},
    ),
]


@pytest.mark.parametrize("case", DOWN, ids=lambda c: c.name)
def test_scale_down(case: Down) -> None:
    p = run_plan(case.objs(), params=case.params, **(case.inputs or {}))
    assert [d.node for d in p.drain] == case.drained, p.describe()
    assert {b.node: b.code for b in p.blocked} == case.blocked, p.describe()
    if case.text:
        assert case.text in p.blocked[0].reason
    if case.drained:
        (s,) = [s for s in p.scale if s.direction == "down"]
        assert (
            (s.group, s.from_, s.to) == ("capi/g", 2, 1) and s.machines == ["capi/g-m1"] and s.nodes == ["n1"]
        )
    else:
        assert not [s for s in p.scale if s.direction == "down"]


def test_one_pdb_budget_is_shared_by_every_node_of_a_plan() -> None:
    """Two idle-enough nodes each hold a pod of one budget that allows one disruption: only one goes."""
    nodes = [node(n, created=NOW - 3600) for n in ("n0", "n1", "n2")]
    objs = [*nodes, pod("big", gpus=7, on="n0", owner="Job"), pdb("w", "ml", {"app": "w"}, 1)]
    objs += [pod("w1", gpus=1, on="n1", labels={"app": "w"}), pod("w2", gpus=1, on="n2", labels={"app": "w"})]
    p = run_plan(objs + group("g", nodes), params=Params(scale_down_max_nodes=5))
    assert len(p.drain) == 1 and {b.code for b in p.blocked} == {"pdb"}


def test_at_most_max_nodes_per_cycle() -> None:
    nodes = [node(n, created=NOW - 3600) for n in ("n0", "n1", "n2")]
    objs = [*nodes, pod("j", gpus=8, on="n0", owner="Job"), *group("g", nodes)]
    p = run_plan(objs)
    assert len(p.drain) == 1 and [b.code for b in p.blocked] == ["limit"]
    assert len(run_plan(objs, params=Params(scale_down_max_nodes=2)).drain) == 2


def test_pending_pod_that_an_idle_node_would_take_keeps_it() -> None:
    objs = [*two_nodes([], used_n0=8), pod("next", gpus=4, created=NOW - 900)]
    p = run_plan(objs)
    assert not p.drain and not p.scale and p.blocked[0].code == "pending"


def test_no_scale_down_while_nodes_are_coming() -> None:
    objs = two_nodes([])
    objs[-3]["spec"]["replicas"] = 3  # the MachineDeployment asks one more node than registered
    p = run_plan(objs)
    assert not p.drain and p.blocked[0].code == "held" and "still coming" in p.blocked[0].reason


def test_json_shape_is_exactly_the_contract() -> None:
    doc = run_plan([*two_nodes([on_n1()]), node("lonely", created=NOW - 3600)]).to_dict()
    assert set(doc) == {"scale", "drain", "blocked"}
    assert [set(e) for e in doc["scale"]] == [{"group", "from", "to", "reason"}]
    assert [set(e) for e in doc["drain"]] == [{"node", "reason", "pods"}]
    assert [set(e) for e in doc["blocked"]] == [{"node", "reason"}]
    assert doc["drain"][0]["pods"] == ["ml/w"] and doc["scale"][0]["group"] == "capi/g"


# -- the property: no plan evicts a pod a PodDisruptionBudget protects -------------------------------------
@st.composite
def clusters(draw: st.DrawFn) -> list[Obj]:
    n_nodes = draw(st.integers(2, 5))
    nodes = [node(f"n{i}", gpus=8, created=NOW - 7200) for i in range(n_nodes)]
    apps = ["a", "b", "c"]
    objs: list[Obj] = [*nodes]
    for i in range(n_nodes):
        for j in range(draw(st.integers(0, 3))):
            app = draw(st.sampled_from(apps))
            ann = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"} if draw(st.booleans()) else {}
            objs.append(
                pod(
                    f"p{i}-{j}",
                    gpus=draw(st.integers(0, 2)),
                    on=f"n{i}",
                    labels={"app": app},
                    annotations=ann,
                    cpu="1",
                    memory="1Gi",
                )
            )
    for app in apps:
        if draw(st.booleans()):
            objs.append(pdb(f"pdb-{app}", "ml", {"app": app}, draw(st.integers(0, 2))))
    objs += group("g", nodes, lo=draw(st.integers(0, 1)))
    return objs


@settings(max_examples=60, deadline=None)
@given(clusters(), st.integers(1, 4), st.floats(0.0, 1.0))
def test_no_plan_evicts_a_pdb_protected_pod(objs: list[Obj], max_nodes: int, threshold: float) -> None:
    p: Plan = run_plan(objs, params=Params(scale_down_max_nodes=max_nodes, scale_down_utilization=threshold))
    pods = {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objs if o["kind"] == "Pod"}
    budgets = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    evicted = [pods[k] for d in p.drain for k in d.pods]
    for b in budgets:
        hit = [
            e
            for e in evicted
            if selector_matches(b["spec"]["selector"], e["metadata"]["labels"], empty_matches=True)
        ]
        assert len(hit) <= b["status"]["disruptionsAllowed"], (
            b["metadata"]["name"],
            [d.to_dict() for d in p.drain],
        )
    for d in p.drain:  # every pod on a drained node is evicted (or needs no eviction)
        on_node = [k for k, o in pods.items() if o["spec"].get("nodeName") == d.node]
        assert sorted(on_node) == sorted(d.pods)
