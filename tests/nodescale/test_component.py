"""The loop inside the real app, through the cluster-view interface (SnapshotCluster): a Pending pod scales a
MachineDeployment up, the new Node appears, the extender places the pod there over HTTP; the idle node then
goes (cordon, Machine marked, replicas lowered). Dry-run changes nothing; a refused eviction backs off."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.cluster.base import ApiError, TooManyRequests
from app.cluster.snapshot import SnapshotCluster
from app.main import create_app
from app.metrics import REGISTRY
from app.nodescale.component import NodeScaleComponent
from app.nodescale.groups import ANN_DELETE_MACHINE
from app.nodescale.planner import ANN_SCALE_DOWN
from app.settings import Settings
from extender.component import ExtenderComponent
from tests.nodescale.objects import NOW, PRICES, Obj, group, iso, machine, node, pod


def snapshot(
    tmp_path: Path, objs: list[Obj], cls: type[SnapshotCluster] = SnapshotCluster
) -> SnapshotCluster:
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump_all(objs))
    return cls(tmp_path)


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        objs: list[Obj],
        mode: str = "apply",
        cls: type[SnapshotCluster] = SnapshotCluster,
    ) -> None:
        self.cluster = snapshot(tmp_path, objs, cls)
        self.settings = Settings(cluster=str(tmp_path), node_autoscaling=mode, node_autoscaling_interval=3600)  # type: ignore[arg-type]
        self.comp = NodeScaleComponent(self.settings, prices=PRICES)
        self.comp.background = False  # the test drives the cycles
        self.now = [NOW]
        self.comp.clock = lambda: self.now[0]
        self.app = create_app(
            self.settings, cluster=self.cluster, components=[ExtenderComponent, lambda s: self.comp]
        )

    def replicas(self, name: str = "h100") -> int:
        md = self.cluster.get("MachineDeployment", name, "capi")
        assert md is not None
        return int(md["spec"]["replicas"])

    def events(self) -> list[tuple[str, str, str]]:
        return [
            (e["involvedObject"]["kind"], e["involvedObject"]["name"], e["reason"])
            for e in self.cluster.others.get("Event", {}).values()
        ]


def cluster_objs() -> list[Obj]:
    h0 = node("h0", topology=True)
    train = pod(
        "train",
        gpus=8,
        owner="Job",
        created=NOW - 300,
        annotations={"gpu-autoscaler.io/topology": "required"},
    )
    return [h0, pod("h0-job", gpus=6, on="h0", owner="Job"), train, *group("h100", [h0], lo=1, hi=3)]


def decisions(group: str, direction: str, reason: str) -> float:
    labels = {"group": group, "direction": direction, "reason": reason}
    return REGISTRY.get_sample_value("gpu_autoscaler_node_scale_decisions_total", labels) or 0.0


async def test_pending_pod_scales_up_then_the_idle_node_goes(tmp_path: Path) -> None:
    h = Harness(tmp_path, cluster_objs())
    c = h.cluster
    async with h.app.router.lifespan_context(h.app):
        transport = httpx.ASGITransport(app=h.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            pending = c.get("Pod", "train", "ml")
            before = (await client.post("/filter", json={"Pod": pending, "NodeNames": ["h0"]})).json()
            assert before["NodeNames"] == [] and "h0" in before["FailedNodes"]
            ups = decisions("capi/h100", "up", "pending-pods")

            p = await h.comp.run_cycle()
            assert [(s.group, s.from_, s.to) for s in p.scale] == [("capi/h100", 1, 2)]
            assert h.replicas() == 2, "spec.replicas patched through the scale subresource"
            assert decisions("capi/h100", "up", "pending-pods") == ups + 1
            assert ("Pod", "train", "TriggeredScaleUp") in h.events()
            assert ("MachineDeployment", "h100", "ScaledUpGroup") in h.events()

            # Cluster API: the MachineSet's new Machine becomes Node h1
            h.now[0] += 240
            c.upsert(node("h1", topology=True, created=h.now[0]))
            c.upsert(machine("h100-m1", "h100", "h1", created=NOW))
            again = await h.comp.run_cycle()
            assert again.scale == [] and h.replicas() == 2  # the pod fits the new node: nothing more
            after = (await client.post("/filter", json={"Pod": pending, "NodeNames": ["h0", "h1"]})).json()
            assert after["NodeNames"] == ["h1"]
            placed = (
                await client.get("/extender/placements", params={"pod": pending["metadata"]["uid"]})
            ).json()
            assert placed[pending["metadata"]["uid"]]["gpus"] == list(range(8))
            await c.bind("train", "ml", "h1")

            # the job ends; 12 minutes later (and 10 after the scale-up) h1 is idle past the threshold
            done = copy.deepcopy(c.get("Pod", "train", "ml"))
            assert done is not None
            done["status"] = {
                "phase": "Succeeded",
                "containerStatuses": [
                    {"name": "main", "state": {"terminated": {"finishedAt": iso(h.now[0] + 60)}}}
                ],
            }
            c.upsert(done)
            h.now[0] += 60 + 12 * 60
            down = await h.comp.run_cycle()
            assert [d.node for d in down.drain] == ["h1"] and down.drain[0].pods == []
            node_h1 = c.get("Node", "h1")
            assert node_h1 is not None and node_h1["spec"]["unschedulable"] is True
            assert ANN_SCALE_DOWN in node_h1["metadata"]["annotations"]
            m1 = c.get("Machine", "h100-m1", "capi")
            assert m1 is not None and ANN_DELETE_MACHINE in m1["metadata"]["annotations"]
            assert ANN_DELETE_MACHINE not in (c.get("Machine", "h100-m0", "capi") or {})["metadata"].get(
                "annotations", {}
            )
            assert h.replicas() == 1
            assert ("MachineDeployment", "h100", "ScaledDownGroup") in h.events()

            body = (await client.get("/nodes/plan")).json()
            assert body["mode"] == "apply" and body["leader"] is True
            assert [a["action"] for a in body["actions"]] == ["scale-up", "cordon", "scale-down"]
            assert {"scale", "drain", "blocked", "groups", "pending"} <= set(body)


async def test_dry_run_changes_nothing_but_events_and_counts_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, cluster_objs(), mode="dry-run")
    async with h.app.router.lifespan_context(h.app):
        before = decisions("capi/h100", "up", "pending-pods")
        for _ in range(2):
            p = await h.comp.run_cycle()
            assert [(s.from_, s.to) for s in p.scale] == [(1, 2)]
        assert h.replicas() == 1 and not h.comp.actions
        assert decisions("capi/h100", "up", "pending-pods") == before + 1, (
            "a repeated dry-run decision counts once"
        )
        assert ("MachineDeployment", "h100", "DryRunScaleUp") in h.events()
        assert sum(1 for e in h.events() if e[2] == "DryRunScaleUp") == 1, (
            "informational Events are throttled"
        )


class RefusingCluster(SnapshotCluster):
    """Evictions refused as a PodDisruptionBudget would (the budget changed after the plan was made)."""

    async def evict(self, name: str, namespace: str) -> None:
        raise TooManyRequests("Cannot evict pod as it would violate the pod's disruption budget w")


def underused() -> list[Obj]:
    n0, n1 = node("h0"), node("h1", created=NOW - 7200)
    return [
        n0,
        n1,
        pod("big", gpus=4, on="h0", owner="Job"),
        pod("w", gpus=1, on="h1"),
        *group("h100", [n0, n1]),
    ]


async def test_refused_eviction_uncordons_and_holds_the_node(tmp_path: Path) -> None:
    h = Harness(tmp_path, underused(), cls=RefusingCluster)
    async with h.app.router.lifespan_context(h.app):
        p = await h.comp.run_cycle()
        assert [d.node for d in p.drain] == ["h1"]
        h1 = h.cluster.get("Node", "h1")
        assert h1 is not None and not h1["spec"].get("unschedulable")
        assert ANN_SCALE_DOWN not in h1["metadata"]["annotations"]
        assert h.replicas() == 2
        assert not any(
            ANN_DELETE_MACHINE in (m["metadata"].get("annotations") or {}) for m in h.cluster.list("Machine")
        )
        assert ("Node", "h1", "ScaleDownFailed") in h.events()
        again = await h.comp.run_cycle()
        assert not again.drain and [(b.node, b.code) for b in again.blocked] == [("h1", "held")]


class NoScaleCluster(SnapshotCluster):
    async def scale(self, kind: str, name: str, namespace: str, replicas: int) -> Obj:
        raise ApiError(500, "scale subresource unavailable")


async def test_failed_scale_down_takes_the_machine_mark_back(tmp_path: Path) -> None:
    h = Harness(tmp_path, underused(), cls=NoScaleCluster)
    async with h.app.router.lifespan_context(h.app):
        await h.comp.run_cycle()
        assert h.cluster.get("Pod", "w", "ml") is None, "the pod was evicted"
        assert not any(
            ANN_DELETE_MACHINE in (m["metadata"].get("annotations") or {}) for m in h.cluster.list("Machine")
        )
        h1 = h.cluster.get("Node", "h1")
        assert h1 is not None and not h1["spec"].get("unschedulable")
        assert ("MachineDeployment", "h100", "ScaleDownFailed") in h.events()


class NotLeader:
    is_leader = False
    identity = "other"


async def test_only_the_leader_runs_cycles(tmp_path: Path) -> None:
    h = Harness(tmp_path, cluster_objs())
    h.comp.background = True
    h.app.state.ctx.leadership = NotLeader()
    async with h.app.router.lifespan_context(h.app):
        assert h.comp._loop is not None
        await h.comp._loop.run_once()
        assert h.comp._loop.skipped >= 1 and h.comp.plan is None and h.replicas() == 1


@pytest.mark.parametrize("mode", ["off"])
async def test_off_runs_no_loop(tmp_path: Path, mode: str) -> None:
    h = Harness(tmp_path, cluster_objs(), mode=mode)
    async with h.app.router.lifespan_context(h.app):
        assert h.comp._loop is None
        transport = httpx.ASGITransport(app=h.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body: dict[str, Any] = (await client.get("/nodes/plan")).json()
        assert body["mode"] == "off" and body["scale"] == [] and body["planned_at"] is None


async def test_stuck_machine_backs_the_group_off(tmp_path: Path) -> None:
    objs = cluster_objs()
    objs[-2]["spec"]["replicas"] = 2  # the MachineDeployment asked for a node that never came
    objs.append(machine("h100-stuck", "h100", None, created=NOW - 3600, phase="Provisioning"))
    h = Harness(tmp_path, objs)
    async with h.app.router.lifespan_context(h.app):
        p = await h.comp.run_cycle()
        assert [(s.code, s.from_, s.to) for s in p.scale] == [("provision-timeout", 2, 1)]
        assert h.replicas() == 1
        stuck = h.cluster.get("Machine", "h100-stuck", "capi")
        assert stuck is not None and ANN_DELETE_MACHINE in stuck["metadata"]["annotations"]
        assert "capi/h100" in h.comp.describe()["backoff"]
        # the evidence is gone, the backoff stays: no scale-up into the same group yet
        h.cluster.delete("Machine", "h100-stuck", "capi")
        again = await h.comp.run_cycle()
        assert again.scale == [] and "backoff" in again.pending[0]["status"]
