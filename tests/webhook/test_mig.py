"""The webhook's pure MIG profile choice."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.gpu.mig import geometry_for
from tests.webhook.conftest import A100_80, demo_offers, usage
from webhook.mig import choose_profile

A100_ALL = frozenset(p.name for p in geometry_for(A100_80).profiles)  # type: ignore[union-attr]


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
