"""The webhook's GPU-sharing choice, pure: a workload's usage history -> a share of one GPU of the sharing
pool (`gpu-autoscaler.io/gpu-milli`), or why not.

The pool is the nodes whose device plugin shares GPUs with the configured strategy (GFD label
`nvidia.com/gpu.sharing-strategy`, set once the config is in effect). The share is the larger of the peak
memory (plus headroom) over the pool GPU's memory and the p95 compute (plus headroom), rounded up to
SHARE_STEP milli; only a workload using less than the threshold of a GPU is shared, and on an MPS pool a
share must fit one replica (MPS caps each client at 1/replicas of the GPU's memory and compute).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.gpu.mig import geometry_for
from webhook.mig import Usage, usage_fraction

#: namespace label opting in to sharing rewrites; pod annotation `gpu-autoscaler.io/sharing=off` opts out
SHARING_LABEL = "gpu-autoscaler.io/sharing"
LABEL_STRATEGY = "nvidia.com/gpu.sharing-strategy"
LABEL_REPLICAS = "nvidia.com/gpu.replicas"
LABEL_PRODUCT = "nvidia.com/gpu.product"
LABEL_MEMORY = "nvidia.com/gpu.memory"
GPU = "nvidia.com/gpu"
SHARED_GPU = "nvidia.com/gpu.shared"
#: shares are rounded up to this many milli-GPU (bounded metric labels, fewer distinct pod shapes)
SHARE_STEP = 50


@dataclass(frozen=True)
class PoolOffer:
    """What one kind of pool node offers: its product, GPU memory and how it shares."""

    product_label: str  # `nvidia.com/gpu.product` as the node carries it (GFD adds `-SHARED`)
    memory_mib: int
    strategy: str
    replicas: int
    resource: str  # what a pod asks there: nvidia.com/gpu, or nvidia.com/gpu.shared (renameByDefault)

    @property
    def product(self) -> str:
        return re.sub(r"-SHARED$", "", self.product_label)


@dataclass(frozen=True)
class ShareDecision:
    milli: int | None  # the share to ask, None when the pod is left whole
    reason: str
    outcome: str  # shared | kept | no_fit | no_pool | no_history | unknown_gpu
    offer: PoolOffer | None = None
    #: the share the history asks for, pool or not (the sharing controller's demand when no pool took it)
    wanted: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def pool_offers(nodes: Iterable[Mapping[str, Any]], strategy: str) -> list[PoolOffer]:
    """One offer per distinct (product, memory, replicas, resource) among nodes sharing with `strategy`."""
    seen: set[PoolOffer] = set()
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        if str(labels.get(LABEL_STRATEGY, "")).lower() != strategy:
            continue
        alloc = (node.get("status") or {}).get("allocatable") or {}
        memory = str(labels.get(LABEL_MEMORY, ""))
        replicas = str(labels.get(LABEL_REPLICAS, "1"))
        resource = SHARED_GPU if _positive(alloc.get(SHARED_GPU)) and not _positive(alloc.get(GPU)) else GPU
        seen.add(
            PoolOffer(
                product_label=str(labels.get(LABEL_PRODUCT, "")),
                memory_mib=int(memory) if memory.isdigit() else 0,
                strategy=strategy,
                replicas=int(replicas) if replicas.isdigit() and int(replicas) > 0 else 1,
                resource=resource,
            )
        )
    return sorted(seen, key=lambda o: (o.product_label, o.memory_mib, o.replicas, o.resource))


def _positive(value: Any) -> bool:
    try:
        return int(str(value)) > 0
    except ValueError:
        return False


def share_for(usage: Usage, memory_mib: float, headroom: float) -> tuple[int, float, float]:
    """(milli rounded up to SHARE_STEP, memory fraction, compute fraction) of a GPU of `memory_mib`."""
    mem = usage.peak_memory_mib * (1 + headroom) / memory_mib
    compute = (usage.p95_compute or 0.0) * (1 + headroom)
    milli = max(SHARE_STEP, math.ceil(max(mem, compute) * 1000 / SHARE_STEP) * SHARE_STEP)
    return milli, mem, compute


def _own_memory(usage: Usage) -> float:
    """MiB of the GPU the history ran on (measured, else from its model); 0 when unknown."""
    if usage.gpu_memory_mib:
        return usage.gpu_memory_mib
    geo = geometry_for(usage.gpu_model) if usage.gpu_model else None
    return float(geo.memory_mib) if geo else 0.0


def _accepts(offer: PoolOffer, wanted: Sequence[str], selector: str | None) -> bool:
    if selector is not None and selector != offer.product_label:
        return False  # a nodeSelector matches the label exactly (GFD's `-SHARED` included)
    if not wanted:
        return True
    norm = offer.product.upper().replace("-", " ")
    return any(w.upper().replace("-", " ") in norm for w in wanted)


def choose_share(
    usage: Usage,
    offers: Sequence[PoolOffer],
    wanted_products: Sequence[str],
    product_selector: str | None,
    threshold: float = 0.5,
    headroom: float = 0.2,
) -> ShareDecision:
    """The smallest share of an accepted pool GPU that holds the workload, when it uses under `threshold`
    of the GPU it ran on."""
    mem_frac, compute = usage_fraction(usage)
    if mem_frac is None:
        return ShareDecision(None, "history lacks the GPU memory size", "unknown_gpu")
    if compute is None:
        return ShareDecision(None, "history lacks compute use", "no_history")
    if mem_frac >= threshold or compute >= threshold:
        why = f"uses {max(mem_frac, compute):.0%} of a GPU (threshold {threshold:.0%})"
        return ShareDecision(None, why, "kept")
    wanted = share_for(usage, _own_memory(usage), headroom)[0] if _own_memory(usage) else None
    if not offers:
        return ShareDecision(None, "no node shares GPUs yet", "no_pool", wanted=wanted)
    best: tuple[int, str, PoolOffer, float, float] | None = None
    misfit = ""
    for offer in offers:
        if not _accepts(offer, wanted_products, product_selector) or not offer.memory_mib:
            continue
        milli, mem, comp = share_for(usage, offer.memory_mib, headroom)
        if max(mem, comp) >= threshold:
            misfit = misfit or f"needs {milli}m of a {offer.product}"
            continue
        if offer.strategy == "mps" and milli > 1000 // offer.replicas:
            held = 1000 // offer.replicas
            misfit = misfit or f"needs {milli}m, an MPS replica of {offer.product} holds {held}m"
            continue
        key = (milli, offer.product_label, offer, mem, comp)
        if best is None or key[:2] < best[:2]:
            best = key
    if best is None:
        why = misfit or "no sharing node matches the pod's GPU product"
        return ShareDecision(None, why, "no_fit", wanted=wanted)
    milli, _, offer, mem, comp = best
    reason = (
        f"peak {usage.peak_memory_mib / 1024:.1f}GiB+{headroom:.0%} is {mem:.0%} of a {offer.product}, "
        f"p95 compute {comp:.0%}: {milli}m of a {offer.strategy} GPU"
    )
    details = {"milli": milli, "mem_frac": round(mem, 3), "compute": round(comp, 3), "gpu": offer.product}
    return ShareDecision(milli, reason, "shared", offer, wanted=milli, details=details)
