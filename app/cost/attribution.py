"""Who holds which share of which GPU now, priced: the rows the cost series are exported from.

One pod holds GPU-equivalents:
    whole GPUs                 n
    a MIG slice                its compute slices / the GPU's (1g.10gb on an A100-80GB = 1/7)
    a GPU share (time-slicing  its milli-GPU / 1000 (`gpu-autoscaler.io/gpu-milli`)
      or MPS)
Shared GPUs are split by use where DCGM can tell: when two or more share pods sit on one physical GPU and
DCGM reports a different compute use for each, their shares together are split in proportion to use.
When every sharer shows the same figure (dcgm-exporter copies the device's value to each pod it maps:
NVIDIA/dcgm-exporter#582) or a sharer has none, the requested milli stand.

A node's capacity is its whole GPUs plus the compute share of every MIG slice it offers; what no pod holds
is idle capacity, its own cost line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from app.cost.prices import PriceTable
from app.gpu.mig import mig_compute_fraction
from app.ops.inventory import ClusterFacts, GpuPod, gpu_equivalent
from app.waste.score import GpuUse

#: DCGM use values closer than this are "the same figure" (a copied device value, not per-pod use)
SAME_USE = 1e-6


@dataclass(frozen=True, slots=True)
class Holding:
    """One pod's GPU holding with its price; `usd_per_hour` is None when the product has no price."""

    namespace: str
    pod: str
    workload: str
    node: str
    product: str
    cost_center: str
    project: str
    gpus: float
    usd_per_hour: float | None
    split_by_use: bool = False


@dataclass(frozen=True, slots=True)
class NodeCapacity:
    node: str
    product: str
    capacity: float  # GPU-equivalents the node offers (whole GPUs + MIG slices' compute shares)
    allocated: float
    usd_per_gpu_hour: float | None

    @property
    def idle(self) -> float:
        return max(0.0, self.capacity - self.allocated)

    @property
    def idle_usd_per_hour(self) -> float | None:
        return None if self.usd_per_gpu_hour is None else self.idle * self.usd_per_gpu_hour


@dataclass(frozen=True)
class Attribution:
    holdings: list[Holding]
    nodes: list[NodeCapacity]
    #: product -> $/GPU-hour for every priced product some node has
    prices: dict[str, float]
    unpriced: list[str]


def node_capacity(facts: ClusterFacts, node: str) -> float:
    n = facts.node(node)
    if n is None:
        return 0.0
    return n.gpus + sum(total * (mig_compute_fraction(p, n.product) or 0.0) for p, total in n.mig.items())


def _use_split(
    pods: list[GpuPod], shares: dict[tuple[str, str], float], uses: Iterable[GpuUse]
) -> set[tuple[str, str]]:
    """Re-split the shares of pods that share one physical GPU by their DCGM compute use; returns the keys
    that were re-split."""
    share_pods = {(p.namespace, p.name): p for p in pods if p.gpu_milli}
    on_gpu: dict[tuple[str, str], dict[tuple[str, str], float | None]] = {}
    for u in uses:
        key = (u.namespace, u.pod)
        if key not in share_pods or "/" in u.gpu:
            continue
        on_gpu.setdefault((share_pods[key].node, u.gpu), {})[key] = u.compute
    done: set[tuple[str, str]] = set()
    for sharers in on_gpu.values():
        if len(sharers) < 2 or any(c is None for c in sharers.values()):
            continue
        use = {k: max(0.0, float(c or 0.0)) for k, c in sharers.items()}
        total_use = sum(use.values())
        if total_use <= 0 or max(use.values()) - min(use.values()) < SAME_USE:
            continue
        pool = sum(shares[k] for k in sharers)
        for k in sharers:
            shares[k] = pool * use[k] / total_use
            done.add(k)
    return done


def attribute(facts: ClusterFacts, prices: PriceTable, uses: Iterable[GpuUse] = ()) -> Attribution:
    """Holdings of every pod holding GPUs and the capacity of every GPU node, priced."""
    product_of = {n.name: n.product for n in facts.nodes}
    pods = facts.holding()
    shares = {(p.namespace, p.name): gpu_equivalent(p, product_of.get(p.node, "")) for p in pods}
    split = _use_split(pods, shares, uses)
    price_of: dict[str, float] = {}
    unpriced: set[str] = set()

    def price(product: str) -> float | None:
        found = prices.per_hour(product)
        if found is None:
            unpriced.add(product or "?")
        else:
            price_of[product] = found
        return found

    holdings: list[Holding] = []
    for p in pods:
        product = product_of.get(p.node, "")
        gpus = shares[(p.namespace, p.name)]
        if p.node in product_of:
            per_gpu = price(product)
        else:
            per_gpu = None
            unpriced.add(f"(node {p.node} unknown)")
        holdings.append(
            Holding(
                namespace=p.namespace,
                pod=p.name,
                workload=str(p.workload),
                node=p.node,
                product=product,
                cost_center=p.cost_center,
                project=p.project,
                gpus=gpus,
                usd_per_hour=None if per_gpu is None else gpus * per_gpu,
                split_by_use=(p.namespace, p.name) in split,
            )
        )
    allocated: dict[str, float] = {}
    for h in holdings:
        allocated[h.node] = allocated.get(h.node, 0.0) + h.gpus
    nodes = [
        NodeCapacity(n.name, n.product, node_capacity(facts, n.name), allocated.get(n.name, 0.0), None)
        for n in facts.nodes
    ]
    nodes = [replace(c, usd_per_gpu_hour=price(c.product)) for c in nodes]
    return Attribution(holdings, nodes, dict(sorted(price_of.items())), sorted(unpriced))
