"""Snapshot loader and the bundled demo: real Kubernetes shapes, consistent, malformed input rejected."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from app.cluster.base import ClusterEvent, NotFound
from app.cluster.snapshot import SnapshotCluster, SnapshotError, demo_snapshot_path, load_snapshot

DEMO = load_snapshot(demo_snapshot_path())
MODELS = {
    "Node": "V1Node",
    "Pod": "V1Pod",
    "Deployment": "V1Deployment",
    "Namespace": "V1Namespace",
    "ConfigMap": "V1ConfigMap",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|\+00:00)$")


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in DEMO if o["kind"] == kind}


def _norm(x: Any) -> Any:
    """Drop nulls and unify timestamps, the only differences a model round trip may introduce."""
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        return [_norm(v) for v in x]
    if isinstance(x, str) and TS.match(x):
        return x.replace("+00:00", "Z")
    return x


# ---------------------------------------------------------------- the demo cluster
def test_demo_has_the_expected_objects() -> None:
    counts = Counter(o["kind"] for o in DEMO)
    assert counts == {
        "Node": 7,
        "Pod": 10,
        "Namespace": 4,
        "Deployment": 4,
        "VariantAutoscaling": 4,
        # capacity-scaling-config, gpu-budgets, the GPU Operator's mig-parted and device-plugin configs
        "ConfigMap": 4,
        "MachineDeployment": 5,
        "Machine": 7,
        "PodDisruptionBudget": 2,
    }
    assert set(by_kind("Node")) == {
        "dgx-h100-0", "dgx-h100-1", "hgx-a100-0", "hgx-a100-1", "l40s-0", "l40s-1", "a100-mig-0",
    }  # fmt: skip
    ns = by_kind("Namespace")
    assert {
        n for n, o in ns.items() if o["metadata"]["labels"].get("gpu-autoscaler.io/mig-rewrite") == "enabled"
    } == {
        "inference",
        "notebooks",
    }


@pytest.mark.parametrize("obj", [o for o in DEMO if o["kind"] in MODELS], ids=lambda o: o["metadata"]["name"])
def test_demo_objects_are_real_kubernetes_shapes(obj: dict[str, Any]) -> None:
    """The official client deserializes each object and serializes it back unchanged (no unknown fields)."""
    api = ApiClient()
    model = api._ApiClient__deserialize(obj, MODELS[obj["kind"]])  # type: ignore[attr-defined]
    assert _norm(api.sanitize_for_serialization(model)) == _norm(json.loads(json.dumps(obj)))


def test_quantities_are_strings() -> None:
    for node in by_kind("Node").values():
        for section in ("capacity", "allocatable"):
            assert all(isinstance(v, str) for v in node["status"][section].values()), node["metadata"]["name"]
    for pod in by_kind("Pod").values():
        for c in pod["spec"]["containers"]:
            for section in c["resources"].values():
                assert all(isinstance(v, str) for v in section.values())


NODE_SPECS = {
    "dgx-h100": ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3", 8, 81559, "NV18"),
    "hgx-a100": ("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB", 8, 81920, "NV12"),
    "l40s": ("NVIDIA L40S", "NVIDIA-L40S", 4, 46068, None),
    "a100-mig": ("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB", 4, 81920, "NV4"),
}


@pytest.mark.parametrize("name", sorted(by_kind("Node")))
def test_node_topology_annotation_follows_the_contract(name: str) -> None:
    node = by_kind("Node")[name]
    labels = node["metadata"]["labels"]
    topo = json.loads(node["metadata"]["annotations"]["gpu-autoscaler.io/topology"])
    product, gfd_product, count, mem, link = NODE_SPECS[name.rsplit("-", 1)[0]]
    assert topo["version"] == 1
    assert labels["nvidia.com/gpu.product"] == gfd_product
    assert labels["nvidia.com/gpu.count"] == str(count) == str(len(topo["gpus"]))
    assert labels["nvidia.com/gpu.memory"] == str(mem)
    assert labels["kubernetes.io/hostname"] == name
    assert [g["index"] for g in topo["gpus"]] == list(range(count))
    assert len({g["uuid"] for g in topo["gpus"]}) == count
    for g in topo["gpus"]:
        assert (g["product"], g["memoryMiB"]) == (product, mem)
        assert g["numaNode"] == (0 if g["index"] < count // 2 else 1)
        assert re.match(r"^0000:[0-9A-F]{2}:00\.0$", g["pciBusId"])
    links = topo["links"]
    for i in range(count):
        for j in range(count):
            assert links[i][j] == links[j][i]
            if i == j:
                assert links[i][j] == "X"
            elif link is not None:
                assert links[i][j] == link
            else:  # PCIe only: NODE within a socket, SYS across
                same = topo["gpus"][i]["numaNode"] == topo["gpus"][j]["numaNode"]
                assert links[i][j] == ("NODE" if same else "SYS")


def test_allocated_flags_agree_with_running_pods() -> None:
    """Whole GPUs requested by pods on a node == GPUs marked allocated in its annotation."""
    used: Counter[str] = Counter()
    for pod in by_kind("Pod").values():
        assert pod["status"]["phase"] == "Running"
        for c in pod["spec"]["containers"]:
            used[pod["spec"]["nodeName"]] += int(c["resources"].get("limits", {}).get("nvidia.com/gpu", "0"))
    for name, node in by_kind("Node").items():
        topo = json.loads(node["metadata"]["annotations"]["gpu-autoscaler.io/topology"])
        allocated = sum(g["allocated"] for g in topo["gpus"])
        if name == "a100-mig-0":  # one GPU holds the notebook's 1g.10gb slice
            assert allocated == 1 and all(g["migEnabled"] for g in topo["gpus"])
        else:
            assert allocated == used[name], name


# A100-SXM4-80GB MIG geometry (mig_profiles.json): compute slices, memory slices, valid start indexes
A100_80GB = {"1g.10gb": (1, 1, range(7)), "2g.20gb": (2, 2, (0, 2, 4)), "3g.40gb": (3, 4, (0, 4))}


def test_mig_node_layout_is_geometrically_valid() -> None:
    node = by_kind("Node")["a100-mig-0"]
    layout: dict[str, list[str]] = json.loads(node["metadata"]["annotations"]["gpu-autoscaler.io/mig-layout"])
    totals: Counter[str] = Counter()
    for profiles in layout.values():
        assert sum(A100_80GB[p][0] for p in profiles) <= 7
        # greedy placement on the memory-slice axis, largest first, must find a valid start for each
        taken: set[int] = set()
        for p in sorted(profiles, key=lambda p: -A100_80GB[p][1]):
            _, size, starts = A100_80GB[p]
            start = next(s for s in starts if not taken & set(range(s, s + size)) and s + size <= 8)
            taken |= set(range(start, start + size))
        totals.update(profiles)
    alloc = node["status"]["allocatable"]
    labels = node["metadata"]["labels"]
    assert alloc["nvidia.com/gpu"] == "0"
    assert labels["nvidia.com/mig.strategy"] == "mixed"
    for profile, n in totals.items():
        assert alloc[f"nvidia.com/mig-{profile}"] == str(n)
        assert labels[f"nvidia.com/mig-{profile}.count"] == str(n)


def test_the_mig_node_runs_the_layout_its_label_names() -> None:
    """nvidia.com/mig.config=demo-mixed names a layout of the demo's mig-parted ConfigMap; that layout is
    the node's per-GPU annotation and its allocatable."""
    from app.gpu.mig import geometry_for
    from app.gpu.migparted import parse_configmap

    node = by_kind("Node")["a100-mig-0"]
    configs = parse_configmap(by_kind("ConfigMap")["default-mig-parted-config"], "demo")
    geo = geometry_for(node["metadata"]["labels"]["nvidia.com/gpu.product"])
    assert geo is not None
    per_gpu = configs.layouts[node["metadata"]["labels"]["nvidia.com/mig.config"]].per_gpu(geo, 4)
    layout = json.loads(node["metadata"]["annotations"]["gpu-autoscaler.io/mig-layout"])
    for i, gpu in enumerate(per_gpu):
        assert gpu is not None and gpu.counts == dict(Counter(layout[str(i)]))


def test_deployments_pods_and_variants_line_up() -> None:
    deploys, vas, pods = by_kind("Deployment"), by_kind("VariantAutoscaling"), by_kind("Pod")
    assert set(deploys) == set(vas) == {"llama-8b-h100", "llama-8b-l40s", "qwen-32b-a100", "qwen-32b-h100"}
    nodes = by_kind("Node")
    for name, d in deploys.items():
        va = vas[name]
        assert va["apiVersion"] == "llmd.ai/v1alpha1"
        assert va["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        selector = d["spec"]["selector"]["matchLabels"]
        mine = [
            p
            for p in pods.values()
            if p["metadata"]["namespace"] == "inference"
            and selector.items() <= p["metadata"]["labels"].items()
        ]
        assert len(mine) == d["spec"]["replicas"] == d["status"]["readyReplicas"]
        product = d["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.product"]
        for p in mine:
            owner = p["metadata"]["ownerReferences"][0]
            assert owner["kind"] == "ReplicaSet"
            assert owner["name"] == f"{name}-{p['metadata']['labels']['pod-template-hash']}"
            assert nodes[p["spec"]["nodeName"]]["metadata"]["labels"]["nvidia.com/gpu.product"] == product
    assert {v["spec"]["variantCost"] for v in vas.values()} == {"40.0", "15.0", "30.0", "45.0"}


def test_capacity_config_map() -> None:
    cm = by_kind("ConfigMap")["capacity-scaling-config"]
    assert cm["metadata"]["namespace"] == "gpu-autoscaler"
    default = yaml.safe_load(cm["data"]["default"])
    assert default == {
        "kvCacheThreshold": 0.8,
        "queueLengthThreshold": 5,
        "kvSpareTrigger": 0.1,
        "queueSpareTrigger": 3,
    }
    override = yaml.safe_load(cm["data"]["llama-8b-override"])
    assert override["model_id"] == "meta-llama/Llama-3.1-8B-Instruct" and override["kvCacheThreshold"] == 0.75


# ---------------------------------------------------------------- loader errors
MALFORMED: list[tuple[str, str, str]] = [
    ("bad YAML", "kind: Pod\nmetadata: {name: [x\n", "not valid YAML"),
    ("bad JSON", '{"kind": "Pod",', "not valid JSON"),
    ("not a mapping", "- just\n- a list\n", "expected a Kubernetes object (mapping), got list"),
    ("missing kind", "apiVersion: v1\nmetadata: {name: a}\n", "object has no 'kind'"),
    ("missing name", "apiVersion: v1\nkind: Node\nmetadata: {}\n", "Node has no metadata.name"),
    ("missing metadata", "apiVersion: v1\nkind: Node\n", "Node has no metadata.name"),
    (
        "missing namespace",
        "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n",
        "has no metadata.namespace",
    ),
    ("List without items", "apiVersion: v1\nkind: List\nmetadata: {}\n", "List has no 'items' list"),
    ("NodeList items not a list", "kind: NodeList\nitems: {a: 1}\n", "NodeList has no 'items' list"),
    ("spec not a mapping", "kind: Node\nmetadata: {name: n}\nspec: [1]\n", "'spec' must be a mapping"),
    ("status not a mapping", "kind: Node\nmetadata: {name: n}\nstatus: up\n", "'status' must be a mapping"),
    (
        "allocatable not a mapping",
        "kind: Node\nmetadata: {name: n}\nstatus: {allocatable: 8}\n",
        "allocatable",
    ),
    ("pod without containers", "kind: Pod\nmetadata: {name: p, namespace: d}\nspec: {}\n", "spec.containers"),
    (
        "bad item in List",
        "kind: List\nitems:\n- kind: Node\n  metadata: {}\n",
        "items[0]: Node has no metadata.name",
    ),
]


@pytest.mark.parametrize(("case", "text", "expect"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_snapshot_is_rejected_clearly(tmp_path: Path, case: str, text: str, expect: str) -> None:
    path = tmp_path / ("snap.json" if text.startswith("{") else "snap.yaml")
    path.write_text(text)
    with pytest.raises(SnapshotError) as err:
        load_snapshot(path)
    assert expect in str(err.value)
    assert path.name in str(err.value), "the message names the file"
    assert "\n" not in str(err.value)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no such file or folder"):
        load_snapshot(tmp_path / "nope")
    with pytest.raises(SnapshotError, match=r"holds no \.yaml"):
        load_snapshot(tmp_path)


def test_kubectl_list_and_json_and_other_kinds(tmp_path: Path) -> None:
    """`kubectl get -o json` List output works; kinds we do not read (Service) are skipped."""
    node = by_kind("Node")["l40s-0"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "d"}}
    doc = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [node, service]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    (tmp_path / "ignored.txt").write_text("not read")
    objs = load_snapshot(tmp_path)
    assert [o["metadata"]["name"] for o in objs] == ["l40s-0"]


# ---------------------------------------------------------------- the view
async def test_snapshot_cluster_view_reads_and_writes() -> None:
    view = SnapshotCluster()
    events: list[ClusterEvent] = []
    view.add_listener(events.append)
    assert not view.ready
    await view.start()
    assert view.ready
    assert len(view.list("Node")) == 7
    assert len(view.list("Pod", namespace="notebooks")) == 3
    assert view.get("Deployment", "llama-8b-h100", "inference") is not None
    assert view.get("Node", "dgx-h100-0") is not None
    assert len(events) == len(DEMO)
    gen = view.generation
    new = await view.patch("Deployment", "llama-8b-h100", "inference", {"spec": {"replicas": 3}})
    assert new["spec"]["replicas"] == 3
    assert view.get("Deployment", "llama-8b-h100", "inference")["spec"]["replicas"] == 3  # type: ignore[index]
    assert view.generation == gen + 1 and events[-1].type == "MODIFIED"
    view.delete("Pod", "nb-bob-0", "notebooks")
    assert view.get("Pod", "nb-bob-0", "notebooks") is None and events[-1].type == "DELETED"
    with pytest.raises(NotFound):
        await view.patch("Node", "nope", "", {"metadata": {"labels": {"a": "b"}}})


async def test_snapshot_writes_behave_like_the_api_server() -> None:
    from app.cluster.base import Conflict, TooManyRequests

    view = SnapshotCluster()
    await view.start()
    lease = await view.create(
        "Lease", {"metadata": {"name": "l", "namespace": "gpu-autoscaler"}, "spec": {"holderIdentity": "a"}}
    )
    assert lease["apiVersion"] == "coordination.k8s.io/v1" and lease["metadata"]["resourceVersion"]
    with pytest.raises(Conflict):
        await view.create("Lease", lease)
    stale = {**lease, "metadata": {**lease["metadata"], "resourceVersion": "0"}}
    with pytest.raises(Conflict):
        await view.replace("Lease", stale)
    renewed = await view.replace("Lease", {**lease, "spec": {"holderIdentity": "b"}})
    assert (await view.read("Lease", "l", "gpu-autoscaler")) == renewed
    assert await view.read("Lease", "nope", "gpu-autoscaler") is None

    scale = await view.scale("Deployment", "llama-8b-h100", "inference", 4)
    assert scale["spec"]["replicas"] == 4
    assert view.get("Deployment", "llama-8b-h100", "inference")["spec"]["replicas"] == 4  # type: ignore[index]

    pod = await view.create(
        "Pod",
        {
            "metadata": {"name": "trainer-0", "namespace": "ml", "labels": {"app": "trainer"}},
            "spec": {"containers": [{"name": "c"}]},
        },
    )
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    assert view.get("Pod", name, ns) is not None  # watched kinds land in the view
    await view.bind(name, ns, "dgx-h100-0")
    assert view.get("Pod", name, ns)["spec"]["nodeName"] == "dgx-h100-0"  # type: ignore[index]
    with pytest.raises(Conflict, match="already assigned"):
        await view.bind(name, ns, "dgx-h100-1")

    labels = pod["metadata"].get("labels") or {}
    await view.create(
        "PodDisruptionBudget",
        {
            "metadata": {"name": "keep", "namespace": ns},
            "spec": {"selector": {"matchLabels": labels}},
            "status": {"disruptionsAllowed": 0},
        },
    )
    with pytest.raises(TooManyRequests, match="keep"):
        await view.evict(name, ns)
    await view.patch("PodDisruptionBudget", "keep", ns, {"status": {"disruptionsAllowed": 1}})
    await view.evict(name, ns)
    assert view.get("Pod", name, ns) is None
