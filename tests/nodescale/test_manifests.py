"""The node autoscaler's RBAC covers what it reads and writes, in its own file listed in the kustomization."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2] / "manifests" / "base"


def test_nodescale_rbac() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "rbac-nodescale.yaml").read_text()) if d]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == "gpu-autoscaler"

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(
            group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
            for r in role["rules"]
        )

    for resource in ("machinedeployments", "machines"):
        assert all(allowed("cluster.x-k8s.io", resource, v) for v in ("get", "list", "watch"))
    assert allowed("cluster.x-k8s.io", "machinedeployments/scale", "patch")
    assert allowed("cluster.x-k8s.io", "machines", "patch")  # the delete-machine annotation
    assert allowed("policy", "poddisruptionbudgets", "watch")
    assert allowed("", "pods/eviction", "create")
    assert allowed("", "nodes", "patch")  # cordon
    kustomization = yaml.safe_load((ROOT / "kustomization.yaml").read_text())
    assert "rbac-nodescale.yaml" in kustomization["resources"]
