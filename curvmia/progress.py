"""Progress lines with an estimated time left, for long jobs (training, scoring, data
preparation): a user watching ``tail -f`` of a job's log sees how far it is and when it ends.

The clock is injected (``clock``), so tests drive it without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def hms(seconds: float) -> str:
    """``seconds`` as h:mm:ss (rounded to whole seconds)."""
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Counts work done out of ``total`` and logs "what: done/total unit (p%), rate/s,
    elapsed, about T left" at most every ``every`` seconds, and always when the work is done.

    The rate is the average since the start, so the time left is (total − done) / rate.
    """

    def __init__(
        self,
        total: int,
        what: str,
        log: Callable[[str], None],
        *,
        unit: str = "samples",
        every: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.what, self.log, self.unit = int(total), what, log, unit
        self.every, self.clock = every, clock
        self.done = 0
        self.t0 = self.last = clock()

    def line(self, now: float | None = None) -> str:
        """The progress line for the work done so far (at time ``now``, default the clock)."""
        elapsed = (self.clock() if now is None else now) - self.t0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.what}: {self.done}/{self.total} {self.unit} ({pct:.0f}%)"
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            left = (self.total - self.done) / rate
            speed = f"{rate:.3g}" if rate < 1000 else f"{rate:,.0f}"
            text += f", {speed} {self.unit}/s, elapsed {hms(elapsed)}, about {hms(left)} left"
        return text

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units; log when ``every`` seconds have passed or all are done."""
        self.done = min(self.total, self.done + n)
        now = self.clock()
        if now - self.last >= self.every or self.done == self.total:
            self.log(self.line(now))
            self.last = now
