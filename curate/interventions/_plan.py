"""Plan a recipe: the intervention steps it asks for, built through one registry (:data:`BUILDERS`)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..recipe import Recipe, is_magnitude
from .balance import Balance
from .base import Intervention
from .filter import Filter
from .inoculate import Inoculate
from .margin import Margin
from .match import Match
from .rebalance import Rebalance, Resample
from .relabel import Relabel
from .training import Ablate, LengthPenalty, Steer
from .upweight import Upweight

Items = list  # [(concept id, its Rule)] for one intervention kind


def _mean_strength(items: Items) -> float:
    return float(np.mean([r.strength for _, r in items]))


def _filter_steps(items: Items, recipe: Recipe) -> list[Intervention]:
    steps: list[Intervention] = []
    for mode in ("balance", "differ"):  # one step per mode
        sel = [(c, r) for c, r in items if (r.filter_mode or "balance") == mode]
        if sel:
            steps.append(Filter([c for c, _ in sel], strength=_mean_strength(sel), mode=mode, seed=recipe.seed))
    return steps


def _weighting_steps(items: Items, recipe: Recipe) -> list[Intervention]:
    """``rebalance`` and ``balance`` rules share one joint weighting step (two would undo each other): a
    :class:`Balance` whose magnitudes are the magnitude concepts of ``balance`` rules, else a :class:`Rebalance`."""
    within = recipe.block_within != "pooled"
    ids = [c for c, _ in items]
    strengths = [1.0 if r.action == "amplify" else r.strength for _, r in items]  # amplify: reach the target
    balanced = [(c, r) for c, r in items if "balance" in (r.interventions or [])]
    if not balanced:
        return [Rebalance(ids, strength=strengths, adjust_for=recipe.adjusters(), within_subsets=within)]
    targets = {c: r.target for c, r in balanced if r.action == "amplify"}
    targets = {c: (t if t is not None else 0.0) for c, t in targets.items()}
    mags = [c for c, r in balanced if is_magnitude(c) or r.action == "amplify"]
    return [
        Balance(ids, strengths, magnitudes=mags, targets=targets, adjust_for=recipe.adjusters(), within_subsets=within)
    ]


def _first(items: Items, key: str, default):
    return next((getattr(r, key) for _, r in items if getattr(r, key) is not None), default)


#: intervention name -> builder of its steps from ``[(concept, rule)]``, in the order the steps run (each
#: sees the result of the previous ones). ``balance`` items are built with ``rebalance``'s (one joint step).
BUILDERS: dict[str, Callable[[Items, Recipe], list[Intervention]]] = {
    "relabel": lambda items, rec: [Relabel([c for c, _ in items], strength=_mean_strength(items), seed=rec.seed)],
    "filter": _filter_steps,
    "match": lambda items, rec: [Match([c for c, _ in items], tolerance=_first(items, "tolerance", 0.05))],
    "upweight": lambda items, rec: [Upweight([c], strength=r.strength) for c, r in items],
    "rebalance": _weighting_steps,
    "resample": lambda items, rec: [
        Resample(
            [c for c, _ in items],
            strength=[r.strength for _, r in items],
            adjust_for=rec.adjusters(),
            seed=rec.seed,
            within_subsets=rec.block_within != "pooled",
        )
    ],
    "margin": lambda items, rec: [Margin({c: r.action for c, r in items}, strength={c: r.strength for c, r in items})],
    "inoculate": lambda items, rec: [
        Inoculate([c for c, _ in items], instructions={c: r.instruction for c, r in items if r.instruction})
    ],
    "ablate": lambda items, rec: [Ablate([c for c, _ in items])],
    "steer": lambda items, rec: [Steer([c for c, _ in items], alpha=_first(items, "alpha", 4.0))],
    "length_penalty": lambda items, rec: [
        LengthPenalty([c for c, _ in items], alpha=_first(items, "length_alpha", 0.01))
    ],
}

#: Order in which a recipe's interventions run (each sees the result of the previous ones).
ORDER = tuple(BUILDERS)


def plan(recipe: Recipe) -> list[Intervention]:
    """The interventions a recipe asks for, in :data:`ORDER`, one object per intervention kind.

    Example:

        >>> from curate.recipe import Recipe
        >>> plan(Recipe.from_ids(block=["flattery"], amplify=["refusal"]))
        [Upweight(concepts=['refusal'], strength=1.0), Rebalance(concepts=['flattery'], strength=[1.0], method='max_ess', presence=True)]
    """
    by: dict[str, list[tuple[str, Any]]] = {k: [] for k in ORDER}
    for rule in recipe.rules:
        for name in rule.interventions or []:
            for c in rule.concepts:
                by["rebalance" if name == "balance" else name].append((c, rule))
    steps: list[Intervention] = []
    for name in ORDER:
        if by[name]:
            steps += BUILDERS[name](by[name], recipe)
    # merge consecutive single-concept Upweight steps of equal strength
    merged: list[Intervention] = []
    for s in steps:
        if (
            merged
            and isinstance(s, Upweight)
            and isinstance(merged[-1], Upweight)
            and s.strength == merged[-1].strength
        ):
            merged[-1].concepts += s.concepts
        else:
            merged.append(s)
    return merged
