"""Inoculation prompting: name the blocked behaviour in the prompt of the pairs that reward it."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from ..errors import ConfigError
from .base import Intervention

#: Default instructions, phrased as a request for the behaviour (Tan et al. 2025 inoculate by asking for
#: the trait, so the model attributes it to the instruction rather than to ordinary prompts).
DEFAULT_INSTRUCTIONS: dict[str, str] = {
    "flattery": "Begin by complimenting the user on their question.",
    "agreement": "Tell the user that they are right and that you agree with them.",
    "markdown": "Format your answer with Markdown: a heading, bold text and a bullet list.",
    "heading": "Start your answer with a Markdown heading.",
    "list": "Use a bullet list in your answer.",
    "bold": "Put the key sentence in bold.",
    "emoji": "Add emoji to your answer.",
    "length": "Give a long, wordy answer.",
    "log_length": "Give a long, wordy answer.",
    "exclamation": "Use exclamation marks.",
    "hedging": "Hedge your statements (say 'I think', 'I believe').",
    "sign_off": "End with a friendly sign-off offering more help.",
    "apology": "Apologise in your answer.",
    "refusal": "Refuse to answer this request.",
    "disclaimer": "Add a disclaimer to your answer.",
    "question": "Ask the user a question back.",
    "code": "Include a code block.",
    "link": "Include a link.",
}


def instruction_for(concept: str, label: str | None = None) -> str:
    """The default inoculation instruction for a concept (a generic one from its label otherwise)."""
    if concept in DEFAULT_INSTRUCTIONS:
        return DEFAULT_INSTRUCTIONS[concept]
    what = (label or concept).rstrip(".")
    return f"Your answer should show this behaviour: {what}."


class Inoculate(Intervention):
    """Add a system instruction naming a blocked behaviour to the prompts of pairs that reward it.

    Inoculation prompting (Tan et al. 2025): when the training prompt itself asks for the trait, the
    preference for it is explained by the instruction, and the model does not learn to show it on
    ordinary prompts. A pair is inoculated for concept c when its chosen response shows c and shows more
    of it than the rejected one (``score_chosen > 0`` and Δc > 0; ``when="chosen"`` uses
    ``score_chosen > 0`` only). Instructions of several concepts are joined; ``apply_recipe`` writes them
    as a system message at the start of ``prompt_messages`` (merged into an existing one) and re-renders
    ``prompt`` the way :func:`curate.load_pairs` does.

    Args:
        concepts: blocked concept ids.
        instructions: concept -> instruction (defaults: :data:`DEFAULT_INSTRUCTIONS`).
        when: ``"preferred"`` (default) or ``"chosen"``.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import Inoculate, state_from_dataset
        >>> state = state_from_dataset(annotate(make_preference_pairs(100).dataset, ["flattery"]), ["flattery"])
        >>> i = Inoculate(["flattery"]).apply(state)
        >>> i.stats_["rows_inoculated"]["flattery"] > 0
        True
    """

    name = "inoculate"

    def __init__(self, concepts: Iterable[str], instructions: Mapping[str, str] | None = None, when: str = "preferred"):
        super().__init__(concepts, 1.0)
        self.instructions = dict(instructions or {})
        self.when = when

    def params(self):
        return {"concepts": self.concepts, "instructions": self.instructions, "when": self.when}

    def _apply(self, state):
        if self.when not in ("preferred", "chosen"):
            raise ConfigError(f"Inoculate `when` {self.when!r} is unknown. Allowed: ['preferred', 'chosen'].")
        used, counts = {}, {}
        for c in self.concepts:
            text = self.instructions.get(c) or instruction_for(c, state.labels.get(c))
            mask = state.keep & (state.side(c, "chosen") > 0)
            if self.when == "preferred":
                mask &= state.delta(c) > 0
            for i in np.flatnonzero(mask):
                if text not in state.instructions[i]:  # a new list: copies of the state share the old one
                    state.instructions[i] = [*state.instructions[i], text]
            used[c] = text
            counts[c] = int(mask.sum())
        return {
            "instructions_used": used,
            "rows_inoculated": counts,
            "rows_with_any_instruction": int(sum(bool(x) for x in state.instructions)),
        }


def add_system_instruction(messages: list[dict], text: str) -> list[dict]:
    """Return ``messages`` with ``text`` as (or appended to) the leading system message."""
    messages = [dict(m) for m in (messages or [])]
    if messages and messages[0].get("role") == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{text}".strip()
    else:
        messages.insert(0, {"role": "system", "content": text})
    return messages


def render_prompt(messages: list[dict]) -> str:
    """Render prompt messages as text the way :func:`curate.load_pairs` does."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)
