"""The formats :func:`~curate.ingest.load_pairs` accepts and how it tells them apart: :data:`FORMATS`,
:data:`RATED_POLICIES` (how rated completions become pairs), the keys a rated or pairwise row may use for its
prompt, texts and scores, the HH-RLHF turn markers, and :func:`detect_format` (the format from the column
names and one example).
"""

from __future__ import annotations

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


def detect_format(columns, example: dict | None = None) -> str:
    """Name the format of a dataset from its column names (and one example, to tell strings from messages).

    Raises:
        FormatError: listing the columns found and the accepted formats.

    Example:

        >>> detect_format(["prompt", "chosen", "rejected"], {"prompt": "a", "chosen": "b", "rejected": "c"})
        'standard'
    """
    cols = set(columns)
    example = example or {}
    if {"chosen", "rejected"} <= cols:
        ch = example.get("chosen")
        if is_messages(ch) or is_messages(example.get("rejected")):
            return "conversational"
        if "prompt" in cols:
            return "standard"
        if isinstance(ch, str) and ASSISTANT in ch:
            return "hh"
        return "implicit"
    if {"output_1", "output_2", "preference"} <= cols and cols & set(PROMPT_KEYS):
        return "pairwise"
    if ("completions" in cols or {"responses", "scores"} <= cols) and cols & set(PROMPT_KEYS):
        return "rated"
    lines = "\n".join(f"  - {k}: {v}" for k, v in FORMATS.items())
    raise FormatError(
        f"Cannot tell the preference format from the columns {sorted(cols)}.\nAccepted formats:\n{lines}\n"
        "Rename your columns to one of these, or pass format=... explicitly."
    )
