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
Readable labels for an audit's findings, built from these: :mod:`curate.concepts.finding_labels`.

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
from ..errors import ColumnError, ModelError

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
        raise ColumnError(f"SAE columns {missing} not in the dataset. SAE sources in the dataset: {known}.")
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
    named = [c for c in C.paired_concepts(names) if c != "log_length"]
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
