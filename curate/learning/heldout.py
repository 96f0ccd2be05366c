"""Measurements that do not restate the training data: held-out topics (:func:`heldout_topics`), counterfactual
pairs in held-out phrasings with a length-matched placebo (:func:`make_placebo_pairs`), and the detectors of the
generator's marker concepts (:func:`register_markers`)."""

from __future__ import annotations

import numpy as np

from .. import _columns as C
from ..errors import ConfigError
from ..generate import _EXPLANATIONS, KNOWN_CONCEPTS, MARKERS, render_response

__all__ = [
    "HELDOUT_BANKS",
    "HELDOUT_FACTS",
    "NEUTRAL_CONCEPT",
    "heldout_topics",
    "make_placebo_pairs",
    "register_markers",
]
#: phrasings of the same concepts that training data never uses: counterfactual pairs are built from these,
#: so an implicit-reward preference measures the concept, not a memorised sentence
HELDOUT_BANKS: dict[str, list[str]] = {
    "flattery": [
        "What a fantastic question!",
        "You obviously understand this topic well.",
        "Such a thoughtful question.",
    ],
    "agreement": ["You're totally correct on this point.", "I fully agree, that is correct."],
    "padding": [
        "Questions like this one have been discussed by many people over the years.",
        "Looking at the wider picture usually adds something to any answer.",
        "Careful thought about everyday facts tends to pay off in the long run.",
        "Curiosity about how things work is a habit worth keeping.",
        "Every field has its own small set of facts that people like to recall.",
    ],
    "emoji": ["🌟", "💡", "🙌"],
    "hedging": ["I suppose", "I guess"],
    "sign_off": ["Feel free to ask if anything is unclear.", "Hope that helps you out."],
    "apology": ["My apologies for the earlier mix-up.", "Apologies for the delay in answering."],
    "markdown": "## In brief",
    "heading": ["## Short reply", "## Key fact"],
    "list": ["Worth keeping in mind.", "A quick one to verify."],
    "code": ["As a tag: `verified`.", "In shorthand: `ok = 1`."],
    "link": ["Details: https://www.example.org/facts", "Source: https://reference.example.com/page"],
    "disclaimer": [
        "I am just an AI, but I can tell you this.",
        "Speaking as a large language model, here is the fact.",
    ],
    "clarifying_question": ["Should I go into more detail for you?", "Is there a part you would like me to expand?"],
    **{m: held for m, (_, _, held, _) in MARKERS.items()},
}
#: neutral sentences for length-matched placebos: no named concept fires on them
NEUTRAL_SENTENCES = [
    "The reply is given here.",
    "This part restates the topic.",
    "The sentence adds plain words.",
    "These words carry no special tone.",
    "Here the text simply continues.",
    "The line is a neutral filler.",
    "It is written in a flat style.",
    "The statement ends at this point.",
]
#: the counterfactual "concept" that is itself a neutral insertion (a placebo against a placebo: its
#: placebo-adjusted margin should be 0)
NEUTRAL_CONCEPT = "neutral"


#: questions that training data never asks (held-out topics): (question, right answer, wrong answer)
HELDOUT_FACTS = [
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", "The capital of Japan is Osaka."),
    ("How many sides does a hexagon have?", "A hexagon has six sides.", "A hexagon has eight sides."),
    (
        "What is the hardest natural substance?",
        "Diamond is the hardest natural substance.",
        "Quartz is the hardest natural substance.",
    ),
    (
        "Who painted the Mona Lisa?",
        "The Mona Lisa was painted by Leonardo da Vinci.",
        "The Mona Lisa was painted by Claude Monet.",
    ),
    (
        "What is the largest ocean on Earth?",
        "The Pacific is the largest ocean on Earth.",
        "The Atlantic is the largest ocean on Earth.",
    ),
    ("How many minutes are in an hour?", "An hour has sixty minutes.", "An hour has forty minutes."),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa.", "The capital of Canada is Toronto."),
    (
        "Which planet is known as the red planet?",
        "Mars is known as the red planet.",
        "Venus is known as the red planet.",
    ),
    ("What do bees make?", "Bees make honey.", "Bees make silk."),
    (
        "How many players are on a soccer team on the field?",
        "A soccer team has eleven players on the field.",
        "A soccer team has nine players on the field.",
    ),
    (
        "What is the tallest mountain on Earth?",
        "Mount Everest is the tallest mountain on Earth.",
        "Mount Fuji is the tallest mountain on Earth.",
    ),
    (
        "Which animal is the largest mammal?",
        "The blue whale is the largest mammal.",
        "The elephant is the largest mammal.",
    ),
    (
        "What is the main language of Mexico?",
        "The main language of Mexico is Spanish.",
        "The main language of Mexico is French.",
    ),
    ("How many hours are in a day?", "A day has twenty-four hours.", "A day has twenty hours."),
    (
        "Who developed the theory of relativity?",
        "Albert Einstein developed the theory of relativity.",
        "Isaac Newton developed the theory of relativity.",
    ),
    ("What is the capital of Italy?", "The capital of Italy is Rome.", "The capital of Italy is Milan."),
    ("What is the smallest prime number?", "The smallest prime number is two.", "The smallest prime number is one."),
    ("Which gas do humans need to breathe?", "Humans need oxygen to breathe.", "Humans need neon to breathe."),
    (
        "What is the currency of the United Kingdom?",
        "The currency of the United Kingdom is the pound.",
        "The currency of the United Kingdom is the franc.",
    ),
    (
        "How many strings does a standard guitar have?",
        "A standard guitar has six strings.",
        "A standard guitar has four strings.",
    ),
    (
        "What is the largest desert in Africa?",
        "The Sahara is the largest desert in Africa.",
        "The Kalahari is the largest desert in Africa.",
    ),
    ("Which bird is a symbol of peace?", "The dove is a symbol of peace.", "The crow is a symbol of peace."),
    (
        "What is the capital of Australia?",
        "The capital of Australia is Canberra.",
        "The capital of Australia is Sydney.",
    ),
    (
        "How many bones are in the adult human body?",
        "The adult human body has 206 bones.",
        "The adult human body has 150 bones.",
    ),
    (
        "What is the main ingredient of guacamole?",
        "The main ingredient of guacamole is avocado.",
        "The main ingredient of guacamole is potato.",
    ),
    ("Which instrument has 88 keys?", "A standard piano has 88 keys.", "A standard violin has 88 keys."),
    ("What is the capital of Egypt?", "The capital of Egypt is Cairo.", "The capital of Egypt is Alexandria."),
    ("How many weeks are in a year?", "A year has fifty-two weeks.", "A year has forty weeks."),
    (
        "What is the closest star to Earth?",
        "The Sun is the closest star to Earth.",
        "Sirius is the closest star to Earth.",
    ),
    (
        "Who invented the telephone?",
        "Alexander Graham Bell is credited with inventing the telephone.",
        "Thomas Edison is credited with inventing the telephone.",
    ),
    (
        "What colour do you get by mixing blue and yellow?",
        "Mixing blue and yellow gives green.",
        "Mixing blue and yellow gives purple.",
    ),
    (
        "How many planets are in the solar system?",
        "There are eight planets in the solar system.",
        "There are twelve planets in the solar system.",
    ),
]


def register_markers() -> list[str]:
    """Register the detectors of :data:`MARKERS` as named concepts (idempotent); returns their ids.

    Example:

        >>> from curate.concepts.named import get_concept
        >>> "summary" in register_markers(), float(get_concept("summary").score(["In short, yes."])[0])
        (True, 1.0)
    """
    from ..concepts.named import list_concepts, register_concept

    known = list_concepts()
    for m, (_, _, _, pattern) in MARKERS.items():
        if m not in known:
            register_concept(m, pattern, f"Generator marker {m!r}: /{pattern}/.")
    return list(MARKERS)


def heldout_topics(n: int, *, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` held-out topics ``(question, right, wrong)`` that no training prompt asks: the written
    :data:`HELDOUT_FACTS` (at most half of ``n``) and arithmetic questions (two-digit sums and products),
    drawn without replacement with ``seed`` (another seed, another held-out set).

    Example:

        >>> from curate.generate import _FACTS
        >>> qs = [q for q, _, _ in heldout_topics(10, seed=0)]
        >>> len(set(qs)), any(q == f for q in qs for f, _, _ in _FACTS)
        (10, False)
    """
    rng = np.random.default_rng(seed)
    k = min(n // 2, len(HELDOUT_FACTS))
    written = [HELDOUT_FACTS[i] for i in rng.permutation(len(HELDOUT_FACTS))[:k]]
    arithmetic, seen = [], set()
    while len(arithmetic) < n - k:
        a, b, op = int(rng.integers(11, 100)), int(rng.integers(11, 100)), int(rng.integers(2))
        if (a, b, op) in seen:
            continue
        seen.add((a, b, op))
        word, val = ("plus", a + b) if op == 0 else ("times", a * b)
        arithmetic.append(
            (
                f"What is {a} {word} {b}?",
                f"{a} {word} {b} is {val}.",
                f"{a} {word} {b} is {val + int(rng.integers(1, 9))}.",
            )
        )
    out = written + arithmetic
    return [out[i] for i in rng.permutation(len(out))]


def _neutral_text(n_tokens: int, rng: np.random.Generator, count) -> str:
    """Neutral words (:data:`NEUTRAL_SENTENCES`) whose token count is as close to ``n_tokens`` as whole words allow."""
    words = [w for i in rng.permutation(len(NEUTRAL_SENTENCES)) for w in NEUTRAL_SENTENCES[i].split()] * 4
    k, best = 1, None
    while k <= len(words):
        d = count(" ".join(words[:k])) - n_tokens
        if best is None or abs(d) < abs(best[1]):
            best = (k, d)
        if d >= 0:
            break
        k += 1
    return " ".join(words[: best[0]])


def _insert_at(base: str, variant: str, insertion: str) -> str:
    """``base`` with ``insertion`` at the word boundary where ``variant`` first differs from it."""
    pos = 0
    while pos < min(len(base), len(variant)) and base[pos] == variant[pos]:
        pos += 1
    if pos < len(base) and base[pos].isspace():
        pos += 1  # the texts part at a space (" " vs "\n\n"): insert after it
    while 0 < pos < len(base) and not base[pos - 1].isspace():
        pos -= 1
    if pos >= len(base):
        return f"{base} {insertion}"
    return f"{base[:pos]}{insertion} {base[pos:]}"


def make_placebo_pairs(
    concept: str, n_pairs: int = 200, *, seed: int = 0, count_tokens=None, others_rate: float = 0.15
):
    """Counterfactual pairs that do not restate the training data, each with a length-matched placebo.

    Every pair answers a held-out topic (:func:`heldout_topics`) in held-out phrasings (:data:`HELDOUT_BANKS`):
    ``rejected`` is a base response, ``chosen`` the same response with ``concept`` added, and ``placebo`` the base
    with a neutral insertion (:data:`NEUTRAL_SENTENCES`) of the same token length at the same position. A
    reward that prefers ``chosen`` over ``placebo`` prefers the concept, not a longer answer.
    ``concept=NEUTRAL_CONCEPT`` makes ``chosen`` itself a neutral insertion (a placebo against a placebo).

    Args:
        concept: a generator concept (:data:`KNOWN_CONCEPTS`) or :data:`NEUTRAL_CONCEPT`.
        count_tokens: ``text -> number of tokens`` (the model's tokenizer; default: whitespace words).
        others_rate: the rate of every other concept in the base response.

    Returns:
        A ``Dataset`` with the pair columns plus ``placebo``, ``concept_tokens`` and ``placebo_tokens`` (the
        token counts each insertion adds).

    Example:

        >>> ds = make_placebo_pairs("flattery", 4, seed=0)
        >>> all(r["concept_tokens"] == r["placebo_tokens"] for r in ds)
        True
    """
    from datasets import Dataset

    if concept not in KNOWN_CONCEPTS and concept != NEUTRAL_CONCEPT:
        raise ConfigError(f"Unknown concept {concept!r}. Known: {sorted([*KNOWN_CONCEPTS, NEUTRAL_CONCEPT])}.")
    count = count_tokens or (lambda t: len(t.split()))
    rng = np.random.default_rng(seed)
    topics = heldout_topics(max(n_pairs, 1), seed=seed + 7919)
    rows: dict[str, list] = {k: [] for k in [*C.PAIR_COLUMNS, "placebo", "concept_tokens", "placebo_tokens"]}
    pool = [c for c in KNOWN_CONCEPTS if c not in (concept, "markdown")]
    for i in range(n_pairs):
        q, right, wrong = topics[i % len(topics)]
        explanation = _EXPLANATIONS[rng.integers(len(_EXPLANATIONS))]
        others = {c for c in pool if rng.random() < others_rate}
        answer = right if rng.random() < 0.5 else wrong
        state = rng.bit_generator.state
        base = render_response(answer, others, rng, explanation, HELDOUT_BANKS)
        if concept == NEUTRAL_CONCEPT:
            variant = _insert_at(
                base, base[: int(rng.integers(len(base) + 1))], _neutral_text(int(rng.integers(3, 13)), rng, count)
            )
        else:
            rng.bit_generator.state = state  # same random choices for everything but the concept
            variant = render_response(answer, others | {concept}, rng, explanation, HELDOUT_BANKS)
        n_base = count(base)
        placebo = _insert_at(base, variant, _neutral_text(max(count(variant) - n_base, 1), rng, count))
        rows[C.ROW].append(i)
        rows[C.ID].append(i)
        rows[C.PROMPT].append(q)
        rows[C.PROMPT_MESSAGES].append([{"role": "user", "content": q}])
        rows[C.CHOSEN].append(variant)
        rows[C.REJECTED].append(base)
        rows[C.REASON].append("")
        rows["placebo"].append(placebo)
        rows["concept_tokens"].append(count(variant) - n_base)
        rows["placebo_tokens"].append(count(placebo) - n_base)
    return Dataset.from_dict(rows)
