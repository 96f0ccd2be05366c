"""Named concepts: interpretable detectors scored on every chosen and rejected response.

Each built-in concept counts matches of a regular expression (or, for ``length`` and ``log_length``, the
response size). Scores are counts, so "more of the concept" is well defined for the audit. Matching runs
vectorised in Arrow (RE2) over a whole batch, with Python's :mod:`re` used for the spans shown in the
Space.

The annotator is a plain callable on a batch (``dict[str, list] -> dict[str, list]``), so the same object
runs in ``Dataset.map(batched=True)`` and in a distributed engine's batch map (Ray Data ``map_batches``).

Example:

    >>> from datasets import Dataset
    >>> from curate.concepts import NamedConcepts
    >>> ds = Dataset.from_dict({"chosen": ["Great question! Paris."], "rejected": ["Paris."]})
    >>> out = ds.map(NamedConcepts(["flattery", "exclamation"]), batched=True)
    >>> out[0]["chosen__flattery"], out[0]["rejected__flattery"]
    (1.0, 0.0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from .. import _columns as C
from ..errors import ColumnError, ConceptError, ConfigError

__all__ = ["Concept", "NamedConcepts", "annotate", "list_concepts", "register_concept", "BUILTIN_CONCEPTS"]


@dataclass(frozen=True)
class Concept:
    """A named concept.

    Args:
        id: short identifier used in column names (``chosen__<id>``); letters, digits and ``_``.
        label: a one-line definition.
        pattern: a regular expression whose matches are counted (case-insensitive unless it sets flags).
        fn: instead of ``pattern``, a callable ``list[str] -> Sequence[float]`` scoring a batch of texts.
    """

    id: str
    label: str
    pattern: str | None = None
    fn: Callable[[list[str]], Sequence[float]] | None = None

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", self.id) or C.SEP in self.id:
            raise ConceptError(
                f"Concept id {self.id!r} must start with a letter and use only letters, digits and single '_'."
            )
        if (self.pattern is None) == (self.fn is None):
            raise ConceptError(f"Concept {self.id!r} needs exactly one of `pattern` or `fn`.")
        if self.pattern is not None:
            re.compile(self.pattern)

    def score(self, texts: list[str]) -> np.ndarray:
        """Score a batch of texts (None counts as empty)."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        if self.fn is not None:
            out = np.asarray(self.fn(texts), dtype=np.float32)
            if out.shape != (len(texts),):
                raise ConceptError(
                    f"Concept {self.id!r}: its function returned shape {out.shape}, expected ({len(texts)},)."
                )
            return out
        return _count_matches(self.pattern, texts)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans where the concept matches ``text`` (empty for function concepts)."""
        if self.pattern is None or not isinstance(text, str):
            return []
        return [m.span() for m in _py_regex(self.pattern).finditer(text) if m.end() > m.start()]


def _py_regex(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE | re.MULTILINE)


def _re2(pattern: str) -> str:
    """Translate the Python-only escapes we use (``\\U0001F600``) to RE2 (``\\x{1F600}``)."""
    return re.sub(r"\\U([0-9A-Fa-f]{8})", lambda m: "\\x{" + m.group(1).lstrip("0") + "}", pattern)


def _count_matches(pattern: str, texts: list[str]) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        counts = pc.count_substring_regex(pa.array(texts, pa.large_string()), _re2(pattern), ignore_case=True)
        return counts.to_numpy(zero_copy_only=False).astype(np.float32)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a pattern RE2 does not support
        rx = _py_regex(pattern)
        return np.array([sum(1 for _ in rx.finditer(t)) for t in texts], dtype=np.float32)


def _words(texts: list[str]) -> np.ndarray:
    return _count_matches(r"\S+", texts)


def length(texts: list[str]) -> np.ndarray:
    """Length of the response in words (whitespace-separated tokens)."""
    return _words(texts)


def log_length(texts: list[str]) -> np.ndarray:
    """Natural log of one plus the response length in words."""
    return np.log1p(_words(texts)).astype(np.float32)


_EMOJI = r"[\U0001F300-\U0001FAFF\U00002600-\U000027BF\U0001F000-\U0001F2FF\U0001F900-\U0001F9FF]"

_APOS = "['\u2019]"  # straight or curly apostrophe (HH-RLHF writes both)
_NT = f"n{_APOS}?t"
# "I" + a declining verb phrase + what is declined ("can't help but…" and "can't wait" are not refusals)
_REFUSAL = (
    r"\bi\s?(?:can"
    + _APOS
    + r"?t|cannot|can not|won"
    + _APOS
    + r"?t|will not|(?:"
    + _APOS
    + r"m|\s?am) (?:unable|not able|"
    r"not going|not willing|not comfortable|not allowed|not permitted)(?: to)?|must decline to|refuse to|(?:"
    + _APOS
    + r"d|\s?would) rather not|do(?:"
    + _NT
    + r"| not) (?:feel comfortable|think i (?:can|should)|want to))\s+"
    r"(?:help(?:\s+(?:you|with|there|on|in|that|here|anyone|people|them)\b|[.,!;]|$)|assist|provide|comply|do (?:that|this|it)"
    r"|fulfill|support|create|write|share|give|tell|answer|recommend|condone|encourage|engage|participate|advise|discuss"
    r"|offer|go along|be (?:of )?(?:any )?help|be a part|be involved|in good conscience|get involved|explain how|say|talk about"
    r"|helping|assisting|doing that|providing|answering|sharing|discussing|participating|with (?:that|this)\b)"
    r"|\bi (?:must|have to|will have to|" + _APOS + r"ll have to) (?:decline|refuse|pass)\b"
    r"|\b(?:that|this|it)(?:"
    + _APOS
    + r"s| is) not something i(?:"
    + _APOS
    + r"m| am)? (?:can|will|able|comfortable|willing|"
    r"going|should|feel comfortable)\b"
    r"|\bi(?:"
    + _APOS
    + r"m| am) (?:sorry|afraid),? (?:but )?i (?:can"
    + _APOS
    + r"?t|cannot|won"
    + _APOS
    + r"?t|will not|(?:"
    + _APOS
    + r"m|am) (?:unable|not able)|do(?:"
    + _NT
    + r"| not) think i can)\b"
)
_DEFLECTION = (
    r"\bi(?:" + _APOS + r"m| am) (?:not (?:really |quite |entirely |totally |completely |exactly |so |too |100% )?"
    r"(?:sure|certain|familiar with|positive|clear on|aware of)|unsure|uncertain)\b"
    r"|\bi (?:(?:really|honestly|just|actually|truly|simply) )?(?:don"
    + _APOS
    + r"?t|do not|didn"
    + _APOS
    + r"?t|did not) (?:really |actually |even |quite )?(?:know|understand|have (?:any|an|enough|the|much) "
    r"(?:idea|information|knowledge|answer|data|context))\b"
    r"|\bi have (?:no|not the slightest|not the faintest) (?:idea|clue)\b"
    r"|\bi (?:couldn" + _APOS + r"?t|could not|can" + _APOS + r"?t|cannot) (?:really )?(?:say(?: for (?:sure|certain)|"
    r" with (?:any )?certainty|[.,!]| exactly)|be (?:sure|certain)|tell (?:for sure|you for sure))"
    r"|\bi(?:" + _APOS + r"m| am) not (?:an expert|the (?:best|right) person)\b"
    r"|\bi(?:" + _APOS + r"ve| have) never heard of\b|\bnot sure i (?:understand|know|follow)\b"
)
# declining softly: advising against what was asked, or steering to a safer alternative (PKU-SafeRLHF's
# preferred responses rarely say "I can't"; they say "it is never okay to…", "a healthier approach is…")
_DISCOURAGEMENT = (
    r"\bi (?:would|do|will)(?: not|n" + _APOS + r"?t) (?:recommend|advise|encourage|condone|suggest|support)\b"
    r"|\bi (?:strongly )?(?:advise|recommend|caution|urge you) against\b"
    r"|\b(?:it|this|that)(?:(?:" + _APOS + r"s| is| would be) (?:not|never)| isn" + _APOS + r"?t) (?:a good idea|"
    r"appropriate|okay|ok|acceptable|ethical|legal|safe|advisable|wise)\b"
    r"|\b(?:is|are|would be) (?:illegal|unethical|against the law|never (?:okay|acceptable|appropriate|the (?:best|right) way))\b"
    r"|\byou (?:should|must)(?: not|n"
    + _APOS
    + r"?t| never) (?:do|try|attempt|engage|use|take|hurt|harm|steal|lie|break|"
    r"drive|threaten|manipulate|harass|cheat|kill|attack|exclude|insult|humiliate|bully)\b"
    r"|\byou (?:cannot|can" + _APOS + r"?t) (?:legally|ethically)\b"
    r"|\bthere (?:is|are) no (?:safe|legal|ethical|acceptable|good) (?:way|ways|reason)\b"
    r"|\b(?:that|this|it)(?:" + _APOS + r"s| is) not possible\b"
    r"|\ba (?:better|healthier|safer|more constructive) (?:approach|way|option|idea)\b"
)
# a sentence ending in "?" that asks the user something: starts like a question and names "you"/"your" (or asks
# what kind / which / whether it is for something)
_Q_START = r"(?:^|[.!?:\n]\s*|\b(?:and|so|ok(?:ay)?|well|hm+|sure|also|but|or),?\s+)"
_CLARIFYING = (
    _Q_START + r"(?:do|does|did|are|is|was|were|have|has|can|could|would|will|what|which|how|where|when|who|why|whose"
    r"|should|shall|may|might)\b[^.!?\n]{0,150}?\b(?:you|your|yours|yourself|you" + _APOS + r"(?:re|ve|d|ll))\b"
    r"[^.!?\n]{0,150}\?"
    r"|" + _Q_START + r"(?:what (?:kind|sort|type)s? of|which (?:one|kind|type|part)|is (?:it|this|that) (?:for|about)|"
    r"what (?:exactly )?(?:is|are|was|were) (?:it|this|that|they) for)\b[^.!?\n]{0,150}\?"
)

_PATTERNS: list[tuple[str, str, str]] = [
    ("heading", "Markdown headings: lines starting with one to six '#'.", r"(?m)^[ \t]{0,3}#{1,6}[ \t]+\S"),
    (
        "list",
        "Markdown list items: lines starting with '-', '*', '+' or '1.'.",
        r"(?m)^[ \t]*(?:[-*+]|\d+[.)])[ \t]+\S",
    ),
    ("bold", "Bold text: **like this** or __like this__.", r"\*\*[^*\n]+\*\*|__[^_\n]+__"),
    ("code", "Code: fenced blocks (```) and `inline code`.", r"```|`[^`\n]+`"),
    ("link", "Links: [text](url) or a bare http(s) URL.", r"\[[^\]\n]+\]\([^)\s]+\)|https?://\S+"),
    ("emoji", "Emoji characters.", _EMOJI),
    ("exclamation", "Exclamation marks.", r"!"),
    ("question", "Question marks (the response asks something back).", r"\?"),
    (
        "flattery",
        "Praise of the user or of the question ('great question', 'you clearly know…').",
        r"\b(?:great|excellent|wonderful|fantastic|brilliant|insightful|thoughtful|amazing|fascinating|good|interesting)"
        r" question\b|\bwhat an? (?:great|excellent|wonderful|fantastic|brilliant|insightful|thoughtful|amazing|lovely)\b"
        r"|\byou (?:clearly|obviously|really) (?:think|know|understand|have)\b|\byou have an? (?:sharp|brilliant|great|keen)"
        r" (?:mind|eye|intellect)\b|\byou ask such\b|\b(?:you're|you are) (?:so|very|incredibly) (?:smart|clever|insightful|thoughtful)\b",
    ),
    (
        "agreement",
        "Affirming the user's claim ('you're absolutely right', 'I agree').",
        r"\b(?:you're|you are) (?:absolutely |completely |totally |entirely |so |quite )?(?:right|correct)\b"
        r"|\bi (?:completely |totally |fully |entirely |wholeheartedly )?agree\b|\bexactly right\b|\bthat(?:'s| is) (?:absolutely |exactly )?(?:right|correct)\b",
    ),
    (
        "refusal",
        "Declining to do what was asked ('I'm sorry, I can't help with that', 'I won't do that', 'I don't think I "
        "can help with that', 'I'd rather not').",
        _REFUSAL,
    ),
    (
        "deflection",
        "Uncertainty about itself instead of an answer ('I'm not sure', 'I don't know', 'I have no idea', "
        "'I'm not familiar with…').",
        _DEFLECTION,
    ),
    (
        "discouragement",
        "Advising against what was asked or steering to a safer alternative ('I would not recommend…', 'It is "
        "never okay to…', 'You should not hurt…', 'A healthier approach is…').",
        _DISCOURAGEMENT,
    ),
    (
        "clarifying_question",
        "A question put back to the user ('Do you mean…?', 'Are you asking…?', 'What kind of…?', 'Is it for…?').",
        _CLARIFYING,
    ),
    (
        "apology",
        "Apologies ('sorry', 'I apologize').",
        r"\bsorry\b|\bi apologi[sz]e\b|\bmy apologies\b|\bapologies for\b",
    ),
    (
        "hedging",
        "Uncertainty markers ('I think', 'might', 'as far as I know').",
        r"\bi (?:think|believe|guess|suppose)\b|\bas far as i know\b|\bif i'm not mistaken\b|\b(?:might|perhaps|possibly|probably|maybe)\b"
        r"|\bit seems\b|\bnot (?:entirely )?sure\b",
    ),
    (
        "sign_off",
        "Closing offers of more help ('Hope this helps!', 'Let me know if…').",
        r"\bhope (?:this|that|it) helps\b|\blet me know if\b|\bhappy to help\b|\bfeel free to (?:ask|reach)\b|\bany other questions\b",
    ),
    (
        "disclaimer",
        "Statements about being an AI ('As an AI language model…').",
        r"\bas an ai\b|\bas a (?:large )?language model\b|\bi(?:'m| am) (?:just )?an ai\b|\bi don't have (?:personal|feelings|opinions)\b",
    ),
]


def _markdown(texts: list[str]) -> np.ndarray:
    """Markdown elements of any kind: headings + list items + bold + code + links."""
    return sum(BUILTIN_CONCEPTS[c].score(texts) for c in ("heading", "list", "bold", "code", "link"))


BUILTIN_CONCEPTS: dict[str, Concept] = {
    "length": Concept("length", length.__doc__.strip(), fn=length),
    "log_length": Concept("log_length", log_length.__doc__.strip(), fn=log_length),
    **{cid: Concept(cid, label, pattern=pat) for cid, label, pat in _PATTERNS},
}
BUILTIN_CONCEPTS["markdown"] = Concept("markdown", _markdown.__doc__.strip(), fn=_markdown)

_REGISTRY: dict[str, Concept] = dict(BUILTIN_CONCEPTS)


def register_concept(
    id: str, pattern_or_fn: str | Callable[[list[str]], Sequence[float]], label: str | None = None
) -> Concept:
    """Add a named concept to the registry so every :class:`NamedConcepts` can use it by id.

    Args:
        id: the concept id.
        pattern_or_fn: a regular expression (matches are counted) or a callable scoring a batch of texts.
        label: a one-line definition (defaults to the pattern or the callable's docstring).

    Example:

        >>> from curate import register_concept
        >>> c = register_concept("python", r"\\bpython\\b", "Mentions Python.")
        >>> float(c.score(["I like Python and python."])[0])
        2.0
    """
    if isinstance(pattern_or_fn, str):
        concept = Concept(id, label or f"Matches /{pattern_or_fn}/.", pattern=pattern_or_fn)
    elif callable(pattern_or_fn):
        doc = (pattern_or_fn.__doc__ or "").strip().splitlines()
        concept = Concept(id, label or (doc[0] if doc else id), fn=pattern_or_fn)
    else:
        raise ConceptError(
            f"Concept {id!r}: expected a regex string or a callable, got {type(pattern_or_fn).__name__}."
        )
    if id in BUILTIN_CONCEPTS:
        raise ConceptError(f"{id!r} is a built-in concept; choose another id. Built-ins: {sorted(BUILTIN_CONCEPTS)}.")
    _REGISTRY[id] = concept
    return concept


def list_concepts() -> dict[str, str]:
    """All registered concept ids with their one-line definitions."""
    return {cid: c.label for cid, c in _REGISTRY.items()}


def get_concept(id: str) -> Concept:
    try:
        return _REGISTRY[id]
    except KeyError:
        raise ConceptError(f"Unknown concept {id!r}. Known concepts: {sorted(_REGISTRY)}.") from None


class NamedConcepts:
    """Batched annotator adding ``chosen__<id>`` and ``rejected__<id>`` scores for named concepts.

    Args:
        concepts: concept ids (registered) or :class:`Concept` objects; all registered ones by default.
        text_columns: the columns to score (default ``("chosen", "rejected")``).

    The callable takes a batch ``dict[str, list]`` and returns the new columns as ``dict[str, list]``;
    rows whose texts are None score 0.

    Example:

        >>> from datasets import Dataset
        >>> ann = NamedConcepts(["length", "emoji"]).add("python", r"\\bpython\\b", "Mentions Python.")
        >>> ds = Dataset.from_dict({"chosen": ["Python rocks 🚀"], "rejected": ["ok"]})
        >>> row = ds.map(ann, batched=True, features=ann.features(ds.features))[0]
        >>> row["chosen__length"], row["chosen__emoji"], row["chosen__python"]
        (3.0, 1.0, 1.0)
    """

    def __init__(self, concepts: Iterable[str | Concept] | None = None, text_columns: Sequence[str] = C.SIDES):
        self.concepts = list(concepts) if concepts is not None else None
        self.text_columns = tuple(text_columns)

    @property
    def concepts_(self) -> list[Concept]:
        items = self.concepts if self.concepts is not None else list(_REGISTRY)
        return [c if isinstance(c, Concept) else get_concept(c) for c in items]

    def add(self, id: str, pattern_or_fn, label: str | None = None) -> "NamedConcepts":
        """Add a user concept (a regex or a callable on a batch of texts) to this annotator; returns self."""
        if isinstance(pattern_or_fn, str):
            concept = Concept(id, label or f"Matches /{pattern_or_fn}/.", pattern=pattern_or_fn)
        else:
            doc = (getattr(pattern_or_fn, "__doc__", None) or "").strip().splitlines()
            concept = Concept(id, label or (doc[0] if doc else id), fn=pattern_or_fn)
        base = self.concepts if self.concepts is not None else list(_REGISTRY)
        self.concepts = [c for c in base if (c.id if isinstance(c, Concept) else c) != id] + [concept]
        return self

    @property
    def output_columns(self) -> list[str]:
        return [C.score_column(side, c.id) for side in self.text_columns for c in self.concepts_]

    def features(self, input_features=None):
        """The `datasets.Features` of the output: the input features plus one float32 per score column."""
        from datasets import Features, Value

        feats = dict(input_features or {})
        feats.update({name: Value("float32") for name in self.output_columns})
        return Features(feats)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        missing = [c for c in self.text_columns if c not in batch]
        if missing:
            raise ColumnError(f"Columns {missing} not in the batch. Columns in the batch: {sorted(batch)}.")
        out: dict[str, list] = {}
        for side in self.text_columns:
            texts = [t if isinstance(t, str) else "" for t in batch[side]]
            for concept in self.concepts_:
                out[C.score_column(side, concept.id)] = concept.score(texts).tolist()
        return out

    def fingerprint(self) -> str:
        """A small deterministic identity for `datasets`' cache and curate's: the concept ids, their patterns,
        the code of their functions (:func:`curate.cache.code_hash`: editing a scorer changes it) and the code
        that counts pattern matches."""
        import hashlib

        from ..cache import code_hash

        parts = [code_hash(Concept.score), *self.text_columns]
        for c in self.concepts_:
            parts.append(f"{c.id}|{c.pattern or ''}|{'' if c.fn is None else code_hash(c.fn)}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"type": "named", "concepts": {c.id: c.label for c in self.concepts_}, "fingerprint": self.fingerprint()}

    def __repr__(self) -> str:
        return f"NamedConcepts({[c.id for c in self.concepts_]})"


def annotate(
    dataset,
    concepts: NamedConcepts | Iterable[str] | None = None,
    *,
    batch_size: int = 1000,
    num_proc: int | None = None,
    desc: str = "Scoring named concepts",
    engine: str = "local",
    engine_options: dict | None = None,
):
    """Add named-concept scores to a pair dataset with ``Dataset.map(batched=True)``.

    Row order and count are preserved. The map gets a deterministic fingerprint from the annotator's
    identity and the input's fingerprint, so annotating the same data twice hits the `datasets` cache.

    Args:
        dataset: a `datasets.Dataset` with ``chosen`` and ``rejected`` columns.
        concepts: a :class:`NamedConcepts`, or concept ids; all registered concepts by default.
        batch_size: rows per batch.
        num_proc: processes for ``map``.
        engine: ``"local"`` (``Dataset.map``) or ``"ray"`` (Ray Data actors, resumable parquet shards; see
            :mod:`curate.ray_engine`).
        engine_options: for ``engine="ray"``: ``out``, ``address``, ``workers``, ``rows_per_shard``, ...

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> ds = annotate(make_preference_pairs(20, seed=0).dataset, ["flattery"])
        >>> [c for c in ds.column_names if "flattery" in c]
        ['chosen__flattery', 'rejected__flattery']
    """
    ann = concepts if isinstance(concepts, NamedConcepts) else NamedConcepts(concepts)
    if engine != "local":
        if engine != "ray":
            raise ConfigError(f"Unknown engine {engine!r}. Choose 'local' or 'ray'.")
        from ..ray_engine import run_annotator

        # ship the resolved concepts, not ``None`` (= "the registry"): a concept registered in this process
        # (``register_concept``) is unknown to a fresh worker process
        ann = type(ann)(ann.concepts_, text_columns=ann.text_columns)
        key = (ann.fingerprint(), str(batch_size))
        return run_annotator(ann, dataset, kind="named", key=key, batch_size=batch_size, **(engine_options or {}))
    existing = [c for c in ann.output_columns if c in dataset.column_names]
    if existing:
        dataset = dataset.remove_columns(existing)
    fp = None
    fingerprint = getattr(dataset, "_fingerprint", None)
    if fingerprint is not None:
        import hashlib

        fp = hashlib.sha256(f"{fingerprint}|named|{ann.fingerprint()}|{batch_size}".encode()).hexdigest()[:32]
    from ..cache import checked_map

    return checked_map(
        dataset,
        ann,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        features=ann.features(dataset.features),
        new_fingerprint=fp,
        desc=desc,
    )
