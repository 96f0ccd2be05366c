"""The rule tables of a recipe: the interventions each action allows, the defaults, which concepts are
magnitudes, and the checks of a rule's keys (kept apart from :mod:`curate.recipe` to keep each file short)."""

from __future__ import annotations

import math

from .. import _columns as C
from .._yaml import show_value
from ..errors import RecipeError

ACTIONS = ("allow", "block", "amplify")

#: Every intervention a rule can list: name -> (the actions it serves, the rule keys only it reads). Adding an
#: intervention means one line here and one builder in :data:`curate.interventions.apply.BUILDERS`;
#: :data:`ALLOWED_INTERVENTIONS` and the "key only used by" checks follow from this table.
INTERVENTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rebalance": (("block",), ("adjust_for",)),
    "balance": (("block", "amplify"), ("adjust_for", "target")),
    "resample": (("block",), ("adjust_for",)),
    "match": (("block",), ("tolerance",)),
    "filter": (("block",), ("filter_mode",)),
    "relabel": (("block",), ()),
    "inoculate": (("block",), ("instruction",)),
    "margin": (("block", "amplify"), ()),
    "ablate": (("block",), ()),
    "steer": (("block",), ()),
    "length_penalty": (("block",), ("length_alpha",)),
    "upweight": (("amplify",), ()),
}
ALLOWED_INTERVENTIONS: dict[str, tuple[str, ...]] = {
    "block": tuple(n for n, (acts, _) in INTERVENTIONS.items() if "block" in acts),
    "amplify": ("upweight", "margin", "balance"),
    "allow": (),
}
DEFAULT_INTERVENTION = {"block": ["rebalance"], "amplify": ["upweight"], "allow": []}
#: the default when a blocked rule holds a magnitude (``length``, ``log_length``, an SAE feature)
DEFAULT_MAGNITUDE_BLOCK = ["balance"]
_STRENGTH_RANGE = {"block": ", for 'block' in (0, 1]", "amplify": ", for 'amplify' > 0", "allow": ""}

#: named concepts that are magnitudes (continuous) rather than counts, with their unit
MAGNITUDES = {"length": "words", "log_length": "log words"}


def is_magnitude(concept: str) -> bool:
    """Whether a concept is a continuous magnitude (``length``, ``log_length``, an SAE activation): blocking
    it balances its mean Δ (``balance``) by default, not only its win-rate (``rebalance``).

    Example:

        >>> is_magnitude("length"), is_magnitude("sae:smollm2-l15:12"), is_magnitude("flattery")
        (True, True, False)
    """
    return concept in MAGNITUDES or concept.startswith(C.SAE_PREFIX)


def check_rules(recipe) -> None:
    """Validate a recipe's rules beyond their types; raises :class:`~curate.errors.RecipeError` naming the key."""
    seen: dict[str, tuple[int, int, str]] = {}
    for i, rule in enumerate(recipe.rules):
        allowed = ALLOWED_INTERVENTIONS[rule.action]
        for k, name in enumerate(rule.interventions or []):
            if name not in allowed:
                raise RecipeError(
                    f"rules[{i}].interventions[{k}]: {show_value(name)} is not an intervention for action "
                    f"{rule.action!r}. Allowed: {list(allowed) or 'none (allow only reports)'}."
                )
        if len(set(rule.interventions or [])) != len(rule.interventions or []):
            raise RecipeError(f"rules[{i}].interventions: duplicated entries in {show_value(rule.interventions)}.")
        for key in ("strength", "alpha"):
            value = getattr(rule, key)
            if value is not None and not math.isfinite(value):
                raise RecipeError(
                    f"rules[{i}].{key}: must be a finite number"
                    + (_STRENGTH_RANGE[rule.action] if key == "strength" else "")
                    + f"; got {value}."
                )
        if rule.action == "block" and not 0 < rule.strength <= 1:
            raise RecipeError(
                f"rules[{i}].strength: for 'block' it is the share of the imbalance removed, in "
                f"(0, 1]; got {rule.strength}."
            )
        if rule.action == "amplify" and not rule.strength > 0:
            raise RecipeError(f"rules[{i}].strength: for 'amplify' it is the extra weight, > 0; got {rule.strength}.")
        _check_keys_used(i, rule)
        for j, cid in enumerate(rule.concepts):
            if not isinstance(cid, str) or not cid:
                raise RecipeError(f"rules[{i}].concepts[{j}]: expected a concept id string, got {show_value(cid)}.")
            if cid in seen:
                pi, pj, pa = seen[cid]
                kind = "conflicting actions" if pa != rule.action else "duplicated action"
                raise RecipeError(
                    f"rules[{i}].concepts[{j}]: {kind} for {show_value(cid)}: {pa!r} at rules[{pi}].concepts[{pj}] "
                    f"and {rule.action!r} here. Name each concept in one rule only."
                )
            seen[cid] = (i, j, rule.action)
    uses = {n for r in recipe.rules for n in (r.interventions or [])}
    if "resample" in uses and {"rebalance", "balance"} & uses:
        ri = next(i for i, r in enumerate(recipe.rules) if "resample" in (r.interventions or []))
        raise RecipeError(
            f"rules[{ri}].interventions: 'resample' and '{sorted({'rebalance', 'balance'} & uses)[0]}' conflict: "
            "the joint weights are "
            "either kept as a `weight` column (rebalance) or realised by resampling rows (resample) "
            "for the whole dataset. Use one of them in every rule."
        )
    for i, s in enumerate(recipe.concepts):
        if s.kind == "sae" and not s.source:
            raise RecipeError(
                f"concepts[{i}].source: an SAE concept source needs its `source` name (the one in its "
                "columns `chosen__sae:<source>__idx`)."
            )


def _check_keys_used(i: int, rule) -> None:
    """A rule key that only some interventions read (:data:`INTERVENTIONS`) needs one of them listed."""
    listed = set(rule.interventions or [])
    for key in ("adjust_for", "filter_mode", "instruction", "target", "tolerance", "length_alpha"):
        if getattr(rule, key) is None:
            continue
        users = [n for n, (_, keys) in INTERVENTIONS.items() if key in keys]
        if listed & set(users):
            continue
        quoted = [repr(u) for u in users]
        names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
        raise RecipeError(
            f"rules[{i}].{key}: only used by the {names} intervention{'s' if len(users) > 1 else ''}, which this "
            f"rule does not list (interventions: {rule.interventions})."
        )
