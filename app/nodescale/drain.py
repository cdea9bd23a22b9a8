"""Which pods a node drain would evict, and which pod holds the node — Cluster Autoscaler's drainability
rules (simulator/drainability/rules, utils/drain), in its order, with one deliberate difference: a
PodDisruptionBudget with no disruption left holds the node even for a `safe-to-evict: "true"` pod (the
Eviction API would refuse that eviction anyway).

- ignored (neither moved nor holding): mirror pods, pods deleted for longer than their grace period + 30 s,
  DaemonSet pods (they go with the node), pods that have run to completion;
- held by: a PodDisruptionBudget with no disruption left (budgets are shared by every node of one plan),
  `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`, a pod without a controller, a kube-system pod
  without a PodDisruptionBudget, local storage (hostPath, or emptyDir not in memory, unless named in
  `cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes`). `safe-to-evict: "true"` lifts the last
  four.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.cluster.selectors import selector_matches

Obj = Mapping[str, Any]

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SAFE_TO_EVICT_LOCAL_VOLUMES = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes"
MIRROR = "kubernetes.io/config.mirror"
LONG_TERMINATING_EXTRA_S = 30.0
DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True)
class Blocker:
    """Why a pod holds its node: a short code (metric label) and a sentence."""

    code: str  # pdb | safe-to-evict | no-controller | kube-system | local-storage
    pod: str  # namespace/name
    text: str


def pod_name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def controller_of(pod: Obj) -> Obj | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def is_daemonset_pod(pod: Obj) -> bool:
    ref = controller_of(pod)
    return ref is not None and ref.get("kind") == "DaemonSet"


def is_mirror_pod(pod: Obj) -> bool:
    return MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


def is_terminal(pod: Obj) -> bool:
    """Run to completion, or rejected by the kubelet: nothing to move."""
    phase = (pod.get("status") or {}).get("phase")
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if phase == "Failed":
        return True
    return phase == "Succeeded" and policy in ("Never", "OnFailure")


def is_long_terminating(pod: Obj, now: float, parse_time: Any) -> bool:
    deleted = parse_time((pod.get("metadata") or {}).get("deletionTimestamp"))
    if deleted is None:
        return False
    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    grace_s = float(grace) if isinstance(grace, int | float) else DEFAULT_GRACE_S
    return bool(deleted + grace_s + LONG_TERMINATING_EXTRA_S < now)


def local_volumes(pod: Obj) -> list[str]:
    """Names of volumes that would be lost with the node and are not declared safe to lose."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    safe = {v.strip() for v in str(ann.get(SAFE_TO_EVICT_LOCAL_VOLUMES) or "").split(",") if v.strip()}
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        empty = vol.get("emptyDir")
        local = vol.get("hostPath") is not None or (
            empty is not None and (empty or {}).get("medium") != "Memory"
        )
        if local and vol.get("name") not in safe:
            out.append(str(vol.get("name")))
    return out


class PdbBudget:
    """Disruptions each PodDisruptionBudget still allows, spent as a plan chooses pods to evict (Cluster
    Autoscaler's RemainingPdbTracker): two nodes of one plan cannot both spend the last disruption."""

    def __init__(self, pdbs: Iterable[Obj]) -> None:
        self.pdbs = [p for p in pdbs if p.get("metadata")]
        self.left = {
            self._key(p): int((p.get("status") or {}).get("disruptionsAllowed") or 0) for p in self.pdbs
        }

    @staticmethod
    def _key(pdb: Obj) -> str:
        meta = pdb.get("metadata") or {}
        return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"

    def matching(self, pod: Obj) -> list[str]:
        meta = pod.get("metadata") or {}
        ns, labels = meta.get("namespace") or "default", meta.get("labels") or {}
        return [
            self._key(p)
            for p in self.pdbs
            if (p.get("metadata") or {}).get("namespace", "default") == ns
            and selector_matches((p.get("spec") or {}).get("selector"), labels, empty_matches=True)
        ]

    def protected(self, pod: Obj) -> bool:
        """Would evicting this one pod now violate a budget?"""
        return any(self.left[k] < 1 for k in self.matching(pod))

    def check(self, pods: Iterable[Obj]) -> Blocker | None:
        """The first pod whose eviction, together with the others, a budget cannot afford."""
        need: dict[str, int] = {}
        for pod in pods:
            for key in self.matching(pod):
                need[key] = need.get(key, 0) + 1
                if need[key] > self.left[key]:
                    left = self.left[key]
                    return Blocker(
                        "pdb",
                        pod_name(pod),
                        f"PodDisruptionBudget {key} allows {left} disruption{'s' if left != 1 else ''} now",
                    )
        return None

    def spend(self, pods: Iterable[Obj]) -> None:
        for pod in pods:
            for key in self.matching(pod):
                self.left[key] -= 1


def classify(
    pods: Iterable[Obj], budget: PdbBudget, now: float, parse_time: Any, skip_system_pods: bool = True
) -> tuple[list[Obj], Blocker | None]:
    """(pods a drain must evict, the first pod that holds the node or None); budgets checked, not spent."""
    evict: list[Obj] = []
    for pod in pods:
        if is_mirror_pod(pod) or is_long_terminating(pod, now, parse_time) or is_daemonset_pod(pod):
            continue
        if is_terminal(pod):
            continue
        name = pod_name(pod)
        ann = (pod.get("metadata") or {}).get("annotations") or {}
        if ann.get(SAFE_TO_EVICT) != "true":
            if controller_of(pod) is None:
                return [], Blocker(
                    "no-controller", name, "pod has no controller (bare pod): nothing would recreate it"
                )
            ns = (pod.get("metadata") or {}).get("namespace")
            if skip_system_pods and ns == "kube-system" and not budget.matching(pod):
                return [], Blocker("kube-system", name, "kube-system pod without a PodDisruptionBudget")
            if ann.get(SAFE_TO_EVICT) == "false":
                return [], Blocker("safe-to-evict", name, f'pod is annotated {SAFE_TO_EVICT}: "false"')
            vols = local_volumes(pod)
            if vols:
                return [], Blocker("local-storage", name, f"pod has local storage ({', '.join(vols)})")
        evict.append(pod)
    blocker = budget.check(evict)
    if blocker is not None:
        return [], blocker
    return evict, None
