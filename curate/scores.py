"""Read concept scores out of an annotated pair dataset into dense matrices.

Named concepts come from ``chosen__<id>`` / ``rejected__<id>`` float columns; SAE features from their
sparse top-k list columns (only features that are active somewhere become concepts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _columns as C
from .errors import ColumnError, ConfigError

LENGTH_CONCEPTS = ("length", "log_length")


@dataclass
class ConceptScores:
    """Dense concept scores of the usable pairs of a dataset.

    Attributes:
        concepts: one row per concept: ``concept``, ``label``, ``source`` (``named`` or ``sae:<source>``).
        chosen, rejected: float32 arrays of shape ``(n_pairs, n_concepts)``.
        rows: positions of these pairs in the original dataset (unusable rows are left out).
        prompts: the prompt texts (for the held-out split).
        log_length: ``(n_pairs, 2)`` log word counts of chosen and rejected (for length control).
        weights: per-pair weights (ones unless given).
        extra: other columns requested (e.g. the ``by=`` column), aligned with ``rows``.
    """

    concepts: pd.DataFrame
    chosen: np.ndarray
    rejected: np.ndarray
    rows: np.ndarray
    prompts: list[str]
    log_length: np.ndarray
    weights: np.ndarray
    extra: dict

    @property
    def delta(self) -> np.ndarray:
        return self.chosen - self.rejected

    @property
    def n_pairs(self) -> int:
        return len(self.rows)

    def index(self, concept: str) -> int:
        ids = self.concepts["concept"].tolist()
        if concept not in ids:
            from .errors import ConceptError

            raise ConceptError(
                f"Unknown concept {concept!r}. Concepts in these scores: {ids[:50]}" + (" …" if len(ids) > 50 else "")
            )
        return ids.index(concept)

    def column(self, concept: str, side: str = C.CHOSEN) -> np.ndarray:
        mat = self.chosen if side == C.CHOSEN else self.rejected
        return mat[:, self.index(concept)]


def prompt_halves(prompts: list[str], salt: str = "curate") -> np.ndarray:
    """0/1 per pair from a hash of its prompt: the discovery (0) and confirmation (1) halves.

    Pairs that share a prompt land in the same half, so a concept tied to a prompt cannot be
    "confirmed" by its own duplicates.
    """
    return np.fromiter(
        (hashlib.md5(f"{salt}|{p}".encode()).digest()[0] & 1 for p in prompts), dtype=np.int8, count=len(prompts)
    )


def _sparse_to_dense(idx_col, val_col, n_rows: int, features: np.ndarray) -> np.ndarray:
    import pyarrow as pa

    idx_col = pa.chunked_array(idx_col) if not isinstance(idx_col, pa.ChunkedArray) else idx_col
    val_col = pa.chunked_array(val_col) if not isinstance(val_col, pa.ChunkedArray) else val_col
    idx_col, val_col = idx_col.combine_chunks(), val_col.combine_chunks()
    lengths = idx_col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    flat_idx = idx_col.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    flat_val = val_col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    row_of = np.repeat(np.arange(n_rows), lengths)
    col_of = np.searchsorted(features, flat_idx)
    ok = (col_of < len(features)) & (features[np.minimum(col_of, len(features) - 1)] == flat_idx)
    out = np.zeros((n_rows, len(features)), dtype=np.float32)
    out[row_of[ok], col_of[ok]] = flat_val[ok]
    return out


def sae_feature_scores(table, source: str, side: str, features) -> np.ndarray | None:
    """Dense ``(n_rows, len(features))`` activations of SAE ``features`` on one side of an annotated arrow
    table (0 where a feature is not in a row's top-k), or None when the table has no columns for ``source``.

    Example:

        >>> import pyarrow as pa
        >>> t = pa.table({"chosen__sae:s__idx": [[3, 7], []], "chosen__sae:s__val": [[0.5, 2.0], []]})
        >>> sae_feature_scores(t, "s", "chosen", [7]).ravel().tolist()
        [2.0, 0.0]
    """
    idx_col, val_col = C.sae_index_column(side, source), C.sae_value_column(side, source)
    if idx_col not in table.column_names or val_col not in table.column_names:
        return None
    features = np.unique(np.asarray(features, dtype=np.int64))
    return _sparse_to_dense(table.column(idx_col), table.column(val_col), table.num_rows, features)


def _named_label(concept: str) -> str:
    from .concepts.named import list_concepts

    return list_concepts().get(concept, concept)


def concept_scores(dataset, *, weights=None, extra_columns=(), min_active: int = 5) -> ConceptScores:
    """Collect every concept score of a dataset annotated by curate into dense arrays.

    Args:
        dataset: an annotated `datasets.Dataset` (or a pandas DataFrame with the same columns).
        weights: per-pair weights, as a column name or an array over all rows; rows of weight 0 still count
            in ``n_pairs`` but not in the statistics.
        extra_columns: other columns to carry along (e.g. a ``by=`` column).
        min_active: an SAE feature becomes a concept only if active in at least this many responses.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.scores import concept_scores
        >>> s = concept_scores(annotate(make_preference_pairs(30).dataset, ["flattery", "emoji"]))
        >>> s.concepts["concept"].tolist(), s.chosen.shape
        (['flattery', 'emoji'], (30, 2))
    """
    import pyarrow as pa

    if isinstance(dataset, pd.DataFrame):
        table = pa.Table.from_pandas(dataset, preserve_index=False)
    else:
        table = dataset.with_format("arrow")[:]
    names = table.column_names
    for required in (C.CHOSEN, C.REJECTED):
        if required not in names:
            raise ColumnError(f"Column {required!r} not in the dataset. Current columns: {names}.")
    n_all = table.num_rows
    reason = table.column(C.REASON).to_pylist() if C.REASON in names else [""] * n_all
    valid = np.array([not r for r in reason], dtype=bool)
    if weights is None:
        w_all = np.ones(n_all)
    elif isinstance(weights, str):
        if weights not in names:
            raise ColumnError(f"Weight column {weights!r} not in the dataset. Current columns: {names}.")
        w_all = np.asarray(table.column(weights).to_numpy(zero_copy_only=False), dtype=float)
    else:
        w_all = np.asarray(weights, dtype=float)
        if w_all.shape != (n_all,):
            raise ConfigError(f"weights has shape {w_all.shape}, expected ({n_all},).")
    if np.any(~np.isfinite(w_all)) or np.any(w_all < 0):
        raise ConfigError("weights must be finite and non-negative.")
    rows = np.flatnonzero(valid)

    ids, labels, sources, cmats, rmats = [], [], [], [], []
    named = C.paired_concepts(names)
    if named:
        cm = np.column_stack([table.column(C.score_column(C.CHOSEN, c)).to_numpy(zero_copy_only=False) for c in named])
        rm = np.column_stack(
            [table.column(C.score_column(C.REJECTED, c)).to_numpy(zero_copy_only=False) for c in named]
        )
        cmats.append(np.nan_to_num(cm.astype(np.float32)[rows]))
        rmats.append(np.nan_to_num(rm.astype(np.float32)[rows]))
        ids += named
        labels += [_named_label(c) for c in named]
        sources += ["named"] * len(named)

    sae_sources = sorted({p[1] for n in names if (p := C.parse_sae_column(n))})
    for src in sae_sources:
        cols = {side: (C.sae_index_column(side, src), C.sae_value_column(side, src)) for side in C.SIDES}
        if not all(c in names for pair in cols.values() for c in pair):
            continue
        counts: dict[int, int] = {}
        all_idx = np.concatenate(
            [
                table.column(cols[s][0]).combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(np.int64)
                for s in C.SIDES
            ]
        )
        feats, cnt = np.unique(all_idx, return_counts=True)
        feats = feats[cnt >= min_active]
        dense = {
            s: _sparse_to_dense(table.column(cols[s][0]), table.column(cols[s][1]), n_all, feats)[rows] for s in C.SIDES
        }
        cmats.append(dense[C.CHOSEN])
        rmats.append(dense[C.REJECTED])
        ids += [C.sae_concept_id(src, f) for f in feats]
        labels += [f"SAE feature {int(f)} ({src})" for f in feats]
        sources += [f"sae:{src}"] * len(feats)
        del counts

    n = len(rows)
    chosen = np.concatenate(cmats, axis=1) if cmats else np.zeros((n, 0), np.float32)
    rejected = np.concatenate(rmats, axis=1) if rmats else np.zeros((n, 0), np.float32)

    if "log_length" in ids:
        j = ids.index("log_length")
        log_len = np.column_stack([chosen[:, j], rejected[:, j]])
    else:
        from .concepts.named import log_length

        log_len = np.column_stack([log_length(table.column(s).to_pylist())[rows] for s in C.SIDES]).astype(np.float32)
    prompts_col = table.column(C.PROMPT).to_pylist() if C.PROMPT in names else [""] * n_all
    prompts = [prompts_col[i] or "" for i in rows]
    extra = {}
    for col in extra_columns:
        if col not in names:
            raise ColumnError(f"Column {col!r} not in the dataset. Current columns: {names}.")
        values = table.column(col).to_pylist()
        extra[col] = [values[i] for i in rows]
    concepts = pd.DataFrame({"concept": ids, "label": labels, "source": sources})
    return ConceptScores(concepts, chosen, rejected, rows, prompts, log_len, w_all[rows], extra)
