"""Row accounting: the one invariant checked whenever a curated folder is saved or read.

Rows in = rows in ``train`` + rows in ``dropped``, each input row exactly once (a resampled row may repeat
inside ``train``), and every ``invalid:`` row in ``dropped`` with its reason. A row is known by its ``row``
index (its position in the source, :func:`ensure_row_index`), never by a user ``id``, which may repeat or be
null. :func:`account_rows` returns the counts that go in the manifest, or raises :class:`RowAccountingError`
naming the rows that break it.
"""

from __future__ import annotations

from collections import Counter

from .. import _columns as C
from ..errors import CurateError


class RowAccountingError(CurateError, RuntimeError):
    """Rows were lost, duplicated, or an unusable (``invalid:``) row reached ``train``."""


def ensure_row_index(dataset):
    """``dataset`` with curate's ``row`` column: its own if it has one, else each row's position (0, 1, …)
    as ``int64``, first among the columns. Later steps join on ``row``, never on a user ``id``.

    Example:

        >>> from datasets import Dataset
        >>> ensure_row_index(Dataset.from_dict({"id": [7, 7]})).to_list()
        [{'row': 0, 'id': 7}, {'row': 1, 'id': 7}]
    """
    import numpy as np

    if C.ROW in dataset.column_names:
        return dataset
    with_row = dataset.add_column(C.ROW, np.arange(len(dataset), dtype=np.int64))
    return with_row.select_columns([C.ROW, *dataset.column_names])


def account_rows(ids_in, reasons_in, train, dropped, *, key: str = C.ROW) -> dict:
    """Check that no row was lost, duplicated or let through unusable; return the counts.

    Args:
        ids_in, reasons_in: the ``key`` (the row index) and ``reason`` of every input row.
        train, dropped: the two splits (``datasets.Dataset``) with ``key`` and ``reason`` columns.
        key: the column that identifies a row: ``row`` (an ``id`` column may repeat or be null; it is only
            used for splits written without a row index).

    Returns:
        ``{"in", "train", "train_rows", "dropped", "invalid"}``: input rows, distinct input rows in
        ``train`` (``train_rows`` counts resampled copies), rows in ``dropped``, ``invalid:`` rows.

    Raises:
        RowAccountingError: naming the rows that break ``rows in = train + dropped`` (each row once) or an
        ``invalid:`` row that is in ``train`` or lost its reason.
    """
    ids_in = [str(i) for i in ids_in]
    reasons_in = [r or "" for r in reasons_in]
    t_ids = [str(i) for i in train[key]] if len(train) else []
    d_ids = [str(i) for i in dropped[key]] if len(dropped) else []
    d_reasons = [r or "" for r in dropped[C.REASON]] if len(dropped) else []
    t_reasons = [r or "" for r in train[C.REASON]] if len(train) and C.REASON in train.column_names else []
    problems = []
    bad_train = sorted({i for i, r in zip(t_ids, t_reasons) if r.startswith(C.INVALID_PREFIX)})
    if bad_train:
        problems.append(f"unusable (invalid:) rows in train: {key} {bad_train[:10]}")
    unique_in = len(set(ids_in)) == len(ids_in)
    n_invalid = sum(r.startswith(C.INVALID_PREFIX) for r in reasons_in)
    if unique_in:
        t_set, d_count = set(t_ids), Counter(d_ids)
        twice = sorted(i for i, n in d_count.items() if n > 1) + sorted(t_set & set(d_count))
        lost = sorted(set(ids_in) - t_set - set(d_count))
        extra = sorted((t_set | set(d_count)) - set(ids_in))
        if twice:
            problems.append(f"{key} values in the output more than once: {twice[:10]}")
        if lost:
            problems.append(f"{key} values lost (in neither train nor dropped): {lost[:10]}")
        if extra:
            problems.append(f"{key} values not in the input: {extra[:10]}")
        n_train = len(t_set)
        d_reason = dict(zip(d_ids, d_reasons))
        wrong = sorted(
            i for i, r in zip(ids_in, reasons_in) if r.startswith(C.INVALID_PREFIX) and d_reason.get(i, r) != r
        )
        if wrong:
            problems.append(f"invalid rows whose reason changed in dropped: {wrong[:10]}")
    elif key == C.ROW:
        problems.append(f"the input's row index repeats: {sorted(k for k, n in Counter(ids_in).items() if n > 1)[:10]}")
    else:  # ids repeat in the input: count rows, and the invalid (id, reason) pairs
        n_train = len(ids_in) - len(d_ids)
        if n_train < 0 or (len(t_ids) < n_train):
            problems.append(f"{len(ids_in)} rows in, {len(t_ids)} in train and {len(d_ids)} dropped")
        missing = Counter((i, r) for i, r in zip(ids_in, reasons_in) if r.startswith(C.INVALID_PREFIX)) - Counter(
            zip(d_ids, d_reasons)
        )
        if missing:
            problems.append(f"invalid rows not in dropped with their reason: {sorted(missing)[:10]}")
    if problems:
        raise RowAccountingError(
            "Row accounting failed (rows in = train + dropped, each row once, every invalid "
            "row dropped with its reason): " + "; ".join(problems) + ". This is a bug in "
            "curate; please report it with the command you ran."
        )
    return {
        "in": len(ids_in),
        "train": n_train,
        "train_rows": len(t_ids),
        "dropped": len(d_ids),
        "invalid": n_invalid,
        "ids_unique": unique_in,
    }
