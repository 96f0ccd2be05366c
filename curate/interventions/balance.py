"""Balance: weights under which a blocked magnitude's mean Δ is zero, not only its win-rate 0.5."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .. import stats as S
from ..recipe import MAGNITUDES, is_magnitude  # noqa: F401  (re-exported)
from ._balance import Constraint, JointInfeasible
from ._state import PairState
from .rebalance import Rebalance, _adjustment_columns

#: the before/after columns of a magnitude's weighted mean Δ, in sd (× ``scale``: in its ``unit``); NaN for counts
MEAN_DELTA_COLUMNS = [
    "unit",
    "scale",
    "mean_delta_before",
    "mean_delta_low_before",
    "mean_delta_high_before",
    "mean_delta_after",
    "mean_delta_low_after",
    "mean_delta_high_after",
]


def unit_of(concept: str) -> str:
    """The unit a magnitude's scores are in (``words`` for length, ``activation`` for an SAE feature)."""
    return MAGNITUDES.get(concept, "activation" if concept.startswith("sae:") else "matches")


def concept_scale(state, concept: str, prior: np.ndarray) -> float:
    """The sd of a concept's scores over both responses of the weighted rows (:func:`curate.stats.pooled_scale`):
    the unit of a standardised mean Δ (the learning prediction's ``delta_std``); 1 where it is constant."""
    j = state.index(concept)
    live = prior > 0
    sd = S.pooled_scale(state.chosen[live][:, [j]], state.rejected[live][:, [j]], prior[live])[0]
    return float(sd) if np.isfinite(sd) and sd > 0 else 1.0


class Balance(Rebalance):
    r"""Weights under which each blocked magnitude's weighted mean Δ is zero — DPO follows the magnitude.

    :class:`Rebalance` makes a blocked concept win half of the time under the weights. For a magnitude
    such as length that is not enough: when the longer answer wins rarely but by a lot, the win-rate is
    0.5 and the weighted mean Δ is still positive, and the DPO gradient (``∝ Σᵢ wᵢ σ(−mᵢ) ∇(log π(y_c) −
    log π(y_r))``) pushes towards the side with more of it. ``Balance`` adds, for each concept in
    ``magnitudes``, the constraint that the weighted mean of its standardised Δ (``zᵢ = Δᵢ / sd``, the sd of
    its scores over both responses) is zero:

        ``min Σᵢ wᵢ²/pᵢ  s.t.  Σ w = Σ p,  Σᵢ wᵢ sᵢc = 0 (win-rate 0.5),  Σᵢ wᵢ zᵢc = 0 (mean Δ 0)  ∀c,  w ≥ 0``

    jointly for all blocked concepts (the win-rate constraint of a magnitude is dropped, and reported, where
    it cannot hold together with the mean; counts only get the win-rate constraint), within each subset when
    the state has subsets. With ``method="entropy"`` the weights minimise KL(w‖p) instead (entropy
    balancing, Hainmueller 2012: ``wᵢ = pᵢ exp(μ·aᵢ)``, never zero). For an amplified magnitude,
    ``targets`` gives a wanted mean Δ in sd instead of zero (no win-rate constraint). A target outside
    what any weighting can reach (every Δ of one sign, or a mean beyond the largest Δ) raises a
    :class:`~curate.errors.CurateError` naming the concept and the closest achievable value.

    Args:
        concepts: concept ids (blocked, and amplified ones with a target).
        strength: share of each imbalance removed, in (0, 1]; a list gives one per concept.
        magnitudes: the concepts whose mean Δ is balanced (default: every concept of the step); the others
            only get their win-rate balanced, exactly as :class:`Rebalance` does.
        targets: concept -> wanted weighted mean Δ in sd (amplify); 0 for the others.
        win_rate: also make each blocked magnitude win half of the time. Where the two cannot hold together
            (the longer answer wins rarely but always by more than it loses by), the mean Δ is kept and the
            win-rate constraint of the magnitudes dropped; the report lists them in ``win_rate_not_balanced``.
        method, presence, adjust_for, within_subsets: as for :class:`Rebalance`.

    Example:

        >>> import numpy as np
        >>> from curate.interventions import Balance, PairState
        >>> d = np.array([[300.0], [20], [-40], [-50], [-60]])  # words; the longer answer wins 2 of 5
        >>> n = len(d)
        >>> st = PairState(["length"], d.clip(0) + 100, (-d).clip(0) + 100, np.ones(n, bool), np.ones(n, bool),
        ...                np.array([""] * n, object), np.ones(n), np.zeros(n), np.zeros(n, bool), np.ones(n, int))
        >>> b = Balance(["length"], presence=False).apply(st)
        >>> st.weight.round(2).tolist(), round(st.win_rates()["length"], 3)
        ([0.27, 2.23, 0.76, 0.83, 0.9], 0.5)
        >>> abs(b.stats_["mean_delta_after"]["length"]) < 1e-9  # Rebalance gives all winners 1.25: mean Δ +55 words
        True
    """

    name = "balance"

    def __init__(
        self,
        concepts: Iterable[str],
        strength: float | Sequence[float] = 1.0,
        magnitudes: Iterable[str] | None = None,
        targets: dict[str, float] | None = None,
        win_rate: bool = True,
        **kwargs,
    ):
        super().__init__(concepts, strength, **kwargs)
        self.win_rate = win_rate
        self._with_sign = win_rate
        self.magnitudes = list(self.concepts if magnitudes is None else magnitudes)
        self.targets = dict(targets or {})

    def params(self):
        out = {**super().params(), "magnitudes": self.magnitudes}
        if self.targets:
            out["targets"] = self.targets
        return out

    def _usable(self, state, prior):
        use, skipped = super()._usable(state, prior)
        # a magnitude with a one-sided Δ is not skipped: its mean constraint raises the clear error
        return [c for c in self.concepts if c in use or c in self.magnitudes], {
            c: v for c, v in skipped.items() if c not in self.magnitudes
        }

    def _constraints(self, state, use, prior):
        strengths = dict(zip(self.concepts, self._strengths()))
        cons = []
        for c in use:
            if c in self.magnitudes:
                scale = concept_scale(state, c, prior)
                cons.append(
                    Constraint(
                        c, "mean", state.delta(c) / scale, strengths[c], self.targets.get(c, 0.0), scale, "raise"
                    )
                )
            if c not in self.targets and (c not in self.magnitudes or self._with_sign):
                cons += self._sign_constraints(state, c, strengths[c])
        adj, not_adjusted = _adjustment_columns(state, use, self._adjusters(state), prior > 0)
        cons += [Constraint(c, "adjust", sign * z, strengths[c]) for c, _, sign, z in adj]
        return cons, adj, not_adjusted

    def _weights(self, state) -> dict:
        prior = state.weight * state.keep
        scales = {c: concept_scale(state, c, prior) for c in self.magnitudes}
        before = {c: weighted_mean_delta(state.delta(c), prior) for c in self.magnitudes}
        self._with_sign = self.win_rate
        saved = state.weight.copy()
        try:
            out = super()._weights(state)
        except JointInfeasible:
            if not self.win_rate:
                raise
            state.weight[:] = saved  # the mean Δ first: keep the win-rate constraints of the counts only
            self._with_sign = False
            out = super()._weights(state)
            out["win_rate_not_balanced"] = [c for c in self.magnitudes if c not in self.targets]
        after_w = state.weight * state.keep
        after = {c: weighted_mean_delta(state.delta(c), after_w) for c in self.magnitudes}
        out["unit"] = {c: unit_of(c) for c in self.magnitudes}
        out["scale"] = scales
        out["mean_delta_before"] = {c: before[c][0] / scales[c] for c in self.magnitudes}
        out["mean_delta_after"] = {c: after[c][0] / scales[c] for c in self.magnitudes}
        return out


def weighted_mean_delta(delta: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted mean of ``delta`` with a 95% CI: ``(mean, low, high)``.

    The standard error is the weighted (sandwich) one, ``√(Σ wᵢ² (Δᵢ − m)²) / Σ w``, which reduces to
    ``sd/√n`` for equal weights; NaN where no row has weight.

    Example:

        >>> import numpy as np
        >>> [round(v, 3) for v in weighted_mean_delta(np.array([1.0, -1.0, 2.0, 0.0]), np.ones(4))]
        [0.5, -0.596, 1.596]
    """
    w = np.asarray(w, float)
    d = np.asarray(delta, float)
    tot = w.sum()
    if tot <= 0:
        return float("nan"), float("nan"), float("nan")
    m = float((w * d).sum() / tot)
    se = float(np.sqrt((w**2 * (d - m) ** 2).sum()) / tot)
    return m, m - 1.959963984540054 * se, m + 1.959963984540054 * se


def add_mean_delta(table: pd.DataFrame, before: PairState, after: PairState) -> pd.DataFrame:
    """Fill the :data:`MEAN_DELTA_COLUMNS` of a before/after table for its magnitude concepts (``length``,
    SAE features): the weighted mean Δ with a 95% CI, in sd of the concept's scores before curation
    (``scale``, in its ``unit``), over the rows of the written ``train`` split (a resampled row once per copy).

    A block of a magnitude is done when both its win-rate is ≈ 0.5 and its mean Δ ≈ 0: the DPO gradient
    follows the magnitude, so a longer answer that wins rarely but by a lot still teaches length."""
    table = table.copy()
    for col in MEAN_DELTA_COLUMNS:
        table[col] = None if col == "unit" else np.nan
    w0 = before.weight * before.keep * before.copies
    w1 = after.weight * after.keep * after.copies
    for i, c in enumerate(table["concept"]):
        if not is_magnitude(c) or c not in before.concepts:
            continue
        scale = concept_scale(before, c, w0)
        b = weighted_mean_delta(before.delta(c) / scale, w0)
        a = weighted_mean_delta(after.delta(c) / scale, w1)
        table.loc[i, MEAN_DELTA_COLUMNS] = [unit_of(c), scale, *b, *a]
    return table


def mean_delta_text(row: dict, side: str | None = None) -> str:
    """A magnitude's weighted mean Δ with its CI, in sd and in its unit: ``+0.33 sd (+31.2 words) [+0.27, +0.39]``;
    both sides joined by an arrow when ``side`` is None; ``""`` for a count concept (no ``scale``).

    Example:

        >>> mean_delta_text({"unit": "words", "scale": 100.0, "mean_delta_before": 0.3, "mean_delta_low_before": 0.2,
        ...                  "mean_delta_high_before": 0.4}, "before")
        '+0.300 sd (+30.0 words) [+0.200, +0.400]'
    """
    scale = row.get("scale")
    if scale is None or not np.isfinite(scale):
        return ""
    if side is None:
        return f"{mean_delta_text(row, 'before')} → {mean_delta_text(row, 'after')}"
    m, lo, hi = (row.get(f"mean_delta{k}_{side}") for k in ("", "_low", "_high"))
    if m is None or not np.isfinite(m):
        return "—"
    v = m * scale
    v = 0.0 if abs(v) < 0.005 else v
    return f"{m:+.3f} sd ({v:+.{2 if abs(v) < 10 else 1}f} {row.get('unit') or ''}) [{lo:+.3f}, {hi:+.3f}]"


def subset_balance(before: PairState, after: PairState, concepts: list[str]) -> list[dict]:
    """Per subset and concept: the win-rate and, for a magnitude, the weighted mean Δ (in sd of the pooled
    scores before curation), before and after — a block within subsets is done when every subset is balanced.
    ``[]`` when the state has no subsets.

    Rows of the ``train`` split count once per copy, as in :func:`add_mean_delta`."""
    if before.subsets is None:
        return []
    w0 = before.weight * before.keep * before.copies
    w1 = after.weight * after.keep * after.copies
    out = []
    for g in sorted(set(before.subsets[w0 > 0])):
        m = before.subsets == g
        for c in concepts:
            d0, d1 = before.delta(c)[m], after.delta(c)[m]
            row = {
                "subset": str(g),
                "concept": c,
                "win_rate_before": _win(d0, w0[m]),
                "win_rate_after": _win(d1, w1[m]),
            }
            if is_magnitude(c):
                scale = concept_scale(before, c, w0)
                row["mean_delta_before"] = weighted_mean_delta(d0 / scale, w0[m])[0]
                row["mean_delta_after"] = weighted_mean_delta(d1 / scale, w1[m])[0]
            out.append(row)
    return out


def _win(d: np.ndarray, w: np.ndarray) -> float:
    tot = float((w * (d != 0)).sum())
    return float((w * (d > 0)).sum() / tot) if tot > 0 else float("nan")
