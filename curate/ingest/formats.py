"""The formats :func:`~curate.ingest.load_pairs` accepts and how it tells them apart: :data:`FORMATS`,
:data:`RATED_POLICIES` (how rated completions become pairs), the keys a rated or pairwise row may use for its
prompt, texts and scores, the HH-RLHF turn markers, and :func:`detect_format` (the format from the column
names and a sample of rows).
"""

from __future__ import annotations

from collections import Counter

from ..errors import FormatError

FORMATS: dict[str, str] = {
    "standard": "TRL standard preference: prompt, chosen, rejected (strings)",
    "conversational": "TRL conversational: chosen, rejected (and optional prompt) as lists of {role, content}",
    "implicit": "implicit prompt: chosen, rejected (strings with a shared prompt prefix)",
    "hh": "HH-RLHF transcripts: chosen, rejected with '\\n\\nHuman:' / '\\n\\nAssistant:' turns",
    "rated": "rated completions: prompt|instruction + completions [{response, score}] or responses + scores",
    "pairwise": "pairwise judgments: instruction, output_1, output_2, preference (1 or 2; 1.5 = tie)",
}
RATED_POLICIES = {
    "best_vs_worst": "one pair per prompt: the highest-scored completion vs the lowest-scored one",
    "best_vs_random": "one pair per prompt: the best vs a random lower-scored one (seeded; UltraFeedback-binarized style)",
    "all_pairs": "every pair of completions with different scores (ids become '<row>:<i>-<j>')",
}
#: the keys a rated or pairwise row may hold its prompt in, and a rated completion its text and score in
PROMPT_KEYS = ("prompt", "instruction", "question", "input")
TEXT_KEYS = ("response", "text", "output", "completion", "content")
SCORE_KEYS = ("overall_score", "score", "rating", "fine-grained_score", "reward")

#: the turn markers of an HH-RLHF transcript
HUMAN = "\n\nHuman:"
ASSISTANT = "\n\nAssistant:"


def is_messages(v) -> bool:
    """True for a non-empty list of ``{role, content}`` dicts (a conversational response)."""
    return isinstance(v, list) and len(v) > 0 and all(isinstance(m, dict) and "role" in m and "content" in m for m in v)


def _row_kind(example: dict) -> str | None:
    """What one row's responses look like: ``"messages"``, ``"hh"`` (a transcript with an Assistant turn),
    ``"text"``, or None when they tell nothing (null, empty, another type)."""
    sides = [example.get("chosen"), example.get("rejected")]
    if any(is_messages(v) for v in sides):
        return "messages"
    texts = [v for v in sides if isinstance(v, str) and v.strip()]
    if any(ASSISTANT in v for v in texts):
        return "hh"
    return "text" if texts else None


def detect_format(columns, examples: dict | list[dict] | None = None) -> str:
    """Name the format of a dataset from its column names and its rows (one example, or a sample of rows
    spread across the data: the rows vote, and rows whose responses tell nothing, such as nulls, abstain).

    Raises:
        FormatError: listing the columns found and the accepted formats.

    Example:

        >>> detect_format(["prompt", "chosen", "rejected"], {"prompt": "a", "chosen": "b", "rejected": "c"})
        'standard'
        >>> turn = [{"role": "assistant", "content": "hi"}]
        >>> rows = [{"chosen": None, "rejected": None}, {"chosen": turn, "rejected": turn}]  # row 0 abstains
        >>> detect_format(["chosen", "rejected"], rows)
        'conversational'
    """
    cols = set(columns)
    if isinstance(examples, dict):
        examples = [examples]
    if {"chosen", "rejected"} <= cols:
        votes = Counter(k for k in map(_row_kind, examples or []) if k is not None)
        # the kind most rows show; on a tie, messages over transcripts over plain text
        kind = max(("messages", "hh", "text"), key=lambda k: votes[k]) if votes else "text"
        if kind == "messages":
            return "conversational"
        if "prompt" in cols:
            return "standard"
        return "hh" if kind == "hh" else "implicit"
    if {"output_1", "output_2", "preference"} <= cols and cols & set(PROMPT_KEYS):
        return "pairwise"
    if ("completions" in cols or {"responses", "scores"} <= cols) and cols & set(PROMPT_KEYS):
        return "rated"
    lines = "\n".join(f"  - {k}: {v}" for k, v in FORMATS.items())
    raise FormatError(
        f"Cannot tell the preference format from the columns {sorted(cols)}.\nAccepted formats:\n{lines}\n"
        "Rename your columns to one of these, or pass format=... explicitly."
    )
