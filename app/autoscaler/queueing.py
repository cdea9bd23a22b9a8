"""Model-based view (pure): M/M/1/K queue with state-dependent service rate, TTFT/ITL, distance to SLO.

The seeds' queueing analyzer (WVA [O] `pkg/analyzer`): a replica serves up to N requests in one batch; with n
in the batch a request takes prefill(n) + (O-1)·decode(n) ms, so the service rate with n in service is
n / that. Requests queue up to K = N + 10·N. From the state probabilities come throughput, mean service time
and wait; an effective concurrency n* turns them into TTFT = W + prefill(n*) and ITL = decode(n*).
`max_rate` binary-searches the largest arrival rate meeting the SLOs. Times in ms, rates in requests/ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

MAX_QUEUE_TO_BATCH_RATIO = 10
EPSILON = 0.001


@dataclass(frozen=True)
class PerfParams:
    """Per accelerator: decode(n) = alpha + beta·n, prefill(n) = gamma + delta·I·n (ms), batch limit N."""

    alpha: float
    beta: float
    gamma: float
    delta: float
    max_batch: int


@dataclass(frozen=True)
class QueueMetrics:
    throughput: float  # req/ms
    response_ms: float
    wait_ms: float
    service_ms: float
    utilization: float  # mean in service / N
    ttft_ms: float
    itl_ms: float


def prefill_ms(p: PerfParams, in_tokens: float, n: float) -> float:
    return 0.0 if in_tokens <= 0 else p.gamma + p.delta * in_tokens * n


def decode_ms(p: PerfParams, n: float) -> float:
    return p.alpha + p.beta * n


def service_rates(p: PerfParams, in_tokens: float, out_tokens: float) -> list[float]:
    """mu(n) for n = 1..N, requests per ms."""
    rates = []
    for n in range(1, p.max_batch + 1):
        t = prefill_ms(p, in_tokens, n) + max(out_tokens - 1, 0) * decode_ms(p, n)
        rates.append(n / t if t > 0 else math.inf)
    return rates


def solve(p: PerfParams, in_tokens: float, out_tokens: float, rate: float) -> QueueMetrics | None:
    """Steady state at arrival `rate` (req/ms); None when the rate is outside the model's feasible range."""
    mu = service_rates(p, in_tokens, out_tokens)
    n_max = p.max_batch
    if rate <= 0 or not (rate < (1 - EPSILON) * mu[-1]) or math.isinf(mu[-1]):
        return None
    k = n_max + n_max * MAX_QUEUE_TO_BATCH_RATIO
    # log-space state probabilities: p_{i+1} = p_i · λ / μ(min(i+1, N))
    logs = [0.0] * (k + 1)
    log_rate = math.log(rate)
    for i in range(k):
        logs[i + 1] = logs[i] + log_rate - math.log(mu[min(i + 1, n_max) - 1])
    top = max(logs)
    probs = [math.exp(v - top) for v in logs]
    total = sum(probs)
    probs = [v / total for v in probs]
    throughput = rate * (1 - probs[k])
    mean_in_system = sum(i * pi for i, pi in enumerate(probs))
    head = probs[:n_max]
    in_service = sum(i * pi for i, pi in enumerate(head)) + n_max * (1 - sum(head))
    response = mean_in_system / throughput
    service = in_service / throughput
    wait = max(0.0, response - service)
    denom = p.delta * in_tokens + p.beta * max(out_tokens - 1, 0)
    n_eff = (service - p.gamma - p.alpha * max(out_tokens - 1, 0)) / denom if denom > 0 else n_max
    n_eff = min(max(n_eff, 0.0), float(n_max))
    return QueueMetrics(
        throughput=throughput,
        response_ms=response,
        wait_ms=wait,
        service_ms=service,
        utilization=in_service / n_max,
        ttft_ms=wait + prefill_ms(p, in_tokens, n_eff),
        itl_ms=decode_ms(p, n_eff),
    )


@lru_cache(maxsize=4096)
def max_rate(
    p: PerfParams, in_tokens: float, out_tokens: float, ttft_slo_ms: float | None, itl_slo_ms: float | None
) -> float:
    """Largest arrival rate (req/ms) per replica meeting both SLOs (0 when even the lightest load misses)."""
    mu = service_rates(p, in_tokens, out_tokens)
    lo_bound, hi_bound = EPSILON * mu[0], (1 - 2 * EPSILON) * mu[-1]

    def ok(rate: float) -> bool:
        m = solve(p, in_tokens, out_tokens, rate)
        if m is None:
            return False
        return (ttft_slo_ms is None or m.ttft_ms <= ttft_slo_ms) and (
            itl_slo_ms is None or m.itl_ms <= itl_slo_ms
        )

    if not ok(lo_bound):
        return 0.0
    if ok(hi_bound):
        return hi_bound
    lo, hi = lo_bound, hi_bound
    for _ in range(100):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-6 * hi:
            break
    return lo


@dataclass(frozen=True)
class SloView:
    """How far one variant is from its SLO at its current load (per replica)."""

    rate_per_replica: float  # req/s
    ttft_ms: float | None
    itl_ms: float | None
    max_rate_per_replica: float  # req/s meeting the SLOs
    #: load / SLO capacity: < 1 within the SLO, >= 1 at or past it
    slo_load_ratio: float | None


def slo_view(
    p: PerfParams,
    rate_per_s: float,
    replicas: int,
    in_tokens: float,
    out_tokens: float,
    ttft_slo_ms: float | None,
    itl_slo_ms: float | None,
) -> SloView:
    """Predicted TTFT/ITL per replica at the variant's arrival rate, and the load ratio to SLO capacity."""
    per_replica = rate_per_s / replicas if replicas > 0 else rate_per_s
    m = solve(p, in_tokens, out_tokens, per_replica / 1000.0) if per_replica > 0 else None
    cap = max_rate(p, in_tokens, out_tokens, ttft_slo_ms, itl_slo_ms) * 1000.0
    ratio = (per_replica / cap if cap > 0 else math.inf) if (ttft_slo_ms or itl_slo_ms) else None
    return SloView(
        rate_per_replica=per_replica,
        ttft_ms=m.ttft_ms if m else None,
        itl_ms=m.itl_ms if m else None,
        max_rate_per_replica=cap,
        slo_load_ratio=ratio,
    )
