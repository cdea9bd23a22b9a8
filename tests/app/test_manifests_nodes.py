"""The node agent's DaemonSet and the Node-write policies: valid objects, and the policies' CEL evaluated on
real UPDATE requests (cel-python) — the agent may patch only its own Node, the service only two labels."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes

from app.cli import build_parser
from app.sharing.config import parse_configmap

ROOT = Path(__file__).resolve().parents[2] / "manifests"
AGENT_SA = "system:serviceaccount:gpu-autoscaler:gpu-autoscaler-agent"
SERVICE_SA = "system:serviceaccount:gpu-autoscaler:gpu-autoscaler"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / name).read_text()) if d]


def one(name: str, kind: str) -> dict[str, Any]:
    (obj,) = [d for d in docs(name) if d["kind"] == kind]
    return obj


@pytest.mark.parametrize("folder", ["agent", "mig"])
def test_kustomization_lists_every_file(folder: str) -> None:
    listed = set(docs(f"{folder}/kustomization.yaml")[0]["resources"])
    assert listed == {p.name for p in (ROOT / folder).glob("*.yaml")} - {"kustomization.yaml"}


def test_agent_daemonset_runs_the_agent_with_its_own_account() -> None:
    ds = one("agent/daemonset.yaml", "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "agent" and args.interval and args.cluster == "kube"
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "nvidia.com/gpu" not in str(container.get("resources"))  # takes no GPU from the workloads
    sa = one("agent/rbac.yaml", "ServiceAccount")["metadata"]
    assert pod["serviceAccountName"] == sa["name"] and AGENT_SA.endswith(f"{sa['namespace']}:{sa['name']}")
    binding = one("agent/rbac.yaml", "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == sa["name"]
    assert (
        ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_example_device_plugin_configs_parse() -> None:
    configs = parse_configmap(one("mig/device-plugin-config.yaml", "ConfigMap"), "example")
    assert configs.errors == []
    assert {n: c.replicas for n, c in configs.configs.items()} == {
        "default": 1,
        "time-sliced-2": 2,
        "time-sliced-4": 4,
        "time-sliced-8": 8,
    }


# -- the policies, evaluated ------------------------------------------------------------------------------
def _cel(expr: str, activation: dict[str, Any]) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(expr)).evaluate(activation)


def admit(
    policy: dict[str, Any], user: str, old: dict[str, Any], new: dict[str, Any], **req: Any
) -> list[str]:
    """What the API server says to an UPDATE: [] = allowed, else the denial messages."""
    extra = {"authentication.kubernetes.io/node-name": [req["node"]]} if req.get("node") else {}
    request = {"userInfo": {"username": user, "extra": extra}, "subResource": req.get("sub", "")}
    act: dict[str, Any] = {
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
        "request": celpy.json_to_cel(request),
    }
    spec = policy["spec"]
    if not all(_cel(c["expression"], act) for c in spec.get("matchConditions", [])):
        return []
    variables: dict[celtypes.StringType, Any] = {}
    for var in spec.get("variables", []):
        variables[celtypes.StringType(var["name"])] = _cel(
            var["expression"], {**act, "variables": celtypes.MapType(variables)}
        )
    act["variables"] = celtypes.MapType(variables)
    out = []
    for check in spec["validations"]:
        if not _cel(check["expression"], act):
            out.append(
                str(_cel(check["messageExpression"], act))
                if "messageExpression" in check
                else check["message"]
            )
    return out


def node(name: str = "gpu-1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"nvidia.com/mig.config": "all-disabled", "nvidia.com/mig.config.state": "success"},
            "annotations": {"gpu-autoscaler.io/topology": "{}", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.0.0.0/24"},
    }


def changed(obj: dict[str, Any], section: str, key: str, value: str | None) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    if value is None:
        new["metadata"][section].pop(key)
    else:
        new["metadata"][section][key] = value
    return new


AGENT_POLICY = one("agent/validatingadmissionpolicy.yaml", "ValidatingAdmissionPolicy")
SERVICE_POLICY = one("mig/node-write-policy.yaml", "ValidatingAdmissionPolicy")
TOPOLOGY = "gpu-autoscaler.io/topology"


@pytest.mark.parametrize(
    ("case", "user", "new", "req", "denied"),
    [
        (
            "own node, topology",
            AGENT_SA,
            changed(node(), "annotations", TOPOLOGY, '{"v":1}'),
            {"node": "gpu-1"},
            "",
        ),
        (
            "another node",
            AGENT_SA,
            changed(node(), "annotations", TOPOLOGY, "x"),
            {"node": "gpu-2"},
            "the agent on node gpu-2 may only change its own Node, not gpu-1",
        ),
        ("no node claim", AGENT_SA, changed(node(), "annotations", TOPOLOGY, "x"), {}, "no node-name claim"),
        ("a label", AGENT_SA, changed(node(), "labels", "x", "y"), {"node": "gpu-1"}, "labels or spec"),
        (
            "another annotation",
            AGENT_SA,
            changed(node(), "annotations", "x", "y"),
            {"node": "gpu-1"},
            "only the gpu-autoscaler.io/topology annotation",
        ),
        (
            "removes an annotation",
            AGENT_SA,
            changed(node(), "annotations", "node.alpha.kubernetes.io/ttl", None),
            {"node": "gpu-1"},
            "only the gpu-autoscaler.io/topology annotation",
        ),
        ("status", AGENT_SA, node(), {"node": "gpu-1", "sub": "status"}, "does not write Node status"),
        ("someone else", "system:node:gpu-2", changed(node(), "labels", "x", "y"), {}, ""),
    ],
)
def test_the_agent_may_patch_only_its_own_node(
    case: str, user: str, new: dict[str, Any], req: dict[str, Any], denied: str
) -> None:
    messages = admit(AGENT_POLICY, user, node(), new, **req)
    if denied:
        assert any(denied in m for m in messages), (case, messages)
    else:
        assert messages == [], case


@pytest.mark.parametrize(
    ("label", "value", "allowed"),
    [
        ("nvidia.com/mig.config", "all-balanced", True),
        ("nvidia.com/device-plugin.config", "time-sliced-4", True),
        ("gpu-autoscaler.io/pool", "a", True),
        ("nvidia.com/mig.config.state", "pending", False),  # mig-manager's output
        ("nvidia.com/gpu.product", "fake", False),  # GPU Feature Discovery's
        ("nvidia.com/mig.config.state", None, False),
    ],
)
def test_the_service_sets_two_nvidia_labels_only(label: str, value: str | None, allowed: bool) -> None:
    messages = admit(SERVICE_POLICY, SERVICE_SA, node(), changed(node(), "labels", label, value))
    assert (messages == []) == allowed, messages
