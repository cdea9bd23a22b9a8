"""The live view keeps what decisions read and drops the rest (issue 11, memory): env, args, volumes,
managedFields, kubectl's last-applied copy, container statuses, a node's image list."""

from __future__ import annotations

import copy
import json
import sys

from app.cluster.compact import Compacted, compact
from app.cluster.snapshot import demo_snapshot_path, load_snapshot
from extender.inventory import parse_node, parse_pod

DEMO = load_snapshot(demo_snapshot_path())
SECRET = "hf_s3cr3tTOKENvalue"


def demo(kind: str, name: str) -> dict:  # type: ignore[type-arg]
    return copy.deepcopy(next(o for o in DEMO if o["kind"] == kind and o["metadata"]["name"] == name))


def test_pod_keeps_what_decisions_read_and_drops_the_rest() -> None:
    pod = demo("Pod", "nb-alice-0")
    pod["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    pod["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = SECRET
    main = pod["spec"]["containers"][0]
    main["env"] = [{"name": "TOKEN", "value": SECRET}]
    main["args"] = ["--key", SECRET]
    pod["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    pod["status"]["containerStatuses"] = [{"name": "x", "image": "y", "ready": True}]
    out = compact("Pod", pod)
    assert isinstance(out, Compacted) and out == compact("Pod", out)  # idempotent
    assert SECRET not in json.dumps(out)
    assert "managedFields" not in out["metadata"] and "containerStatuses" not in out["status"]
    assert set(out["spec"]["containers"][0]) <= {"name", "image", "resources"}
    assert out["spec"]["tolerations"] == pod["spec"]["tolerations"]  # the node autoscaler reads these
    for key in ("labels", "ownerReferences", "uid", "namespace", "name"):
        assert out["metadata"].get(key) == pod["metadata"].get(key)
    assert (out["spec"].get("nodeName"), out["status"]["phase"]) == (pod["spec"]["nodeName"], "Running")
    kept = [c for c in pod["status"]["conditions"] if c["type"] in ("Ready", "PodScheduled")]
    assert out["status"]["conditions"] == kept and kept
    assert parse_pod(out) == parse_pod(pod)  # the extender sees the same pod
    assert pod["spec"]["containers"][0]["env"], "the input is not modified"


def test_node_drops_its_image_list_and_reads_the_same() -> None:
    node = demo("Node", "dgx-h100-0")
    node["status"]["images"] = [{"names": [f"registry/img-{i}:v1"], "sizeBytes": 10**9} for i in range(50)]
    out = compact("Node", node)
    assert "images" not in out["status"] and out["status"]["allocatable"] == node["status"]["allocatable"]
    assert parse_node(out) == parse_node(node)


def test_keys_and_short_values_are_shared() -> None:
    a = compact("Pod", demo("Pod", "nb-alice-0"))
    b = compact("Pod", json.loads(json.dumps(demo("Pod", "nb-alice-0"))))
    key_a = next(k for k in a if k == "metadata")
    key_b = next(k for k in b if k == "metadata")
    assert key_a is key_b and sys.intern("metadata") is key_a
    res_a = a["spec"]["containers"][0]["resources"]["limits"]
    res_b = b["spec"]["containers"][0]["resources"]["limits"]
    assert next(iter(res_a.values())) is next(iter(res_b.values()))


def test_a_workloads_pods_share_what_they_repeat() -> None:
    a, b = demo("Pod", "llama-8b-h100-6c9d7f5b8d-pcd5r"), None
    b = copy.deepcopy(a)
    b["metadata"]["name"], b["metadata"]["uid"] = "llama-8b-h100-6c9d7f5b8d-other", "uid-other"
    ca, cb = compact("Pod", a), compact("Pod", b)
    assert ca["spec"]["containers"] is cb["spec"]["containers"]
    assert ca["metadata"]["labels"] is cb["metadata"]["labels"]
    assert ca["metadata"]["name"] != cb["metadata"]["name"]
