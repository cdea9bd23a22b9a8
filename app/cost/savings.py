"""Right-sizing a GPU holding from its measured use: the MIG profile that would do and what it saves.

The choice is the webhook's own `choose_profile` (smallest profile whose memory covers the use plus headroom
and whose compute share covers the compute use; never `+me` or the whole-GPU `7g` instance), over every
profile of the pod's GPU model unless the caller names the ones offered. Use is measured relative to what
the pod holds; a pod on a MIG slice has its use scaled to the whole GPU first, so a smaller slice can be
suggested. Saving = price x (GPU-equivalents held - the profile's compute share).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.cost.prices import HOURS_PER_MONTH, PriceTable
from app.gpu.mig import geometry_for
from webhook.mig import Usage, choose_profile


@dataclass(frozen=True, slots=True)
class RightSize:
    profile: str | None  # the MIG profile that would do; None when none fits or none applies
    gpu: str | None  # the GPU model the profile belongs to (geometry key, e.g. A100-80GB)
    usd_per_hour_saved: float | None  # None when the product has no price or no profile fits
    reason: str

    @property
    def usd_per_month_saved(self) -> float | None:
        return (
            None if self.usd_per_hour_saved is None else round(self.usd_per_hour_saved * HOURS_PER_MONTH, 2)
        )


def right_size(
    compute: float | None,
    memory: float | None,
    product: str,
    held_gpus: float,
    prices: PriceTable,
    *,
    slice_profile: str | None = None,
    offered: Iterable[str] | None = None,
    threshold: float = 0.5,
    headroom: float = 0.2,
) -> RightSize:
    """`compute`, `memory`: 0..1 of what the pod holds (a whole GPU, or its MIG slice `slice_profile`)."""
    geo = geometry_for(product)
    if geo is None:
        return RightSize(None, None, None, f"no MIG geometry for {product or 'an unknown GPU'}")
    held = geo.profile(slice_profile) if slice_profile else None
    if slice_profile and held is None:
        return RightSize(None, geo.key, None, f"unknown MIG profile {slice_profile} on {geo.key}")
    mem_scale = held.memory_gib * 1024 / geo.memory_mib if held else 1.0
    cpu_scale = held.compute_fraction if held else 1.0
    usage = Usage(
        peak_memory_mib=(memory or 0.0) * mem_scale * geo.memory_mib,
        p95_compute=None if compute is None else compute * cpu_scale,
        gpu_memory_mib=float(geo.memory_mib) if memory is not None else None,
    )
    names = list(offered) if offered is not None else [p.name for p in geo.profiles]
    decision = choose_profile(usage, product, names, threshold, headroom)
    prof = geo.profile(decision.profile) if decision.profile else None
    if prof is None:
        return RightSize(None, geo.key, None, decision.reason)
    if held is not None and prof.compute_fraction >= held.compute_fraction:
        return RightSize(None, geo.key, None, f"{slice_profile} is already the smallest slice that fits")
    price = prices.per_hour(product)
    saved = None if price is None else price * max(0.0, held_gpus - prof.compute_fraction)
    return RightSize(prof.name, geo.key, saved, decision.reason)
