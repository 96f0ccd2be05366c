"""Filter: drop pairs so a blocked concept no longer wins (dropped rows go to the ``dropped`` split)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .base import Intervention


class Filter(Intervention):
    """Mark pairs ``keep=False`` with ``reason="filter:<concept>"``.

    Two modes:

    * ``"balance"`` (default): drop the fewest pairs from the winning side (for a preferred concept,
      pairs whose chosen response shows *more* of it) so that the concept's win-rate over kept pairs
      becomes ``0.5`` (or moves ``strength`` of the way there): ``n_drop = round(strength · |n₊ − n₋|)``
      (weighted by the current weights), separately among pairs where only one response shows the
      concept and pairs where both do (so the count and the presence win-rates are both balanced).
      Which pairs: those where no other blocked concept differs go first (dropping them leaves the
      others' balance alone), then those where the fewest other recipe concepts point the same way (the
      preference is most attributable to this concept), ties broken by a seeded shuffle. Several
      concepts are handled in cyclic passes, like iterative proportional fitting, until none needs
      more than half a pair dropped;
    * ``"differ"``: drop every pair where the concept differs (Δ ≠ 0): nothing about it is left to learn.

    Args:
        concepts: blocked concept ids.
        strength: share of the imbalance removed, in (0, 1].
        mode: ``"balance"`` or ``"differ"``.
        seed: seed of the tie-breaking shuffle.
        max_rounds: most cyclic passes over the concepts.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Filter, state_from_dataset
        >>> state = state_from_dataset(annotate(make_preference_pairs(300).dataset, ["flattery"]), ["flattery"])
        >>> f = Filter(["flattery"]).apply(state)
        >>> round(state.win_rates()["flattery"], 2)
        0.5
    """

    name = "filter"

    def __init__(
        self, concepts: Iterable[str], strength: float = 1.0, mode: str = "balance", seed: int = 0, max_rounds: int = 10
    ):
        super().__init__(concepts, strength)
        self.mode = mode
        self.seed = seed
        self.max_rounds = max_rounds

    def params(self):
        return {**super().params(), "mode": self.mode, "seed": self.seed}

    def _apply(self, state):
        if self.mode not in ("balance", "differ"):
            raise ValueError(f"Filter mode {self.mode!r} is unknown. Allowed: ['balance', 'differ'].")
        rng = np.random.default_rng(self.seed)
        dropped = {c: 0 for c in self.concepts}
        if self.mode == "differ":
            for c in self.concepts:
                dropped[c] = state.drop(state.keep & (state.delta(c) != 0), f"filter:{c}")
        else:
            # cyclic passes (like iterative proportional fitting): dropping pairs for one concept can
            # unbalance another, so repeat until no concept needs more than half a pair dropped. The
            # imbalance left, (1 − strength) of the first one, is fixed up front: passes do not compound.
            left = {
                (c, k): (1 - self.strength) * abs(_excess(state, c, g))
                for c in self.concepts
                for k, g in enumerate(state.groups(c))
            }
            for _ in range(self.max_rounds):
                changed = 0
                for c in self.concepts:
                    for k, group in enumerate(state.groups(c)):
                        mask = _pick(state, c, group, 1.0, rng, self.concepts, swap=False, left=left[(c, k)])
                        n = state.drop(mask, f"filter:{c}")
                        dropped[c] += n
                        changed += n
                if not changed:
                    break
        return {"rows_dropped": dropped, "rows_kept": int(state.keep.sum())}


def _excess(state, c, group) -> float:
    """``Σw[Δ>0] − Σw[Δ<0]`` of concept ``c`` over the kept pairs of ``group``."""
    d = state.delta(c)
    w = state.weight * state.keep
    return float((w * group * (d > 0)).sum() - (w * group * (d < 0)).sum())


def _pick(state, c, group, strength, rng, blocked, *, swap: bool, left: float = 0.0) -> np.ndarray:
    """Which pairs of ``group`` to drop (or swap) so concept ``c`` is balanced within the group.

    The imbalance is ``E = Σw[Δ>0] − Σw[Δ<0]``; dropping a pair on the winning side moves it by the
    pair's weight, swapping it by twice that. Pairs are taken in order of (other blocked concepts that
    differ, other concepts pointing the same way, a seeded shuffle) until the running total is closest
    to ``strength · E`` (or half of it when swapping); with ``left``, until ``|E| − left``.
    """
    d = state.delta(c)
    w = state.weight * state.keep
    excess = _excess(state, c, group)
    target = max(0.0, abs(strength * excess) - left) / (2 if swap else 1)
    mask = np.zeros(state.n, bool)
    live = w[state.keep & group & (d != 0)]
    if not len(live) or target < 0.5 * live.min():
        return mask
    direction = np.sign(excess)
    cand = np.flatnonzero(state.keep & group & (np.sign(d) == direction))
    others_blocked = [state.index(o) for o in blocked if o != c]
    others = [j for j, o in enumerate(state.concepts) if o != c]
    D = state.delta()[cand]
    n_blocked = (D[:, others_blocked] != 0).sum(axis=1) if others_blocked else np.zeros(len(cand))
    n_same = (np.sign(D[:, others]) == direction).sum(axis=1) if others else np.zeros(len(cand))
    order = cand[np.lexsort((rng.permutation(len(cand)), n_same, n_blocked))]
    cum = np.concatenate([[0.0], np.cumsum(w[order])])
    m = int(np.argmin(np.abs(cum - target)))
    mask[order[:m]] = True
    return mask
