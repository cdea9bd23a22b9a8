"""Where the MIG planner's layouts and target mix come from: a file, the cluster's ConfigMap, the bundle."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.gpu.migparted import MigConfigError, MigConfigSet, bundled, parse_configmap, parse_mig_config

_MIX_PART = re.compile(r"^\s*(\d+g)\s*=\s*([0-9.]+)\s*$")


def parse_mix(text: str) -> dict[str, float]:
    """`1g=0.7,2g=0.2,3g=0.1` -> {"1g": 0.7, ...}; '' -> {} (no target). Raises ValueError (one line)."""
    out: dict[str, float] = {}
    for part in (p for p in text.split(",") if p.strip()):
        m = _MIX_PART.match(part)
        if not m:
            raise ValueError(f"target mix: expected <N>g=<share>, got {part.strip()!r}")
        try:
            share = float(m.group(2))
        except ValueError:
            raise ValueError(f"target mix: {m.group(2)!r} is not a number") from None
        if not 0 <= share <= 1:
            raise ValueError(f"target mix: share of {m.group(1)} must be within 0..1, got {share:g}")
        out[m.group(1)] = share
    if sum(out.values()) > 1.0001:
        raise ValueError(f"target mix: shares add up to {sum(out.values()):g}, more than 1")
    return out


def split_ref(ref: str) -> tuple[str, str]:
    """`NAMESPACE/NAME` -> (namespace, name); ('', '') when empty."""
    namespace, _, name = ref.partition("/")
    return namespace, name


def load_mig_configs(
    path: Path | None, configmap: Mapping[str, Any] | None, ref: str
) -> tuple[MigConfigSet, str]:
    """The layouts to plan with, and a note when they are not the ones asked for ('' otherwise).

    A file (`--mig-config`) wins; else the ConfigMap mig-manager reads; else the bundled GPU Operator
    defaults. A ConfigMap that cannot be used is reported, not fatal: the bundle stands in, so the plan
    never proposes a name the cluster's mig-manager does not know without saying so."""
    if path is not None:
        return parse_mig_config(path.read_text(), str(path)), ""
    if configmap is None:
        return bundled(), f"ConfigMap {ref} not found: planning with the bundled GPU Operator defaults"
    try:
        return parse_configmap(configmap, ref), ""
    except MigConfigError as exc:
        return bundled(), f"{exc}; planning with the bundled GPU Operator defaults"
