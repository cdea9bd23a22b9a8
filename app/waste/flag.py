"""Which pods to tell that they waste GPU, and what to tell them (pure).

A held GPU (or MIG slice) is flagged when its compute use stayed under `use_below` for the whole flag range
(the peak over `waste_flag_for`, default 5 minutes, is under 50 %) and its waste score is over `score_over`
(default 50). Without a measured peak there is no flag: a low average alone does not say the use *stayed*
low. The message names the reason, the score, the MIG profile the use fits and its monthly saving
(app/cost/savings.py), so `kubectl describe pod` says what to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.cost.prices import HOURS_PER_MONTH, PriceTable
from app.cost.savings import RightSize, right_size
from app.ops.inventory import ClusterFacts, gpu_equivalent
from app.waste.score import GpuUse, WasteScore

REASON = "GPUWasteful"


@dataclass(frozen=True, slots=True)
class Holder:
    """What the cluster says a pod holds: its node's product, the GPU-equivalents of one of its GPUs (or
    slices), how many it holds, its MIG profile when it holds exactly one slice."""

    product: str
    gpus: float
    slice_profile: str | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class WasteFlag:
    score: WasteScore
    peak: float
    product: str
    held_gpus: float
    fit: RightSize
    #: $/month this GPU (or slice) costs: what releasing it saves; None without a price
    holding_usd_per_month: float | None
    count: int = 1

    @property
    def release(self) -> bool:
        """Releasing is the advice: an idle GPU, or one unused GPU of a multi-GPU pod."""
        return self.score.idle or self.count > 1

    @property
    def monthly_saving_usd(self) -> float | None:
        return self.holding_usd_per_month if self.release else self.fit.usd_per_month_saved

    @property
    def suggestion(self) -> str:
        if self.count > 1:
            return f"ask for fewer GPUs (this one of {self.count} is mostly unused)"
        if self.score.idle:
            return "release the GPU (scale to zero / stop the notebook)"
        if self.fit.profile:
            return f"request nvidia.com/mig-{self.fit.profile} on {self.fit.gpu} instead"
        if self.fit.gpu is None:  # no MIG on this GPU model
            return (
                f"a GPU share (gpu-autoscaler.io/gpu-milli) on a time-slicing pool: {self.product} has no MIG"
            )
        return f"right-size: a smaller MIG slice or a GPU share ({self.fit.reason})"

    def message(self, flag_for: str, use_below: float) -> str:
        s = self.score
        use = ", ".join(
            f"{name} {v:.0%}" for name, v in (("compute", s.compute), ("memory", s.memory)) if v is not None
        )
        saving = self.monthly_saving_usd
        text = (
            f"GPU {s.gpu} on {s.node} mostly unused: {use} on average, compute peak {self.peak:.0%} "
            f"stayed under {use_below:.0%} for {flag_for}; waste score {s.score:.0f}/100"
            + (f" ({'; '.join(s.reasons)})" if s.reasons else "")
            + f". Suggested: {self.suggestion}"
            + (f", saves ${saving:,.2f}/month" if saving is not None else "")
        )
        if s.idle and self.count == 1 and self.fit.profile:
            text += f" (or nvidia.com/mig-{self.fit.profile}"
            if self.fit.usd_per_month_saved is not None:
                text += f", saves ${self.fit.usd_per_month_saved:,.2f}/month"
            text += ")"
        return text + "."


def flag(
    scores: Iterable[WasteScore],
    uses: Iterable[GpuUse],
    holders: Mapping[tuple[str, str], Holder],
    prices: PriceTable,
    *,
    use_below: float = 0.5,
    score_over: float = 50.0,
    threshold: float = 0.5,
    headroom: float = 0.2,
) -> list[WasteFlag]:
    """The flagged GPUs, most wasteful first. `holders` maps (namespace, pod) to what the pod holds; pods the
    cluster does not know (gone since the DCGM sample) are not flagged."""
    peak = {(u.namespace, u.pod, u.gpu): u.peak for u in uses}
    out: list[WasteFlag] = []
    for s in scores:
        p = peak.get((s.namespace, s.pod, s.gpu))
        holder = holders.get((s.namespace, s.pod))
        if p is None or holder is None or not p < use_below or not s.score > score_over:
            continue
        if holder.count > 1:
            fit = RightSize(
                None, None, None, f"a pod of {holder.count} GPUs: one MIG slice cannot replace it"
            )
        else:
            fit = right_size(
                s.compute,
                s.memory,
                holder.product,
                holder.gpus,
                prices,
                slice_profile=holder.slice_profile,
                threshold=threshold,
                headroom=headroom,
            )
        price = prices.per_hour(holder.product)
        monthly = None if price is None else round(price * holder.gpus * HOURS_PER_MONTH, 2)
        out.append(WasteFlag(s, p, holder.product, holder.gpus, fit, monthly, holder.count))
    return out


def holders(facts: ClusterFacts) -> dict[tuple[str, str], Holder]:
    """What each pod holding GPUs holds, per GPU (or slice) — the unit DCGM reports and the waste score."""
    product_of = {n.name: n.product for n in facts.nodes}
    out: dict[tuple[str, str], Holder] = {}
    for p in facts.holding():
        product = product_of.get(p.node, "")
        count = max(1, p.gpus + sum(n for _, n in p.mig))
        one_slice = p.mig[0][0] if not p.gpus and len(p.mig) == 1 and p.mig[0][1] == 1 else None
        out[(p.namespace, p.name)] = Holder(product, gpu_equivalent(p, product) / count, one_slice, count)
    return out
