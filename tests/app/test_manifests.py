"""The manifests are valid Kubernetes objects and agree with the code (flags, kinds watched, resources)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from app.cli import build_parser
from app.cluster.kinds import REGISTRY, WATCHED

ROOT = Path(__file__).resolve().parents[2] / "manifests"
MODELS = {
    "Namespace": "V1Namespace",
    "ServiceAccount": "V1ServiceAccount",
    "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding",
    "ConfigMap": "V1ConfigMap",
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "MutatingWebhookConfiguration": "V1MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration": "V1ValidatingWebhookConfiguration",
}


def docs(name: str) -> list[dict[str, Any]]:
    text = (ROOT / name).read_text().replace("${CA_BUNDLE}", "Q0E=")  # the install command fills it in
    return [d for d in yaml.safe_load_all(text) if d]


ALL = [(p.relative_to(ROOT).as_posix(), d) for p in sorted(ROOT.rglob("*.yaml")) for d in docs(str(p))]


@pytest.mark.parametrize(
    ("path", "obj"), [a for a in ALL if a[1]["kind"] in MODELS], ids=lambda v: str(v)[:40]
)
def test_manifest_objects_deserialize(path: str, obj: dict[str, Any]) -> None:
    ApiClient()._ApiClient__deserialize(obj, MODELS[obj["kind"]])  # type: ignore[attr-defined]


def test_kustomization_lists_every_base_file() -> None:
    listed = set(docs("base/kustomization.yaml")[0]["resources"])
    assert listed == {p.name for p in (ROOT / "base").glob("*.yaml")} - {"kustomization.yaml"}


def test_deployment_args_are_valid_flags() -> None:
    dep = next(d for d in docs("base/deployment.yaml") if d["kind"] == "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.cluster == "kube" and args.tls_cert and args.tls_key
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert Path(args.tls_cert).parent.as_posix() in mounts and Path(args.config).parent.as_posix() in mounts


def test_rbac_covers_every_watched_kind() -> None:
    role = next(d for d in docs("base/rbac.yaml") if d["kind"] == "ClusterRole")

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(
            group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
            for r in role["rules"]
        )

    for kind in WATCHED:
        info = REGISTRY[kind]
        for verb in ("list", "watch"):
            assert allowed(info.group, info.plural, verb), (kind, verb)
    assert allowed("", "nodes", "patch")
    assert allowed("llmd.ai", "variantautoscalings/status", "update")


def test_scheduler_extender_config() -> None:
    cfg = docs("scheduler/kube-scheduler-config.yaml")[0]
    assert cfg["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    (ext,) = cfg["extenders"]
    assert (ext["filterVerb"], ext["prioritizeVerb"]) == ("filter", "prioritize")
    assert ext["weight"] > 0 and ext["nodeCacheCapable"] is True and ext["ignorable"] is True
    names = [m["name"] for m in ext["managedResources"]]
    assert len(names) == len(set(names))
    assert "nvidia.com/gpu" in names
    for profile in ("1g.10gb", "2g.20gb", "3g.40gb", "1g.10gb.me", "7g.80gb", "1g.12gb"):
        assert f"nvidia.com/mig-{profile}" in names


def test_webhook_registration_follows_the_contract() -> None:
    (cfg,) = docs("webhook/mutatingwebhookconfiguration.yaml")
    (hook,) = cfg["webhooks"]
    assert hook["clientConfig"]["service"]["path"] == "/mutate"
    assert hook["namespaceSelector"]["matchLabels"] == {"gpu-autoscaler.io/mig-rewrite": "enabled"}
    assert hook["admissionReviewVersions"] == ["v1"] and hook["sideEffects"] == "None"
