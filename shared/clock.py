"""The simulation clock: one source of "now" that scenarios and tests can set and move.

Simulated time runs at the speed of real time from the instant it was last set,
so a scenario can jump to the end of a commitment period and let the stack run on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class SimulationClock:
    """Simulated UTC time = real monotonic time since the last setting + an anchor."""

    def __init__(self, start: datetime | None = None) -> None:
        self._anchor = _utc(start) if start else datetime.now(UTC)
        self._anchored_at = time.monotonic()

    def now(self) -> datetime:
        """The current simulated time, timezone-aware UTC."""
        return self._anchor + timedelta(seconds=time.monotonic() - self._anchored_at)

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment`` (backwards too: replays may need it)."""
        self._anchor = _utc(moment)
        self._anchored_at = time.monotonic()
        return self._anchor

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta``."""
        if delta < timedelta(0):
            raise ValueError("advance takes a non-negative delta; use set() to go back")
        return self.set(self.now() + delta)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
