"""MIG choice and patch building at their boundaries (issue 11, item 8): a profile whose compute share is
exactly the p95 fits (`>=`, not `>`), its memory exactly the need fits; JSON Patch ops exactly as RFC
6902/6901 spell them."""

from __future__ import annotations

import pytest

from app.gpu.mig import mig_compute_fraction
from webhook.mig import (
    Decision,
    Usage,
    choose_profile,
    geometry_for,
    smaller,
    usage_fraction,
)
from webhook.patch import annotation_ops, build_patch, escape, gpu_count

A100 = "NVIDIA A100-SXM4-80GB"
ALL = ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb"]


def use(peak_mib: float, p95: float) -> Usage:
    return Usage(
        peak_memory_mib=peak_mib, p95_compute=p95, gpu_memory_mib=81920.0, gpu_model=A100, samples=9999
    )


def test_compute_exactly_one_slice_fits_one_slice() -> None:
    geo = geometry_for(A100)
    assert geo is not None
    one = geo.profile("1g.10gb")
    assert one is not None
    d = choose_profile(use(1024, one.compute_fraction), A100, ALL, headroom=0.0)
    assert d.profile == "1g.10gb", d.reason
    d = choose_profile(use(1024, one.compute_fraction + 1e-9), A100, ALL, headroom=0.0)
    assert d.profile == "2g.20gb", d.reason


def test_memory_exactly_the_profile_fits() -> None:
    geo = geometry_for(A100)
    assert geo is not None
    one = geo.profile("1g.10gb")
    assert one is not None
    exact = one.memory_gib * 1024  # headroom 0: need = peak
    assert choose_profile(use(exact, 0.05), A100, ALL, headroom=0.0).profile == "1g.10gb"
    assert choose_profile(use(exact + 1, 0.05), A100, ALL, headroom=0.0).profile == "1g.20gb"


@pytest.mark.parametrize(
    ("mem_frac", "compute", "kept"), [(0.5, 0.1, True), (0.1, 0.5, True), (0.49, 0.49, False)]
)
def test_threshold_itself_keeps_the_whole_gpu(mem_frac: float, compute: float, kept: bool) -> None:
    d = choose_profile(use(81920 * mem_frac, compute), A100, ALL, threshold=0.5, headroom=0.0)
    assert (d.outcome == "kept") is kept, d


def test_compute_fraction_of_a_profile() -> None:
    assert mig_compute_fraction("3g.40gb", A100) == pytest.approx(3 / 7)
    assert mig_compute_fraction("3g.40gb") == pytest.approx(3 / 7)  # unique name: no model needed
    assert mig_compute_fraction("9g.99gb", A100) is None


def test_smaller_prefers_a_profile_then_less_memory() -> None:
    small = choose_profile(use(1024, 0.05), A100, ALL)
    big = choose_profile(use(30 * 1024, 0.05), A100, ALL)
    none = choose_profile(use(70 * 1024, 0.05), A100, ALL)
    assert (small.profile, big.profile, none.profile) == ("1g.10gb", "3g.40gb", None)
    assert smaller(small, big) is small and smaller(big, small) is small
    assert smaller(none, big) is big and smaller(big, none) is big
    assert smaller(none, none) is none


# -- patch ------------------------------------------------------------------------------------------------
def test_json_pointer_escaping() -> None:
    assert escape("a~b/c") == "a~0b~1c" and escape("~/") == "~0~1"


@pytest.mark.parametrize(
    ("resources", "count"),
    [
        ({"limits": {"nvidia.com/gpu": "2"}}, 2),
        ({"requests": {"nvidia.com/gpu": 2}}, 2),
        ({"limits": {"cpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}, 1),
        ({"limits": {"nvidia.com/gpu": "0"}}, None),
        ({"limits": {"nvidia.com/gpu": "1.5"}}, None),
        ({}, None),
    ],
)
def test_gpu_count(resources: dict, count: int | None) -> None:  # type: ignore[type-arg]
    assert gpu_count({"name": "c", "resources": resources}) == count


def test_build_patch_rewrites_requests_even_without_limits() -> None:
    pod = {
        "metadata": {"annotations": {"keep": "me"}},
        "spec": {
            "containers": [
                {"name": "c", "resources": {"limits": {"cpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}}
            ]
        },
    }
    ops = build_patch(pod, {0: "1g.10gb"}, {"gpu-autoscaler.io/optimized": "true", "keep": "me"})
    assert ops == [
        {"op": "remove", "path": "/spec/containers/0/resources/requests/nvidia.com~1gpu"},
        {"op": "add", "path": "/spec/containers/0/resources/requests/nvidia.com~1mig-1g.10gb", "value": "1"},
        {"op": "add", "path": "/metadata/annotations/gpu-autoscaler.io~1optimized", "value": "true"},
    ]


def test_annotation_ops_for_every_shape_of_metadata() -> None:
    want = {"gpu-autoscaler.io/mig": "1g.10gb"}
    assert annotation_ops({}, want) == [
        {"op": "add", "path": "/metadata", "value": {"annotations": {"gpu-autoscaler.io/mig": "1g.10gb"}}}
    ]
    assert annotation_ops({"metadata": {}}, want) == [
        {"op": "add", "path": "/metadata/annotations", "value": {"gpu-autoscaler.io/mig": "1g.10gb"}}
    ]
    assert annotation_ops({"metadata": {"annotations": dict(want)}}, want) == []
    assert annotation_ops({"metadata": {"annotations": {"gpu-autoscaler.io/mig": "off"}}}, want) == [
        {"op": "add", "path": "/metadata/annotations/gpu-autoscaler.io~1mig", "value": "1g.10gb"}
    ]


# -- the choice, whole decisions ------------------------------------------------------------------------
def test_choose_profile_decisions_in_full() -> None:
    fits = choose_profile(use(6 * 1024, 0.09), A100, ALL)  # default threshold 0.5, headroom 0.2
    assert (fits.profile, fits.outcome, fits.gpu) == ("1g.10gb", "mutated", "A100-SXM4-80GB")
    assert fits.reason == "peak 6.0GiB+20%<=9.62GiB, p95 compute 9%<=14%"
    assert fits.details == {
        "peak_mem_frac": 0.075,
        "p95_compute": 0.09,
        "need_gib": 7.2,
        "gpu": "A100-SXM4-80GB",
    }
    kept = choose_profile(use(45 * 1024, 0.1234), A100, ALL)
    assert (kept.profile, kept.outcome, kept.reason) == (None, "kept", "uses 56% of a GPU (threshold 50%)")
    assert kept.details == {
        "peak_mem_frac": 0.562,
        "p95_compute": 0.123,
        "need_gib": 54.0,
        "gpu": "A100-SXM4-80GB",
    }
    none = choose_profile(use(30 * 1024, 0.45), A100, ["1g.10gb", "2g.20gb"])
    assert (none.profile, none.outcome, none.reason) == (
        None,
        "no_fit",
        "no offered A100-SXM4-80GB profile fits 36.0GiB and 45% compute",
    )
    assert none.details["need_gib"] == 36.0
    assert choose_profile(use(1024, 0.05), "NVIDIA T4", ALL) == Decision(
        None, "unknown GPU type NVIDIA T4", "unknown_gpu"
    )
    assert choose_profile(use(1024, 0.05), "", ALL).reason == "unknown GPU type ?"
    no_size = Usage(peak_memory_mib=1024, p95_compute=0.05)
    assert choose_profile(no_size, A100, ALL) == Decision(
        None, "history lacks the GPU memory size", "unknown_gpu", "A100-SXM4-80GB"
    )
    no_compute = Usage(peak_memory_mib=1024, p95_compute=None, gpu_memory_mib=81920.0)
    assert choose_profile(no_compute, A100, ALL) == Decision(
        None, "history lacks compute use", "no_history", "A100-SXM4-80GB"
    )


def test_memory_size_from_the_model_when_the_history_lacks_it() -> None:
    known = Usage(peak_memory_mib=8192, p95_compute=0.1, gpu_model=A100)
    assert usage_fraction(known) == (pytest.approx(8192 / 81920), 0.1)
    assert usage_fraction(Usage(peak_memory_mib=8192, p95_compute=0.1, gpu_model="NVIDIA T4")) == (None, 0.1)


def test_compute_fraction_is_the_models_own() -> None:
    assert mig_compute_fraction("2g.12gb", "NVIDIA A30") == pytest.approx(2 / 4)
    assert mig_compute_fraction("1g.10gb", "NVIDIA A30") is None  # not an A30 profile: no borrowed answer


def test_decision_details_and_reasons_to_the_digit() -> None:
    d = choose_profile(use(1000, 0.05), A100, ALL)  # need 1000 x 1.2 / 1024 = 1.171875 GiB
    assert d.details["need_gib"] == 1.17 and d.profile == "1g.10gb"
    d = choose_profile(use(1075.2, 0.05), A100, ALL, headroom=0.0)  # 1.05 GiB
    assert d.reason.startswith("peak 1.1GiB+0%<=9.62GiB")
    kept = choose_profile(use(70 * 1024, 0.9), A100, ALL)
    none = choose_profile(use(30 * 1024, 0.45), A100, ["1g.10gb"])
    assert kept.gpu == none.gpu == "A100-SXM4-80GB"


def test_smaller_with_equal_or_unknown_profiles_keeps_the_first() -> None:
    a = Decision("1g.10gb", "r", "mutated", "A100-SXM4-80GB")
    twin = Decision("1g.10gb", "r", "mutated", "A100-SXM4-80GB")
    assert smaller(a, twin) is a and smaller(twin, a) is twin  # a tie keeps the first
    n1, n2 = Decision(None, "x", "kept"), Decision(None, "y", "kept")
    assert smaller(n1, n2) is n1
    orphan = Decision("1g.10gb", "r", "mutated", None)  # no GPU named: nothing to compare
    assert smaller(orphan, a) is orphan and smaller(a, orphan) is a
