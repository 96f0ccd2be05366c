"""Every column name curate reads or writes lives here, and nowhere else.

The pair schema (what :func:`curate.load_pairs` returns)::

    row             the row's position in the source (0, 1, …): its identity through every step
    input_row       (only when the input had a ``row`` that is not its positions) that input's ``row``
    id              original row id (the row index when the input has none; may repeat or be null)
    prompt          the prompt as text (multi-turn prompts rendered "role: content")
    prompt_messages the prompt as chat messages [{"role", "content"}, ...]
    chosen          the preferred response (text)
    rejected        the dispreferred response (text)
    reason          "" for a usable pair, else why it is not used (``"invalid:<problem>"``,
                    or an intervention's reason such as ``"filter:markdown"``)

Concept scores added by annotators::

    chosen__<concept>, rejected__<concept>          float32, one per named concept
    chosen__sae:<source>__idx, ...__val              sparse top-k of an SAE (int32 / float32 lists)

Columns added by interventions::

    keep, weight, margin, swapped
"""

from __future__ import annotations

import re

ROW = "row"
INPUT_ROW = "input_row"  # an input's own ``row`` column, when it is not the input's positions
ID = "id"
PROMPT = "prompt"
PROMPT_MESSAGES = "prompt_messages"
CHOSEN = "chosen"
REJECTED = "rejected"
REASON = "reason"

SIDES = (CHOSEN, REJECTED)
PAIR_COLUMNS = (ROW, ID, PROMPT, PROMPT_MESSAGES, CHOSEN, REJECTED, REASON)

KEEP = "keep"
WEIGHT = "weight"
MARGIN = "margin"
SWAPPED = "swapped"

TRAIN_SPLIT = "train"
DROPPED_SPLIT = "dropped"

INVALID_PREFIX = "invalid:"
SEP = "__"
SAE_PREFIX = "sae:"


def score_column(side: str, concept: str) -> str:
    """Column holding a named concept's score of one side, e.g. ``chosen__flattery``."""
    return f"{side}{SEP}{concept}"


def sae_index_column(side: str, source: str) -> str:
    """Column holding the top-k SAE feature indices of one side, e.g. ``chosen__sae:smollm2-l15__idx``."""
    return f"{side}{SEP}{SAE_PREFIX}{source}{SEP}idx"


def sae_value_column(side: str, source: str) -> str:
    """Column holding the top-k SAE feature activations of one side."""
    return f"{side}{SEP}{SAE_PREFIX}{source}{SEP}val"


#: an SAE feature's concept id, as :func:`sae_concept_id` writes it (the source may hold any character; the
#: feature is the trailing number)
SAE_ID = re.compile(r"^sae:(?P<source>.+):(?P<feature>\d+)$")
#: a group of SAE features (the audit's groups), ``group:<source>:<n>``
GROUP_ID = re.compile(r"^group:(?P<source>.+):(?P<group>\d+)$")


def sae_concept_id(source: str, feature: int) -> str:
    """Concept id of one SAE feature, e.g. ``sae:smollm2-l15:123``."""
    return f"{SAE_PREFIX}{source}:{int(feature)}"


def parse_score_column(name: str) -> tuple[str, str] | None:
    """``chosen__length`` -> ``("chosen", "length")``; None for any other column."""
    for side in SIDES:
        prefix = side + SEP
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            if rest and not rest.startswith(SAE_PREFIX):
                return side, rest
    return None


def paired_concepts(names) -> list[str]:
    """The named concepts scored on both sides among the column ``names``, in column order.

    Example:

        >>> paired_concepts(["id", "chosen__length", "rejected__length", "chosen__polite", "chosen__sae:s__idx"])
        ['length']
    """
    names = list(names)
    present = set(names)
    return [
        p[1]
        for n in names
        if (p := parse_score_column(n)) and p[0] == CHOSEN and score_column(REJECTED, p[1]) in present
    ]


def parse_sae_column(name: str) -> tuple[str, str, str] | None:
    """``chosen__sae:src__idx`` -> ``("chosen", "src", "idx")``; None for any other column."""
    for side in SIDES:
        prefix = side + SEP + SAE_PREFIX
        if name.startswith(prefix) and (name.endswith(SEP + "idx") or name.endswith(SEP + "val")):
            source = name[len(prefix) : -len(SEP + "idx")]
            return side, source, name[-3:]
    return None


# -- subsets (per-subset audit) --------------------------------------------------------------------------
SUBSET = "subset"  # the subset a result / finding row is about; "" (POOLED) for all pairs together
POOLED = ""
WHERE = "where"  # a finding's one-line "where it holds"
MISSING_SUBSET = "(missing)"  # subset value given to rows whose subset column is empty
# columns taken as the subset column when the user gives none, in this order of preference
SUBSET_CANDIDATES = ("source", "subset", "split", "dataset", "category")


def subset_values(values):
    """Subset labels as strings; empty / missing values become :data:`MISSING_SUBSET`."""
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v) or str(v) == "":
            out.append(MISSING_SUBSET)
        else:
            out.append(str(v))
    import numpy as np

    return np.asarray(out, dtype=object)


#: the per-concept test statistics every audit table carries, in this order (pooled, per subset, streamed)
TEST_COLUMNS = [
    "n_pairs",
    "n_differ",
    "win_rate",
    "ci_low",
    "ci_high",
    "effect_size",
    "mean_delta",
    "p_value",
    "q_value",
    "length_controlled_coef",
    "length_controlled_p",
    "length_controlled_q",
    "discovery_win_rate",
    "discovery_q",
    "confirmation_win_rate",
    "confirmation_p",
    "confirmed",
]
