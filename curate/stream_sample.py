"""The streaming audit's bounded sample, and the models that need the pairs themselves, run on it.

:class:`PairSample` keeps, while :class:`~curate.stream_audit.StreamingAudit` streams, a uniform random
sample of at most ``size`` usable pairs: the pairs with the smallest seeded random keys seen so far (a
bottom-k, so it does not depend on shard sizes), with their named-concept scores, log-lengths, held-out
half and SAE entries. :func:`sample_models` runs on it what the one-pass statistics cannot give: the
length-controlled Bradley–Terry effect, feature grouping, the nearest named concept and the sparse model.

Example:

    >>> import numpy as np
    >>> smp = PairSample(size=3, seed=0)
    >>> rows = np.arange(5)
    >>> smp.add(rows, np.zeros((5, 1)), np.zeros((5, 1)), np.zeros((5, 2)), np.zeros(5, np.int8), {}, n=5)
    >>> len(smp), sorted(smp.data_["gid"].tolist())
    (3, [1, 2, 3])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _columns as C
from . import stats as S
from .audit_base import sparse_preference_model
from .scores import LENGTH_CONCEPTS

__all__ = ["PairSample", "sample_models"]

_PAIR_KEYS = ("u", "gid", "ch", "rj", "loglen", "half")


class PairSample:
    """A bounded uniform sample of usable pairs, kept over a stream of record batches.

    Args:
        size: most pairs kept.
        seed: seed of the random keys.

    Attributes:
        data_: None before the first :meth:`add`; then per pair ``u`` (the random key), ``gid`` (the row's
            position in the stream), ``ch``/``rj`` (named-concept scores), ``loglen``, ``half``, and per
            ``"<source>|<side>"`` the SAE entries ``(gid, feature, |value|)`` of the sampled pairs.
    """

    def __init__(self, size: int, seed: int):
        self.size = size
        self.seed = seed
        self.data_: dict | None = None
        self._rng = np.random.default_rng(seed)
        self._offset = 0

    def __len__(self) -> int:
        return int(len(self.data_["gid"])) if self.data_ is not None else 0

    def add(self, rows, ch, rj, loglen, half, sparse, n) -> None:
        """Add the usable ``rows`` of a record batch of ``n`` rows, keeping the ``size`` pairs with the
        smallest random keys seen so far.

        Args:
            rows: positions of the usable rows in the batch.
            ch, rj, loglen, half: per usable row, the named-concept scores, log-lengths and half.
            sparse: per SAE source, ``(rows, features, signed values)`` of the chosen and rejected sides.
            n: the batch's number of rows.
        """
        u = self._rng.random(len(rows))
        take = np.argsort(u, kind="stable")[: self.size]
        gid = self._offset + rows[take]  # global row ids
        new = {"u": u[take], "gid": gid, "ch": ch[take], "rj": rj[take], "loglen": loglen[take], "half": half[take]}
        pos = np.full(n, -1, np.int64)
        pos[rows[take]] = np.arange(len(take))
        for src, parts in sparse.items():
            for side, (ri, fi, v) in zip(C.SIDES, parts):
                keep = pos[ri] >= 0
                new[f"{src}|{side}"] = (self._offset + ri[keep], fi[keep], np.abs(v[keep]))
        old = self.data_
        if old is not None:
            merged = {k: np.concatenate([old[k], new[k]]) for k in _PAIR_KEYS}
            for k in new:
                if "|" in k:
                    o = old.get(k, (np.zeros(0, np.int64),) * 2 + (np.zeros(0),))
                    merged[k] = tuple(np.concatenate([a, b]) for a, b in zip(o, new[k]))
            new = merged
        order = np.argsort(new["u"], kind="stable")[: self.size]
        out = {k: new[k][order] for k in _PAIR_KEYS}
        kept = np.sort(out["gid"])
        for k in new:
            if "|" in k:
                g, f, v = new[k]
                m = np.isin(g, kept, assume_unique=False)
                out[k] = (g[m], f[m], v[m])
        self.data_ = out
        self._offset += n

    def matrices(self, sel: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``[pairs, concepts]`` chosen and rejected scores of the concepts ``sel`` (``(source, id,
        column)``: ``"named"`` with the named concept's column, or an SAE source with the feature)."""
        smp, ns = self.data_, len(self)
        gid_pos = {g: i for i, g in enumerate(smp["gid"])}
        X_c = np.zeros((ns, len(sel)))
        X_r = np.zeros((ns, len(sel)))
        col_of = {}
        for k, (src, _cid, j) in enumerate(sel):
            if src == "named":
                X_c[:, k], X_r[:, k] = smp["ch"][:, j], smp["rj"][:, j]
            else:
                col_of[(src, int(j))] = k
        for key in [k for k in smp if "|" in k]:
            src, side = key.split("|")
            g, f, v = smp[key]
            cols = np.array([col_of.get((src, int(x)), -1) for x in f], dtype=np.int64)
            ok = cols >= 0
            rows = np.array([gid_pos[int(x)] for x in g[ok]], dtype=np.int64)
            (X_c if side == C.CHOSEN else X_r)[rows, cols[ok]] = v[ok]
        return X_c, X_r


def sample_models(
    res: pd.DataFrame,
    sample: PairSample,
    concept_ids: list[tuple],
    *,
    sample_concepts: int,
    group_threshold: float,
    seed: int,
) -> tuple[pd.DataFrame, float]:
    """Length control, grouping, nearest named concept and the sparse model on the bounded sample.

    Args:
        res: the streamed statistics, one row per concept (``concept``, ``source``, ``p_value``).
        sample: the sample.
        concept_ids: ``(source, concept id, column)`` of every concept in ``res``.
        sample_concepts: most SAE features (smallest stream p-values) analysed; every named concept is.
        group_threshold: correlation at which sampled SAE features are grouped.
        seed: seed of the sparse model.

    Returns:
        ``(res with the sample's columns, the sparse model's held-out AUC)``; rows outside the sample's
        concepts have NaN (``in_sample`` False).
    """
    for col, val in (
        ("length_controlled_coef", np.nan),
        ("length_controlled_p", np.nan),
        ("group", None),
        ("nearest_named", None),
        ("nearest_r", np.nan),
        ("multivariate_coef", np.nan),
        ("in_sample", False),
    ):
        res[col] = val
    if not len(sample):
        res["length_controlled_q"] = np.nan
        return res, float("nan")
    # which concepts: every named one, and the SAE features with the smallest stream p-values
    where = {c: i for i, c in enumerate(res["concept"])}
    sae_rows = res.index[res["source"] != "named"]
    best = res.loc[sae_rows].sort_values("p_value").head(sample_concepts)["concept"]
    chosen_set = set(best)
    sel = [(src, cid, j) for src, cid, j in concept_ids if src == "named" or cid in chosen_set]
    X_c, X_r = sample.matrices(sel)
    smp = sample.data_
    delta = X_c - X_r
    ids = [cid for _, cid, _ in sel]
    idx = np.array([where[c] for c in ids])
    # length-controlled effect
    dl = S.scale_no_center(smp["loglen"][:, 0] - smp["loglen"][:, 1])
    x2 = np.broadcast_to(dl[:, None], delta.shape).copy()
    is_len = np.isin(ids, LENGTH_CONCEPTS)
    x2[:, is_len] = 0.0
    coef, _, lc_p, _ = S.logistic_two(S.scale_no_center(delta), x2, np.ones(len(sample)))
    differ = (delta != 0).any(0)
    res.loc[idx, "length_controlled_coef"] = np.where(differ, coef, np.nan)
    res.loc[idx, "length_controlled_p"] = np.where(differ, lc_p, np.nan)
    res["length_controlled_q"] = S.benjamini_hochberg(res["length_controlled_p"].to_numpy())
    res.loc[idx, "in_sample"] = True
    # grouping of the sampled SAE features
    stacked = np.concatenate([X_c, X_r], 0)
    sae_k = np.array([i for i, (src, _, _) in enumerate(sel) if src != "named"], dtype=int)
    if len(sae_k):
        from .grouping import GROUP_PREFIX, cluster_features

        labels = cluster_features(stacked[:, sae_k], group_threshold)
        res.loc[idx[sae_k], "group"] = [f"{GROUP_PREFIX}{sel[k][0]}:{g}" for k, g in zip(sae_k, labels)]
    # nearest named concept
    named_k = np.array([i for i, (src, cid, _) in enumerate(sel) if src == "named" and cid != "log_length"], dtype=int)
    if len(named_k) and len(sae_k):
        r = S.correlation_matrix(stacked[:, sae_k], stacked[:, named_k])
        b = np.argmax(np.abs(r), axis=1)
        br = r[np.arange(len(sae_k)), b]
        res.loc[idx[sae_k], "nearest_named"] = np.where(np.abs(br) > 0, np.asarray(ids, object)[named_k][b], None)
        res.loc[idx[sae_k], "nearest_r"] = np.where(np.abs(br) > 0, br, np.nan)
    # the sparse model
    coef, auc = sparse_preference_model(delta, smp["half"], seed)
    res.loc[idx, "multivariate_coef"] = coef
    return res, auc
