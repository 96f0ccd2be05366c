"""What a dataset teaches, in words: one sentence per audit finding.

The dataset card (:func:`curate.publish.make_card`) and the app's Overview both call
:func:`finding_sentences`, so the two never say different things about the same audit.

Example:

    >>> import pandas as pd
    >>> audit = pd.DataFrame({"concept": ["flattery"], "label": ["Praise of the user."], "finding": [True],
    ...                       "win_rate": [0.8], "ci_low": [0.75], "ci_high": [0.84], "n_differ": [304],
    ...                       "q_value": [3e-26], "length_controlled_q": [7.6e-8], "confirmed": [True]})
    >>> finding_sentences(audit)[0].text
    'the response with more of it was chosen in 80% [75%, 84%] of the 304 pairs where the two differ (q 3.0e-26, length-controlled q 7.6e-08; confirmed on held-out prompts).'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._format import fmt_q, pct, truthy  # noqa: F401  (re-exported: the card and the app format alike)

__all__ = ["FindingSentence", "finding_sentences", "fmt_q", "is_missing", "pct", "truthy"]


def is_missing(x) -> bool:
    """True for None and NaN (and anything that is not a number)."""
    try:
        return x is None or bool(np.isnan(float(x)))
    except (TypeError, ValueError):
        return False


@dataclass
class FindingSentence:
    """One finding in words.

    Attributes:
        concept: the concept id.
        label: its label (raw text: the caller escapes it for its medium), or "".
        note: e.g. ``"a group of 4 features"``, ``"the same idea as log_length"`` (its aliases), or "".
        text: the sentence after ``concept (label)``: ``"the response with more of it was chosen in …"``, ending
            in how the finding passed the rule (its ``passed`` column, :func:`curate.audit_base.finding_evidence`);
            the whole sentence when the audit gave the finding as text.
        given: True when ``text`` is the audit's own text (no concept/label prefix).
    """

    concept: str
    label: str
    note: str
    text: str
    given: bool = False


def finding_sentences(audit: pd.DataFrame | None, top: int = 10) -> list[FindingSentence]:
    """One sentence per finding the audit marked (a ``finding`` column: a flag, or a text), best first."""
    if audit is None or "finding" not in audit.columns:
        return []
    res = audit[truthy(audit["finding"])]
    if "finding_rank" in res:
        res = res.sort_values("finding_rank", na_position="last")
    out = []
    for _, r in res.head(top).iterrows():
        given = r["finding"]
        if isinstance(given, str) and given.strip().lower() not in ("true", "yes"):
            out.append(FindingSentence(str(r["concept"]), "", "", given, given=True))
            continue
        wr, lo, hi = r.get("win_rate"), r.get("ci_low"), r.get("ci_high")
        more = is_missing(wr) or wr >= 0.5
        if not more:  # report the side that wins
            wr, lo, hi = 1 - wr, 1 - hi, 1 - lo
        members = r.get("n_members")
        notes = [f"a group of {int(members)} features"] if not is_missing(members) and int(members) > 1 else []
        aliases = r.get("aliases")
        if isinstance(aliases, str) and aliases:
            notes.append(f"the same idea as {aliases}")
        note = "; ".join(notes)
        passed = r.get("passed")
        how = (
            passed
            if isinstance(passed, str) and passed
            else f"q {fmt_q(r.get('q_value'))}, length-controlled q {fmt_q(r.get('length_controlled_q'))}"
            + ("; confirmed on held-out prompts" if bool(r.get("confirmed", False)) else "")
        )
        text = (
            f"the response with {'more' if more else 'less'} of it was chosen in {pct(wr)} "
            f"[{pct(lo)}, {pct(hi)}] of the {int(r['n_differ']):,} pairs where the two differ ({how})."
        )
        out.append(FindingSentence(str(r["concept"]), str(r.get("label", "") or "").rstrip(". "), note, text))
    return out
