"""`make bench`: every service benchmark in turn (the trace-replay table is `make bench-sim`).

Each benchmark prints its own figures; this runs them as separate processes so one's warm-up, threads or
garbage does not colour the next one's numbers.
"""

from __future__ import annotations

import subprocess
import sys

BENCHES: tuple[tuple[str, ...], ...] = (
    ("bench.bench_extender",),
    ("bench.bench_extender_floor",),
    ("bench.bench_kube_scheduler",),
    ("bench.bench_trace_http",),
    ("bench.bench_webhook",),
    ("bench.bench_autoscaler",),
    ("bench.bench_nodescale",),
    ("bench.bench_console",),
)


def main() -> int:
    failed = []
    for module, *args in BENCHES:
        print(f"== {module}", flush=True)
        rc = subprocess.call([sys.executable, "-m", module, *args])
        if rc != 0:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
