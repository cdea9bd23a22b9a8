"""Model-based view: M/M/1/K state-dependent queue, TTFT/ITL and the SLO distance."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.autoscaler.queueing import (
    PerfParams,
    decode_ms,
    max_rate,
    prefill_ms,
    service_rates,
    slo_view,
    solve,
)

H100 = PerfParams(alpha=6.0, beta=0.05, gamma=20.0, delta=0.002, max_batch=64)
IN, OUT = 1000.0, 200.0


def test_service_rates_grow_with_batch() -> None:
    mu = service_rates(H100, IN, OUT)
    assert len(mu) == 64
    assert mu[0] == pytest.approx(1 / (prefill_ms(H100, IN, 1) + 199 * decode_ms(H100, 1)))
    assert all(b > a for a, b in itertools.pairwise(mu))


def test_light_load_is_unbatched() -> None:
    m = solve(H100, IN, OUT, rate=0.0001)  # 0.1 req/s
    assert m is not None
    assert m.wait_ms == pytest.approx(0, abs=1)
    assert m.itl_ms == pytest.approx(decode_ms(H100, 1), rel=0.05)
    assert m.ttft_ms == pytest.approx(prefill_ms(H100, IN, 1), rel=0.1)


@pytest.mark.parametrize("rate", [0.0, -1.0, 1.0])  # 1 req/ms = 1000 req/s is past the max service rate
def test_infeasible_rates(rate: float) -> None:
    assert solve(H100, IN, OUT, rate) is None


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.0005, 0.03), b=st.floats(0.0005, 0.03))
def test_latency_grows_with_load(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    m_lo, m_hi = solve(H100, IN, OUT, lo), solve(H100, IN, OUT, hi)
    assert m_lo is not None and m_hi is not None
    assert m_hi.ttft_ms >= m_lo.ttft_ms - 1e-6
    assert m_hi.itl_ms >= m_lo.itl_ms - 1e-6


@pytest.mark.parametrize(("ttft", "itl"), [(200.0, None), (None, 7.0), (300.0, 8.0)])
def test_max_rate_meets_slo(ttft: float | None, itl: float | None) -> None:
    r = max_rate(H100, IN, OUT, ttft, itl)
    assert r > 0
    m = solve(H100, IN, OUT, r)
    assert m is not None
    if ttft:
        assert m.ttft_ms <= ttft * 1.001
    if itl:
        assert m.itl_ms <= itl * 1.001
    past = solve(H100, IN, OUT, r * 1.05)
    assert past is None or (ttft and past.ttft_ms > ttft) or (itl and past.itl_ms > itl)


def test_unreachable_slo_gives_zero_capacity() -> None:
    assert max_rate(H100, IN, OUT, 1.0, None) == 0.0


def test_slo_view_ratio() -> None:
    cap = max_rate(H100, IN, OUT, 300.0, None) * 1000
    view = slo_view(
        H100, rate_per_s=cap, replicas=2, in_tokens=IN, out_tokens=OUT, ttft_slo_ms=300.0, itl_slo_ms=None
    )
    assert view.slo_load_ratio == pytest.approx(0.5, rel=1e-3)
    assert view.ttft_ms is not None and view.ttft_ms < 300
    no_slo = slo_view(H100, 1.0, 1, IN, OUT, None, None)
    assert no_slo.slo_load_ratio is None and no_slo.itl_ms is not None
