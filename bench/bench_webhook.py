"""Webhook latency over real HTTPS at a steady request rate (history cached).

    python -m bench.bench_webhook [--rate 200] [--seconds 15]

Starts `gpu-autoscaler`'s app with only the webhook component in a child process, serving TLS with a CA and
serving pair from `certs.generate`, and a recorded usage history (warmed before measuring). The client sends
AdmissionReviews on an open-loop schedule (a request every 1/rate s, whether or not earlier ones finished),
over keep-alive connections as the API server does, verifying the server against the generated CA.
Latency is measured from each request's scheduled time, so queueing behind a slow request counts.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "webhook"


def _serve(port: int, cert: str, key: str) -> None:
    """Child process: the app with the webhook, recorded history, HTTPS with the reloading context."""
    import uvicorn

    from app.main import create_app
    from app.settings import Settings
    from certs.reload import uvicorn_ssl_options
    from webhook.component import WebhookComponent
    from webhook.demo import demo_history
    from webhook.history import WorkloadKey
    from webhook.mig import Usage

    settings = Settings(cluster="demo", log_level="WARNING")
    component = WebhookComponent(settings)
    history = demo_history()
    history.table[WorkloadKey("inference", "Deployment", "qwen-32b-a100")] = {
        "vllm": Usage(70000, 0.6, 81920, "NVIDIA A100-SXM4-80GB", 20160)
    }
    component.set_history_source(history)
    app = create_app(settings, components=[lambda _s: component])
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, **uvicorn_ssl_options(cert, key)
    )


def _reviews() -> list[bytes]:
    """A mix: rewritten deployment replica, notebook, multi-GPU, and a not-opted-in namespace."""
    out = []
    for name in ("pod_create_deployment.json", "pod_create_notebook.json", "pod_create_multigpu.json"):
        raw = json.loads((FIXTURES / name).read_text())
        out.append(raw)
    other = copy.deepcopy(out[0])
    other["request"]["namespace"] = "ml-training"
    out.append(other)
    return [json.dumps(r).encode() for r in out]


async def _drive(port: int, ca: str, rate: float, seconds: float) -> dict[str, Any]:
    verify = ssl.create_default_context(cafile=ca)
    bodies = _reviews()
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{port}", verify=verify, limits=limits, timeout=10
    ) as client:
        for body in bodies * 5:  # warm: connections up, history cached
            r = await client.post("/mutate", content=body, headers=headers)
            r.raise_for_status()
        latencies: list[float] = []
        errors = 0

        async def one(at: float, body: bytes) -> None:
            nonlocal errors
            try:
                r = await client.post("/mutate", content=body, headers=headers)
                if r.status_code != 200 or not r.json()["response"]["allowed"]:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - at)

        n = int(rate * seconds)
        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(n):
            at = start + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(at, bodies[i % len(bodies)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": n,
        "errors": errors,
        "rate_achieved": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": round(ms[int(0.90 * (len(ms) - 1))], 2),
        "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--serve", nargs=3, metavar=("PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        _serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return 0
    from certs.generate import write_certs

    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_certs(Path(tmp), "gpu-autoscaler", "gpu-autoscaler", ips=["127.0.0.1"])
        port = _free_port()
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_webhook",
            "--serve",
            str(port),
            str(bundle.cert),
            str(bundle.key),
        ]
        env = {**os.environ, "GPU_AUTOSCALER_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(cmd, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("bench server did not start") from None
                    time.sleep(0.1)
            result = asyncio.run(_drive(port, str(bundle.ca_cert), args.rate, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=10)
    result = {"bench": "webhook /mutate over HTTPS, history cached", "rate": args.rate, **result}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
