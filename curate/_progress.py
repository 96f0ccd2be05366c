"""Progress lines for long steps (activation collection, SAE fitting): what, how many, elapsed, ETA.

Lines go to the ``curate`` logger at INFO, at most every ``every`` seconds (and at the end); the CLI shows
them on stderr.

Example:

    >>> p = Progress("Collecting activations", total=4, unit="pairs", every=0)
    >>> p.update(2)  # logs "Collecting activations: 2/4 pairs (50%), 0 s elapsed, ETA 0 s"
    >>> p.line().split(",")[0]
    'Collecting activations: 2/4 pairs (50%)'
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("curate")


def _fmt_s(s: float) -> str:
    s = max(0.0, s)
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


class Progress:
    """Count work done against a total and log a line now and then.

    Args:
        what: the step's name.
        total: how many units in all (``None`` when unknown: no ETA).
        unit: what is counted (``pairs``, ``steps``).
        every: seconds between lines.
    """

    def __init__(self, what: str, total: int | None, unit: str = "items", every: float = 5.0):
        self.what = what
        self.total = total
        self.unit = unit
        self.every = every
        self.done_ = 0
        self.start_ = time.perf_counter()
        self._last = -float("inf")

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start_
        if self.total:
            frac = min(1.0, self.done_ / self.total)
            eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
            return (
                f"{self.what}: {self.done_}/{self.total} {self.unit} ({frac:.0%}), {_fmt_s(elapsed)} elapsed, "
                f"ETA {_fmt_s(eta) if eta == eta else '?'}"
            )
        return f"{self.what}: {self.done_} {self.unit}, {_fmt_s(elapsed)} elapsed"

    def update(self, n: int = 1) -> None:
        self.done_ += n
        now = time.perf_counter()
        if now - self._last >= self.every or (self.total is not None and self.done_ == self.total):
            self._last = now
            logger.info(self.line())
