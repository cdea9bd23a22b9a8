"""The sharing controller against a SnapshotCluster: the device-plugin label, then GFD catching up."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from app.cluster.snapshot import SnapshotCluster
from app.context import AppContext
from app.metrics import REGISTRY
from app.settings import Settings
from app.sharing.component import SharingComponent
from app.sharing.inputs import ANN_REQUEST
from tests.sharing.test_plan import CONFIGMAP, gpu_node, share_pod


def count(node: str, result: str) -> float:
    labels = {"node": node, "result": result}
    return REGISTRY.get_sample_value("gpu_autoscaler_sharing_reconfigurations_total", labels) or 0.0


async def test_a_node_joins_the_pool_and_the_outcome_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    objs = [CONFIGMAP, gpu_node("s-join", gpus=2), *(share_pod(f"p{i}", 400) for i in range(3))]
    path.write_text(yaml.safe_dump_all(objs))
    cluster = SnapshotCluster(path)
    await cluster.start()
    settings = Settings(cluster=str(path), sharing_apply=True, sharing_timeout=300)
    sharing = SharingComponent(settings)
    now = [1_750_000_000.0]
    sharing.clock = lambda: now[0]
    sharing.attach(AppContext(settings=settings, cluster=cluster))

    plan = await sharing.cycle()
    assert plan.pool["gpus_needed"] == 2 and plan.node("s-join").action == "reconfigure"  # type: ignore[union-attr]
    node = cluster.get("Node", "s-join")
    assert node is not None and node["metadata"]["labels"]["nvidia.com/device-plugin.config"] == "ts-2"
    assert json.loads(node["metadata"]["annotations"][ANN_REQUEST])["previous"] == "default"
    assert count("s-join", "requested") == 1

    now[0] += 60  # the device plugin restarts with the config; GFD labels it
    gfd = {"nvidia.com/gpu.sharing-strategy": "time-slicing", "nvidia.com/gpu.replicas": "2"}
    await cluster.patch(
        "Node",
        "s-join",
        "",
        {"metadata": {"labels": gfd}, "status": {"allocatable": {"nvidia.com/gpu": "4"}}},
    )
    plan = await sharing.cycle()
    np = plan.node("s-join")
    assert np is not None and np.request == "success" and np.sharing == "time-slicing x2"
    await sharing.cycle()
    assert count("s-join", "success") == 1
    reasons = [e["reason"] for e in cluster.others["Event"].values()]
    assert reasons == ["SharingReconfigure", "SharingReconfigured"]
    assert sharing.describe()["pool"]["gpus_shared"] == 2
