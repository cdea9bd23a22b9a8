"""MIG geometry data and the pure profile choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.webhook.conftest import A100_80, demo_offers, usage
from webhook.mig import (
    choose_profile,
    geometries,
    geometry_for,
    mig_compute_fraction,
    offered_profiles,
    profile_resource,
    resource_profile,
)

#: the shared reference beside a checkout (../shared/, as CI lays it out); the test skips without it
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "mig_profiles.json"
A100_ALL = frozenset(p.name for p in geometry_for(A100_80).profiles)  # type: ignore[union-attr]


@pytest.mark.skipif(not REFERENCE.is_file(), reason="shared reference table not present")
def test_geometry_matches_the_reference_table() -> None:
    ref = json.loads(REFERENCE.read_text())["gpus"]
    ours = json.loads((Path("webhook/data/mig_profiles.json")).read_text())["gpus"]
    assert {"A100-SXM4-40GB", "A100-SXM4-80GB", "H100-80GB", "H200-141GB", "A30-24GB"} <= set(ours)
    for key, gpu in ours.items():
        rgpu = ref[key]
        assert gpu["compute_slices_total"] == rgpu["compute_slices_total"]
        assert gpu["memory_slices_total"] == rgpu["memory_slices_total"]
        rprofiles = {p["name"]: p for p in rgpu["profiles"]}
        assert [p["name"] for p in gpu["profiles"]] == list(rprofiles)
        for p in gpu["profiles"]:
            r = rprofiles[p["name"]]
            for f in ("compute_slices", "memory_slices", "max_instances", "profile_id"):
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
    assert demo_offers() == {"NVIDIA-A100-SXM4-80GB": frozenset({"1g.10gb", "2g.20gb", "3g.40gb"})}


def test_offered_profiles_from_allocatable_only_and_zero_counts() -> None:
    nodes = [
        {
            "metadata": {"labels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
            "status": {"allocatable": {"nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-2g.20gb": "0"}},
        },
        {"metadata": {"labels": {"nvidia.com/mig-3g.40gb.count": "0"}}, "status": {}},
    ]
    assert offered_profiles(nodes) == {"NVIDIA-H100-80GB-HBM3": frozenset({"1g.10gb"})}


@pytest.mark.parametrize(
    ("peak_gib", "p95", "profile"),
    [
        (6.0, 0.09, "1g.10gb"),  # 7.2 GiB needed <= 9.62, 9 % <= 14 %
        (8.5, 0.05, "2g.20gb"),  # 10.2 GiB needed > 9.62 -> next offered size
        (4.0, 0.20, "2g.20gb"),  # compute drives it: 20 % > 1/7
        (17.0, 0.30, "3g.40gb"),  # 30 % > 2/7
        (30.0, 0.10, "3g.40gb"),
    ],
)
def test_choose_smallest_fitting_offered_profile(peak_gib: float, p95: float, profile: str) -> None:
    offered = demo_offers()["NVIDIA-A100-SXM4-80GB"]
    d = choose_profile(usage(peak_gib, p95), "NVIDIA-A100-SXM4-80GB", offered, 0.5, 0.2)
    assert (d.profile, d.outcome) == (profile, "mutated")


def test_headroom_is_configurable() -> None:
    offered = frozenset({"1g.10gb", "2g.20gb"})
    assert choose_profile(usage(8.5, 0.05), A100_80, offered, 0.5, 0.0).profile == "1g.10gb"
    assert choose_profile(usage(8.5, 0.05), A100_80, offered, 0.5, 0.2).profile == "2g.20gb"


def test_over_threshold_is_kept_whole() -> None:
    d = choose_profile(usage(72.0, 0.10), A100_80, A100_ALL, 0.5, 0.2)  # vLLM pre-allocates 90 %
    assert d.profile is None and d.outcome == "kept" and "90%" in d.reason
    d = choose_profile(usage(4.0, 0.6), A100_80, A100_ALL, 0.5, 0.2)
    assert d.outcome == "kept"
    assert choose_profile(usage(4.0, 0.55), A100_80, A100_ALL, 0.7, 0.2).profile == "4g.40gb"
    # 60 % compute would need the 7g instance: that is a whole GPU, nothing saved
    assert choose_profile(usage(4.0, 0.6), A100_80, A100_ALL, 0.7, 0.2).outcome == "no_fit"


def test_no_fit_unknown_gpu_and_missing_history() -> None:
    assert choose_profile(usage(30.0, 0.1), A100_80, {"1g.10gb"}, 0.5, 0.2).outcome == "no_fit"
    assert choose_profile(usage(3.0, 0.1), "NVIDIA-L40S", {"1g.10gb"}).outcome == "unknown_gpu"
    no_size = usage(3.0, 0.1, model="mystery", total_mib=0)
    assert choose_profile(no_size, A100_80, A100_ALL).outcome == "unknown_gpu"
    no_compute = usage(3.0, 0.1).__class__(peak_memory_mib=3072, p95_compute=None, gpu_memory_mib=81920)
    assert choose_profile(no_compute, A100_80, A100_ALL).outcome == "no_history"


def test_media_extension_profiles_are_never_chosen_automatically() -> None:
    d = choose_profile(usage(2.0, 0.05), A100_80, {"1g.10gb+me", "2g.20gb"}, 0.5, 0.2)
    assert d.profile == "2g.20gb"


def test_usage_measured_on_another_gpu_uses_its_size() -> None:
    # 8 GiB of a 24 GiB A30 is 33 %: under the threshold, sliced on the A100 by absolute memory
    d = choose_profile(usage(8.0, 0.2, model="NVIDIA A30", total_mib=24576), A100_80, A100_ALL, 0.5, 0.1)
    assert d.profile == "2g.20gb"


@given(
    peak=st.floats(0.0, 80.0),
    p95=st.floats(0.0, 1.0),
    offered=st.sets(st.sampled_from(sorted(A100_ALL))),
    threshold=st.floats(0.05, 1.0),
    headroom=st.floats(0.0, 1.0),
)
def test_choice_is_the_smallest_that_fits(
    peak: float, p95: float, offered: set[str], threshold: float, headroom: float
) -> None:
    geo = geometry_for(A100_80)
    assert geo is not None
    d = choose_profile(usage(peak, p95), A100_80, offered, threshold, headroom)
    need = peak * 1024 * (1 + headroom) / 1024
    fits = [
        p
        for p in geo.profiles
        if p.name in offered
        and not p.media_extensions
        and p.compute_fraction < 1
        and p.memory_gib >= need
        and p.compute_fraction >= p95
    ]
    under = peak * 1024 / 81920 < threshold and p95 < threshold
    if d.profile is None:
        assert not under or not fits
    else:
        chosen = geo.profile(d.profile)
        assert under and chosen in fits
        assert all(chosen.memory_gib <= p.memory_gib for p in fits)  # type: ignore[union-attr]
