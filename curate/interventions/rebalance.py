"""Rebalance: per-pair weights under which blocked concepts stop winning; and its resampling variant."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from ._balance import Constraint, balance_weights, entropy_weights, solve_constraints, unique_rows  # noqa: F401  (re-exported)
from .base import Intervention


class Rebalance(Intervention):
    """Per-pair weights under which each blocked concept's win-rate is 0.5, keeping the most ESS.

    **Estimator.** For blocked concepts ``c = 1..k`` let ``sᵢc = sign(Δᵢc)`` (+1: the chosen response
    shows more of c, −1: the rejected does, 0: tie). A concept's weighted win-rate is
    ``Σ w [s>0] / Σ w [s≠0]``, which equals 0.5 exactly when ``Σᵢ wᵢ sᵢc = 0``. All blocked concepts are
    balanced *jointly*: the weights solve ``min Σ wᵢ²/pᵢ`` subject to ``Σ w = Σ p`` and
    ``Σ wᵢ sᵢc = (1 − strength_c) Σ pᵢ sᵢc`` for every c, with ``w ≥ 0``, where ``p`` are the current
    weights (1, or the amplify step's). This is linear calibration (Deville & Särndal 1992) truncated at
    zero — the maximum-Kish-ESS weighting meeting the constraints; unlike balancing each concept
    separately, fixing one concept cannot undo another, and unlike raking/entropy balancing (exponential
    tilting over the same joint strata of sign vectors) it maximises ESS rather than minimising a KL
    divergence (both are available: ``method="entropy"``). The weights are constant within each of the
    ≤ 3^k joint strata of sign vectors.

    Scores are counts, so "more of c" (sign of Δ) and "only one response shows c" (sign of the presence
    difference ``[score_c(y_c) > 0] − [score_c(y_r) > 0]``) can disagree where both responses show c. With
    ``presence=True`` (default) both are balanced: one more constraint per concept, added only where the
    two signs differ somewhere.

    **Adjusting for other concepts.** A balanced win-rate can still teach the concept through what travels
    with it: in generated data with 10% flipped labels, the pairs where the chosen response flatters are
    mostly unflipped, so their chosen side also carries more Markdown and length (Δ markdown +1.09 vs −0.04
    where the rejected flatters, after plain rebalancing). A policy trained on such pairs learns the
    rewarded style and the blocked concept rides along with it. ``adjust_for`` adds, per blocked concept
    ``c`` and adjuster ``o``, the constraint ``Σᵢ wᵢ sᵢc Δᵢo / sd(Δo) = (1 − strength) Σᵢ pᵢ sᵢc Δᵢo / sd(Δo)``:
    at full strength ``o``'s mean Δ is the same where ``c`` wins as where it loses (a standardised mean
    difference of 0, as in covariate balancing), so no other concept's reward can be traced to ``c``. The
    report gives the largest |standardised mean difference| over the adjusters before and after. It costs
    effective sample size (1,200 generated pairs, flattery and agreement blocked: ESS 882 plain, 632
    adjusted for every other named concept).

    A concept whose Δ points one way only among kept pairs cannot be balanced without dropping every
    pair where it differs; it is skipped and reported (use :class:`Filter` with ``mode="differ"``).

    Args:
        concepts: blocked concept ids.
        strength: share of each concept's imbalance removed, in (0, 1]; a list gives one per concept.
        method: ``"max_ess"`` (chi-square calibration, default) or ``"entropy"`` (raking).
        presence: also balance the presence difference (see above).
        adjust_for: concept ids whose Δ must not differ between the pairs where a blocked concept wins
            and where it loses, or ``"all"``: every other concept of the state (see above). ``None``: none.
        within_subsets: when the state has subsets (``PairState.subsets``, the audit's ``--by``), meet
            every constraint within each subset, each subset keeping its prior mass (default); ``False``:
            pooled over all rows. Balancing only the pooled win-rate leaves opposite preferences in two
            subsets in place (helpful prefers the longer answer, harmless the shorter), and a model learns both.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Rebalance, state_from_dataset
        >>> ds = annotate(make_preference_pairs(400).dataset, ["flattery", "markdown"])
        >>> state = state_from_dataset(ds, ["flattery", "markdown"])
        >>> r = Rebalance(["flattery", "markdown"]).apply(state)
        >>> {c: round(v, 3) for c, v in state.win_rates().items()}
        {'flattery': 0.5, 'markdown': 0.5}
    """

    name = "rebalance"

    def __init__(
        self,
        concepts: Iterable[str],
        strength: float | Sequence[float] = 1.0,
        method: str = "max_ess",
        presence: bool = True,
        adjust_for: Sequence[str] | str | None = None,
        within_subsets: bool = True,
    ):
        super().__init__(concepts, strength)
        self.method = method
        self.presence = presence
        self.adjust_for = adjust_for if adjust_for is None or isinstance(adjust_for, str) else list(adjust_for)
        self.within_subsets = within_subsets

    def params(self):
        out = {**super().params(), "method": self.method, "presence": self.presence}
        if self.adjust_for is not None:
            out["adjust_for"] = self.adjust_for
        if not self.within_subsets:
            out["within_subsets"] = False
        return out

    def _adjusters(self, state) -> list[str]:
        """The adjuster ids: ``adjust_for`` checked against the state's concepts (``"all"``: every one)."""
        if self.adjust_for is None:
            return []
        if isinstance(self.adjust_for, str):
            if self.adjust_for != "all":
                raise ConfigError(f"adjust_for must be a list of concept ids or 'all', got {self.adjust_for!r}.")
            return list(state.concepts)
        for c in self.adjust_for:
            state.index(c)  # raises ConceptError listing the concepts available
        return list(self.adjust_for)

    def _strengths(self) -> np.ndarray:
        s = np.broadcast_to(np.asarray(self.strength, float), (len(self.concepts),)).copy()
        if np.any((s <= 0) | (s > 1)):
            raise ConfigError(f"strength must be in (0, 1], got {self.strength}.")
        return s

    def _usable(self, state, prior) -> tuple[list[str], dict[str, str]]:
        """The blocked concepts whose Δ points both ways among the weighted rows, and why the others are not."""
        use, skipped = [], {}
        for c in self.concepts:
            d = state.delta(c)
            pos, neg = int(((d > 0) & (prior > 0)).sum()), int(((d < 0) & (prior > 0)).sum())
            if pos == 0 or neg == 0:
                if pos + neg:
                    skipped[c] = f"Δ points one way only ({pos} pairs chosen-more, {neg} rejected-more)"
                continue
            use.append(c)
        return use, skipped

    def _sign_constraints(self, state, c: str, strength: float) -> list[Constraint]:
        """The win-rate constraint of ``c`` and, where it differs, its presence constraint."""
        s_count = np.sign(state.delta(c)).astype(float)
        out = [Constraint(c, "sign", s_count, strength)]
        if self.presence:
            s_pres = np.sign((state.side(c, "chosen") > 0).astype(float) - (state.side(c, "rejected") > 0))
            if np.any(s_pres != s_count):
                out.append(Constraint(c, "presence", s_pres, strength))
        return out

    def _constraints(self, state, use: list[str], prior) -> tuple[list[Constraint], list[tuple], dict]:
        """Every constraint of the step: the win-rates (and presence) of ``use``, then the adjusters'."""
        strengths = dict(zip(self.concepts, self._strengths()))
        cons = [k for c in use for k in self._sign_constraints(state, c, strengths[c])]
        adj, not_adjusted = _adjustment_columns(state, use, self._adjusters(state), prior > 0)
        cons += [Constraint(c, "adjust", sign * z, strengths[c]) for c, _, sign, z in adj]
        return cons, adj, not_adjusted

    def _weights(self, state) -> dict:
        prior = state.weight * state.keep
        before = state.win_rates()
        before_ess = state.ess()
        use, skipped = self._usable(state, prior)
        cons, adj, not_adjusted = self._constraints(state, use, prior)
        subsets = state.subsets if self.within_subsets else None
        w, info, skipped_in = solve_constraints(cons, prior, subsets, self.method)
        state.weight[:] = np.where(state.keep, w, 0.0)
        w = state.weight[state.keep]
        smd = {}
        if adj:
            smd = {
                "adjusted_for": sorted({o for _, o, _, _ in adj}),
                "not_adjusted": not_adjusted,
                "max_smd_before": _max_smd(adj, prior),
                "max_smd_after": _max_smd(adj, state.weight * state.keep),
            }
        return {
            "balanced": use,
            "skipped": {**skipped, **skipped_in},
            **info,
            **smd,
            **({"within_subsets": sorted(set(subsets[prior > 0]))} if subsets is not None else {}),
            "win_rate_before": {c: before[c] for c in self.concepts},
            "win_rate_after": {c: state.win_rates()[c] for c in self.concepts},
            "ess_before": before_ess,
            "ess_after": state.ess(),
            "rows_kept": int(state.keep.sum()),
            "zero_weight_rows": int((w == 0).sum()),
            "weight_min": float(w.min()) if len(w) else 0.0,
            "weight_max": float(w.max()) if len(w) else 0.0,
            "strata": _strata_table(state, use),
        }

    def _apply(self, state):
        return self._weights(state)


def _adjustment_columns(
    state, blocked: list[str], adjusters: list[str], live: np.ndarray
) -> tuple[list[tuple], dict[str, str]]:
    """``(c, o, sign(Δc), Δo / sd(Δo))`` for each blocked ``c`` and adjuster ``o ≠ c`` whose Δ varies among
    the live rows (sd over them); the constraint column of ``adjust_for`` is the product of the last two.

    An adjuster that moves with ``c`` in every live pair where it differs (``sign(Δc)·Δo`` never negative, or
    never positive: ``log_length`` for ``length``) cannot be equalised without zero weight on every pair
    where ``c`` differs; it is left out and reported as ``"c/o": why``."""
    out, skipped = [], {}
    for o in adjusters:
        d = state.delta(o).astype(float)
        sd = float(d[live].std()) if live.any() else 0.0
        if sd == 0:
            continue
        for c in blocked:
            if o == c:
                continue
            sign = np.sign(state.delta(c))
            x = (sign * d)[live]
            if (x > 0).any() != (x < 0).any():
                skipped[f"{c}/{o}"] = "moves with the blocked concept in every pair where both differ"
                continue
            out.append((c, o, sign, d / sd))
    return out, skipped


def _max_smd(adj: list[tuple], w: np.ndarray) -> float:
    """Largest |weighted mean of Δo/sd where c wins − where c loses| over the adjustment columns."""
    best = 0.0
    for _, _, sign, z in adj:
        wp, wn = w * (sign > 0), w * (sign < 0)
        if wp.sum() > 0 and wn.sum() > 0:
            best = max(best, abs(float((wp * z).sum() / wp.sum() - (wn * z).sum() / wn.sum())))
    return round(best, 4)


def _strata_table(state, concepts: list[str]) -> list[dict]:
    """Per joint stratum of sign(Δ): the sign pattern, rows and the weight given (for the report)."""
    if not concepts:
        return []
    S = np.sign(np.column_stack([state.delta(c) for c in concepts])).astype(int)
    kept = state.keep
    out = []
    pats, inv = unique_rows(S[kept].astype(float))
    pats = pats.astype(int)
    w = state.weight[kept]
    for j, pat in enumerate(pats):
        m = inv == j
        out.append({"signs": dict(zip(concepts, pat.tolist())), "rows": int(m.sum()), "weight": float(w[m].mean())})
    return out


class Resample(Rebalance):
    """The rebalancing weights realised by resampling rows, for trainers that cannot take weights.

    The weights of :class:`Rebalance` are turned into integer copy counts by systematic sampling (a
    seeded uniform offset, then ``countᵢ = ⌊Cᵢ + u⌋ − ⌊Cᵢ₋₁ + u⌋`` with ``C`` the cumulative expected
    counts ``size · w / Σw``), so every row is drawn within one of its expected count. Rows drawn zero
    times move to the ``dropped`` split (reason ``resample:not_drawn``); drawn rows appear ``count`` times,
    in the original order, with weight 1.

    Args:
        concepts, strength, method, presence, adjust_for, within_subsets: as for :class:`Rebalance` (the same
            positions and defaults).
        size: rows to draw (default: the number of kept rows).
        seed: seed of the offset.
    """

    name = "resample"

    def __init__(self, *args: Any, size: int | None = None, seed: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.size = size
        self.seed = seed

    def params(self):
        return {**super().params(), "size": self.size, "seed": self.seed}

    def _apply(self, state):
        stats = self._weights(state)
        w = state.weight * state.keep
        size = int(self.size or state.keep.sum())
        expected = size * w / w.sum()
        u = np.random.default_rng(self.seed).random()
        cum = np.floor(np.cumsum(expected) + u)
        counts = np.diff(np.concatenate([[np.floor(u)], cum])).astype(np.int64)
        not_drawn = state.drop(state.keep & (counts == 0), "resample:not_drawn")
        state.copies[:] = np.where(state.keep, counts, 1)
        state.weight[:] = np.where(state.keep, 1.0, 0.0)
        stats.update(
            {
                "size": int(counts.sum()),
                "rows_not_drawn": not_drawn,
                "max_copies": int(counts.max()) if len(counts) else 0,
                "win_rate_after": {c: state.win_rates(state.weight * state.copies)[c] for c in self.concepts},
                "ess_after": state.ess(),
                "rows_kept": int(state.keep.sum()),
            }
        )
        return stats
