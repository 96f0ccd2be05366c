"""Relabel: swap chosen and rejected where the preference is attributable to a blocked concept."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .base import Intervention


class Relabel(Intervention):
    """Swap chosen and rejected in the pairs most attributable to a blocked concept (``swapped`` column).

    **Rule.** For a blocked concept c, a pair is a *candidate* when the chosen response shows more of c
    (Δc > 0) and no other blocked concept favours the rejected response (swapping it would teach that
    concept instead). Candidates are ranked by how attributable the preference is to c: first the pairs
    where the fewest other recipe concepts also favour the chosen response (c is the only visible
    reason it won), ties broken by a seeded shuffle. The top ``m = round(strength · (n₊ − n₋) / 2)``
    candidates are swapped (weighted counts) — separately among pairs where only one response shows c and
    pairs where both do, so count and presence win-rates are both balanced — which brings c's win-rate to 0.5 at ``strength=1``: each
    swap turns one c-win into one c-loss. Concepts are processed in order, each on the already-relabelled
    data. Relabelling assumes the swapped pairs carried no other preference; where they did (e.g. a
    correct answer that also flattered), that signal is inverted — rebalancing avoids this at the cost
    of ESS.

    Args:
        concepts: blocked concept ids.
        strength: share of the imbalance removed, in (0, 1].
        seed: seed of the tie-breaking shuffle.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Relabel, state_from_dataset
        >>> state = state_from_dataset(annotate(make_preference_pairs(300).dataset, ["flattery"]), ["flattery"])
        >>> r = Relabel(["flattery"]).apply(state)
        >>> abs(state.win_rates()["flattery"] - 0.5) < 0.01, int(state.swapped.sum()) == r.stats_["swapped"]["flattery"]
        (True, True)
    """

    name = "relabel"

    def __init__(self, concepts: Iterable[str], strength: float = 1.0, seed: int = 0):
        super().__init__(concepts, strength)
        self.seed = seed

    def params(self):
        return {**super().params(), "seed": self.seed}

    def _apply(self, state):
        rng = np.random.default_rng(self.seed)
        before = state.win_rates()
        swapped = {}
        for c in self.concepts:
            d = state.delta(c)
            w = state.weight * state.keep
            base = state.keep & (d > 0)
            for o in self.concepts:
                if o != c:
                    base &= state.delta(o) <= 0
            others = [j for j, o in enumerate(state.concepts) if o != c]
            n = 0
            for group in state.groups(c):
                excess = float((w * group * (d > 0)).sum() - (w * group * (d < 0)).sum())
                target = self.strength * excess / 2
                if target <= 0:
                    continue
                cand = np.flatnonzero(base & group)
                n_other = (state.delta()[cand][:, others] > 0).sum(axis=1) if others else np.zeros(len(cand))
                order = cand[np.lexsort((rng.permutation(len(cand)), n_other))]
                cum = np.concatenate([[0.0], np.cumsum(w[order])])
                m = int(np.argmin(np.abs(cum - target)))
                mask = np.zeros(state.n, bool)
                mask[order[:m]] = True
                state.swap(mask)
                n += m
            swapped[c] = n
        after = state.win_rates()
        return {"swapped": swapped, "rows_swapped": int(state.swapped.sum()),
                "win_rate_before": {c: before[c] for c in self.concepts},
                "win_rate_after": {c: after[c] for c in self.concepts}}
