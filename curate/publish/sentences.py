"""Sentences shared by the dataset card and the app (one writer, so both say the same in the same words): what
the curated data teaches per blocked / amplified concept (before → after), and what each intervention did."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._text import _isnan


def _pct(x) -> str:
    return f"{100 * float(x):.1f}%"


def curation_sentences(before_after, actions: dict | None = None) -> list[dict]:
    """What the curated data teaches, one plain-text sentence per blocked or amplified concept (before → after).

    The one writer of these sentences: the dataset card and the app's Overview both quote it, so they say the
    same in the same words. ``before_after`` is the apply record's table (rows or a DataFrame); the result is
    ``[{"concept", "action", "text"}]`` with no markup (each caller escapes it for its medium).

    Example:

        >>> row = {"concept": "flattery", "action": "block", "win_rate_before": 0.8, "ci_low_before": 0.72,
        ...        "ci_high_before": 0.86, "win_rate_after": 0.5, "ci_low_after": 0.39, "ci_high_after": 0.61}
        >>> curation_sentences([row])[0]["text"]
        'the response with more of it was chosen in 80.0% (95% CI 72.0–86.0%) of the source pairs that differ in it, and in 50.0% (39.0–61.0%) of the curated pairs: no longer rewarded.'
    """
    rows = before_after.to_dict("records") if isinstance(before_after, pd.DataFrame) else list(before_after or [])
    actions = dict(actions or {})
    out = []
    for r in rows:
        concept = str(r.get("concept"))
        action = actions.get(concept) or str(r.get("action") or "")
        if action not in ("block", "amplify"):
            continue
        b, a = r.get("win_rate_before"), r.get("win_rate_after")
        if _isnan(b) or _isnan(a):
            text = "no source pair differs in it, so the rule changed nothing."
        else:
            lo, hi = r.get("ci_low_after"), r.get("ci_high_after")
            if action == "block":
                if not _isnan(lo) and lo > 0.5:
                    verdict = "still rewarded, less than before" if a < b else "still rewarded"
                elif not _isnan(hi) and hi < 0.5:
                    verdict = "now penalised (the other side wins)"
                else:
                    verdict = "no longer rewarded"
            else:
                verdict = "rewarded more" if a > b else "not rewarded more (other rules take weight from its pairs)"
            text = (
                f"the response with more of it was chosen in {_pct(b)} (95% CI {_pct(r['ci_low_before'])[:-1]}–"
                f"{_pct(r['ci_high_before'])}) of the source pairs that differ in it, and in {_pct(a)} "
                f"({_pct(lo)[:-1]}–{_pct(hi)}) of the curated pairs: {verdict}."
            )
        out.append({"concept": concept, "action": action, "text": text})
    return out


_STEP_SENTENCES = {
    "rebalance": "re-weighted the pairs so that {c} {is_are} chosen as often as not, keeping the most effective rows",
    "balance": "re-weighted the pairs so that {c} {is_are} chosen as often as not and, for a magnitude such as "
    "length, the chosen response has as much of {it_them} as the rejected one on average, keeping the most "
    "effective rows",
    "match": "dropped the pairs of {c} left without a mirror pair, so the chosen response is as often longer as "
    "shorter by each amount",
    "length_penalty": "recorded a length penalty for DPO training (R-DPO), so a longer chosen answer must earn its "
    "extra tokens",
    "resample": "drew rows by balancing weights (a row repeated as often as drawn) so that {c} {is_are} chosen as "
    "often as not",
    "filter": "dropped pairs on the winning side of {c} until {it_they} {is_are} chosen as often as not",
    "relabel": "swapped chosen and rejected in the pairs that reward {c} most plainly",
    "upweight": "counted the pairs whose chosen response shows {c} (and the rejected one does not) more",
    "margin": "gave each pair a reward margin, so the reward gets the part {c} explain{s} for free",
    "inoculate": "added a system instruction asking for {c} to the prompts of the pairs that reward {it_them}",
    "ablate": "recorded the directions of {c} to remove from the model's activations in training",
    "steer": "recorded the directions of {c} to add to the model's activations in training",
}


def step_sentence(step: dict) -> str:
    """One intervention of the apply record (its ``to_dict()``) as a plain-text sentence, what it did to the rows.

    Example:

        >>> step_sentence({"intervention": "rebalance", "concepts": ["flattery", "agreement"], "ess_after": 309.7,
        ...                "adjust_for": "all", "zero_weight_rows": 199})
        'Re-weighted the pairs so that flattery and agreement are chosen as often as not, keeping the most effective rows, with every named concept balanced between the pairs where they win and where they lose; 199 pairs got weight 0; effective sample size 309.7.'
    """
    name = str(step.get("intervention", ""))
    concepts = step.get("concepts") or []
    concepts = list(concepts) if isinstance(concepts, (list, tuple, dict)) else [str(concepts)]
    many = len(concepts) > 1
    c = " and ".join([", ".join(map(str, concepts[:-1])), str(concepts[-1])]) if many else "".join(map(str, concepts))
    fill = {
        "c": c or "the recipe's concepts",
        "is_are": "are" if many else "is",
        "it_they": "they" if many else "it",
        "it_them": "them" if many else "it",
        "s": "" if many else "s",
    }
    text = _STEP_SENTENCES.get(name, name + " ({c})").format(**fill)
    adjust = step.get("adjust_for")
    if adjust:
        who = "every named concept" if adjust == "all" else ", ".join(map(str, adjust))
        text += f", with {who} balanced between the pairs where {fill['it_they']} win{'' if many else 's'} and where {fill['it_they']} lose{'' if many else 's'}"
    extra = []
    for key, what in (
        ("rows_dropped", "{} pairs dropped"),
        ("rows_not_drawn", "{} pairs not drawn"),
        ("rows_swapped", "{} pairs swapped"),
        ("zero_weight_rows", "{} pairs got weight 0"),
        ("rows_with_any_instruction", "{} prompts got an instruction"),
        ("rows_nonzero", "{} pairs got a non-zero margin"),
    ):
        v = step.get(key)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            extra.append(what.format(int(v)))
    if isinstance(step.get("ess_after"), (int, float)) and name in ("rebalance", "balance", "resample", "upweight"):
        extra.append(f"effective sample size {float(step['ess_after']):.1f}")
    if step.get("win_rate_not_balanced"):
        names = ", ".join(map(str, step["win_rate_not_balanced"]))
        extra.append(f"the win-rate of {names} could not hold together with its mean Δ of 0 (the mean was kept)")
    if step.get("converged") is False:
        extra.append("the solver did not converge")
    return (text[:1].upper() + text[1:]) + ("; " + "; ".join(extra) if extra else "") + "."
