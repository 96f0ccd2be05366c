"""Match: keep pairs so that a blocked magnitude's Δ is symmetric around zero (length-matched selection)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import ConfigError
from .balance import concept_scale, weighted_mean_delta
from .base import Intervention


class Match(Intervention):
    """Drop the fewest pairs so that the Δ of each blocked magnitude is symmetric around zero.

    For a concept ``c`` with standardised ``zᵢ = Δᵢ / sd`` (sd of its scores over both responses), the
    pairs where the chosen response has more (``z > 0``) and those where it has less (``z < 0``) are paired
    off by size: both lists are sorted by ``|z|`` and walked together, and a pair from each side is kept
    when their ``|z|`` differ by at most ``tolerance`` (greedy matching of two sorted lists, which keeps
    the largest number of matches within the tolerance). Ties (``Δ = 0``) are kept. What is left is, pair
    for pair, a mirror image within ``tolerance`` sd, so the kept Δ distribution is symmetric and its mean
    is within ``tolerance`` of zero — the win-rate is 0.5 and the mean Δ ≈ 0 without any weight. Unmatched
    pairs go to the ``dropped`` split with reason ``match:<concept>``. Several concepts are matched one
    after the other (a later one can shift an earlier one's mean; the report gives each one's mean after).

    Args:
        concepts: blocked magnitudes (``length``, an SAE feature, …).
        tolerance: most difference in ``|z|`` between two matched pairs, in sd.

    Example:

        >>> import numpy as np
        >>> from curate.interventions import Match, PairState
        >>> d = np.array([[5.0], [-5.2], [40], [-1], [0]])
        >>> n = len(d)
        >>> st = PairState(["length"], d.clip(0) + 10, (-d).clip(0) + 10, np.ones(n, bool), np.ones(n, bool),
        ...                np.array([""] * n, object), np.ones(n), np.zeros(n), np.zeros(n, bool), np.ones(n, int))
        >>> m = Match(["length"], tolerance=0.1).apply(st)
        >>> st.keep.tolist(), st.reason.tolist()
        ([True, True, False, False, True], ['', '', 'match:length', 'match:length', ''])
    """

    name = "match"

    def __init__(self, concepts: Iterable[str], tolerance: float = 0.05):
        super().__init__(concepts, 1.0)
        if not tolerance > 0:
            raise ConfigError(f"Match tolerance must be > 0 (in sd), got {tolerance}.")
        self.tolerance = float(tolerance)

    def params(self):
        return {"concepts": self.concepts, "tolerance": self.tolerance}

    def _apply(self, state):
        out = {"dropped": {}, "mean_delta_before": {}, "mean_delta_after": {}, "max_asymmetry": {}}
        for c in self.concepts:
            prior = state.weight * state.keep
            scale = concept_scale(state, c, prior)
            z = state.delta(c) / scale
            out["mean_delta_before"][c] = weighted_mean_delta(z, prior)[0]
            unmatched, asym = _unmatched(z, state.keep, self.tolerance)
            out["dropped"][c] = state.drop(unmatched, f"match:{c}")
            out["mean_delta_after"][c] = weighted_mean_delta(z, state.weight * state.keep)[0]
            out["max_asymmetry"][c] = asym
        out["rows_kept"] = int(state.keep.sum())
        out["win_rate_after"] = {c: state.win_rates()[c] for c in self.concepts}
        return out


def _unmatched(z: np.ndarray, keep: np.ndarray, tol: float) -> tuple[np.ndarray, float]:
    """Rows of ``keep`` with ``z ≠ 0`` left without a mirror partner within ``tol``; and the largest
    ``| |z₊| − |z₋| |`` over the matched couples."""
    pos = np.flatnonzero(keep & (z > 0))
    neg = np.flatnonzero(keep & (z < 0))
    pos = pos[np.argsort(z[pos], kind="stable")]
    neg = neg[np.argsort(-z[neg], kind="stable")]
    matched = np.zeros(len(z), bool)
    i = j = 0
    worst = 0.0
    while i < len(pos) and j < len(neg):
        a, b = z[pos[i]], -z[neg[j]]
        if abs(a - b) <= tol:
            matched[pos[i]] = matched[neg[j]] = True
            worst = max(worst, abs(a - b))
            i, j = i + 1, j + 1
        elif a < b:
            i += 1
        else:
            j += 1
    return keep & (z != 0) & ~matched, round(worst, 6)
