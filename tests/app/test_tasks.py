"""cancel_and_wait ends a task even when a cancellation is swallowed (as Python 3.11's wait_for can)."""

from __future__ import annotations

import asyncio

import pytest

from app.tasks import cancel_and_wait


async def test_a_swallowed_cancellation_is_repeated_until_the_task_ends() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # what wait_for does when the inner call finished at the same moment

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), timeout=5)
    assert task.cancelled() and swallowed == 1


async def test_other_exceptions_are_raised_unless_suppressed() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.get_running_loop().create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await cancel_and_wait(task)
    again = asyncio.get_running_loop().create_task(broken())
    await asyncio.sleep(0)
    await cancel_and_wait(again, suppress=(RuntimeError,))
    await cancel_and_wait(None)
