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
from collections.abc import Callable
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
    """An object cannot be read; the message names the field at fault, `reason` is a short label value
    (`gpu_autoscaler_bad_objects_total{reason}`): bad_quantity, negative_allocatable, topology_not_json…"""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


def parse_quantity(value: Any, what: str = "quantity") -> Decimal:
    """A Kubernetes resource.Quantity ("4", "500m", "64Gi", "1e3", 2) as a Decimal.

    Not `kubernetes.utils.parse_quantity`: that one accepts what the API server rejects ("NaN", "Infinity",
    "1K") and importing it loads the whole client (~0.2 s) into the extender's hot path; this is the
    apimachinery grammar, strict, with the field named in the error."""
    if isinstance(value, bool):
        raise InventoryError(f"{what}: not a quantity: {value!r}", "bad_quantity")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InventoryError(f"{what}: not a quantity: {value!r}", "bad_quantity")
        return Decimal(str(value))
    if not isinstance(value, str):
        raise InventoryError(f"{what}: not a quantity: {value!r}", "bad_quantity")
    m = _QUANTITY.match(value.strip())
    if not m:
        raise InventoryError(f"{what}: not a quantity: {value!r}", "bad_quantity")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise InventoryError(f"{what}: not a quantity: {value!r}", "bad_quantity") from exc
    try:
        if m.group(2):
            return number * (Decimal(10) ** int(m.group(2)[1:]))
        return number * _SUFFIX[m.group(3) or ""]
    except ArithmeticError as exc:  # "1e99999999": beyond Decimal's exponent range
        raise InventoryError(f"{what}: quantity out of range: {value!r}", "bad_quantity") from exc


#: counts, milli-cores and MiB live in int64 arrays; anything this large is a typo, not a machine
_MAX_AMOUNT = 2**62
#: GPUs per node are state columns: an allocatable of "1e9" must be refused, not allocated
MAX_GPUS_PER_NODE = 256


def _amount(value: Decimal, what: str) -> int:
    n = math.ceil(value)
    if abs(n) >= _MAX_AMOUNT:
        raise InventoryError(f"{what}: quantity out of range: {value}", "bad_quantity")
    return n


def milli(value: Any, what: str = "cpu") -> int:
    """CPU quantity -> milli-cores (rounded up, as Kubernetes does)."""
    return _amount(parse_quantity(value, what) * 1000, what)


def mib(value: Any, what: str = "memory") -> int:
    """Memory quantity -> MiB (rounded up)."""
    return _amount(parse_quantity(value, what) / _MIB, what)


def count(value: Any, what: str) -> int:
    """Extended-resource quantity (whole devices)."""
    return _amount(Decimal(math.floor(parse_quantity(value, what))), what)


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


def _node_topology(name: str, raw: Any) -> dict[str, Any]:
    """The annotation as JSON, its structure checked (a GPU list of objects, unique integer indices, a
    square link matrix when present)."""
    if not isinstance(raw, str):
        raise InventoryError(f"node {name}: annotation {ANN_TOPOLOGY} is not a string", "topology_not_json")
    try:
        topo = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise InventoryError(
            f"node {name}: annotation {ANN_TOPOLOGY} is not JSON: {exc}", "topology_not_json"
        ) from exc
    if not isinstance(topo, dict) or not isinstance(topo.get("gpus"), list):
        raise InventoryError(f"node {name}: annotation {ANN_TOPOLOGY} has no 'gpus' list", "topology_invalid")
    gpus = topo["gpus"]
    seen: set[int] = set()
    for i, g in enumerate(gpus):
        where = f"node {name}: annotation {ANN_TOPOLOGY} gpus[{i}]"
        if not isinstance(g, dict):
            raise InventoryError(f"{where} is not an object", "topology_invalid")
        index = g.get("index", i)
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InventoryError(f"{where}.index is not a GPU index: {index!r}", "topology_invalid")
        if index in seen:
            raise InventoryError(f"{where}.index {index} appears twice", "topology_invalid")
        seen.add(index)
        product = g.get("product")
        if product is not None and not isinstance(product, str):
            raise InventoryError(f"{where}.product is not a string: {product!r}", "topology_invalid")
        mem = g.get("memoryMiB")
        if mem is not None and (isinstance(mem, bool) or not isinstance(mem, int | float) or mem < 0):
            raise InventoryError(f"{where}.memoryMiB is not a size: {mem!r}", "topology_invalid")
    matrix = topo.get("links")
    if matrix is not None and not (
        isinstance(matrix, list)
        and len(matrix) == len(gpus)
        and all(isinstance(row, list) and len(row) == len(gpus) for row in matrix)
    ):
        raise InventoryError(
            f"node {name}: annotation {ANN_TOPOLOGY} links is not a {len(gpus)}x{len(gpus)} matrix",
            "topology_invalid",
        )
    return topo


def _label_product(labels: dict[str, str]) -> str:
    """GFD's product label without its sharing / MIG-single suffixes."""
    product = str(labels.get("nvidia.com/gpu.product", ""))
    if product.endswith("-SHARED"):  # GFD marks shared GPUs in the product label (renameByDefault: false)
        product = product[: -len("-SHARED")]
    return re.sub(r"-MIG-.*$", "", product)


def _dict_field(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key) or {}
    if not isinstance(value, dict):
        raise InventoryError(f"{where}.{key}: must be an object", "malformed")
    return value


def _check_mig(name: str, labels: dict[str, str], mig: dict[str, int], product: str) -> None:
    """MIG slices in allocatable must agree with the GFD labels and the product's MIG geometry."""
    offered = {p: n for p, n in mig.items() if n > 0}
    if not offered:
        return
    strategy = labels.get("nvidia.com/mig.strategy")
    if strategy is not None and str(strategy).strip().lower() == "none":
        raise InventoryError(
            f"node {name}: allocatable offers MIG slices ({', '.join(sorted(offered))}) but label "
            "nvidia.com/mig.strategy is none",
            "mig_mismatch",
        )
    for profile, n in sorted(offered.items()):
        raw = str(labels.get(f"{MIG_PREFIX}{profile}.count", "")).strip()
        if raw.isdigit() and int(raw) < n:
            raise InventoryError(
                f"node {name}: allocatable {MIG_PREFIX}{profile} is {n} but label "
                f"{MIG_PREFIX}{profile}.count says the node has {raw}",
                "mig_mismatch",
            )
    if not product:
        return
    from app.gpu.mig import geometry_for, resource_profile  # the one MIG geometry table

    geometry = geometry_for(product)
    if geometry is None:  # a GPU model newer than the table: slices are still plain counted resources
        return
    for profile in sorted(offered):
        canonical = resource_profile(MIG_PREFIX + profile)
        if canonical is None or geometry.profile(canonical) is None:
            raise InventoryError(
                f"node {name}: allocatable {MIG_PREFIX}{profile} is not a MIG profile of {geometry.key}",
                "mig_mismatch",
            )


def parse_node(obj: dict[str, Any]) -> NodeInfo:
    """Node object (API JSON) -> NodeInfo, or InventoryError naming the field and a reason.

    Malformed (the node is then unknown to the scheduler, never guessed): a quantity that is not a number or
    is negative, a topology annotation that is not JSON or not the documented shape, an annotation listing
    fewer whole GPUs than allocatable offers or GPUs of different products (or another product than the GFD
    label), MIG slices that the labels or the product's MIG geometry contradict. An annotation listing *more*
    GPUs than allocatable is the device plugin's view of an unhealthy GPU: allocatable wins and the topology
    is dropped (unknown, neutral score)."""
    if not isinstance(obj, dict):
        raise InventoryError("node: must be an object", "malformed")
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise InventoryError("node: metadata must be an object", "malformed")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InventoryError("node: metadata.name missing", "malformed")
    labels: dict[str, str] = _dict_field(meta, "labels", f"node {name}: metadata")
    annotations: dict[str, str] = _dict_field(meta, "annotations", f"node {name}: metadata")
    status = _dict_field(obj, "status", f"node {name}")
    alloc: dict[str, Any] = status.get("allocatable") or status.get("capacity") or {}
    if not isinstance(alloc, dict):
        raise InventoryError(f"node {name}: status.allocatable must be an object", "malformed")

    def amount(key: str, parse: Callable[[Any, str], int]) -> int:
        value = parse(alloc[key], f"node {name}: allocatable.{key}")
        if value < 0:
            raise InventoryError(
                f"node {name}: allocatable.{key} is negative: {alloc[key]!r}", "negative_allocatable"
            )
        return value

    cpu = amount("cpu", milli) if "cpu" in alloc else 0
    mem = amount("memory", mib) if "memory" in alloc else 0
    mig = {k[len(MIG_PREFIX) :]: amount(k, count) for k in alloc if k.startswith(MIG_PREFIX)}
    alloc_gpus = amount(GPU_RESOURCE, count) if GPU_RESOURCE in alloc else None
    shared = amount(SHARED_GPU_RESOURCE, count) if SHARED_GPU_RESOURCE in alloc else None
    sharing, replicas = _sharing(labels)
    if sharing != "none":
        # the device plugin advertises GPUs x replicas (under nvidia.com/gpu.shared with renameByDefault);
        # our columns are the physical GPUs
        if shared is not None and not alloc_gpus:
            alloc_gpus = shared
        if alloc_gpus is not None:
            alloc_gpus //= replicas

    label_product = _label_product(labels)
    product = label_product
    gpu_mem = int(labels["nvidia.com/gpu.memory"]) if labels.get("nvidia.com/gpu.memory", "").isdigit() else 0
    links: tuple[tuple[str, ...], ...] | None = None
    phys: tuple[int, ...] = ()
    allocated: frozenset[int] = frozenset()
    source = "labels"
    raw = annotations.get(ANN_TOPOLOGY)
    topo = _node_topology(name, raw) if raw else None
    if topo is not None:
        source = "annotation"
        gpus: list[dict[str, Any]] = topo["gpus"]
        whole = [g for g in gpus if not g.get("migEnabled")]
        phys = tuple(int(g.get("index", i)) for i, g in enumerate(whole))
        allocated = frozenset(int(g.get("index", i)) for i, g in enumerate(whole) if g.get("allocated"))
        described = whole or gpus
        products = {normalise_product(p) for g in described if (p := g.get("product"))}
        if len(products) > 1:
            raise InventoryError(
                f"node {name}: annotation {ANN_TOPOLOGY} lists GPUs of different products: "
                + ", ".join(sorted(products)),
                "unknown_product",
            )
        if products and label_product and normalise_product(label_product) not in products:
            raise InventoryError(
                f"node {name}: annotation {ANN_TOPOLOGY} says {products.pop()}, label "
                f"nvidia.com/gpu.product says {label_product}",
                "unknown_product",
            )
        if described:
            product = str(described[0].get("product") or product)
            mems = [int(g["memoryMiB"]) for g in described if g.get("memoryMiB") is not None]
            gpu_mem = min(mems) if mems else gpu_mem
        matrix = topo.get("links")
        all_index = [int(g.get("index", i)) for i, g in enumerate(gpus)]
        if isinstance(matrix, list) and phys:
            pos = {p: all_index.index(p) for p in phys}
            links = tuple(tuple(str(matrix[pos[a]][pos[b]]).strip() for b in phys) for a in phys)
        if alloc_gpus is not None and alloc_gpus > len(phys):
            raise InventoryError(
                f"node {name}: allocatable {GPU_RESOURCE} offers {alloc_gpus} whole GPUs, annotation "
                f"{ANN_TOPOLOGY} lists {len(phys)}",
                "topology_mismatch",
            )
    _check_mig(name, labels, mig, product)
    gpu_count = alloc_gpus if alloc_gpus is not None else len(phys)
    gfd_count = labels.get("nvidia.com/gpu.count", "")
    if (
        topo is None
        and alloc_gpus is None
        and gfd_count.isdigit()
        and labels.get("nvidia.com/mig.strategy", "none") == "none"
    ):
        gpu_count = int(gfd_count)
    if max(gpu_count, len(phys)) > MAX_GPUS_PER_NODE:
        raise InventoryError(
            f"node {name}: {max(gpu_count, len(phys))} GPUs on one node (at most {MAX_GPUS_PER_NODE})",
            "too_many_gpus",
        )
    if len(phys) != gpu_count:
        # the device plugin reports fewer GPUs than the agent (one unhealthy): trust allocatable, never guess
        # a topology
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
    for k, v in total.items():
        if v < 0:
            raise InventoryError(f"Pod.spec.containers: resources.{k} is negative: {v}", "negative_request")
        _amount(v * (1000 if k == "cpu" else 1), f"Pod.spec.containers: resources.{k}")
    ann: dict[str, Any] = _dict_field(meta, "annotations", "Pod.metadata")
    labels: dict[str, Any] = _dict_field(meta, "labels", "Pod.metadata")
    gpus = math.floor(total.get(GPU_RESOURCE, Decimal(0)) + total.get(SHARED_GPU_RESOURCE, Decimal(0)))
    mig = tuple(
        sorted(
            (k[len(MIG_PREFIX) :], math.floor(v))
            for k, v in total.items()
            if k.startswith(MIG_PREFIX) and v > 0
        )
    )
    mem_ann = ann.get(ANN_GPU_MEMORY)
    try:
        gpu_mem = mib(mem_ann, f"Pod.metadata.annotations.{ANN_GPU_MEMORY}") if mem_ann else 0
    except InventoryError as exc:
        raise InventoryError(str(exc), "bad_annotation") from exc
    if gpu_mem < 0:
        raise InventoryError(
            f"Pod.metadata.annotations.{ANN_GPU_MEMORY}: negative: {mem_ann!r}", "bad_annotation"
        )
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
            f"Pod.metadata.annotations.{ANN_POD_GROUP_MIN}: not an integer: {raw_min!r}", "bad_annotation"
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
