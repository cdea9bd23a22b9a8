"""MIG geometry data: the reference table, product names, resource names, offers, placements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cluster.snapshot import demo_snapshot_path, load_snapshot
from app.gpu.mig import (
    geometries,
    geometry_for,
    mig_compute_fraction,
    offered_profiles,
    profile_resource,
    resource_profile,
)

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "mig_profiles.json"
DATA = Path(__file__).resolve().parents[2] / "app" / "gpu" / "mig_profiles.json"


@pytest.mark.skipif(not REFERENCE.is_file(), reason="shared reference table not present")
def test_geometry_matches_the_reference_table() -> None:
    ref = json.loads(REFERENCE.read_text())["gpus"]
    ours = json.loads(DATA.read_text())["gpus"]
    assert {"A100-SXM4-40GB", "A100-SXM4-80GB", "H100-80GB", "H200-141GB", "A30-24GB"} <= set(ours)
    for key, gpu in ours.items():
        rgpu = ref[key]
        assert gpu["compute_slices_total"] == rgpu["compute_slices_total"]
        assert gpu["memory_slices_total"] == rgpu["memory_slices_total"]
        rprofiles = {p["name"]: p for p in rgpu["profiles"]}
        assert [p["name"] for p in gpu["profiles"]] == list(rprofiles)
        for p in gpu["profiles"]:
            r = rprofiles[p["name"]]
            for f in ("compute_slices", "memory_slices", "max_instances", "profile_id", "placement_starts"):
                assert p[f] == r[f], (key, p["name"], f)
            if r["memory_gib_nvidia_smi"] is not None:
                assert p["memory_gib"] == r["memory_gib_nvidia_smi"]


@pytest.mark.parametrize(
    ("product", "key"),
    [
        ("NVIDIA-A100-SXM4-80GB", "A100-SXM4-80GB"),
        ("NVIDIA A100-SXM4-80GB", "A100-SXM4-80GB"),
        ("NVIDIA A100 80GB PCIe", "A100-SXM4-80GB"),
        ("NVIDIA-A100-SXM4-40GB", "A100-SXM4-40GB"),
        ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "A100-SXM4-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-80GB"),
        ("NVIDIA-H100-80GB-HBM3", "H100-80GB"),
        ("NVIDIA H100 PCIe", "H100-80GB"),
        ("NVIDIA H100 NVL", "H100-NVL-94GB"),
        ("NVIDIA H200", "H200-141GB"),
        ("NVIDIA-H200-NVL", "H200-141GB"),
        ("NVIDIA A30", "A30-24GB"),
        ("NVIDIA-L40S", None),
        ("NVIDIA RTX A3000 Laptop GPU", None),
        ("NVIDIA GH200 480GB", None),
        ("", None),
    ],
)
def test_product_names_map_to_geometry(product: str, key: str | None) -> None:
    geo = geometry_for(product)
    assert (geo.key if geo else None) == key


def test_profiles_are_ordered_and_fractions_right() -> None:
    for geo in geometries():
        mems = [p.memory_gib for p in geo.profiles]
        assert mems == sorted(mems)
    a30 = geometry_for("NVIDIA A30")
    assert a30 is not None and a30.profile("2g.12gb").compute_fraction == 0.5  # type: ignore[union-attr]
    assert mig_compute_fraction("3g.40gb") == pytest.approx(3 / 7)
    assert mig_compute_fraction("1g.6gb", "NVIDIA A30") == 0.25


def test_resource_names_round_trip() -> None:
    assert profile_resource("1g.10gb+me") == "nvidia.com/mig-1g.10gb.me"
    assert resource_profile("nvidia.com/mig-1g.10gb.me") == "1g.10gb+me"
    assert resource_profile("nvidia.com/mig-3g.40gb") == "3g.40gb"
    assert resource_profile("nvidia.com/gpu") is None
    assert resource_profile("nvidia.com/mig-strategy") is None


def test_offered_profiles_of_the_demo_cluster() -> None:
    nodes = [o for o in load_snapshot(demo_snapshot_path()) if o["kind"] == "Node"]
    assert offered_profiles(nodes) == {"NVIDIA-A100-SXM4-80GB": frozenset({"1g.10gb", "2g.20gb", "3g.40gb"})}


def test_offered_profiles_from_allocatable_only_and_zero_counts() -> None:
    nodes = [
        {
            "metadata": {"labels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
            "status": {"allocatable": {"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-2g.20gb": "0"}},
        },
        {"metadata": {"labels": {"nvidia.com/mig-3g.40gb.count": "0"}}, "status": {}},
    ]
    assert offered_profiles(nodes) == {"NVIDIA-H100-80GB-HBM3": frozenset({"1g.10gb"})}
