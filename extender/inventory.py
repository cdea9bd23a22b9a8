"""Kubernetes Node / Pod dicts -> the plain facts the scheduling core needs.

Nodes: the `gpu-autoscaler.io/topology` annotation first (GPU list, per-GPU product and memory, link matrix,
`allocated` flags), else GPU Feature Discovery labels + `status.allocatable` (topology then unknown, never
guessed). Pods: GPU count, MIG slices, CPU / memory requests and the `gpu-autoscaler.io/*` annotations.

Everything here is pure and cheap; callers cache `NodeInfo` by (name, resourceVersion).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from extender.arrays import GPU_MILLI, NodeCapacity, PodRequest
from extender.fragmentation import GPU_MILLI_ANNOTATION, SHARING_LABEL, SHARING_STRATEGIES, parse_gpu_milli

GPU_RESOURCE = "nvidia.com/gpu"
#: time-slicing / MPS with `renameByDefault: true` advertises the replicas under this name instead
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"
MIG_PREFIX = "nvidia.com/mig-"
ANN_TOPOLOGY = "gpu-autoscaler.io/topology"
ANN_GPU_MEMORY = "gpu-autoscaler.io/gpu-memory"
ANN_GPU_PRODUCT = "gpu-autoscaler.io/gpu-product"
ANN_POD_GROUP = "gpu-autoscaler.io/pod-group"
ANN_POD_GROUP_MIN = "gpu-autoscaler.io/pod-group-min"
#: a share of one GPU, 1..999 milli-GPU (GPU sharing on time-slicing / MPS node pools); one parser with
#: the trace replay (extender.fragmentation.parse_gpu_milli)
ANN_GPU_MILLI = GPU_MILLI_ANNOTATION
#: physical GPU index(es) a bound pod holds, comma-separated (written by whatever pins the share: see
#: docs/scheduling.md "GPU sharing"); read when the cluster view is built
ANN_GPU_INDEX = "gpu-autoscaler.io/gpu-index"
LABEL_SHARING = SHARING_LABEL
LABEL_REPLICAS = "nvidia.com/gpu.replicas"
LINK_TOKENS = ("X", "PIX", "PXB", "PHB", "NODE", "SYS")

_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")
_MIB = Decimal(2) ** 20


class InventoryError(ValueError):
    """An object cannot be read; the message names the field at fault."""


def parse_quantity(value: Any, what: str = "quantity") -> Decimal:
    """A Kubernetes resource.Quantity ("4", "500m", "64Gi", "1e3", 2) as a Decimal.

    Not `kubernetes.utils.parse_quantity`: that one accepts what the API server rejects ("NaN", "Infinity",
    "1K") and importing it loads the whole client (~0.2 s) into the extender's hot path; this is the
    apimachinery grammar, strict, with the field named in the error."""
    if isinstance(value, bool):
        raise InventoryError(f"{what}: not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        raise InventoryError(f"{what}: not a quantity: {value!r}")
    m = _QUANTITY.match(value.strip())
    if not m:
        raise InventoryError(f"{what}: not a quantity: {value!r}")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise InventoryError(f"{what}: not a quantity: {value!r}") from exc
    if m.group(2):
        return number * (Decimal(10) ** int(m.group(2)[1:]))
    return number * _SUFFIX[m.group(3) or ""]


def milli(value: Any, what: str = "cpu") -> int:
    """CPU quantity -> milli-cores (rounded up, as Kubernetes does)."""
    return math.ceil(parse_quantity(value, what) * 1000)


def mib(value: Any, what: str = "memory") -> int:
    """Memory quantity -> MiB (rounded up)."""
    return math.ceil(parse_quantity(value, what) / _MIB)


def count(value: Any, what: str) -> int:
    """Extended-resource quantity (whole devices)."""
    return math.floor(parse_quantity(value, what))


def normalise_product(product: str) -> str:
    """'NVIDIA H100 80GB HBM3' and GFD's 'NVIDIA-H100-80GB-HBM3' compare equal (lowercase, '-' joined)."""
    return re.sub(r"[\s_]+", "-", product.strip()).lower()


def mig_profile_memory_gib(profile: str) -> int | None:
    """'3g.40gb' -> 40 (GB as the profile name says); None when the name has another shape."""
    m = re.match(r"^\d+g\.(\d+)gb", profile)
    return int(m.group(1)) if m else None


# -- nodes ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Per-node facts that do not change per pod. `links` covers only the GPUs in `gpu_phys` (whole GPUs,
    MIG-enabled ones excluded) in that order; None = topology unknown."""

    name: str
    resource_version: str
    capacity: NodeCapacity
    product: str  # as the node reports it (display)
    gpu_memory_mib: int  # per GPU, 0 = unknown
    gpu_phys: tuple[int, ...]  # physical index of each whole-GPU column
    links: tuple[tuple[str, ...], ...] | None
    allocated: frozenset[int]  # physical indices the agent reports in use
    mig: dict[str, int] = field(default_factory=dict)  # profile ("1g.10gb") -> allocatable count
    source: str = "annotation"  # "annotation" | "labels"
    sharing: str = "none"  # GFD nvidia.com/gpu.sharing-strategy: none | time-slicing | mps
    replicas: int = 1  # GFD nvidia.com/gpu.replicas: allocatable nvidia.com/gpu = physical GPUs x replicas


def _node_topology(name: str, raw: str) -> dict[str, Any]:
    try:
        topo = json.loads(raw)
    except (TypeError, json.JSONDecodeError) as exc:
        raise InventoryError(f"node {name}: annotation {ANN_TOPOLOGY} is not JSON: {exc}") from exc
    if not isinstance(topo, dict) or not isinstance(topo.get("gpus"), list):
        raise InventoryError(f"node {name}: annotation {ANN_TOPOLOGY} has no 'gpus' list")
    return topo


def parse_node(obj: dict[str, Any]) -> NodeInfo:
    """Node object (API JSON) -> NodeInfo. A malformed topology annotation falls back to labels."""
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InventoryError("node: metadata.name missing")
    labels: dict[str, str] = meta.get("labels") or {}
    annotations: dict[str, str] = meta.get("annotations") or {}
    status = obj.get("status") or {}
    alloc: dict[str, Any] = status.get("allocatable") or status.get("capacity") or {}
    cpu = milli(alloc["cpu"], f"node {name}: allocatable.cpu") if "cpu" in alloc else 0
    mem = mib(alloc["memory"], f"node {name}: allocatable.memory") if "memory" in alloc else 0
    mig = {
        k[len(MIG_PREFIX) :]: count(v, f"node {name}: allocatable.{k}")
        for k, v in alloc.items()
        if k.startswith(MIG_PREFIX)
    }
    alloc_gpus = (
        count(alloc[GPU_RESOURCE], f"node {name}: allocatable.{GPU_RESOURCE}")
        if GPU_RESOURCE in alloc
        else None
    )
    sharing, replicas = _sharing(labels)
    if sharing != "none":
        # the device plugin advertises GPUs x replicas (under nvidia.com/gpu.shared with renameByDefault);
        # our columns are the physical GPUs
        shared = alloc.get(SHARED_GPU_RESOURCE)
        if shared is not None and not alloc_gpus:
            alloc_gpus = count(shared, f"node {name}: allocatable.{SHARED_GPU_RESOURCE}")
        if alloc_gpus is not None:
            alloc_gpus //= replicas

    product = labels.get("nvidia.com/gpu.product", "")
    if product.endswith("-SHARED"):  # GFD marks shared GPUs in the product label (renameByDefault: false)
        product = product[: -len("-SHARED")]
    gpu_mem = int(labels["nvidia.com/gpu.memory"]) if labels.get("nvidia.com/gpu.memory", "").isdigit() else 0
    links: tuple[tuple[str, ...], ...] | None = None
    phys: tuple[int, ...] = ()
    allocated: frozenset[int] = frozenset()
    source = "labels"
    raw = annotations.get(ANN_TOPOLOGY)
    topo: dict[str, Any] | None = None
    if raw:
        try:
            topo = _node_topology(name, raw)
        except InventoryError:
            topo = None  # the caller logs nothing per request; the labels still describe the node
    if topo is not None:
        source = "annotation"
        gpus = [g for g in topo["gpus"] if isinstance(g, dict)]
        whole = [g for g in gpus if not g.get("migEnabled")]
        phys = tuple(int(g.get("index", i)) for i, g in enumerate(whole))
        allocated = frozenset(int(g.get("index", i)) for i, g in enumerate(whole) if g.get("allocated"))
        if whole:
            product = str(whole[0].get("product") or product)
            mems = [int(g["memoryMiB"]) for g in whole if isinstance(g.get("memoryMiB"), int | float)]
            gpu_mem = min(mems) if mems else gpu_mem
        elif gpus:
            product = str(gpus[0].get("product") or product)
            mems = [int(g["memoryMiB"]) for g in gpus if isinstance(g.get("memoryMiB"), int | float)]
            gpu_mem = min(mems) if mems else gpu_mem
        matrix = topo.get("links")
        all_index = [int(g.get("index", i)) for i, g in enumerate(gpus)]
        if isinstance(matrix, list) and len(matrix) == len(gpus) and phys:
            pos = {p: all_index.index(p) for p in phys if p in all_index}
            try:
                links = tuple(tuple(str(matrix[pos[a]][pos[b]]).strip() for b in phys) for a in phys)
            except (KeyError, IndexError, TypeError):
                links = None
    gpu_count = alloc_gpus if alloc_gpus is not None else len(phys)
    gfd_count = labels.get("nvidia.com/gpu.count", "")
    if (
        topo is None
        and alloc_gpus is None
        and gfd_count.isdigit()
        and labels.get("nvidia.com/mig.strategy", "none") == "none"
    ):
        gpu_count = int(gfd_count)
    if len(phys) != gpu_count:
        # the device plugin and the agent disagree: trust allocatable, never guess a topology
        phys = tuple(range(gpu_count))
        links = None
        allocated = frozenset(a for a in allocated if a < gpu_count)
    return NodeInfo(
        name=name,
        resource_version=str(meta.get("resourceVersion") or ""),
        capacity=NodeCapacity(
            name=name, cpu_milli=cpu, memory_mib=mem, gpu_count=gpu_count, model=normalise_product(product)
        ),
        product=product,
        gpu_memory_mib=gpu_mem,
        gpu_phys=phys,
        links=links,
        allocated=allocated,
        mig=mig,
        source=source,
        sharing=sharing,
        replicas=replicas,
    )


def _sharing(labels: dict[str, str]) -> tuple[str, int]:
    """(strategy, replicas per GPU) from the GFD labels; an unknown strategy or bad count -> no sharing."""
    strategy = str(labels.get(LABEL_SHARING) or "none").strip().lower()
    if strategy not in SHARING_STRATEGIES:
        return "none", 1
    raw = str(labels.get(LABEL_REPLICAS) or "1").strip()
    replicas = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    return strategy, replicas


# -- pods ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PodAsk:
    """A pod's GPU ask: the core's PodRequest plus what only real pods carry (MIG, annotations, group)."""

    req: PodRequest
    uid: str = ""
    namespace: str = ""
    name: str = ""
    mig: tuple[tuple[str, int], ...] = ()  # (profile, count)
    gpu_memory_mib: int = 0  # minimum per GPU, 0 = any
    products: tuple[str, ...] = ()  # normalised accepted substrings, empty = any
    topology: str = "preferred"  # required | preferred | none
    group: str = ""
    group_min: int = 0
    #: why the pod's own annotations cannot be honoured (every node then fails with this); "" = fine
    invalid: str = ""
    #: physical GPU indices from `gpu-autoscaler.io/gpu-index` (bound pods: which GPU holds the share)
    pinned: tuple[int, ...] = ()

    @property
    def wants_gpu(self) -> bool:
        return self.req.wants_gpu or bool(self.mig)

    @property
    def key(self) -> str:
        return self.uid or f"{self.namespace}/{self.name}"

    @property
    def gpu_label(self) -> str:
        """Short human form of the ask: '2', '0.5', 'mig-1g.10gb'."""
        if self.mig:
            return ",".join(f"mig-{p}" + (f"x{c}" if c > 1 else "") for p, c in self.mig)
        if self.req.is_shared:
            return f"{self.req.gpu_milli / GPU_MILLI:g}"
        return str(self.req.gpu_count)


def _container_resources(c: dict[str, Any], where: str) -> dict[str, Any]:
    res = c.get("resources") or {}
    if not isinstance(res, dict):
        raise InventoryError(f"{where}.resources: must be an object")
    limits = res.get("limits") or {}
    requests = res.get("requests") or {}
    if not isinstance(limits, dict) or not isinstance(requests, dict):
        raise InventoryError(f"{where}.resources: limits/requests must be objects")
    # requests default to limits (Kubernetes defaulting); extended resources must be equal in both
    return {**limits, **requests}


def _sum_resources(containers: list[Any], where: str) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            raise InventoryError(f"{where}[{i}]: must be an object")
        for k, v in _container_resources(c, f"{where}[{i}]").items():
            total[k] = total.get(k, Decimal(0)) + parse_quantity(v, f"{where}[{i}].resources.{k}")
    return total


def parse_pod(obj: dict[str, Any], gpu_milli_per_gpu: int = GPU_MILLI) -> PodAsk:
    """Pod object (API JSON) -> PodAsk. Effective request = max(sum of containers, each init container)."""
    if not isinstance(obj, dict):
        raise InventoryError("Pod: must be an object")
    meta = obj.get("metadata")
    spec = obj.get("spec")
    if not isinstance(meta, dict):
        raise InventoryError("Pod.metadata: missing or not an object")
    if not isinstance(spec, dict):
        raise InventoryError("Pod.spec: missing or not an object")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise InventoryError("Pod.spec.containers: must be a non-empty list")
    total = _sum_resources(containers, "Pod.spec.containers")
    inits = spec.get("initContainers") or []
    if not isinstance(inits, list):
        raise InventoryError("Pod.spec.initContainers: must be a list")
    for i, c in enumerate(inits):
        for k, v in _sum_resources([c], f"Pod.spec.initContainers[{i}]").items():
            total[k] = max(total.get(k, Decimal(0)), v)
    ann: dict[str, Any] = meta.get("annotations") or {}
    labels: dict[str, Any] = meta.get("labels") or {}
    gpus = math.floor(total.get(GPU_RESOURCE, Decimal(0)) + total.get(SHARED_GPU_RESOURCE, Decimal(0)))
    mig = tuple(
        sorted(
            (k[len(MIG_PREFIX) :], math.floor(v))
            for k, v in total.items()
            if k.startswith(MIG_PREFIX) and v > 0
        )
    )
    mem_ann = ann.get(ANN_GPU_MEMORY)
    gpu_mem = mib(mem_ann, f"Pod.metadata.annotations.{ANN_GPU_MEMORY}") if mem_ann else 0
    products = tuple(
        normalise_product(p) for p in str(ann.get(ANN_GPU_PRODUCT) or "").split(",") if p.strip()
    )
    topology = str(ann.get(ANN_TOPOLOGY) or "preferred").strip().lower()
    if topology not in ("required", "preferred", "none"):
        topology = "preferred"
    group = str(labels.get(ANN_POD_GROUP) or ann.get(ANN_POD_GROUP) or "")
    raw_min = labels.get(ANN_POD_GROUP_MIN) or ann.get(ANN_POD_GROUP_MIN) or 0
    try:
        group_min = int(raw_min)
    except (TypeError, ValueError) as exc:
        raise InventoryError(
            f"Pod.metadata.annotations.{ANN_POD_GROUP_MIN}: not an integer: {raw_min!r}"
        ) from exc
    share, invalid = _gpu_share(ann, gpus)
    req = PodRequest(
        cpu_milli=math.ceil(total.get("cpu", Decimal(0)) * 1000),
        memory_mib=math.ceil(total.get("memory", Decimal(0)) / _MIB),
        gpu_count=gpus,
        gpu_milli=(share or gpu_milli_per_gpu) if gpus else 0,
        gpu_models=products,
    )
    return PodAsk(
        req=req,
        uid=str(meta.get("uid") or ""),
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or meta.get("generateName") or ""),
        mig=mig,
        gpu_memory_mib=gpu_mem,
        products=products,
        topology=topology,
        group=group,
        group_min=group_min if group else 0,
        invalid=invalid,
        pinned=_gpu_index(ann.get(ANN_GPU_INDEX)),
    )


def _gpu_share(annotations: dict[str, Any], gpus: int) -> tuple[int, str]:
    """`gpu-autoscaler.io/gpu-milli` -> (share 1..999, "") or (0, why it cannot be honoured).

    Invalid values do not make the Pod unreadable (that would be an HTTP 400 for a typo): the ask stays
    whole-GPU (conservative for running pods) and the filter fails every node with the reason, so the
    pod's events say what to fix. Pods asking no GPU ignore the annotation.
    """
    if gpus == 0:
        return 0, ""
    try:
        share = parse_gpu_milli(annotations)
    except ValueError as exc:
        return 0, f"annotation {exc}"
    if share is None:
        return 0, ""
    if gpus != 1:
        return 0, f"annotation {ANN_GPU_MILLI}: {share} needs exactly 1 {GPU_RESOURCE}, the pod asks {gpus}"
    return share, ""


def _gpu_index(raw: Any) -> tuple[int, ...]:
    """`gpu-autoscaler.io/gpu-index` ("3" or "0,1") -> physical indices; unreadable -> () (best-fit)."""
    if raw is None:
        return ()
    parts = [p.strip() for p in str(raw).split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        return ()
    return tuple(int(p) for p in parts)
