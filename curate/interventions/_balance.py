"""Balancing one concept at a time by dropping or swapping pairs: the pair choice that :class:`Filter` and
:class:`Relabel` share, and the cyclic passes over the blocked concepts that both run."""

from __future__ import annotations

from typing import Callable

import numpy as np


def balance_in_passes(
    state, concepts: list[str], strength: float, rng, max_rounds: int, act: Callable, *, swap: bool
) -> dict[str, int]:
    """Balance each concept within each of its groups, in cyclic passes, and count the pairs acted on.

    Acting on pairs for one concept can unbalance another, so passes repeat (like iterative proportional
    fitting) until no pass changes a pair, at most ``max_rounds`` times. The imbalance left, ``1 − strength``
    of the first one, is fixed up front so passes do not compound.

    Args:
        state: the pair state, edited in place by ``act``.
        concepts: blocked concept ids.
        strength: share of each imbalance removed.
        rng: the tie-breaking generator.
        max_rounds: most passes.
        act: ``act(mask, concept) -> pairs changed``: drops or swaps the pairs in ``mask``.
        swap: pairs are swapped (each moves the imbalance twice as far) rather than dropped.

    Returns:
        Pairs changed per concept.
    """
    left = {(c, k): (1 - strength) * abs(_excess(state, c, g)) for c in concepts for k, g in enumerate(state.groups(c))}
    changed_by = {c: 0 for c in concepts}
    for _ in range(max_rounds):
        changed = 0
        for c in concepts:
            for k, group in enumerate(state.groups(c)):
                mask = _pick(state, c, group, 1.0, rng, concepts, swap=swap, left=left[(c, k)])
                n = act(mask, c)
                changed_by[c] += n
                changed += n
        if not changed:
            break
    return changed_by


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
