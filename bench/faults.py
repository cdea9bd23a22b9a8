"""What a sick Prometheus costs admission: /mutate latency with Prometheus down, slow, or answering garbage.

    python -m bench.faults [--reviews 50] [--timeout 1.0] [--json]

For each mode, a fresh app (webhook only, demo cluster) with `history_timeout_seconds` = --timeout: the
first review of a new workload, then --reviews more reviews, each of another new workload (the worst case:
none is in the history cache). Timed in-process through the ASGI app (no network between client and app);
the Prometheus stand-in is a real HTTP server on loopback (tests/misbehaving.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from contextlib import ExitStack
from typing import Any

import httpx

from app.main import create_app
from app.settings import Settings
from tests.misbehaving import SickPrometheus, down_url
from tests.webhook.test_prometheus_faults import review_for
from webhook.component import WebhookComponent


async def one_mode(url: str, reviews: int, timeout: float) -> dict[str, Any]:
    settings = Settings(cluster="demo", prometheus_url=url, history_timeout_seconds=timeout)
    app = create_app(settings, components=[WebhookComponent])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            times = []
            for i in range(reviews + 1):
                start = time.perf_counter()
                resp = await client.post("/mutate", json=review_for(f"w{i}"))
                times.append((time.perf_counter() - start) * 1000)
                assert resp.status_code == 200 and resp.json()["response"]["allowed"]
    later = times[1:]
    return {
        "first_ms": round(times[0], 1),
        "later_p50_ms": round(statistics.median(later), 2),
        "later_max_ms": round(max(later), 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reviews", type=int, default=50)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = []
    for mode in ("healthy", "down", "slow", "garbage"):
        with ExitStack() as stack:
            if mode == "down":
                url = stack.enter_context(down_url())
            else:
                prom = stack.enter_context(SickPrometheus("ok" if mode == "healthy" else mode))
                url = prom.url
            rows.append({"mode": mode, **asyncio.run(one_mode(url, args.reviews, args.timeout))})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'prometheus':<10} {'first review ms':>16} {'later p50 ms':>13} {'later max ms':>13}")
    for r in rows:
        print(f"{r['mode']:<10} {r['first_ms']:>16} {r['later_p50_ms']:>13} {r['later_max_ms']:>13}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
