"""mig-parted configuration files (`version: v1`, `mig-configs:`), read exactly as NVIDIA's mig-manager reads
them, and checked against our MIG geometry.

A named config (a *layout*) is a list of entries; each entry selects GPUs by `device-filter` (PCI device IDs,
optional) and `devices` (`all` or indices) and says `mig-enabled` and `mig-devices` (profile -> count). As in
mig-parted, entries apply in order, so a GPU takes the last entry that selects it; a GPU no entry selects is
left as it is. The GPU Operator's mig-manager applies the config named by the node label
`nvidia.com/mig.config`; this module only reads configs, it never applies one.

Geometry check: every entry is placed on each GPU model it can apply to (`app.gpu.mig.place`). An entry whose
`device-filter` names a model that cannot hold it, or a layout that fits no GPU model knowing its profiles,
is an error naming the layout. A layout without a filter that fits one model but not another (the same
profile names on a smaller GPU) is only unusable on the latter, as mig-manager would fail there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from app.gpu.mig import GpuGeometry, LayoutError, geometries, place

#: the name of the data key holding the config in the GPU Operator's ConfigMaps
CONFIGMAP_KEY = "config.yaml"
BUNDLED = "bundled GPU Operator defaults (default-mig-parted-config)"
#: why a layout does not apply to a GPU model whose profiles it does not name (not worth a note)
FOREIGN = "its profiles are not this GPU's"
#: mig-parted's profile format: `<G>g.<M>gb`, optional `<C>c.` prefix and `+attr` / `-attr` suffixes
_PROFILE_FORMAT = re.compile(r"^(\d+c\.)?\d+g\.\d+gb([+-][a-z]+(\.[a-z]+)*)*$")
_ENTRY_FIELDS = {"device-filter", "devices", "mig-enabled", "mig-devices"}


class MigConfigError(ValueError):
    """A mig-parted config that cannot be used; one line naming the source and the layout at fault."""


@dataclass(frozen=True)
class GpuLayout:
    """What one GPU becomes under a layout: MIG on or off, and its instances (profile -> count)."""

    mig_enabled: bool
    devices: tuple[tuple[str, int], ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.devices)

    def describe(self) -> str:
        if not self.mig_enabled:
            return "MIG off"
        return " + ".join(f"{n}x {p}" for p, n in self.devices) or "MIG on, no instances"


@dataclass(frozen=True)
class Entry:
    devices: tuple[int, ...] | None  # None = all
    device_filter: tuple[str, ...]  # () = any GPU model
    gpu: GpuLayout

    def applies_to(self, geo: GpuGeometry) -> bool:
        return not self.device_filter or any(_id_matches(f, geo) for f in self.device_filter)

    def selects(self, geo: GpuGeometry, index: int) -> bool:
        return self.applies_to(geo) and (self.devices is None or index in self.devices)


@dataclass(frozen=True)
class MigLayout:
    """One named config of a mig-parted file."""

    name: str
    entries: tuple[Entry, ...]

    def per_gpu(self, geo: GpuGeometry, gpus: int) -> list[GpuLayout | None]:
        """The layout of GPU 0..gpus-1 of a node of model `geo`; None where no entry selects the GPU."""
        out: list[GpuLayout | None] = []
        for i in range(gpus):
            chosen = None
            for entry in self.entries:
                if entry.selects(geo, i):
                    chosen = entry.gpu
            out.append(chosen)
        return out


@dataclass
class MigConfigSet:
    """The layouts of one config file, where they came from, and which GPU models each suits."""

    layouts: dict[str, MigLayout]
    source: str
    #: (layout, GPU model key) -> why the layout cannot be used on that model
    unusable: dict[tuple[str, str], str] = field(default_factory=dict)

    def usable(self, name: str, geo: GpuGeometry) -> bool:
        layout = self.layouts.get(name)
        if layout is None or (name, geo.key) in self.unusable:
            return False
        return any(e.applies_to(geo) for e in layout.entries)

    def notes(self, models: Iterable[str] | None = None) -> list[str]:
        """Layouts that fit one GPU model but not another with the same profile names (of `models` only,
        when given: the models the cluster has)."""
        wanted = None if models is None else set(models)
        return [
            f"{name} cannot be used on {key}: {why}"
            for (name, key), why in sorted(self.unusable.items())
            if why != FOREIGN and (wanted is None or key in wanted)
        ]


def _id_matches(device_filter: str, geo: GpuGeometry) -> bool:
    """mig-parted device IDs: `0x20B210DE` (device + vendor) or `0x20B2` (device only)."""
    wanted = device_filter.strip().upper().removeprefix("0X")
    return any(d.upper().removeprefix("0X").startswith(wanted) for d in geo.pci_device_ids)


def _fail(source: str, what: str) -> MigConfigError:
    return MigConfigError(f"mig-parted config {source}: {what}")


def _entry(source: str, name: str, i: int, raw: Any) -> Entry:
    where = f"{name}: entry {i}"
    if not isinstance(raw, dict):
        raise _fail(source, f"{where}: must be a mapping")
    unexpected = sorted(set(raw) - _ENTRY_FIELDS)
    if unexpected:
        raise _fail(source, f"{where}: unexpected field: {unexpected[0]}")
    for required in ("devices", "mig-enabled"):
        if required not in raw:
            raise _fail(source, f"{where}: missing required field: {required}")
    devices_raw = raw["devices"]
    devices: tuple[int, ...] | None
    if devices_raw == "all":
        devices = None
    elif isinstance(devices_raw, list) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in devices_raw
    ):
        devices = tuple(devices_raw)
    else:
        raise _fail(source, f"{where}: devices must be 'all' or a list of GPU indices, got {devices_raw!r}")
    flt = raw.get("device-filter")
    if flt is None:
        filters: tuple[str, ...] = ()
    elif isinstance(flt, str):
        filters = (flt,) if flt else ()
    elif isinstance(flt, list) and all(isinstance(f, str) for f in flt):
        filters = tuple(flt)
    else:
        raise _fail(source, f"{where}: device-filter must be a string or a list of strings")
    enabled = raw["mig-enabled"]
    if not isinstance(enabled, bool):
        raise _fail(source, f"{where}: mig-enabled must be true or false")
    mig_devices = raw.get("mig-devices")
    if enabled and mig_devices is None:
        raise _fail(source, f"{where}: missing required field 'mig-devices' when 'mig-enabled' is true")
    if not enabled and mig_devices:
        raise _fail(source, f"{where}: MIG devices included when 'mig-enabled' is false")
    counts: dict[str, int] = {}
    if mig_devices:
        if not isinstance(mig_devices, dict):
            raise _fail(source, f"{where}: mig-devices must map profiles to counts")
        for profile, n in mig_devices.items():
            if not isinstance(profile, str) or not _PROFILE_FORMAT.match(profile):
                raise _fail(source, f"{where}: invalid MIG profile name {profile!r}")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise _fail(source, f"{where}: invalid count for {profile}: {n!r}")
            counts[profile] = n
        if not any(counts.values()):
            raise _fail(source, f"{where}: all counts for all MIG profiles are 0")
    gpu = GpuLayout(enabled, tuple(sorted((p, n) for p, n in counts.items() if n)))
    return Entry(devices, filters, gpu)


def _check(source: str, layout: MigLayout, unusable: dict[tuple[str, str], str]) -> None:
    """Place every entry on every GPU model it can apply to; errors and per-model notes as described above."""
    fits_somewhere = False
    knows_somewhere = False
    first_failure = ""
    for geo in geometries():
        for entry in layout.entries:
            if not entry.applies_to(geo):
                continue
            counts = entry.gpu.counts
            known = all(geo.profile(p) is not None for p in counts)
            if entry.device_filter and not known:
                missing = next(p for p in counts if geo.profile(p) is None)
                raise _fail(
                    source, f"layout {layout.name} is impossible on {geo.key}: no MIG profile {missing}"
                )
            if not known:
                unusable.setdefault((layout.name, geo.key), FOREIGN)
                continue
            knows_somewhere = True
            try:
                place(geo, counts)
            except LayoutError as exc:
                if entry.device_filter:
                    raise _fail(source, f"layout {layout.name} is impossible on {geo.key}: {exc}") from None
                unusable[(layout.name, geo.key)] = str(exc)
                first_failure = first_failure or f"{geo.key}: {exc}"
                continue
        if any(e.applies_to(geo) for e in layout.entries) and (layout.name, geo.key) not in unusable:
            fits_somewhere = True
    if knows_somewhere and not fits_somewhere:
        raise _fail(source, f"layout {layout.name} is impossible on every GPU it names ({first_failure})")


def parse_mig_config(text: str, source: str) -> MigConfigSet:
    """A mig-parted config file's text -> its checked layouts. Also takes a ConfigMap manifest holding one
    (the `config.yaml` key, as the GPU Operator's ConfigMaps do). Raises MigConfigError (one line)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(source, f"not valid YAML: {first}") from exc
    if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
        return parse_configmap(doc, source)
    if not isinstance(doc, dict):
        raise _fail(source, "must be a mapping with 'version' and 'mig-configs'")
    unexpected = sorted(set(doc) - {"version", "mig-configs"})
    if unexpected:
        raise _fail(source, f"unexpected field: {unexpected[0]}")
    if doc.get("version") != "v1":
        raise _fail(source, f"unknown version: {doc.get('version')!r} (expected v1)")
    configs = doc.get("mig-configs")
    if not isinstance(configs, dict) or not configs:
        raise _fail(source, "at least one entry in 'mig-configs' is required")
    layouts: dict[str, MigLayout] = {}
    unusable: dict[tuple[str, str], str] = {}
    for name, entries in configs.items():
        if not isinstance(entries, list) or not entries:
            raise _fail(source, f"{name}: at least one entry is required")
        layout = MigLayout(str(name), tuple(_entry(source, str(name), i, e) for i, e in enumerate(entries)))
        _check(source, layout, unusable)
        layouts[layout.name] = layout
    return MigConfigSet(layouts, source, unusable)


def parse_configmap(obj: Mapping[str, Any], source: str) -> MigConfigSet:
    """The config inside a mig-parted ConfigMap (key `config.yaml`, or its only key)."""
    data = obj.get("data") or {}
    meta = obj.get("metadata") or {}
    where = f"{source} (ConfigMap {meta.get('namespace', '')}/{meta.get('name', '')})"
    if CONFIGMAP_KEY in data:
        text = data[CONFIGMAP_KEY]
    elif len(data) == 1:
        text = next(iter(data.values()))
    else:
        raise _fail(where, f"no '{CONFIGMAP_KEY}' key in data")
    if not isinstance(text, str):
        raise _fail(where, f"data.{CONFIGMAP_KEY} must be a string")
    return parse_mig_config(text, where)


@cache
def bundled() -> MigConfigSet:
    """The GPU Operator's default config names (`default-mig-parted-config`) for the GPUs we know."""
    text = resources.files("app.gpu").joinpath("mig-parted-default.yaml").read_text()
    return parse_mig_config(text, BUNDLED)
