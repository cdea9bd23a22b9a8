"""The MIG controller against the cluster-view interface (SnapshotCluster): the label it writes, and the
mig-manager state machine replayed on the Node (pending -> rebooting -> success | failed, or stuck)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext
from app.metrics import REGISTRY
from app.mig.component import MigComponent
from app.mig.inputs import ANN_REQUEST
from app.settings import Settings
from tests.mig.conftest import ALLOCATABLE, CONFIG, mig_pod, node_obj

T0 = 1_750_000_000.0


def configmap() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "default-mig-parted-config", "namespace": "gpu-operator"},
        "data": {"config.yaml": CONFIG},
    }


class Rig:
    """A snapshot cluster, the component on it, a settable clock, and mig-manager's part to play."""

    def __init__(self, tmp: Path, nodes: list[dict[str, Any]], pods: list[dict[str, Any]], **settings: Any):
        path = tmp / "cluster.yaml"
        path.write_text(yaml.safe_dump_all([configmap(), *nodes, *pods]))
        self.cluster = SnapshotCluster(path)
        self.settings = Settings(cluster=str(path), **{"mig_apply": True, "mig_cooldown": 0, **settings})
        self.ctx = AppContext(settings=self.settings, cluster=self.cluster)
        self.mig = MigComponent(self.settings)
        self.now = T0
        self.mig.clock = lambda: self.now

    async def start(self) -> Rig:
        await self.cluster.start()
        self.mig.attach(self.ctx)
        return self

    def node(self, name: str) -> dict[str, Any]:
        node = self.cluster.get("Node", name)
        assert node is not None
        return node

    def labels(self, name: str) -> dict[str, str]:
        return dict(self.node(name)["metadata"]["labels"])

    def request(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.node(name)["metadata"]["annotations"][ANN_REQUEST]))

    async def mig_manager(self, name: str, state: str, advertise: str | None = None) -> None:
        """What mig-manager (and the device plugin after it) write on the node."""
        patch: dict[str, Any] = {"metadata": {"labels": {"nvidia.com/mig.config.state": state}}}
        if advertise is not None:
            alloc = {
                k: None for k in self.node(name)["status"]["allocatable"] if k.startswith("nvidia.com/mig-")
            }
            alloc.update({f"nvidia.com/mig-{p}": str(n) for p, n in ALLOCATABLE[advertise].items()})
            patch["status"] = {"allocatable": alloc}
        await self.cluster.patch("Node", name, "", patch)

    def events(self, name: str) -> list[tuple[str, str]]:
        return [
            (e["reason"], e["type"])
            for e in self.cluster.others.get("Event", {}).values()  # in the order they were created
            if e["involvedObject"]["name"] == name
        ]


def count(node: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "gpu_autoscaler_mig_reconfigurations_total", {"node": node, "result": result}
    )
    return value or 0.0


def demand(n: int = 4) -> list[dict[str, Any]]:
    return [mig_pod(f"llm-{i}", "3g.40gb") for i in range(n)]


async def test_request_then_pending_rebooting_success(tmp_path: Path) -> None:
    rig = await Rig(tmp_path, [node_obj("n-ok", allocated=(0,))], demand()).start()
    plan = await rig.mig.cycle()
    assert plan.node("n-ok").action == "reconfigure"  # type: ignore[union-attr]
    assert rig.labels("n-ok")["nvidia.com/mig.config"] == "inference"
    req = rig.request("n-ok")
    assert (req["config"], req["previous"], req["result"]) == ("inference", "mixed", "")
    assert count("n-ok", "requested") == 1
    assert rig.events("n-ok") == [("MigReconfigure", "Normal")]

    for state in ("pending", "rebooting"):
        rig.now += 30
        await rig.mig_manager("n-ok", state)
        plan = await rig.mig.cycle()
        np = plan.node("n-ok")
        assert np is not None and np.action == "keep" and np.request == "in_progress"
        assert rig.labels("n-ok")["nvidia.com/mig.config"] == "inference"  # not touched while it works

    rig.now += 30
    await rig.mig_manager("n-ok", "success", advertise="inference")
    plan = await rig.mig.cycle()
    assert plan.node("n-ok").request == "success"  # type: ignore[union-attr]
    assert rig.request("n-ok")["result"] == "success"
    assert count("n-ok", "success") == 1
    assert rig.events("n-ok")[-1] == ("MigReconfigured", "Normal")
    # once: the next cycle reports nothing new, and the demand is met
    plan = await rig.mig.cycle()
    assert count("n-ok", "success") == 1 and len(rig.events("n-ok")) == 2
    assert plan.node("n-ok").action == "keep" and plan.unmet == {}  # type: ignore[union-attr]


async def test_failed_is_reported_and_the_node_left_alone_until_relabelled(tmp_path: Path) -> None:
    rig = await Rig(tmp_path, [node_obj("n-fail", allocated=())], demand(8)).start()
    await rig.mig.cycle()
    target = rig.labels("n-fail")["nvidia.com/mig.config"]
    assert target != "mixed"
    rig.now += 30
    await rig.mig_manager("n-fail", "pending")
    await rig.mig.cycle()
    rig.now += 30
    await rig.mig_manager("n-fail", "failed")
    plan = await rig.mig.cycle()
    np = plan.node("n-fail")
    assert np is not None and (np.action, np.request) == ("blocked", "failed")
    assert count("n-fail", "failed") == 1
    assert rig.events("n-fail")[-1] == ("MigReconfigureFailed", "Warning")
    assert rig.request("n-fail")["result"] == "failed"
    for _ in range(3):  # demand is still there: hands off all the same, and reported once
        rig.now += 600
        await rig.mig.cycle()
    assert rig.labels("n-fail")["nvidia.com/mig.config"] == target and count("n-fail", "failed") == 1
    # someone relabels by hand; mig-manager applies it: the node is ours to plan again
    await rig.cluster.patch(
        "Node", "n-fail", "", {"metadata": {"labels": {"nvidia.com/mig.config": "mixed"}}}
    )
    await rig.mig_manager("n-fail", "success", advertise="mixed")
    rig.now += 60
    plan = await rig.mig.cycle()
    assert plan.node("n-fail").action == "reconfigure"  # type: ignore[union-attr]
    assert count("n-fail", "requested") == 2


async def test_a_node_that_never_leaves_pending_is_reported_once(tmp_path: Path) -> None:
    rig = await Rig(
        tmp_path,
        [node_obj("n-stuck", allocated=()), node_obj("n-other", allocated=())],
        demand(20),
        mig_pending_timeout=300,
    ).start()
    await rig.mig.cycle()
    (changed,) = [n for n in ("n-stuck", "n-other") if rig.labels(n)["nvidia.com/mig.config"] != "mixed"]
    await rig.mig_manager(changed, "pending")
    rig.now += 200
    plan = await rig.mig.cycle()
    assert plan.node(changed).request == "in_progress" and count(changed, "timeout") == 0  # type: ignore[union-attr]
    rig.now += 200  # 400 s > 300 s
    plan = await rig.mig.cycle()
    np = plan.node(changed)
    assert np is not None and (np.action, np.request) == ("blocked", "stuck")
    assert count(changed, "timeout") == 1
    assert rig.events(changed)[-1] == ("MigReconfigureStuck", "Warning")
    assert rig.request(changed)["result"] == "stuck"
    rig.now += 600
    await rig.mig.cycle()
    assert count(changed, "timeout") == 1
    # the stuck node keeps its slot (max parallel 1): the other node waits
    other = "n-other" if changed == "n-stuck" else "n-stuck"
    assert rig.labels(other)["nvidia.com/mig.config"] == "mixed"


async def test_pending_without_a_request_of_ours_is_reported_after_the_timeout(tmp_path: Path) -> None:
    node = node_obj("n-hand", config="inference", state="pending", allocated=(), advertised="mixed")
    rig = await Rig(tmp_path, [node], [], mig_pending_timeout=300).start()
    await rig.mig.cycle()
    rig.now += 400
    await rig.mig.cycle()
    rig.now += 400
    await rig.mig.cycle()
    assert count("n-hand", "timeout") == 1
    assert rig.events("n-hand") == [("MigReconfigureStuck", "Warning")]


async def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    rig = await Rig(tmp_path, [node_obj("n-dry", allocated=())], demand(), mig_apply=False).start()
    before = json.dumps(rig.node("n-dry"), sort_keys=True)
    plan = await rig.mig.cycle()
    assert plan.node("n-dry").action == "reconfigure"  # type: ignore[union-attr]
    assert json.dumps(rig.node("n-dry"), sort_keys=True) == before
    assert rig.cluster.others.get("Event", {}) == {}
    desc = rig.mig.describe()
    assert desc["apply"] is False and desc["actions"][-1]["dry_run"] is True
    assert desc["nodes"][0]["target"] == "inference"


async def test_a_pod_bound_since_the_plan_stops_the_write(tmp_path: Path) -> None:
    rig = await Rig(tmp_path, [node_obj("n-race", allocated=None)], demand()).start()
    stale = rig.mig.build(rig.now)
    assert stale[1].node("n-race").action == "reconfigure"  # type: ignore[union-attr]
    rig.cluster.upsert(mig_pod("late", "1g.10gb", node="n-race"))  # bound between plan and write
    real = rig.mig.build
    calls = iter([stale])
    rig.mig.build = lambda now: next(calls, None) or real(now)  # type: ignore[method-assign]
    await rig.mig.cycle()
    assert rig.labels("n-race")["nvidia.com/mig.config"] == "mixed"
    assert count("n-race", "requested") == 0


async def test_only_the_leader_acts(tmp_path: Path) -> None:
    class Follower:
        is_leader = False
        identity = "b"

    rig = await Rig(tmp_path, [node_obj("n-follow", allocated=())], demand()).start()
    rig.ctx.leadership = Follower()
    await rig.mig.start(rig.ctx)
    try:
        assert rig.mig._loop is not None
        assert await rig.mig._loop.run_once() is True and rig.mig._loop.skipped >= 1
    finally:
        await rig.mig.stop()
    assert rig.labels("n-follow")["nvidia.com/mig.config"] == "mixed"


async def test_no_cycle_while_the_cluster_view_is_not_ready(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [node_obj("n-sync", allocated=())], demand())  # view not started: not ready
    await rig.mig.start(rig.ctx)
    try:
        assert rig.mig._loop is not None
        await rig.mig._loop.run_once()
        assert rig.mig._loop.skipped >= 1 and rig.mig.last is None
    finally:
        await rig.mig.stop()


async def test_slices_gauge_and_the_config_source(tmp_path: Path) -> None:
    rig = await Rig(
        tmp_path, [node_obj("n-gauge", allocated=(0,))], [mig_pod("nb", "1g.10gb", node="n-gauge")]
    ).start()
    plan = await rig.mig.cycle()
    sample = REGISTRY.get_sample_value
    assert (
        sample("gpu_autoscaler_mig_slices", {"node": "n-gauge", "profile": "1g.10gb", "state": "used"}) == 1
    )
    assert (
        sample("gpu_autoscaler_mig_slices", {"node": "n-gauge", "profile": "1g.10gb", "state": "free"}) == 13
    )
    assert "gpu-operator/default-mig-parted-config" in plan.config_source
    rig.cluster.delete("ConfigMap", "default-mig-parted-config", "gpu-operator")
    plan = await rig.mig.cycle()
    assert plan.config_source.startswith("bundled") and "not found" in plan.notes[0]


@pytest.mark.parametrize("path", ["/mig/plan", "/sharing/plan"])
def test_plans_are_served_over_http(path: str) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(Settings(cluster="demo"))
    with TestClient(app) as client:
        body = client.get(path).json()
    assert set(body) >= {"nodes", "unmet", "apply"}
