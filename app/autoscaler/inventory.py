"""Adapter: cluster objects (VariantAutoscaling, Deployment, Pod dicts) + metric samples -> engine variants.

Kept apart from the engine so the engine sees only plain dataclasses. Pods are indexed once per cycle by
(namespace, label, value) so matching 1,000 Deployment selectors costs a dict lookup each, not a scan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.autoscaler.collector import MetricsSnapshot, PodSample
from app.autoscaler.queueing import PerfParams
from app.autoscaler.saturation import Replica, ReplicaMetrics, Variant
from app.bad_objects import BAD
from app.cluster.selectors import expression_matches
from app.cluster.shape import field_problem

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ACCELERATOR_LABEL = "inference.optimization/acceleratorName"
DEFAULT_VARIANT_COST = 10.0


class ObjectSource(Protocol):
    def list(self, kind: str, namespace: str | None = None) -> list[Obj]: ...

    def get(self, kind: str, name: str, namespace: str = "") -> Obj | None: ...


@dataclass(frozen=True)
class VariantLoad:
    """Per-second rates summed over a variant's pods (model-based view)."""

    arrival_rate: float = 0.0
    prompt_sum: float = 0.0
    prompt_count: float = 0.0
    gen_sum: float = 0.0
    gen_count: float = 0.0
    ttft_sum: float = 0.0
    ttft_count: float = 0.0
    itl_sum: float = 0.0
    itl_count: float = 0.0
    samples: int = 0


@dataclass(frozen=True)
class VariantInfo:
    """A variant plus what only the reporting side needs."""

    variant: Variant
    load: VariantLoad
    perf: PerfParams | None


def parse_cost(raw: Any) -> float:
    """`spec.variantCost` is a string number; missing or unparsable -> 10.0 (WVA DefaultVariantCost)."""
    try:
        cost = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_VARIANT_COST
    return cost if cost >= 0 and cost == cost else DEFAULT_VARIANT_COST


class PodIndex:
    """Live pods of a namespace, indexed by label pair for fast selector matching."""

    def __init__(self, pods: Iterable[Obj]) -> None:
        self.by_ns: dict[str, list[Obj]] = {}
        self.by_label: dict[tuple[str, str, str], list[Obj]] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in (
                "Succeeded",
                "Failed",
            ):
                continue
            ns = str(meta.get("namespace") or "")
            self.by_ns.setdefault(ns, []).append(pod)
            for k, v in (meta.get("labels") or {}).items():
                self.by_label.setdefault((ns, k, str(v)), []).append(pod)

    def select(self, namespace: str, selector: Mapping[str, Any] | None) -> list[Obj]:
        """Pods matching a LabelSelector; an empty or missing selector matches nothing (as Deployments)."""
        if not selector:
            return []
        match_labels: Mapping[str, str] = selector.get("matchLabels") or {}
        exprs = selector.get("matchExpressions") or []
        if not match_labels and not exprs:
            return []
        if match_labels:
            buckets = [self.by_label.get((namespace, k, str(v)), []) for k, v in match_labels.items()]
            candidates = min(buckets, key=len)
        else:
            candidates = self.by_ns.get(namespace, [])
        out = []
        for pod in candidates:
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if all(labels.get(k) == str(v) for k, v in match_labels.items()) and all(
                expression_matches(labels, e) for e in exprs
            ):
                out.append(pod)
        return out


def pod_ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def replica_metrics(sample: PodSample | None, now: float) -> ReplicaMetrics | None:
    if sample is None:
        return None
    age = None if sample.timestamp is None else max(0.0, now - sample.timestamp)
    return ReplicaMetrics(kv=sample.kv, queue=sample.queue, running=sample.running, age_s=age)


def _perf(va: Obj, accelerator: str) -> PerfParams | None:
    """Perf parameters from the [O]-style `spec.modelProfile.accelerators[]` entry for this accelerator."""
    profile = (va.get("spec") or {}).get("modelProfile") or {}
    for acc in profile.get("accelerators") or []:
        if str(acc.get("acc", "")) != accelerator:
            continue
        perf = acc.get("perfParms") or {}
        dec, pre = perf.get("decodeParms") or {}, perf.get("prefillParms") or {}
        try:
            return PerfParams(
                alpha=float(dec["alpha"]),
                beta=float(dec["beta"]),
                gamma=float(pre["gamma"]),
                delta=float(pre["delta"]),
                max_batch=int(acc.get("maxBatchSize", 1)),
            )
        except (KeyError, TypeError, ValueError):
            log.warning("invalid modelProfile perfParms", extra={"variant": va["metadata"]["name"]})
            return None
    return None


def _int(raw: Any, default: int | None) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


_POD_SHAPE = {
    "metadata": ("dict",),
    "metadata.labels": ("dict",),
    "status": ("dict",),
    "metadata.name": ("str",),
}
_DEPLOYMENT_SHAPE = {
    "metadata": ("dict",),
    "spec": ("dict",),
    "status": ("dict",),
    "spec.selector": ("dict",),
    "spec.replicas": ("int",),
    "status.replicas": ("int",),
}
_VA_SHAPE = {
    "metadata": ("dict",),
    "metadata.labels": ("dict",),
    "spec": ("dict",),
    "spec.scaleTargetRef": ("dict",),
    "spec.modelID": ("str",),
    "spec.minReplicas": ("int",),
    "spec.maxReplicas": ("int",),
    "spec.modelProfile": ("dict",),
}


def readable(kind: str, objs: Iterable[Obj], shape: Mapping[str, tuple[str, ...]]) -> list[Obj]:
    """The objects of the documented shape; the others are reported (once per version) and left out, so
    one malformed object never costs the other variants their cycle."""
    out = []
    for obj in objs:
        problem = field_problem(obj, shape)
        if problem is None and kind == "VariantAutoscaling":
            spec = obj.get("spec") or {}
            lo, hi = spec.get("minReplicas"), spec.get("maxReplicas")
            if isinstance(lo, int) and isinstance(hi, int) and hi < lo:
                problem = f"spec.maxReplicas ({hi}) < spec.minReplicas ({lo})"
        if problem is None:
            out.append(obj)
        else:
            BAD.report(kind, obj, "malformed", problem, source="autoscaler")
    return out


def deployment_replicas(deploy: Obj) -> int:
    """WVA's current: `status.replicas`, else `spec.replicas` (a Deployment just scaled from 0 has no status
    replicas yet, but its spec already says 1)."""
    dspec, dstatus = deploy.get("spec") or {}, deploy.get("status") or {}
    return _int(dstatus.get("replicas"), 0) or _int(dspec.get("replicas"), 1) or 0


def unresolved(cluster: ObjectSource) -> list[tuple[Obj, str]]:
    """VariantAutoscalings the engine cannot use, with why (shown in their status)."""
    out: list[tuple[Obj, str]] = []
    for va in readable("VariantAutoscaling", cluster.list("VariantAutoscaling"), _VA_SHAPE):
        ns = str((va.get("metadata") or {}).get("namespace") or "")
        spec = va.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        kind, name = str(target.get("kind", "Deployment")), str(target.get("name") or "")
        if not spec.get("modelID"):
            out.append((va, "spec.modelID is empty"))
        elif kind != "Deployment":
            out.append((va, f"scaleTargetRef kind {kind} is not supported (Deployment only)"))
        elif cluster.get("Deployment", name, ns) is None:
            out.append((va, f"Deployment {ns}/{name} not found"))
    return out


def build_variants(
    cluster: ObjectSource, metrics: MetricsSnapshot, now: float, *, with_pods: bool = True
) -> list[VariantInfo]:
    """Every VariantAutoscaling whose target Deployment exists, with its pods and their samples
    (`with_pods=False`: replica counts only, for the frequent scale-from-zero poll)."""
    index = PodIndex(readable("Pod", cluster.list("Pod"), _POD_SHAPE) if with_pods else ())
    out: list[VariantInfo] = []
    for va in readable("VariantAutoscaling", cluster.list("VariantAutoscaling"), _VA_SHAPE):
        meta = va.get("metadata") or {}
        spec = va.get("spec") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        model_id = str(spec.get("modelID") or "")
        target = spec.get("scaleTargetRef") or {}
        if not model_id or target.get("kind", "Deployment") != "Deployment":
            continue
        deploy = cluster.get("Deployment", str(target.get("name") or ""), ns)
        if deploy is None or not readable("Deployment", [deploy], _DEPLOYMENT_SHAPE):
            continue
        dspec, dstatus = deploy.get("spec") or {}, deploy.get("status") or {}
        current = deployment_replicas(deploy)
        ready = _int(dstatus.get("readyReplicas"), 0) or 0
        accelerator = str((meta.get("labels") or {}).get(ACCELERATOR_LABEL) or "unknown")
        replicas: list[Replica] = []
        sums: dict[str, float] = {}
        n_samples = 0
        for pod in index.select(ns, dspec.get("selector")):
            pname = str(pod["metadata"]["name"])
            sample = metrics.pods.get((ns, pname))
            replicas.append(Replica(pod=pname, ready=pod_ready(pod), metrics=replica_metrics(sample, now)))
            if sample is not None:
                n_samples += 1
                for attr in (
                    "arrival_rate",
                    "prompt_tokens_sum",
                    "prompt_tokens_count",
                    "generation_tokens_sum",
                    "generation_tokens_count",
                    "ttft_sum",
                    "ttft_count",
                    "itl_sum",
                    "itl_count",
                ):
                    v = getattr(sample, attr)
                    if v is not None:
                        sums[attr] = sums.get(attr, 0.0) + v
        variant = Variant(
            name=name,
            namespace=ns,
            model_id=model_id,
            accelerator=accelerator,
            cost=parse_cost(spec.get("variantCost")),
            current=current,
            ready=ready,
            replicas=tuple(sorted(replicas, key=lambda r: r.pod)),
            min_replicas=_int(spec.get("minReplicas"), 1) or 0,
            max_replicas=_int(spec.get("maxReplicas"), None),
            target=str(target.get("name") or ""),
        )
        vload = VariantLoad(
            arrival_rate=sums.get("arrival_rate", 0.0),
            prompt_sum=sums.get("prompt_tokens_sum", 0.0),
            prompt_count=sums.get("prompt_tokens_count", 0.0),
            gen_sum=sums.get("generation_tokens_sum", 0.0),
            gen_count=sums.get("generation_tokens_count", 0.0),
            ttft_sum=sums.get("ttft_sum", 0.0),
            ttft_count=sums.get("ttft_count", 0.0),
            itl_sum=sums.get("itl_sum", 0.0),
            itl_count=sums.get("itl_count", 0.0),
            samples=n_samples,
        )
        out.append(VariantInfo(variant=variant, load=vload, perf=_perf(va, accelerator)))
    return out
