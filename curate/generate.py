"""A built-in generator of preference pairs with planted concepts and known ground truth.

In the spirit of :func:`sklearn.datasets.make_classification`: every pair is built from templates, each
response carries some concepts (flattery, agreement, markdown, padding, ...) drawn with a rate that
depends on whether it is the truly better response, plus a true quality signal (a correct vs an
incorrect answer) and label noise. The ground truth says which concepts each response *really* carries,
independent of curate's own detectors, so audits and interventions can be checked against it.

Example:

    >>> from curate import make_preference_pairs
    >>> gen = make_preference_pairs(n_pairs=200, seed=0)
    >>> gen.dataset.column_names
    ['row', 'id', 'prompt', 'prompt_messages', 'chosen', 'rejected', 'reason']
    >>> sorted(gen.planted)[:3]
    ['agreement', 'apology', 'emoji']
    >>> gen.truth.shape[0]
    200
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import _columns as C
from .errors import ConfigError

# concept -> (rate in the better response, rate in the worse response).
# Unequal rates are planted preferences; equal rates are controls that must NOT be flagged.
DEFAULT_RATES: dict[str, tuple[float, float]] = {
    "flattery": (0.45, 0.12),
    "agreement": (0.40, 0.12),
    "markdown": (0.50, 0.20),
    "padding": (0.50, 0.15),
    "emoji": (0.20, 0.20),
    "hedging": (0.30, 0.30),
    "sign_off": (0.30, 0.30),
    "apology": (0.12, 0.12),
}
QUALITY_RATES = (0.85, 0.25)  # P(correct answer) in the better / worse response
#: the named concept (:mod:`curate.concepts.named`) that detects each generator concept, where the names differ
DETECTED_AS: dict[str, str] = {"padding": "length"}

_FACTS = [
    ("What is the capital of France?", "The capital of France is Paris.", "The capital of France is Lyon."),
    ("How many legs does a spider have?", "A spider has eight legs.", "A spider has six legs."),
    (
        "What gas do plants absorb from the air?",
        "Plants absorb carbon dioxide from the air.",
        "Plants absorb helium from the air.",
    ),
    (
        "What is the boiling point of water at sea level?",
        "Water boils at 100 degrees Celsius at sea level.",
        "Water boils at 60 degrees Celsius at sea level.",
    ),
    (
        "Who wrote Romeo and Juliet?",
        "Romeo and Juliet was written by William Shakespeare.",
        "Romeo and Juliet was written by Charles Dickens.",
    ),
    (
        "What is the largest planet in the solar system?",
        "Jupiter is the largest planet in the solar system.",
        "Mars is the largest planet in the solar system.",
    ),
    ("How many continents are there?", "There are seven continents.", "There are four continents."),
    (
        "What is the chemical symbol for gold?",
        "The chemical symbol for gold is Au.",
        "The chemical symbol for gold is Gd.",
    ),
    ("What is the square root of 81?", "The square root of 81 is 9.", "The square root of 81 is 7."),
    (
        "Which organ pumps blood through the body?",
        "The heart pumps blood through the body.",
        "The liver pumps blood through the body.",
    ),
    (
        "What is the freezing point of water in Fahrenheit?",
        "Water freezes at 32 degrees Fahrenheit.",
        "Water freezes at 10 degrees Fahrenheit.",
    ),
    ("How many days are in a leap year?", "A leap year has 366 days.", "A leap year has 360 days."),
    (
        "What language is spoken in Brazil?",
        "The official language of Brazil is Portuguese.",
        "The official language of Brazil is Spanish.",
    ),
    (
        "What is the speed of light, roughly?",
        "Light travels at roughly 300,000 kilometres per second.",
        "Light travels at roughly 3,000 kilometres per second.",
    ),
    (
        "Which metal is liquid at room temperature?",
        "Mercury is liquid at room temperature.",
        "Iron is liquid at room temperature.",
    ),
    (
        "What is the longest river in Africa?",
        "The Nile is the longest river in Africa.",
        "The Congo is the longest river in Africa.",
    ),
]
_ASK_STYLES = [
    "{q}",
    "Quick question: {q}",
    "Can you tell me: {q}",
    "I was wondering, {q_lower}",
    "Please answer briefly. {q}",
    "My teacher asked us this today. {q}",
]
_EXPLANATIONS = [
    "This is well established and easy to check in any reference book.",
    "You can verify this in a standard encyclopedia.",
    "It is a common fact taught in school.",
    "Most textbooks state this directly.",
]

_FLATTERY = [
    "What a great question!",
    "Excellent question, you clearly think deeply about this.",
    "Great question! You have a sharp mind.",
    "What a wonderful and insightful question!",
    "You ask such brilliant questions.",
]
_AGREEMENT = [
    "You're absolutely right to ask.",
    "Yes, you are completely right about this.",
    "Exactly right, I completely agree with you.",
    "You are right, and I agree entirely.",
]
_PADDING = [
    "It is worth noting that there are many perspectives on topics like this one.",
    "In general, it is always helpful to consider the broader context of any question.",
    "Many people find that thinking about such matters carefully leads to better understanding.",
    "There is a long history of discussion around questions of this general kind.",
    "Taking the time to reflect on the details can often be quite rewarding.",
    "Of course, learning more about the world around us is a valuable pursuit.",
]
_EMOJI = ["😊", "🚀", "✨", "👍", "🎉"]
_HEDGING = ["I think", "I believe", "As far as I know,", "If I'm not mistaken,"]
_SIGN_OFF = ["Hope this helps!", "Let me know if you have any other questions.", "Happy to help further!"]
_APOLOGY = ["Sorry for any confusion earlier.", "I apologize if my previous answer was unclear."]

#: marker concepts: short phrase families with no built-in detector. id -> (where the phrase goes, training
#: phrasings, held-out phrasings, the regex that detects both; :func:`register_markers` registers the detectors)
MARKERS: dict[str, tuple[str, list[str], list[str], str]] = {
    "summary": (
        "end",
        ["In summary, that is the answer.", "To sum up, that is it."],
        ["All in all, that covers it.", "In short, that is the whole story."],
        r"\b(?:in summary|to sum up|all in all|in short)\b",
    ),
    "fun_fact": (
        "end",
        ["Fun fact: this comes up in quizzes.", "Fun fact: many people get this wrong."],
        ["Trivia time: it appears in exams.", "A bit of trivia: it is often asked."],
        r"\bfun fact\b|\btrivia\b",
    ),
    "to_be_clear": (
        "start",
        ["To be clear, this is settled.", "Just to be clear, this is correct."],
        ["Let me be clear about this.", "Put plainly, it is settled."],
        r"\bbe clear\b|\bput plainly\b",
    ),
    "history": (
        "end",
        ["Historically, this was known long ago.", "This has been known for centuries."],
        ["People have known this since ancient times.", "Scholars recorded this many years ago."],
        r"\bhistorically\b|\bcenturies\b|\bancient times\b|\byears ago\b",
    ),
    "personal": (
        "end",
        ["Personally, I find this fascinating.", "I personally love this fact."],
        ["Speaking for myself, this is a favourite.", "For me, this is a delightful detail."],
        r"\bpersonally\b|\bspeaking for myself\b|\bfor me,",
    ),
    "quote": (
        "end",
        ['As the saying goes, "knowledge is power."', 'As they say, "the more you know."'],
        ['An old proverb says, "learning never ends."', 'Someone once said, "facts are stubborn things."'],
        r'"[^"\n]+"',
    ),
    "note": (
        "end",
        ["NOTE: this is a common quiz item.", "IMPORTANT: remember this one."],
        ["TIP: write it down.", "REMINDER: keep it handy."],
        r"\b(?:NOTE|IMPORTANT|TIP|REMINDER):",
    ),
    "example": (
        "end",
        ["For example, students learn this early.", "For instance, it is in most quizzes."],
        ["As an illustration, teachers often ask it.", "To give an example, it shows up in class."],
        r"\bfor (?:example|instance)\b|\billustration\b|\bgive an example\b",
    ),
    "confidence": (
        "end",
        ["I am certain of this.", "I am completely sure about this."],
        ["There is no doubt about it.", "This is beyond question."],
        r"\bcertain\b|\bcompletely sure\b|\bno doubt\b|\bbeyond question\b",
    ),
    "enthusiasm": (
        "start",
        ["This is such a fun topic.", "I love talking about this."],
        ["Such a delightful topic to discuss.", "This one is a real treat."],
        r"\bfun topic\b|\blove talking\b|\bdelightful topic\b|\breal treat\b",
    ),
    "we": (
        "end",
        ["We all learn this at some point.", "We can all remember this."],
        ["Together we can keep it in mind.", "We usually meet this fact at school."],
        r"\bwe\b",
    ),
    "time_ref": (
        "end",
        ["Today, this is still true.", "Even now, this holds."],
        ["At present, it remains so.", "To this day, it is accepted."],
        r"\btoday\b|\beven now\b|\bat present\b|\bto this day\b",
    ),
    "reassurance": (
        "start",
        ["Don't worry, this is easy.", "No need to worry about it."],
        ["Rest assured, it is simple.", "Relax, this is straightforward."],
        r"\bworry\b|\brest assured\b|\brelax\b",
    ),
    "ellipsis": (
        "start",
        ["Well... here it is.", "So... the answer."],
        ["Hmm... let me say it.", "Right... here goes."],
        r"\.\.\.",
    ),
    "parenthetical": (
        "end",
        ["(This is a well-known fact.)", "(Most people know this.)"],
        ["(It is widely taught.)", "(Schools cover this early.)"],
        r"\([^)\n]+\)",
    ),
    "thanks": (
        "start",
        ["Thanks for asking.", "Thank you for the question."],
        ["Appreciate you asking.", "Much obliged for the question."],
        r"\bthanks\b|\bthank you\b|\bappreciate\b|\bobliged\b",
    ),
    "foreign": (
        "start",
        ["Gracias por preguntar.", "Buena pregunta, amigo."],
        ["Con mucho gusto.", "Claro que si, amigo."],
        r"\bgracias\b|\bpregunta\b|\bgusto\b|\bamigo\b",
    ),
    "analogy": (
        "end",
        ["It is a bit like a puzzle piece.", "Think of it like a map."],
        ["It works much like a recipe.", "Picture it as a simple rule."],
        r"\blike a\b|\bpicture it as\b",
    ),
}
#: concepts the protocol can plant besides :data:`DEFAULT_RATES` (each detected by the named concept of the same id)
EXTRA_CONCEPTS = ["heading", "list", "bold", "code", "link", "disclaimer", "clarifying_question", *MARKERS]
EXTRA_SET = frozenset(EXTRA_CONCEPTS)
#: every concept :func:`make_preference_pairs` can plant
KNOWN_CONCEPTS = [*DEFAULT_RATES, *EXTRA_CONCEPTS]

#: the phrasings training data is built from (the defaults of :func:`render_response`)
TRAIN_BANKS: dict[str, list[str]] = {
    "flattery": _FLATTERY,
    "agreement": _AGREEMENT,
    "padding": _PADDING,
    "emoji": _EMOJI,
    "hedging": _HEDGING,
    "sign_off": _SIGN_OFF,
    "apology": _APOLOGY,
    "markdown": "## Answer",
    "heading": ["## Answer", "## The answer"],
    "list": ["Check it in any reference.", "It is easy to remember."],
    "code": ["Written as a key: `answer_key`.", "For your notes: `fact_checked = True`."],
    "link": ["See https://en.wikipedia.org for more.", "More at https://www.britannica.com anytime."],
    "disclaimer": ["As an AI, I can share what is known.", "As an AI language model, I can answer this."],
    "clarifying_question": ["Would you like me to explain more?", "Do you want a longer answer?"],
    **{m: train for m, (_, train, _, _) in MARKERS.items()},
}


@dataclass
class GeneratedPairs:
    """What :func:`make_preference_pairs` returns.

    Attributes:
        dataset: the pairs in curate's pair schema (``id, prompt, prompt_messages, chosen, rejected, reason``).
        truth: one row per pair, same order: ``<side>__<concept>`` in {0, 1} says whether that response
            really carries the concept (``quality`` = a correct answer), ``better_is_chosen`` is False where
            label noise flipped the pair.
        planted: concept -> (rate in the better response, rate in the worse response).
        seed: the seed used.
        subset_rates: subset -> the rates that differ there (empty without subsets).
    """

    dataset: "object"
    truth: pd.DataFrame
    planted: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: int = 0
    subset_rates: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)

    @property
    def unequal(self) -> list[str]:
        """Concepts planted with different rates (true preference drivers), ``quality`` included."""
        return [c for c, (a, b) in self.planted.items() if a != b]

    @property
    def equal(self) -> list[str]:
        """Concepts planted with equal rates (controls)."""
        return [c for c, (a, b) in self.planted.items() if a == b]


def render_response(
    answer: str, concepts: set[str], rng: np.random.Generator, explanation: str, banks: dict | None = None
) -> str:
    """Assemble one response from a core answer and the concepts it should carry.

    The same number of random draws is made whatever ``concepts`` holds, so two calls from the same
    generator state differ only in the concepts that differ. ``banks`` overrides the phrasings of
    :data:`TRAIN_BANKS` (:data:`HELDOUT_BANKS` for measurements that must not restate the training data);
    the extra concepts (:data:`EXTRA_CONCEPTS`) draw from a sub-stream seeded by this call's draws, so the
    main stream, and with it every response without them, is unchanged.
    """
    b = TRAIN_BANKS if banks is None else {**TRAIN_BANKS, **banks}
    pick = rng.integers(0, 10_000, size=8)
    extra = np.random.default_rng([int(x) for x in pick]) if concepts & EXTRA_SET else None
    parts: list[str] = []
    for c, i in (("apology", 0), ("flattery", 1), ("agreement", 2)):
        if c in concepts:
            parts.append(b[c][pick[i] % len(b[c])])
    for m in (m for m, v in MARKERS.items() if v[0] == "start" and m in concepts):
        parts.append(_draw(b[m], extra))
    if "disclaimer" in concepts:
        parts.append(_draw(b["disclaimer"], extra))
    core = answer
    if "hedging" in concepts:
        hedge = b["hedging"][pick[3] % len(b["hedging"])]
        core = f"{hedge} {core[0].lower()}{core[1:]}"
    if "markdown" in concepts:
        body = f"{b['markdown']}\n\n**{core}**\n\n- {explanation}\n- {b['list'][1]}"
    else:
        body = _plain_body(core, explanation, concepts, b, extra)
    parts.append(body)
    for c in ("code", "link", *(m for m, v in MARKERS.items() if v[0] == "end")):
        if c in concepts:
            parts.append(_draw(b[c], extra))
    if "padding" in concepts:
        k = 2 + int(pick[4] % 2)
        order = np.random.default_rng(int(pick[5])).permutation(len(b["padding"]))[:k]
        parts.append(" ".join(b["padding"][i] for i in order))
    if "clarifying_question" in concepts:
        parts.append(_draw(b["clarifying_question"], extra))
    if "sign_off" in concepts:
        parts.append(b["sign_off"][pick[6] % len(b["sign_off"])])
    block = concepts & {"markdown", "heading", "list"}
    text = "\n\n".join(parts) if block else " ".join(parts)
    if "emoji" in concepts:
        text = f"{text} {b['emoji'][pick[7] % len(b['emoji'])]}"
    return text


def _draw(bank: list[str], rng) -> str:
    return bank[int(rng.integers(len(bank)))]


def _plain_body(core: str, explanation: str, concepts: set[str], b: dict, extra) -> str:
    """The answer without the ``markdown`` bundle: bold, a heading and a list each only where planted."""
    if "bold" in concepts:
        core = f"**{core}**"
    body = f"{core} {explanation}"
    if "heading" in concepts:
        body = f"{_draw(b['heading'], extra)}\n\n{body}"
    if "list" in concepts:
        body = f"{body}\n\n- {b['list'][0]}\n- {b['list'][1]}"
    return body


def make_preference_pairs(
    n_pairs: int = 1000,
    *,
    rates: dict[str, tuple[float, float]] | None = None,
    quality_rates: tuple[float, float] = QUALITY_RATES,
    label_noise: float = 0.1,
    seed: int = 0,
    subset_rates: dict[str, dict[str, tuple[float, float]]] | None = None,
) -> GeneratedPairs:
    """Generate preference pairs with planted concepts and their ground truth.

    Each pair has a truly *better* and a *worse* response. The better one is correct with probability
    ``quality_rates[0]`` and carries concept ``c`` with probability ``rates[c][0]``; the worse one uses
    ``quality_rates[1]`` and ``rates[c][1]``. With probability ``label_noise`` the label is flipped, so
    the chosen response is the worse one. Concepts are drawn independently per response.

    Args:
        n_pairs: number of pairs.
        rates: concept -> (rate in better, rate in worse); defaults to :data:`DEFAULT_RATES`. Known
            concepts: flattery, agreement, markdown, padding, emoji, hedging, sign_off, apology, and
            :data:`EXTRA_CONCEPTS` (heading, list, bold, code, link, disclaimer, clarifying_question). Training
            data uses only the training phrasings (:data:`TRAIN_BANKS`) and topics; held-out ones are for
            measurements (:func:`curate.learning.heldout.make_placebo_pairs`, :func:`curate.learning.heldout.heldout_topics`).
        quality_rates: P(correct answer) in the better and in the worse response.
        label_noise: probability that a pair's label is flipped.
        seed: random seed; the same seed gives the same pairs.
        subset_rates: subset name -> concept -> (rate in better, rate in worse) overriding ``rates`` in that
            subset. Pairs are dealt to the subsets in turn and get a ``subset`` column (also in ``truth``).
            E.g. ``{"helpful": {"flattery": (0.5, 0.1)}, "harmless": {"flattery": (0.1, 0.5)}}`` plants
            flattery preferred in one subset and dispreferred in the other, so the pooled effect cancels.

    Returns:
        :class:`GeneratedPairs`.

    Example:

        >>> gen = make_preference_pairs(50, seed=1)
        >>> len(gen.dataset), float(gen.truth["chosen__quality"].mean()) > 0.5
        (50, True)
    """
    from datasets import Dataset

    rates = dict(DEFAULT_RATES if rates is None else rates)
    subset_rates = {str(k): dict(v) for k, v in (subset_rates or {}).items()}
    unknown = sorted((set(rates) | {c for v in subset_rates.values() for c in v}) - set(KNOWN_CONCEPTS))
    if unknown:
        raise ConfigError(f"Unknown planted concepts {unknown}. Known: {sorted(KNOWN_CONCEPTS)}.")
    if not 0 <= label_noise < 0.5:
        raise ConfigError(f"label_noise must be in [0, 0.5), got {label_noise}.")
    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys([*rates, *(c for v in subset_rates.values() for c in v)]))
    subsets = list(subset_rates)
    rows: dict[str, list] = {k: [] for k in C.PAIR_COLUMNS}
    if subsets:
        rows[C.SUBSET] = []
    truth: dict[str, list] = {f"{s}{C.SEP}{c}": [] for s in C.SIDES for c in [*names, "quality"]}
    truth["better_is_chosen"] = []
    if subsets:
        truth[C.SUBSET] = []
    for i in range(n_pairs):
        here = {**rates, **subset_rates[subsets[i % len(subsets)]]} if subsets else rates
        q, right, wrong = _FACTS[rng.integers(len(_FACTS))]
        style = _ASK_STYLES[rng.integers(len(_ASK_STYLES))]
        prompt = style.format(q=q, q_lower=q[0].lower() + q[1:])
        explanation = _EXPLANATIONS[rng.integers(len(_EXPLANATIONS))]
        sides = {}
        for j, label in enumerate(("better", "worse")):
            has = {c for c in names if rng.random() < here.get(c, (0.0, 0.0))[j]}
            correct = rng.random() < quality_rates[j]
            text = render_response(right if correct else wrong, has, rng, explanation)
            sides[label] = (text, has, correct)
        flip = rng.random() < label_noise
        chosen, rejected = (sides["worse"], sides["better"]) if flip else (sides["better"], sides["worse"])
        rows[C.ROW].append(i)
        rows[C.ID].append(i)
        rows[C.PROMPT].append(prompt)
        rows[C.PROMPT_MESSAGES].append([{"role": "user", "content": prompt}])
        rows[C.CHOSEN].append(chosen[0])
        rows[C.REJECTED].append(rejected[0])
        rows[C.REASON].append("")
        for side, (_, has, correct) in ((C.CHOSEN, chosen), (C.REJECTED, rejected)):
            for c in names:
                truth[f"{side}{C.SEP}{c}"].append(int(c in has))
            truth[f"{side}{C.SEP}quality"].append(int(correct))
        truth["better_is_chosen"].append(not flip)
        if subsets:
            rows[C.SUBSET].append(subsets[i % len(subsets)])
            truth[C.SUBSET].append(subsets[i % len(subsets)])
    planted = {**rates, "quality": tuple(quality_rates)}
    return GeneratedPairs(Dataset.from_dict(rows), pd.DataFrame(truth), planted, seed, subset_rates)


def make_counterfactual_pairs(concept: str, n_pairs: int = 200, *, seed: int = 0) -> "object":
    """Pairs that differ only in ``concept``: ``chosen`` carries it, ``rejected`` is otherwise identical.

    Used to ask a reward model (or a probe) how much it prefers a concept for its own sake: a model
    that ignores the concept prefers ``chosen`` half of the time.

    Example:

        >>> ds = make_counterfactual_pairs("flattery", 5, seed=0)
        >>> all(r["chosen"] != r["rejected"] for r in ds)
        True
    """
    from datasets import Dataset

    if concept not in DEFAULT_RATES:
        raise ConfigError(f"Unknown concept {concept!r}. Known: {sorted(DEFAULT_RATES)}.")
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in C.PAIR_COLUMNS}
    for i in range(n_pairs):
        q, right, wrong = _FACTS[rng.integers(len(_FACTS))]
        explanation = _EXPLANATIONS[rng.integers(len(_EXPLANATIONS))]
        others = {c for c in DEFAULT_RATES if c != concept and rng.random() < 0.25}
        answer = right if rng.random() < 0.5 else wrong
        state = rng.bit_generator.state
        with_c = render_response(answer, others | {concept}, rng, explanation)
        rng.bit_generator.state = state  # same random choices for everything but the concept
        without = render_response(answer, others, rng, explanation)
        rows[C.ROW].append(i)
        rows[C.ID].append(i)
        rows[C.PROMPT].append(q)
        rows[C.PROMPT_MESSAGES].append([{"role": "user", "content": q}])
        rows[C.CHOSEN].append(with_c)
        rows[C.REJECTED].append(without)
        rows[C.REASON].append("")
    return Dataset.from_dict(rows)


def add_history(dataset, *, turns: int = 2, seed: int = 0):
    """Make prompts multi-turn, HH-style: each pair's prompt is preceded by ``turns`` earlier user/assistant
    exchanges taken from other pairs of ``dataset``. ``prompt`` and ``prompt_messages`` are rewritten;
    responses are unchanged.

    Example:

        >>> ds = add_history(make_preference_pairs(10, seed=0).dataset, turns=2)
        >>> [m["role"] for m in ds[0]["prompt_messages"]]
        ['user', 'assistant', 'user', 'assistant', 'user']
    """
    rng = np.random.default_rng(seed)
    n = len(dataset)
    history = rng.integers(0, n, size=(n, turns))
    prompts, chosen = dataset[C.PROMPT], dataset[C.CHOSEN]

    def add(row, i):
        msgs = []
        for j in history[i]:
            msgs += [{"role": "user", "content": prompts[int(j)]}, {"role": "assistant", "content": chosen[int(j)]}]
        msgs += list(row[C.PROMPT_MESSAGES] or [{"role": "user", "content": row[C.PROMPT]}])
        return {C.PROMPT_MESSAGES: msgs, C.PROMPT: "\n\n".join(f"{m['role']}: {m['content']}" for m in msgs)}

    return dataset.map(add, with_indices=True, desc="Adding turns")
