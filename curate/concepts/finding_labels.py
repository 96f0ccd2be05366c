"""Readable labels for an audit's findings, offline: :func:`describe_findings` gives every finding a line a
person can read and marked example contexts, never bare token pieces.

For a named concept: its definition, and windows around its matches. For an SAE feature or group: the strongest
token of its top-activating responses (from :func:`~curate.concepts.labels.label_features` run with the
annotator), a window around it with that word marked «like this», the most distinctive readable phrase and the
nearest named concept (:func:`readable_label`). The text helpers (:func:`detokenize`, :func:`is_fragment`,
:func:`mark_context`, :func:`token_context`) work on any text.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .. import _columns as C

__all__ = [
    "describe_findings",
    "readable_label",
    "FINDING_LABEL_COLUMNS",
    "MARK_OPEN",
    "MARK_CLOSE",
    "detokenize",
    "is_fragment",
    "mark_context",
    "token_context",
]

MARK_OPEN, MARK_CLOSE = "«", "»"  # the strongest token (or the matched phrase) in an example context
FINDING_LABEL_COLUMNS = ["label", "ngram_label", "phrase", "example", "contexts_chosen", "contexts_rejected"]
_SHORT_WORDS = {
    "i",
    "a",
    "an",
    "to",
    "is",
    "it",
    "no",
    "do",
    "be",
    "go",
    "so",
    "ok",
    "my",
    "me",
    "we",
    "us",
    "he",
    "up",
    "on",
    "in",
    "at",
    "of",
    "or",
    "if",
    "as",
    "by",
    "am",
    "hi",
    "oh",
}
_STUBS = {
    "t",
    "s",
    "d",
    "m",
    "ll",
    "re",
    "ve",
    "don",
    "won",
    "isn",
    "doesn",
    "didn",
    "wasn",
    "aren",
    "couldn",
    "wouldn",
    "shouldn",
    "haven",
    "hasn",
    "weren",
}
_FUNCTION_WORDS = {
    "what",
    "the",
    "a",
    "an",
    "and",
    "is",
    "it",
    "to",
    "of",
    "you",
    "i",
    "that",
    "this",
    "in",
    "for",
    "on",
    "with",
    "as",
    "be",
    "are",
    "was",
    "so",
    "but",
    "or",
    "if",
    "at",
    "by",
    "my",
    "your",
    "we",
}
_SYMBOLS = [
    ("#", "Markdown headings (#)"),
    ("*", "bold text or list markers (*)"),
    ("`", "code (`)"),
    ("|", "tables (|)"),
    ("?", "questions (?)"),
    ("!", "exclamations (!)"),
    ("-", "list items (-)"),
    (":", "colons introducing lists or steps"),
]


def detokenize(text: str) -> str:
    """Join word-piece n-grams back into text: ``"don ' t know"`` -> ``"don't know"``, ``"yes ."`` -> ``"yes."``.

    Example:

        >>> detokenize("i don ’ t know")
        'i don’t know'
        >>> detokenize("sure , here")
        'sure, here'
    """
    import re

    text = re.sub(r"\s*(['’])\s*(t|s|d|m|ll|re|ve)\b", r"\1\2", str(text))
    text = re.sub(r"\s+([.,!?;:%)])", r"\1", text)
    text = re.sub(r"([(])\s+", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def is_fragment(phrase: str) -> bool:
    """True when ``phrase`` is not readable on its own: no whole word (``"t"``, ``"don"``, ``". # #"``, ``"can ’"``).

    A phrase is readable when, once detokenized, it has a word of three or more letters that is not a contraction
    stub, or is a common short word (``"I"``, ``"no"``), and does not end in a dangling apostrophe.

    Example:

        >>> [is_fragment(p) for p in ["t", "don", ". # #", "can ’", "ask . #", "I don't know", "no"]]
        [True, True, True, True, True, False, False]
    """
    import re

    text = detokenize(phrase)
    if not text or re.search(r"['’]\s*$", text):
        return True
    words = re.findall(r"[A-Za-z]+(?:['’][A-Za-z]+)?", text)
    if not words or any(w.lower() in _STUBS for w in words):
        return True
    if len(words) <= 2 and len(re.findall(r"[^\w\s'’]", text)) > len(words):  # mostly symbols: "ask . #"
        return True
    return not any((len(w) >= 3 and w.lower() not in _STUBS) or w.lower() in _SHORT_WORDS for w in words)


def _word_span(text: str, a: int, b: int) -> tuple[int, int]:
    """Grow [a, b) to whole words (letters, digits and apostrophes inside a word)."""

    def inword(ch):
        return ch.isalnum() or ch in "'’"

    while a > 0 and inword(text[a - 1]) and (a < len(text) and inword(text[a]) or a == b):
        a -= 1
    while b < len(text) and inword(text[b]) and b > 0 and inword(text[b - 1]):
        b += 1
    return a, b


def mark_context(text: str, start: int, end: int, width: int = 60) -> str:
    """A short window of ``text`` around ``[start, end)``, that span grown to whole words and marked «like this».

    Example:

        >>> mark_context("Well, I don't know much about cars, sorry.", 8, 11)
        "Well, I «don't» know much about cars, sorry."
    """
    text = str(text)
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    start, end = _word_span(text, start, max(end, start))
    lo, hi = max(0, start - width), min(len(text), end + width)
    while lo > 0 and not text[lo - 1].isspace() and start - lo < width + 15:
        lo -= 1
    while hi < len(text) and not text[hi].isspace() and hi - end < width + 15:
        hi += 1
    inner = text[start:end].strip() or text[start:end]
    out = (
        ("…" if lo > 0 else "")
        + text[lo:start]
        + MARK_OPEN
        + inner
        + MARK_CLOSE
        + text[end:hi]
        + ("…" if hi < len(text) else "")
    )
    return " ".join(out.replace("\n", " ↵ ").split())


def token_context(tokens: list[str], acts, width: int = 60) -> tuple[str, str]:
    """Context around the strongest token of a response (token strings + activations, as ``token_activations``).

    Returns:
        ``(marked context, the strongest token's whole word)``.

    Example:

        >>> token_context(["I", " don", "'t", " know", "."], [0.1, 0.2, 3.0, 0.5, 0.0])
        ("«I don't» know.", "I don't")
    """
    acts = np.asarray(acts, dtype=float)
    if len(tokens) == 0 or len(acts) == 0:
        return "", ""
    k = int(np.argmax(acts))
    text = "".join(tokens)
    start = sum(len(t) for t in tokens[:k])
    end = start + len(tokens[k])
    while start < end and text[start].isspace():
        start += 1
    a, b = _word_span(text, start, end)
    # a contraction is read with the word before it ("I don't"); a function word with the two after it
    # ("what a great"), so the phrase says something on its own
    import re

    if re.search(r"['’]", text[a:b]) and a > 1 and text[a - 1] == " " and text[a - 2].isalnum():
        a, _ = _word_span(text, a - 2, a - 1)
    if text[a:b].strip().lower() in _FUNCTION_WORDS:
        m = re.match(r"(?:\W*[\w'’]+){1,2}", text[b:])
        if m:
            b += m.end()
    word = " ".join(text[a:b].split())
    return mark_context(text, a, b, width), word


def _phrase_from(words: list[str], ngrams: list[str]) -> str:
    """The most common readable strongest-token word across contexts, else the best readable n-gram."""
    from collections import Counter

    counts = Counter(w.strip().lower() for w in words if w and not is_fragment(w))
    if counts:
        return counts.most_common(1)[0][0]
    for g in ngrams:
        g = detokenize(g)
        if not is_fragment(g):
            return g
    return ""


def _symbol_label(words: list[str], ngrams: list[str]) -> str:
    blob = " ".join(words + list(ngrams))
    for sym, name in _SYMBOLS:
        if sym in blob:
            return name
    return ""


def readable_label(
    phrase: str,
    nearest: str | None = None,
    nearest_r: float | None = None,
    *,
    definition: str | None = None,
    fallback: str = "",
) -> str:
    """One line a person can read: a named concept's definition, or ``“phrase”`` with its nearest named concept.

    Example:

        >>> print(readable_label("i don't know", "deflection", 0.41))
        says “i don't know” (close to deflection, r=0.41)
        >>> readable_label("", fallback="Markdown headings (#)")
        'Markdown headings (#)'
    """
    if definition:
        short = definition.split(" (")[0].split(": ")[0].rstrip(".")
        return short if len(short) >= 8 else definition.rstrip(".")
    near = ""
    if nearest and nearest_r is not None and nearest_r == nearest_r and abs(nearest_r) >= 0.2:
        near = f" ({'close to' if nearest_r > 0 else 'opposite of'} {nearest}, r={nearest_r:.2f})"
    if phrase:
        return f"says “{phrase}”{near}"
    if fallback:
        return fallback + near
    return f"an SAE pattern{near}" if near else "an SAE pattern without a readable phrase (see the examples)"


# function concepts made of pattern concepts: their spans are the parts' spans
_SPAN_PARTS = {"markdown": ("heading", "list", "bold", "code", "link")}


def _named_contexts(concept, texts, scores, n: int, width: int) -> tuple[list[str], list[str]]:
    order = [i for i in np.argsort(-np.asarray(scores), kind="stable") if scores[i] > 0]
    out, words = [], []
    from .named import _REGISTRY

    parts = [_REGISTRY[p] for p in _SPAN_PARTS.get(concept.id if concept is not None else "", ()) if p in _REGISTRY]
    for i in order:
        spans = concept.spans(texts[i]) if concept is not None else []
        for part in parts:
            spans = spans or part.spans(texts[i])
        if spans:
            a, b = spans[0]
            out.append(mark_context(texts[i], a, b, width))
            words.append(" ".join(texts[i][a:b].split()))
        elif concept is not None and concept.id in ("length", "log_length"):
            t = texts[i]
            out.append(f"{MARK_OPEN}{len(t.split())} words{MARK_CLOSE} " + " ".join(t[: 2 * width].split()) + "…")
        if len(out) >= n:
            break
    return out, words


def describe_findings(
    dataset, audit, labels: pd.DataFrame | None = None, *, n_contexts: int = 3, width: int = 40
) -> pd.DataFrame:
    """Readable labels and marked example contexts for each of an audit's findings (offline).

    For a named concept: its definition, and windows around its matches in the responses that carry it most.
    For an SAE feature or group: the strongest token of its top-activating responses (token-level activations
    from :func:`~curate.concepts.labels.label_features` run with the annotator), a window around it with that
    word marked, the most distinctive phrase (the commonest strongest word, else the best readable contrastive
    n-gram), the nearest named concept, and a label built from them (:func:`readable_label`) — never bare token
    pieces.

    Args:
        dataset: the annotated dataset the audit was fitted on.
        audit: a fitted :class:`~curate.audit.ConceptAudit`.
        labels: the SAE feature labels (:func:`~curate.concepts.labels.label_features`), when the audit has SAE
            concepts.
        n_contexts: contexts kept per side.
        width: characters of context on each side of the marked word.

    Returns:
        The audit's findings table with ``label`` replaced by the readable one and ``ngram_label``, ``phrase``,
        ``example`` (one marked context, from the side that has more of the concept), ``contexts_chosen`` and
        ``contexts_rejected`` (lists of marked contexts) added.
    """
    from .named import _REGISTRY

    f = audit.findings().copy()
    for col in FINDING_LABEL_COLUMNS[1:]:
        f[col] = pd.Series([None] * len(f), dtype=object)
    if not len(f):
        return f
    scores = audit.scores_
    ids = scores.concepts["concept"].tolist()
    texts = {side: [t if isinstance(t, str) else "" for t in dataset[side]] for side in C.SIDES}
    by = getattr(audit, "by_", None)
    subset_of = None
    if by:
        subset_of = C.subset_values(dataset[by])
    lab = labels.set_index("concept") if labels is not None and len(labels) else None
    members = audit.members_.groupby("group")["concept"].apply(list).to_dict() if len(audit.members_) else {}
    for k, r in f.iterrows():
        c, sub = r["concept"], r[C.SUBSET]
        rows = scores.rows if not sub or subset_of is None else scores.rows[subset_of[scores.rows] == sub]
        keep = np.isin(scores.rows, rows)
        ctx: dict[str, list[str]] = {}
        words: list[str] = []
        ngrams: list[str] = []
        definition = None
        if r["source"] == "named":
            concept = _REGISTRY.get(c)
            definition = concept.label if concept is not None else None
            j = ids.index(c)
            for side, mat in ((C.CHOSEN, scores.chosen), (C.REJECTED, scores.rejected)):
                side_texts = [texts[side][i] for i in scores.rows[keep]]
                got, w = _named_contexts(concept, side_texts, mat[keep, j], n_contexts, width)
                ctx[side], words = got, words + w
        else:
            feats = members.get(c, [c])
            ex_all = []
            for feat in feats:
                if lab is None or feat not in lab.index:
                    continue
                ng = lab.loc[feat, "top_ngrams"]
                ng = json.loads(ng) if isinstance(ng, str) else (ng if ng is not None else [])
                ngrams += [str(g[0]) for g in ng]
                ex = lab.loc[feat, "top_examples"]
                ex_all += json.loads(ex) if isinstance(ex, str) else list(ex or [])
            ex_all.sort(key=lambda e: -float(e.get("value", 0)))
            if subset_of is not None and sub:
                inside = [e for e in ex_all if 0 <= int(e["row"]) < len(subset_of) and subset_of[int(e["row"])] == sub]
                ex_all = inside or ex_all
            ctx = {C.CHOSEN: [], C.REJECTED: []}
            for e in ex_all:
                if e.get("tokens"):
                    marked, word = token_context(e["tokens"], e["acts"], width)
                    words.append(word)
                else:
                    marked = ""
                if marked and len(ctx[e["side"]]) < n_contexts and marked not in ctx[e["side"]]:
                    ctx[e["side"]].append(marked)
            phrase = _phrase_from(words, ngrams)
            if phrase:  # responses without token activations: mark the phrase where it occurs
                for e in ex_all:
                    if len(ctx[e["side"]]) >= n_contexts:
                        continue
                    pos = e["text"].lower().find(phrase)
                    if pos >= 0 and not e.get("tokens"):
                        ctx[e["side"]].append(mark_context(e["text"], pos, pos + len(phrase), width))
        phrase = "" if definition else _phrase_from(words, ngrams)
        label = readable_label(
            phrase,
            r.get("nearest_named"),
            r.get("nearest_r"),
            definition=definition,
            fallback=_symbol_label(words, ngrams),
        )
        first, second = (C.CHOSEN, C.REJECTED) if r["win_rate"] > 0.5 else (C.REJECTED, C.CHOSEN)
        example = (ctx.get(first) or ctx.get(second) or [""])[0]
        if example:
            example = f"{first}: {example}" if ctx.get(first) else f"{second}: {example}"
        f.at[k, "ngram_label"] = r["label"]
        f.at[k, "label"] = label
        f.at[k, "phrase"] = phrase or (words[0].lower() if words and definition else "")
        f.at[k, "example"] = example
        f.at[k, "contexts_chosen"] = ctx.get(C.CHOSEN, [])
        f.at[k, "contexts_rejected"] = ctx.get(C.REJECTED, [])
    return f
