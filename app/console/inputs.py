"""What the console shows, as plain data: the collector (collect.py) fills these from the running components,
tests build them by hand, and the view model (view.py) turns them into dicts for the templates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.waste.score import WasteScore


@dataclass(frozen=True, slots=True)
class GpuFacts:
    """One GPU as the node agent's topology annotation reports it."""

    index: int
    uuid: str = ""
    memory_mib: int = 0
    numa: int | None = None
    mig_enabled: bool = False


@dataclass(frozen=True, slots=True)
class NodeInput:
    """One GPU node: the extender's view of it (columns, what is left) plus the annotation's facts."""

    name: str
    product: str
    source: str = "annotation"  # annotation | labels
    sharing: str = "none"  # none | time-slicing | mps
    #: physical index of each whole-GPU column and the milli-GPU left on it (1000 = free)
    gpu_phys: tuple[int, ...] = ()
    gpu_left: tuple[int, ...] = ()
    mig_cap: dict[str, int] = field(default_factory=dict)  # profile -> allocatable slices
    mig_left: dict[str, int] = field(default_factory=dict)
    #: every GPU of the annotation (MIG-enabled ones too), in its order; () when topology is unknown
    gpus: tuple[GpuFacts, ...] = ()
    links: tuple[tuple[str, ...], ...] | None = None  # over `gpus`, `nvidia-smi topo -m` tokens
    mig_layout: dict[int, tuple[str, ...]] = field(default_factory=dict)  # GPU index -> its slices' profiles
    #: GPUs the agent marks in use that no pod the extender knows explains
    agent_held: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Holder:
    """A pod holding (or, `assumed`, steered to and not yet bound on) GPUs of a node."""

    key: str
    namespace: str
    name: str
    node: str
    gpus: tuple[int, ...] = ()  # physical indices of whole GPUs / the shared GPU
    milli: int = 1000  # per GPU; < 1000 is a share of one GPU
    mig: tuple[tuple[str, int], ...] = ()  # (profile, count)
    assumed: bool = False

    @property
    def pod(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class ConsoleInputs:
    """Everything one page shows. Optional parts are None when their component is not running."""

    source: str = ""
    generated_at: float = 0.0
    nodes: list[NodeInput] = field(default_factory=list)
    holders: list[Holder] = field(default_factory=list)
    waste: list[WasteScore] = field(default_factory=list)
    waste_enabled: bool = False
    placements: list[dict[str, Any]] | None = None  # extender DecisionLog.entries()
    webhook: list[dict[str, Any]] | None = None  # webhook describe()["recent"]
    autoscaler: dict[str, Any] | None = None  # autoscaler describe()
    #: describe() of the controllers built by other issues, by component name (mig, sharing, nodescale, cost)
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: describe() failures, by component name (shown instead of the section)
    errors: dict[str, str] = field(default_factory=dict)
    cost_report: dict[str, Any] | None = None  # app.cost.report.cost()
    suggestions: dict[str, Any] | None = None  # app.ops.optimize.optimize()
    money_note: str = ""  # why cost/savings are missing or how old they are
