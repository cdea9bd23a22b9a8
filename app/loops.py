"""A reusable periodic background loop for components (autoscaler cycles, cache refreshes…).

Why not a bare `while True: await fn(); await sleep(n)`: a failing cycle must be logged and survived, a cycle
must be runnable on demand (`trigger`, e.g. when a watched object changes), shutdown must be prompt, and
each cycle's duration must reach a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from app.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: called after each cycle with (seconds it took, whether it succeeded)
CycleCallback = Callable[[float, bool], None]


class PeriodicLoop:
    """Runs `fn` every `interval_s` seconds (measured start to start, never overlapping) on the event loop.

    `trigger()` runs a cycle as soon as the current one (if any) ends; several triggers coalesce into one.
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        fn: Callable[[], Awaitable[object]],
        *,
        on_cycle: CycleCallback | None = None,
        run_at_start: bool = True,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"{name}: interval_s must be > 0, got {interval_s}")
        self.name = name
        self.interval_s = interval_s
        self._fn = fn
        self._on_cycle = on_cycle
        self._run_at_start = run_at_start
        #: a cycle runs only while the gate says so (e.g. `lambda: ctx.leadership.is_leader`)
        self._gate = gate
        self.skipped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.cycles = 0
        self.failures = 0
        self.last_duration_s: float | None = None
        self.last_error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop on the running event loop (idempotent)."""
        if self.running:
            return
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"loop:{self.name}")

    async def stop(self) -> None:
        """Cancel the loop and wait for it; a cycle in progress is cancelled."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def trigger(self) -> None:
        """Run a cycle now (or right after the one in progress). Call from the event loop thread."""
        self._wake.set()

    async def run_once(self) -> bool:
        """One cycle: run `fn`, log (not raise) its exception, report the duration. Returns success.
        A cycle the gate holds back is skipped (counted in `skipped`, reported as a success)."""
        if self._gate is not None and not self._gate():
            self.skipped += 1
            return True
        start = time.perf_counter()
        ok = True
        try:
            await self._fn()
            self.last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ok = False
            self.failures += 1
            self.last_error = exc
            log.exception("loop cycle failed", extra={"loop": self.name, "failures": self.failures})
        duration = time.perf_counter() - start
        self.cycles += 1
        self.last_duration_s = duration
        if self._on_cycle is not None:
            try:
                self._on_cycle(duration, ok)
            except Exception:
                log.exception("loop cycle callback failed", extra={"loop": self.name})
        return ok

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._run_at_start:
            await self._sleep(self.interval_s)
        while True:
            started = loop.time()
            self._wake.clear()
            await self.run_once()
            await self._sleep(self.interval_s - (loop.time() - started))

    async def _sleep(self, seconds: float) -> None:
        """Sleep up to `seconds`, or less if triggered."""
        if self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))
