"""PeriodicLoop: runs on its interval, on trigger, survives failures, reports durations, stops promptly."""

from __future__ import annotations

import asyncio

import pytest

from app.loops import PeriodicLoop
from tests.waiting import until


async def test_runs_periodically_and_reports_each_cycle() -> None:
    calls: list[int] = []
    reports: list[tuple[float, bool]] = []

    async def work() -> None:
        calls.append(1)

    loop = PeriodicLoop("t", 0.02, work, on_cycle=lambda d, ok: reports.append((d, ok)))
    loop.start()
    await until(lambda: len(calls) >= 3)
    await loop.stop()
    assert not loop.running
    assert all(ok and d >= 0 for d, ok in reports)
    assert loop.cycles == len(reports) >= 3
    n = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == n, "no cycle after stop"


async def test_trigger_runs_now_and_coalesces() -> None:
    calls: list[float] = []

    async def work() -> None:
        calls.append(asyncio.get_running_loop().time())

    loop = PeriodicLoop("t", 3600, work, run_at_start=False)
    loop.start()
    await asyncio.sleep(0.02)
    assert calls == []
    loop.trigger()
    loop.trigger()
    await until(lambda: len(calls) == 1)
    await asyncio.sleep(0.02)
    assert len(calls) == 1, "two triggers before the cycle ran coalesce into one"
    loop.trigger()
    await until(lambda: len(calls) == 2)
    await loop.stop()


async def test_a_trigger_during_a_cycle_runs_another_right_after() -> None:
    gate = asyncio.Event()
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            await gate.wait()

    loop = PeriodicLoop("t", 3600, work)
    loop.start()
    await until(lambda: len(calls) == 1)
    loop.trigger()
    gate.set()
    await until(lambda: len(calls) == 2)
    await loop.stop()


async def test_exceptions_are_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    reports: list[bool] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("boom")

    loop = PeriodicLoop("flaky", 0.01, flaky, on_cycle=lambda d, ok: reports.append(ok))
    loop.start()
    await until(lambda: len(calls) >= 2)
    await loop.stop()
    assert reports[:2] == [False, True]
    assert loop.failures == 1 and loop.last_error is None
    rec = next(r for r in caplog.records if r.getMessage() == "loop cycle failed")
    assert rec.loop == "flaky"  # type: ignore[attr-defined]
    assert rec.exc_info is not None


async def test_stop_cancels_a_cycle_in_progress() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    loop = PeriodicLoop("t", 1, forever)
    loop.start()
    await started.wait()
    await asyncio.wait_for(loop.stop(), timeout=1)
    assert not loop.running
    await loop.stop()  # idempotent


async def test_a_broken_callback_does_not_kill_the_loop() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)

    def bad(duration: float, ok: bool) -> None:
        raise RuntimeError("metric down")

    loop = PeriodicLoop("t", 0.01, work, on_cycle=bad)
    loop.start()
    await until(lambda: len(calls) >= 2)
    await loop.stop()


async def test_start_is_idempotent_and_run_once_returns_success() -> None:
    async def work() -> None:
        return None

    loop = PeriodicLoop("t", 3600, work)
    loop.start()
    first = loop._task
    loop.start()
    assert loop._task is first
    assert await loop.run_once() is True
    await loop.stop()


def test_interval_must_be_positive() -> None:
    async def work() -> None:
        return None

    with pytest.raises(ValueError, match="interval_s must be > 0"):
        PeriodicLoop("t", 0, work)
