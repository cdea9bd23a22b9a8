"""Every Kubernetes kind the service reads or writes, with the facts needed to build its API paths.

One table instead of one client method per kind: a capability that needs a new kind adds one row here
(and to `WATCHED` if the cluster view should list and watch it), and every view — live, snapshot, the
tests' fakes — can list, watch, create, patch and scale it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_version: str  # "v1", "apps/v1", "llmd.ai/v1alpha1"
    plural: str
    namespaced: bool
    #: served by a CRD that may be absent: a 404/403 on list marks it empty instead of blocking readiness
    optional: bool = False
    #: `status` is a subresource: a patch of `status` alone goes to `/status`
    status_subresource: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def collection_path(self, namespace: str | None = None) -> str:
        """`/api/v1/pods`, `/api/v1/namespaces/ns/pods`, `/apis/apps/v1/deployments`…; all namespaces
        when `namespace` is None or the kind is cluster-scoped."""
        root = f"/apis/{self.api_version}" if self.group else f"/api/{self.api_version}"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"

    def object_path(self, name: str, namespace: str = "", subresource: str = "") -> str:
        if self.namespaced and not namespace:
            raise ValueError(f"{self.kind} {name}: a namespace is needed")
        path = f"{self.collection_path(namespace if self.namespaced else None)}/{name}"
        return f"{path}/{subresource}" if subresource else path


def _k(kind: str, api_version: str, plural: str, namespaced: bool = True, **kw: bool) -> KindInfo:
    return KindInfo(kind, api_version, plural, namespaced, **kw)


REGISTRY: dict[str, KindInfo] = {
    k.kind: k
    for k in (
        _k("Node", "v1", "nodes", namespaced=False, status_subresource=True),
        _k("Pod", "v1", "pods", status_subresource=True),
        _k("Namespace", "v1", "namespaces", namespaced=False),
        _k("ConfigMap", "v1", "configmaps"),
        _k("Event", "v1", "events"),
        _k("Deployment", "apps/v1", "deployments", status_subresource=True),
        _k("Lease", "coordination.k8s.io/v1", "leases"),
        _k("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", status_subresource=True),
        _k("VariantAutoscaling", "llmd.ai/v1alpha1", "variantautoscalings", optional=True,
           status_subresource=True),
        _k("MachineDeployment", "cluster.x-k8s.io/v1beta1", "machinedeployments", optional=True,
           status_subresource=True),
        _k("Machine", "cluster.x-k8s.io/v1beta1", "machines", optional=True, status_subresource=True),
    )
}  # fmt: skip

#: Kinds the cluster view lists and watches (the others are only written or read on demand).
WATCHED: tuple[str, ...] = (
    "Node",
    "Pod",
    "Namespace",
    "ConfigMap",
    "Deployment",
    "VariantAutoscaling",
    # node autoscaling through Cluster API (issue 14): node groups, their machines, disruption budgets
    "MachineDeployment",
    "Machine",
    "PodDisruptionBudget",
)


def kind_info(kind: str) -> KindInfo:
    try:
        return REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r} (add it to app/cluster/kinds.py)") from None
