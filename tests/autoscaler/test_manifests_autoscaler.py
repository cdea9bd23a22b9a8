"""The autoscaler's manifests do what the docs say: KEDA reaches zero and back, RBAC covers status and
/scale, the example objects fit the CRD, the shipped ConfigMaps parse cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from app.autoscaler.config import parse_capacity_config
from app.autoscaler.zero import CONFIGMAP, parse_scale_to_zero_config

ROOT = Path(__file__).resolve().parents[2] / "manifests"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / name).read_text()) if d]


def test_keda_example_goes_to_zero_and_back() -> None:
    so, va = docs("autoscaling/keda-llama-8b-l40s.yaml")
    assert so["kind"] == "ScaledObject" and so["spec"]["minReplicaCount"] == 0
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    assert "wva_desired_replicas" in meta["query"] and 'variant_name="llama-8b-l40s"' in meta["query"]
    # desired 1 activates (1 > 0), desired 0 deactivates; an empty answer is an error, not a zero
    assert (meta["activationThreshold"], meta["threshold"], meta["ignoreNullValues"]) == ("0", "1", "false")
    assert so["spec"]["fallback"]["replicas"] >= 1
    # the VariantAutoscaling allows zero as well, and fits the CRD
    assert va["kind"] == "VariantAutoscaling" and va["spec"]["minReplicas"] == 0
    assert va["spec"]["scaleTargetRef"]["name"] == so["spec"]["scaleTargetRef"]["name"]
    crd = docs("crd/variantautoscaling.yaml")[0]
    jsonschema.validate(va, crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_autoscaler_rbac_covers_status_and_scale() -> None:
    role = next(d for d in docs("base/rbac-autoscaler.yaml") if d["kind"] == "ClusterRole")
    binding = next(d for d in docs("base/rbac-autoscaler.yaml") if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(
            group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
            for r in role["rules"]
        )

    assert allowed("llmd.ai", "variantautoscalings/status", "patch")
    assert allowed("apps", "deployments/scale", "patch")
    assert "rbac-autoscaler.yaml" in docs("base/kustomization.yaml")[0]["resources"]


def test_shipped_configmaps_parse_cleanly() -> None:
    (zero,) = docs("base/autoscaler-scale-to-zero.yaml")
    assert zero["metadata"]["name"] == CONFIGMAP
    cfg = parse_scale_to_zero_config(zero["data"])
    assert cfg.errors == () and not cfg.enabled("any", "ns") and cfg.retention_s("any", "ns") == 600
    capacity = next(d for d in docs("base/config.yaml") if d["metadata"]["name"] == "capacity-scaling-config")
    parsed = parse_capacity_config(capacity["data"])
    assert parsed.errors == () and parsed.warnings == ()
