from __future__ import annotations

import time


class DeadlineExceeded(Exception):
    """The overall time budget ran out before an operation could start."""


class Deadline:
    """A point in time after which no network operation may start."""

    def __init__(self, seconds: float) -> None:
        self.budget = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, at least a small positive amount so timeouts stay valid."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(f"the test's time budget of {self.budget:g} s ran out")
        return max(left, 0.05)
