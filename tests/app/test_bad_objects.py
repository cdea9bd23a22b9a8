"""Malformed objects never cost the other objects their decision: autoscaler cycle, webhook offers, operator
views (issue 11, item 1); the service starts with a malformed Node among good ones."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.autoscaler.collector import MetricsSnapshot
from app.autoscaler.inventory import build_variants
from app.bad_objects import BAD
from app.cluster.base import ClusterEvent
from app.cluster.snapshot import SnapshotCluster
from app.main import create_app
from app.ops.inventory import cluster_facts
from app.settings import Settings
from extender.inventory import ANN_TOPOLOGY
from tests.extender.conftest import make_node, make_pod
from tests.webhook.conftest import load_review


@pytest.fixture(autouse=True)
def fresh_table() -> Iterator[None]:
    BAD.reset()
    yield
    BAD.reset()


def inject(cluster: SnapshotCluster, kind: str, obj: dict[str, Any]) -> None:
    """As a live watch would deliver it: no snapshot-file checks."""
    obj = {"kind": kind, "apiVersion": "v1", **obj}
    cluster._apply(ClusterEvent("ADDED", kind, obj))


async def test_one_malformed_variant_or_deployment_leaves_the_others_their_cycle() -> None:
    cluster = SnapshotCluster()
    await cluster.start()
    good = {i.variant.name for i in build_variants(cluster, MetricsSnapshot(), now=0)}
    va = copy.deepcopy(cluster.list("VariantAutoscaling")[0])
    va["metadata"] = {**va["metadata"], "name": "broken-va", "resourceVersion": "1"}
    va["spec"] = {**va["spec"], "minReplicas": "two"}
    inject(cluster, "VariantAutoscaling", va)
    inverted = copy.deepcopy(va)
    inverted["metadata"] = {**va["metadata"], "name": "inverted"}
    inverted["spec"] = {**va["spec"], "minReplicas": 3, "maxReplicas": 1}
    inject(cluster, "VariantAutoscaling", inverted)
    inject(cluster, "Pod", {"metadata": {"name": "p", "namespace": "inference", "labels": ["x"]}})
    dep_va = copy.deepcopy(cluster.list("VariantAutoscaling")[0])
    target = dep_va["spec"]["scaleTargetRef"]["name"]
    dep = copy.deepcopy(cluster.get("Deployment", target, dep_va["metadata"]["namespace"]))
    assert dep is not None
    dep["spec"] = {**dep["spec"], "selector": "app=x"}
    inject(cluster, "Deployment", dep)
    names = {i.variant.name for i in build_variants(cluster, MetricsSnapshot(), now=0)}
    assert names == good - {dep_va["metadata"]["name"]}
    bad = {(b.kind, b.name) for b in BAD.current()}
    assert bad == {
        ("VariantAutoscaling", "inference/broken-va"),
        ("VariantAutoscaling", "inference/inverted"),
        ("Pod", "inference/p"),
        ("Deployment", f"inference/{target}"),
    }


async def test_webhook_keeps_deciding_with_a_malformed_node() -> None:
    cluster = SnapshotCluster()
    app = create_app(Settings(cluster="demo"), cluster=cluster)
    async with app.router.lifespan_context(app):
        inject(cluster, "Node", {"metadata": {"name": "junk", "labels": "nvidia.com/gpu.product"}})
        webhook = app.state.ctx.components["webhook"]
        assert webhook.offers()  # the demo's MIG offers are still known
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            resp = await client.post("/mutate", json=load_review("pod_create_notebook.json"))
        assert resp.status_code == 200
        assert "internal error" not in str(resp.json()["response"].get("warnings"))
    assert ("Node", "junk") in {(b.kind, b.name) for b in BAD.current()}


def test_operator_view_skips_and_names_malformed_objects() -> None:
    bad_node = make_node("bad", gpus=4)
    bad_node["status"]["allocatable"]["nvidia.com/gpu"] = "-2"
    weird = {"metadata": {"name": "w"}, "status": ["Ready"]}
    bad_pod = make_pod("p", gpus=1, node="ok")
    bad_pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "-1"
    facts = cluster_facts([make_node("ok", gpus=4), bad_node, weird], [bad_pod, make_pod("q", gpus=1)])
    assert [n.name for n in facts.nodes] == ["ok"] and [p.name for p in facts.pods] == ["q"]
    assert len(facts.skipped) == 3 and any("negative" in s for s in facts.skipped)


async def test_service_starts_with_a_malformed_node_and_answers_for_the_others() -> None:
    cluster = SnapshotCluster()
    app = create_app(Settings(cluster="demo"), cluster=cluster)
    cluster.load()
    assert cluster._loaded is not None
    bad = copy.deepcopy(next(o for o in cluster._loaded if o["kind"] == "Node"))
    bad["metadata"] = {**bad["metadata"], "name": "bad-node", "annotations": {}}
    bad["status"] = {**bad["status"], "allocatable": {**bad["status"]["allocatable"], "nvidia.com/gpu": "-2"}}
    cluster._loaded.append(bad)  # in the view from the start
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            body = {"Pod": make_pod("p", gpus=1), "NodeNames": ["bad-node", "dgx-h100-1"]}
            out = (await client.post("/filter", json=body)).json()
            metrics = (await client.get("/metrics")).text
    assert out["NodeNames"] == ["dgx-h100-1"] and not out["Error"]
    assert "negative_allocatable" in out["FailedAndUnresolvableNodes"]["bad-node"]
    assert 'gpu_autoscaler_bad_objects_total{kind="Node",reason="negative_allocatable"}' in metrics


@pytest.mark.parametrize(
    ("kind", "obj", "field"),
    [
        ("Node", "not an object", "object is a str"),
        ("Node", {"metadata": ["n"]}, "metadata must be an object"),
        ("Node", {"metadata": {}}, "metadata.name"),
        ("Node", {"metadata": {"name": "n", "labels": "a=b"}}, "metadata.labels must be a map"),
        ("Node", {"metadata": {"name": "n", "labels": {"a": 1}}}, "metadata.labels['a']"),
        ("Node", {"metadata": {"name": "n", "annotations": {"a": None}}}, "metadata.annotations['a']"),
        ("Node", {"metadata": {"name": "n"}, "status": {"allocatable": ["x"]}}, "status.allocatable"),
        ("Pod", {"metadata": {"name": "p"}, "spec": {"containers": [1]}}, "spec.containers must list"),
        ("Pod", {"metadata": {"name": "p"}, "spec": {"nodeName": 7}}, "spec.nodeName"),
        ("Pod", {"metadata": {"name": "p", "namespace": 3}}, "metadata.namespace"),
        ("Node", {"metadata": {"name": "n"}, "spec": {"taints": "NoSchedule"}}, "spec.taints"),
        ("Node", {"metadata": {"name": "n"}, "status": {"conditions": ["Ready"]}}, "status.conditions"),
        ("Pod", {"metadata": {"name": "p"}, "spec": {"nodeSelector": {"a": 1}}}, "spec.nodeSelector['a']"),
        ("Pod", {"metadata": {"name": "p", "ownerReferences": {"kind": "X"}}}, "metadata.ownerReferences"),
    ],
)
def test_structurally_impossible_objects_name_the_field(kind: str, obj: Any, field: str) -> None:
    from app.cluster.shape import shape_problem

    problem = shape_problem(kind, obj)
    assert problem is not None and field in problem


def test_well_formed_objects_pass_the_shape_check() -> None:
    from app.cluster.shape import shape_problem

    assert shape_problem("Node", make_node("ok", gpus=4)) is None
    assert shape_problem("Pod", make_pod("p", gpus=1, node="ok")) is None
    assert shape_problem("Pod", {"metadata": {"name": "p", "labels": None}, "spec": None}) is None


async def test_the_view_refuses_a_malformed_version_and_takes_a_good_one_back() -> None:
    """Every reader (extender, webhook, MIG and sharing controllers, console) sees only the structure the API
    schema guarantees: a bad version removes the object for all of them until a good one arrives."""
    cluster = SnapshotCluster()
    await cluster.start()
    seen: list[tuple[str, str]] = []
    cluster.add_listener(lambda e: seen.append((e.type, e.obj["metadata"]["name"])))
    good = make_node("flaky", gpus=4)
    inject(cluster, "Node", copy.deepcopy(good))
    assert cluster.get("Node", "flaky") is not None
    bad = copy.deepcopy(good)
    bad["metadata"]["labels"] = "nvidia.com/gpu.product"
    inject(cluster, "Node", bad)
    assert cluster.get("Node", "flaky") is None and seen[-1] == ("DELETED", "flaky")
    assert ("Node", "flaky", "malformed") in {(b.kind, b.name, b.reason) for b in BAD.current()}
    inject(cluster, "Node", {"metadata": ["never seen before"]})  # nothing to remove: nothing happens
    assert seen[-1] == ("DELETED", "flaky")
    inject(cluster, "Node", copy.deepcopy(good))
    assert cluster.get("Node", "flaky") is not None and seen[-1] == ("ADDED", "flaky")
    assert ("Node", "flaky") not in {(b.kind, b.name) for b in BAD.current()}


def _bad_node_variants() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for label, change in [
        ("negative allocatable", lambda n: n["status"]["allocatable"].__setitem__("nvidia.com/gpu", "-2")),
        (
            "allocatable not a quantity",
            lambda n: n["status"]["allocatable"].__setitem__("nvidia.com/gpu", "x"),
        ),
        ("topology a JSON list", lambda n: n["metadata"]["annotations"].__setitem__(ANN_TOPOLOGY, "[1,2]")),
        ("taints a string", lambda n: n["spec"].__setitem__("taints", "NoSchedule")),
        ("conditions of strings", lambda n: n["status"].__setitem__("conditions", ["Ready"])),
        (
            "GPU count label not a number",
            lambda n: n["metadata"]["labels"].__setitem__("nvidia.com/gpu.count", "x"),
        ),
    ]:
        node = make_node("junk", gpus=8)
        node.setdefault("spec", {})
        change(node)
        out.append((label, node))
    return out


@pytest.mark.parametrize(("label", "node"), _bad_node_variants(), ids=[v[0] for v in _bad_node_variants()])
async def test_every_loop_and_route_survives_a_bad_node_with_a_pod_on_it(
    label: str, node: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The MIG, sharing, node-autoscaling, cost and waste cycles and every GET route keep working (no error
    logged, no 5xx) with one bad Node that a pod is bound to (found by probing each loop: node autoscaling
    raised KeyError on a node the extender could not read, a string `taints` broke template copies)."""
    cluster = SnapshotCluster()
    app = create_app(Settings(cluster="demo"), cluster=cluster)
    async with app.router.lifespan_context(app):
        inject(cluster, "Node", node)
        inject(cluster, "Pod", make_pod("on-junk", gpus=1, node="junk"))
        caplog.clear()
        for comp in app.state.ctx.components.values():
            cycle = getattr(comp, "cycle", None)
            if cycle is not None and getattr(comp, "source", True) is not None:
                await cycle()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in (
                "/ui",
                "/ui/data",
                "/mig/plan",
                "/sharing/plan",
                "/nodes/plan",
                "/readyz",
                "/metrics",
            ):
                assert (await client.get(path)).status_code < 500, path
            body = {"Pod": make_pod("p", gpus=1), "NodeNames": ["junk", "dgx-h100-0"]}
            assert (await client.post("/filter", json=body)).status_code == 200
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert not errors, [(r.name, r.getMessage(), r.exc_text) for r in errors]
