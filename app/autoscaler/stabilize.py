"""HPA-style stabilisation windows (pure): stop flapping by looking back at recent recommendations.

Same arithmetic as kube-controller-manager's `stabilizeRecommendationWithBehaviors`: keep each raw
recommendation with its time; the up limit is the *lowest* recommendation within the scale-up window, the
down limit the *highest* within the scale-down window; the result is `current` pulled up to the up limit
and down to the down limit. A window of 0 disables that direction's stabilisation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class Stabilizer:
    up_window_s: float = 0.0
    down_window_s: float = 300.0
    _history: dict[Hashable, deque[tuple[float, int]]] = field(default_factory=dict)

    def stabilize(self, key: Hashable, current: int, desired: int, now: float) -> tuple[int, str | None]:
        """Record `desired` for `key` at `now`; return the stabilised value and why it differs (or None)."""
        hist = self._history.setdefault(key, deque())
        keep = max(self.up_window_s, self.down_window_s)
        while hist and hist[0][0] < now - keep:
            hist.popleft()
        up_limit = desired
        down_limit = desired
        for ts, rec in hist:
            if ts > now - self.up_window_s:
                up_limit = min(up_limit, rec)
            if ts > now - self.down_window_s:
                down_limit = max(down_limit, rec)
        hist.append((now, desired))
        value = current
        value = max(value, up_limit)
        value = min(value, down_limit)
        if value == desired:
            return value, None
        if desired > current:
            return (
                value,
                f"scale-up stabilised to {value}: lowest recommendation in the last {self.up_window_s:g}s",
            )
        return (
            value,
            f"scale-down stabilised to {value}: highest recommendation in the last {self.down_window_s:g}s",
        )

    def forget(self, keep: set[Hashable]) -> None:
        """Drop the history of keys no longer present (deleted variants)."""
        for key in [k for k in self._history if k not in keep]:
            del self._history[key]
