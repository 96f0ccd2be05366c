"""Labels for SAE features, without an API key.

For each feature of an SAE source written by :func:`~curate.concepts.sae.annotate_sae`:

* ``top_examples``: its top-activating responses (JSON), with token-level activations when the annotator
  is passed (for the card and the Space);
* ``label``: contrastive n-grams — the word 1–3-grams most over-represented in the responses where the
  feature is strong vs all other responses (log-odds ratio z-scores with a Jeffreys prior);
* ``nearest_named`` / ``nearest_r``: the named concept whose scores correlate most with the feature over
  all responses (Pearson r), when the dataset also carries named-concept columns.

An optional ``labeller(examples, ngrams) -> str`` can replace the n-gram label: any callable, or
:class:`OpenAICompatibleLabeller` for a chat-completions endpoint (OpenAI, vLLM, TGI, Ollama, ...).

Example:

    >>> from curate import make_preference_pairs, annotate
    >>> from curate.concepts.sae import annotate_sae
    >>> ds, ann = annotate_sae(annotate(make_preference_pairs(200).dataset), backend="embedding")
    >>> labels = label_features(ds, ann.source_)
    >>> labels.columns[:6].tolist()
    ['concept', 'feature', 'source', 'label', 'n_active', 'nearest_named']
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .. import _columns as C
from ..errors import ModelError

__all__ = ["label_features", "LABEL_COLUMNS", "OpenAICompatibleLabeller"]

LABEL_COLUMNS = [
    "concept",
    "feature",
    "source",
    "label",
    "n_active",
    "nearest_named",
    "nearest_r",
    "top_ngrams",
    "top_examples",
]
_TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"


def _responses(table, source: str):
    names = table.column_names
    cols = {s: (C.sae_index_column(s, source), C.sae_value_column(s, source)) for s in C.SIDES}
    missing = [c for pair in cols.values() for c in pair if c not in names]
    if missing:
        known = sorted({p[1] for n in names if (p := C.parse_sae_column(n))})
        raise KeyError(f"SAE columns {missing} not in the dataset. SAE sources in the dataset: {known}.")
    n = table.num_rows
    reason = table.column(C.REASON).to_pylist() if C.REASON in names else [""] * n
    valid = [i for i in range(n) if not reason[i]]
    texts, keys, idx, val = [], [], [], []
    msgs = table.column(C.PROMPT_MESSAGES).to_pylist() if C.PROMPT_MESSAGES in names else None
    prompts = table.column(C.PROMPT).to_pylist() if C.PROMPT in names else None
    prompt_of = []
    for side in C.SIDES:
        t = table.column(side).to_pylist()
        ii = table.column(cols[side][0]).to_pylist()
        vv = table.column(cols[side][1]).to_pylist()
        for i in valid:
            texts.append(t[i] if isinstance(t[i], str) else "")
            keys.append((i, side))
            idx.append(ii[i] or [])
            val.append(vv[i] or [])
            if msgs is not None and msgs[i]:
                prompt_of.append(
                    [{"role": m.get("role") or "user", "content": m.get("content") or ""} for m in msgs[i]]
                )
            elif prompts is not None and prompts[i]:
                prompt_of.append([{"role": "user", "content": prompts[i]}])
            else:
                prompt_of.append([])
    return texts, keys, idx, val, prompt_of, valid


def _named_matrix(table, valid: list[int]) -> tuple[list[str], np.ndarray]:
    names = table.column_names
    named = [
        p[1]
        for n in names
        if (p := C.parse_score_column(n))
        and p[0] == C.CHOSEN
        and C.score_column(C.REJECTED, p[1]) in names
        and p[1] != "log_length"
    ]
    if not named:
        return [], np.zeros((2 * len(valid), 0))
    mats = []
    for side in C.SIDES:
        m = np.column_stack(
            [
                np.asarray(table.column(C.score_column(side, c)).to_numpy(zero_copy_only=False), dtype=np.float64)[
                    valid
                ]
                for c in named
            ]
        )
        mats.append(np.nan_to_num(m))
    return named, np.concatenate(mats, axis=0)


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    sd = x.std(0)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


def _ngram_labels(texts: list[str], top_sets: list[np.ndarray], ngram_range, n_terms: int, min_df: int):
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(
        ngram_range=ngram_range,
        binary=True,
        token_pattern=_TOKEN_PATTERN,
        lowercase=True,
        min_df=min(min_df, max(1, len(texts))),
    )
    try:
        X = vec.fit_transform(texts).tocsc().astype(np.float64)
    except ValueError:  # empty vocabulary
        return [[] for _ in top_sets]
    vocab = vec.get_feature_names_out()
    total = np.asarray(X.sum(0)).ravel()
    n = X.shape[0]
    rows = np.concatenate([s for s in top_sets]) if top_sets else np.zeros(0, int)
    cols = np.concatenate([np.full(len(s), j) for j, s in enumerate(top_sets)]) if top_sets else np.zeros(0, int)
    T = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(top_sets)))
    A = (T.T @ X).tocsr()  # [n_features, vocab]: documents in the top set that contain the n-gram
    a0 = 0.5
    out = []
    for j, s in enumerate(top_sets):
        nt, no = len(s), n - len(s)
        lo_, hi_ = A.indptr[j], A.indptr[j + 1]
        terms, a = A.indices[lo_:hi_], A.data[lo_:hi_]
        keep = a >= 2 if nt >= 4 else a >= 1
        terms, a = terms[keep], a[keep]
        if len(terms) == 0 or no <= 0:
            out.append([])
            continue
        b = total[terms] - a
        lo = np.log((a + a0) / (nt - a + a0)) - np.log((b + a0) / (no - b + a0))
        z = lo / np.sqrt(1 / (a + a0) + 1 / (nt - a + a0) + 1 / (b + a0) + 1 / (no - b + a0))
        order = np.argsort(-z)
        picked: list[tuple[str, float]] = []
        for t in order:
            if z[t] <= 0 or len(picked) >= n_terms:
                break
            term = vocab[terms[t]]
            if any(term in p or p in term for p, _ in picked):
                continue
            picked.append((str(term), round(float(z[t]), 2)))
        out.append(picked)
    return out


def separation_order(V, keys, feats) -> np.ndarray:
    """Positions in ``feats`` ordered by how strongly the feature separates chosen from rejected: the sign-test
    ``|wins − losses| / sqrt(wins + losses)`` of its pooled activation over the pairs that have both responses.

    Args:
        V: responses × features activations (scipy sparse), rows as in ``keys``.
        keys: ``(row, side)`` per response; side is ``chosen`` or ``rejected``.
        feats: the feature ids (columns of ``V``) to order.

    Example:

        >>> from scipy import sparse
        >>> V = sparse.csc_matrix(np.array([[1., 0.], [0., 0.], [1., 2.], [0., 2.]]))
        >>> keys = [(0, "chosen"), (0, "rejected"), (1, "chosen"), (1, "rejected")]
        >>> separation_order(V, keys, np.array([1, 0])).tolist()   # feature 0 wins both pairs: first
        [1, 0]
    """
    at = {k: j for j, k in enumerate(keys)}
    pairs = [(j, at[(r, "rejected")]) for (r, side), j in at.items() if side == "chosen" and (r, "rejected") in at]
    if not pairs:
        return np.arange(len(feats))
    ch, rj = (np.asarray(x, dtype=np.int64) for x in zip(*pairs))
    V = V.tocsr()
    D = (V[ch][:, feats] - V[rj][:, feats]).tocsc()
    wins = np.asarray((D > 0).sum(axis=0)).ravel()
    losses = np.asarray((D < 0).sum(axis=0)).ravel()
    z = np.abs(wins - losses) / np.sqrt(wins + losses + 1.0)
    return np.argsort(-z, kind="stable")


def label_features(
    dataset,
    source: str,
    *,
    annotator=None,
    features: Sequence[int] | None = None,
    min_active: int = 5,
    n_top: int = 5,
    n_token_examples: int = 3,
    max_token_responses: int = 128,
    ngram_range: tuple[int, int] = (1, 3),
    n_terms: int = 3,
    min_df: int = 3,
    labeller: Callable[[list[str], list[str]], str] | None = None,
    max_text_chars: int = 600,
) -> pd.DataFrame:
    """Describe each SAE feature of ``source`` by examples, contrastive n-grams and nearest named concept.

    Args:
        dataset: a dataset annotated by :func:`~curate.concepts.sae.annotate_sae` (and, for
            ``nearest_named``, by :func:`curate.annotate`); a `datasets.Dataset` or a pandas DataFrame.
        source: the SAE source id (e.g. ``"smollm2-l15"``).
        annotator: the :class:`~curate.concepts.sae.SAEConcepts` that wrote the columns; when given,
            the top examples get token-level activations (one extra forward over at most
            ``max_token_responses`` responses).
        features: feature indices to describe; default every feature active in ``min_active`` responses.
        min_active: see ``features``.
        n_top: top-activating responses kept per feature.
        n_token_examples: how many of those get token-level activations.
        max_token_responses: cap on distinct responses run for token-level activations.
        ngram_range, n_terms, min_df: n-gram sizes, terms per label, and the minimum document frequency.
        labeller: optional ``labeller(top_texts, top_ngrams) -> str`` that writes the label instead.
        max_text_chars: texts in ``top_examples`` are cut to this length.

    Returns:
        DataFrame with :data:`LABEL_COLUMNS`: ``concept`` (``sae:<source>:<feature>``), ``feature``,
        ``source``, ``label``, ``n_active`` (responses where the feature is in the top-k), ``nearest_named``,
        ``nearest_r``, ``top_ngrams`` (list of ``[ngram, z]``) and ``top_examples`` (JSON list of
        ``{row, side, value, text[, tokens, acts]}``).

    Example:

        >>> labels = label_features(ds, "smollm2-l15", annotator=ann)            # doctest: +SKIP
        >>> labels.set_index("concept").loc["sae:smollm2-l15:12", "label"]      # doctest: +SKIP
        '"great question", "!", "sharp"'
    """
    import pyarrow as pa
    from scipy import sparse

    table = (
        pa.Table.from_pandas(dataset, preserve_index=False)
        if isinstance(dataset, pd.DataFrame)
        else dataset.with_format("arrow")[:]
    )
    texts, keys, idx, val, prompt_of, valid = _responses(table, source)
    n = len(texts)
    lens = [len(x) for x in idx]
    rows = np.repeat(np.arange(n), lens)
    flat_i = np.asarray([f for x in idx for f in x], dtype=np.int64)
    flat_v = np.asarray([v for x in val for v in x], dtype=np.float64)
    d = int(flat_i.max()) + 1 if len(flat_i) else 0
    V = sparse.csc_matrix((flat_v, (rows, flat_i)), shape=(n, d))
    counts = np.diff(V.indptr)
    if features is None:
        feats = np.flatnonzero(counts >= min_active)
    else:
        feats = np.asarray([f for f in features if 0 <= f < d], dtype=np.int64)
    if len(feats) == 0:
        return pd.DataFrame(columns=LABEL_COLUMNS)

    # top sets (strong activations) and top examples per feature
    top_sets, top_examples = [], []
    for f in feats:
        r, v = V.indices[V.indptr[f] : V.indptr[f + 1]], V.data[V.indptr[f] : V.indptr[f + 1]]
        order = np.argsort(-v, kind="stable")
        strong = r[v >= np.median(v)] if len(v) else r
        if len(strong) < min(3, len(r)):
            strong = r[order[:3]]
        top_sets.append(np.sort(strong[: max(3, min(len(strong), 500))]))
        seen, ex = set(), []
        for o in order:
            t = texts[r[o]]
            if t in seen:
                continue
            seen.add(t)
            ex.append(
                {
                    "row": int(keys[r[o]][0]),
                    "side": keys[r[o]][1],
                    "value": round(float(v[o]), 4),
                    "text": t[:max_text_chars],
                    "_j": int(r[o]),
                }
            )
            if len(ex) >= n_top:
                break
        top_examples.append(ex)

    # token-level activations for the first examples of each feature, within a budget of responses: the
    # features that separate chosen from rejected most (the likely findings) first, one example each per round
    if annotator is not None and n_token_examples > 0:
        wanted: list[int] = []
        chosen_first = separation_order(V, keys, feats)
        for rank in range(n_token_examples):
            for k in chosen_first:
                ex = top_examples[k]
                if rank < len(ex) and ex[rank]["_j"] not in wanted and len(wanted) < max_token_responses:
                    wanted.append(ex[rank]["_j"])
        if wanted:
            col = {int(f): c for c, f in enumerate(feats)}
            acts = annotator.token_activations([(prompt_of[j], texts[j]) for j in wanted], features=feats.tolist())
            by_j = dict(zip(wanted, acts))
            for f, ex in zip(feats, top_examples):
                for e in ex[:n_token_examples]:
                    got = by_j.get(e["_j"])
                    if got is not None:
                        e["tokens"] = got[0]
                        e["acts"] = [round(float(a), 3) for a in got[1][:, col[int(f)]]]

    ngrams = _ngram_labels(texts, top_sets, ngram_range, n_terms, min_df)

    # nearest named concept by correlation over all responses
    named, N = _named_matrix(table, valid)
    nearest, nearest_r = [None] * len(feats), [np.nan] * len(feats)
    if named and n > 2:
        Vd = np.asarray(V[:, feats].todense(), dtype=np.float64)
        r = _zscore(Vd).T @ _zscore(N) / n
        best = np.argmax(np.abs(r), axis=1)
        for j, b in enumerate(best):
            if abs(r[j, b]) > 0:
                nearest[j], nearest_r[j] = named[b], float(r[j, b])

    labels = []
    for f, ex, ng in zip(feats, top_examples, ngrams):
        if labeller is not None:
            labels.append(str(labeller([e["text"] for e in ex], [t for t, _ in ng])))
        else:
            labels.append(", ".join(f'"{t}"' for t, _ in ng) if ng else f"SAE feature {int(f)} ({source})")
    for ex in top_examples:
        for e in ex:
            e.pop("_j", None)
    return pd.DataFrame(
        {
            "concept": [C.sae_concept_id(source, f) for f in feats],
            "feature": feats.astype(int),
            "source": f"sae:{source}",
            "label": labels,
            "n_active": counts[feats].astype(int),
            "nearest_named": nearest,
            "nearest_r": nearest_r,
            "top_ngrams": [[list(x) for x in ng] for ng in ngrams],
            "top_examples": [json.dumps(ex, ensure_ascii=False) for ex in top_examples],
        }
    )[LABEL_COLUMNS]


class OpenAICompatibleLabeller:
    """Write a feature's label with an OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint.

    Pass it as ``label_features(..., labeller=OpenAICompatibleLabeller(model=...))``. The request holds the
    feature's top-activating responses (cut to ``max_chars`` each) and its contrastive n-grams; the first
    line of the reply, cut to ``max_label_chars``, is the label. The key comes from ``api_key`` or the
    environment variable ``api_key_env``; it is sent as a bearer header only, never logged or stored.

    Args:
        model: the endpoint's model name (e.g. ``"gpt-4o-mini"``, or the model a local vLLM server serves).
        base_url: the API root, e.g. ``"https://api.openai.com/v1"`` or ``"http://localhost:8000/v1"``.
        api_key: the key; ``None`` reads ``api_key_env`` (a local server may need none: pass ``""``).
        api_key_env: environment variable holding the key.
        max_examples, max_chars: how many top examples are sent, and how many characters of each.
        max_label_chars: longest label kept.
        timeout: seconds per request.
        transport: an ``httpx`` transport (tests pass ``httpx.MockTransport``).

    Example:

        >>> import httpx
        >>> reply = {"choices": [{"message": {"content": "Praise of the user's question"}}]}
        >>> mock = httpx.MockTransport(lambda request: httpx.Response(200, json=reply))
        >>> labeller = OpenAICompatibleLabeller("some-model", api_key="sk-test", transport=mock)
        >>> labeller(["Great question! Paris."], ["great question"])
        "Praise of the user's question"
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_examples: int = 5,
        max_chars: int = 400,
        max_label_chars: int = 80,
        timeout: float = 30.0,
        transport=None,
    ):
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.api_key_env = api_key_env
        self.max_examples = max_examples
        self.max_chars = max_chars
        self.max_label_chars = max_label_chars
        self.timeout = timeout
        self.transport = transport

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAICompatibleLabeller(model={self.model!r}, base_url={self.base_url!r})"

    def messages(self, texts: list[str], ngrams: list[str]) -> list[dict]:
        """The chat messages sent for one feature."""
        shown = "\n".join(f"{i + 1}. {t[: self.max_chars]}" for i, t in enumerate(texts[: self.max_examples]))
        return [
            {
                "role": "system",
                "content": "You name features of a sparse autoencoder read from a language model. "
                "Answer with one short noun phrase (at most 8 words), nothing else.",
            },
            {
                "role": "user",
                "content": f"Responses on which the feature fires most strongly:\n{shown}\n\n"
                f"Words over-represented in them: {', '.join(ngrams) or '(none)'}\n\n"
                "What does the feature detect?",
            },
        ]

    def __call__(self, texts: list[str], ngrams: list[str]) -> str:
        import os

        import httpx

        key = self.api_key if self.api_key is not None else os.environ.get(self.api_key_env)
        if key is None:
            raise ModelError(
                f"No API key for the labeller: set the environment variable {self.api_key_env} or pass "
                f"api_key=... (api_key='' for a local server that needs none)."
            )
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        url = self.base_url.rstrip("/") + "/chat/completions"
        body = {"model": self.model, "messages": self.messages(texts, ngrams), "temperature": 0, "max_tokens": 32}
        try:
            with httpx.Client(transport=self.transport, timeout=self.timeout) as client:
                resp = client.post(url, json=body, headers=headers)
        except httpx.HTTPError as err:
            raise ModelError(
                f"The labeller could not reach {url}: {type(err).__name__}. Check base_url and the "
                f"network, or label without an endpoint (labeller=None: contrastive n-grams)."
            ) from None
        if resp.status_code != 200:
            raise ModelError(
                f"The labeller's endpoint {url} answered HTTP {resp.status_code}: "
                f"{resp.text[:200]!r}. Check model={self.model!r} and the API key."
            )
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError(
                f"The labeller's endpoint {url} did not answer in the chat-completions format "
                f"(choices[0].message.content): {resp.text[:200]!r}"
            ) from None
        lines = [ln.strip().strip('"') for ln in str(content).strip().splitlines() if ln.strip()]
        return (lines[0] if lines else "")[: self.max_label_chars]


# -- readable labels for findings ------------------------------------------------------------------------
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
    from :func:`label_features` run with the annotator), a window around it with that word marked, the most
    distinctive phrase (the commonest strongest word, else the best readable contrastive n-gram), the nearest
    named concept, and a label built from them (:func:`readable_label`) — never bare token pieces.

    Args:
        dataset: the annotated dataset the audit was fitted on.
        audit: a fitted :class:`~curate.audit.ConceptAudit`.
        labels: the SAE feature labels (:func:`label_features`), when the audit has SAE concepts.
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
