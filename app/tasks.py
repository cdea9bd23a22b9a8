"""Stopping background tasks for good.

On Python 3.11 `asyncio.wait_for` can swallow a cancellation that arrives just as the awaited call completes
(fixed in 3.12, where it is built on `asyncio.timeout`): a loop task cancelled at that moment carries on, and
a plain `task.cancel(); await task` then waits forever. The test suite hung on it once in a leader-election
stop. So cancel until the task is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

#: how long to wait for a cancelled task before cancelling it again
RECANCEL_S = 0.2


async def cancel_and_wait(
    task: asyncio.Task[Any] | None, *, suppress: tuple[type[BaseException], ...] = ()
) -> None:
    """Cancel `task` and wait until it has ended, cancelling again if a cancellation was swallowed. Its
    CancelledError (and the `suppress` exceptions) are not raised; any other exception is."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_S)
    with contextlib.suppress(asyncio.CancelledError, *suppress):
        task.result()
