"""HPA-style stabilisation windows (same arithmetic as kube-controller-manager)."""

from __future__ import annotations

import pytest

from app.autoscaler.stabilize import Stabilizer


@pytest.mark.parametrize(
    ("up", "down", "steps", "expected"),
    [
        # (time, current, raw desired) -> stabilised
        (0, 0, [(0, 2, 3)], [3]),
        (0, 0, [(0, 3, 2)], [2]),
        (0, 300, [(0, 3, 3), (30, 3, 2), (60, 3, 2)], [3, 3, 3]),  # down held by the window
        (0, 300, [(0, 3, 3), (30, 3, 2), (301, 3, 2)], [3, 3, 2]),  # older rec left the window
        (0, 300, [(0, 3, 2), (30, 3, 2)], [2, 2]),  # no higher rec in the window
        (60, 0, [(0, 2, 2), (30, 2, 3), (61, 2, 3)], [2, 2, 3]),  # up held until the window passes
        (60, 0, [(0, 2, 3), (30, 2, 3)], [3, 3]),
        (0, 300, [(0, 3, 4), (30, 4, 3)], [4, 4]),  # flapping up then down is damped
        (0, 300, [(0, 3, 1)], [1]),
    ],
)
def test_windows(up: float, down: float, steps: list[tuple[float, int, int]], expected: list[int]) -> None:
    s = Stabilizer(up, down)
    got = [s.stabilize("k", cur, want, t)[0] for t, cur, want in steps]
    assert got == expected


def test_reason_and_forget() -> None:
    s = Stabilizer(0, 300)
    s.stabilize("a", 3, 3, 0)
    value, why = s.stabilize("a", 3, 2, 10)
    assert value == 3 and why is not None and "300" in why
    s.forget(set())
    assert s.stabilize("a", 3, 2, 20) == (2, None)
