"""The entry point: :func:`load_pairs` reads a source (:mod:`~curate.ingest.read`), detects its format
(:mod:`~curate.ingest.formats`) and normalises every row to the one pair schema (:mod:`~curate.ingest.normalise`);
:func:`ingestion_summary` counts what it read.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

from .. import _columns as C
from ..cache import checked_map
from ..errors import FormatError
from ..folders.rows import ensure_row_index
from . import formats, normalise, read
from .formats import FORMATS, RATED_POLICIES, detect_format
from .normalise import CONSUMED, CONVERTERS, CellError, from_rated, pair_features
from .read import not_utf8, read_source

#: how many rows, spread evenly across the data, the format is detected from
DETECT_SAMPLE = 1000


def load_pairs(
    source: Any,
    *,
    split: str | None = None,
    format: str | None = None,
    limit: int | None = None,
    rated_policy: str = "best_vs_worst",
    seed: int = 0,
    **load_kwargs,
):
    """Load preference data from anywhere and normalise it to curate's pair schema.

    Args:
        source: a Hub id, a local ``.jsonl``/``.json``/``.parquet``/``.csv`` (or ``.gz``) file, a
            ``save_to_disk`` folder, or a ``Dataset``/``DatasetDict``/``IterableDataset``.
        split: which split of a multi-split source (default: the only one, else ``train``).
        format: force a format (one of :data:`FORMATS`) instead of detecting it.
        limit: read only the first ``limit`` rows.
        rated_policy: how rated completions become pairs (one of :data:`RATED_POLICIES`).
        seed: seed for ``best_vs_random``.
        **load_kwargs: passed to ``datasets.load_dataset``.

    Returns:
        A `datasets.Dataset` with ``row, id, prompt, prompt_messages, chosen, rejected, reason`` in input
        order. ``row`` is each row's position in the source (0, 1, …, invalid rows included; for
        ``rated``/``all_pairs``, the pair's position in the result), its identity through every later step;
        an input ``row`` column that is not the positions (a subset of rows curate read before) is kept as
        ``input_row``. The input's ``id`` column is kept as it is, repeats and nulls included (else the row
        index). Columns outside the schema are carried along unchanged (except for ``rated``, whose
        ``all_pairs`` policy changes the row count).

    Raises:
        FormatError: unknown column set (lists the columns found and the accepted formats), unknown
            split, unreadable file, a file that is not UTF-8 (names the line), a cell that cannot be read
            (names the row), an input with both ``input_row`` and a ``row`` that is not the positions.
    """
    import datasets as hf

    if rated_policy not in RATED_POLICIES:
        raise FormatError(f"Unknown rated_policy {rated_policy!r}. Choose one of: {list(RATED_POLICIES)}.")
    data = read_source(source, split, **load_kwargs)
    if isinstance(data, hf.IterableDataset):
        rows = list(data.take(limit)) if limit is not None else list(data)
        if not rows:
            raise FormatError("The iterable dataset is empty.")
        data = hf.Dataset.from_list(rows)
    elif limit is not None:
        data = data.select(range(min(limit, len(data))))
    if len(data) == 0:
        raise FormatError("The dataset is empty: there are no pairs to read.")
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the dataset"
    columns = data.column_names
    if format is not None and format not in FORMATS:
        raise FormatError(f"Unknown format {format!r}. Accepted formats: {list(FORMATS)}.")
    try:
        if format is None:
            format = detect_format(columns, _spread_sample(data))
        ds = _convert(data, format, rated_policy, seed, where)
    except UnicodeDecodeError as err:  # a text file with bytes that are not UTF-8 reaches here as data
        file = os.fspath(source) if isinstance(source, (str, os.PathLike)) and os.path.isfile(source) else None
        raise FormatError(
            (file and not_utf8(file)) or f"{where} holds text that is not valid UTF-8 ({err}); save it as UTF-8."
        ) from None
    ds.info.description = json.dumps(
        {"curate_format": format, "rated_policy": rated_policy if format == "rated" else None}
    )
    return ds


def _spread_sample(data) -> list[dict]:
    """The responses of up to :data:`DETECT_SAMPLE` rows spread evenly across ``data`` (first and last
    included), for :func:`detect_format`."""
    import numpy as np

    sides = [c for c in C.SIDES if c in data.column_names]
    if not sides:
        return []
    idx = np.unique(np.linspace(0, len(data) - 1, min(len(data), DETECT_SAMPLE)).round().astype(int))
    return data.select_columns(sides).select(idx).to_list()


def _moves_input_row(data, where: str) -> bool:
    """True when ``data`` has a ``row`` column that is not its own positions (0, 1, …): e.g. a subset or a
    resampled split of rows curate read before, or a column of the user's. ``row`` becomes the position in this
    source and those values are kept as ``input_row``, never lost."""
    import numpy as np
    import pyarrow as pa

    if C.ROW not in data.column_names:
        return False
    col = data.with_format("arrow")[C.ROW]
    if pa.types.is_integer(col.type) and col.null_count == 0 and np.array_equal(col.to_numpy(), np.arange(len(col))):
        return False  # already the positions (curate's own output, read back whole)
    if C.INPUT_ROW in data.column_names:
        raise FormatError(
            f"{where} has both {C.ROW!r} (not the rows' positions) and {C.INPUT_ROW!r}, and curate would keep the "
            f"first as the second: rename one of them (e.g. ds.rename_column({C.ROW!r}, 'row_label')) and load again."
        )
    return True


def _convert(data, format: str, rated_policy: str, seed: int, where: str):
    """Every row of ``data`` in the pair schema (one ``Dataset.map``, cached by the input's fingerprint)."""
    import hashlib

    import numpy as np

    from ..cache import module_hash

    columns = data.column_names
    move_row = _moves_input_row(data, where) and format != "rated"  # rated keeps no input column

    def convert(ex, i):
        id_ = ex[C.ID] if has_id else i
        try:
            if format == "rated":
                rows = from_rated(ex, id_, rated_policy, np.random.default_rng([seed, i]))
            else:
                rows = CONVERTERS[format](ex, id_)
        except CellError as err:
            raise FormatError(f"{where}, row {i} (counting from 0): {err}.") from None
        known = ex.get(C.REASON) if has_reason else None
        if isinstance(known, str) and known.startswith(C.INVALID_PREFIX):
            # rows curate already read (an annotated/ or curated split): an unusable row stays unusable
            for row in rows:
                row[C.REASON] = known
        for row in rows:
            if not all_pairs:
                row[C.ROW] = i
            if move_row:
                row[C.INPUT_ROW] = ex[C.ROW]
        return rows

    has_reason = C.REASON in columns

    has_id = C.ID in columns
    carried = (
        []
        if format == "rated"
        else [c for c in columns if c not in C.PAIR_COLUMNS and c not in CONSUMED.get(format, ())]
    )
    all_pairs = format == "rated" and rated_policy == "all_pairs"
    sample = convert(data[0], 0)
    features = pair_features(data.features, carried, sample, string_ids=all_pairs)
    if all_pairs:  # one source row gives several pairs: each is numbered once they are all built
        del features[C.ROW]
    if move_row:
        features[C.INPUT_ROW] = data.features[C.ROW]

    def convert_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {k: [] for k in features}
        keys = list(batch)
        for j, i in enumerate(indices):
            ex = {k: batch[k][j] for k in keys}
            for row in convert(ex, i):
                if all_pairs:
                    row[C.ID] = str(row[C.ID])
                for c in carried:
                    row[c] = ex[c]
                for k in out:
                    out[k].append(row[k])
        return out

    fp = getattr(data, "_fingerprint", None)
    code = module_hash(read, formats, normalise, sys.modules[__name__])  # the reader's own code is part of the identity
    new_fp = (
        None
        if fp is None
        else hashlib.sha256(f"{fp}|ingest|{code}|{format}|{rated_policy}|{seed}".encode()).hexdigest()[:32]
    )
    kwargs = dict(
        batched=True,
        with_indices=True,
        remove_columns=columns,
        features=features,
        new_fingerprint=new_fp,
        desc="Reading pairs",
    )
    # one row per input row is checked against datasets' cache file (a file cut short reads back as fewer rows);
    # all_pairs makes several rows of one, so its cache is never read back
    ds = (
        data.map(convert_batch, load_from_cache_file=False, **kwargs)
        if all_pairs
        else checked_map(data, convert_batch, **kwargs)
    )
    return ensure_row_index(ds) if all_pairs else ds


def ingestion_summary(dataset) -> dict:
    """Counts of usable and unusable rows by reason, of ids that repeat an earlier row's (``n_duplicate_ids``)
    and of missing ids (``n_null_ids``), and the detected format. Repeated or missing ids are kept as they are:
    rows are told apart by ``row``.

    Example:

        >>> from curate import make_preference_pairs
        >>> ingestion_summary(make_preference_pairs(10).dataset)["n_usable"]
        10
    """
    reasons = dataset[C.REASON] if C.REASON in dataset.column_names else [""] * len(dataset)
    counts = Counter(r for r in reasons if r)
    try:
        fmt = json.loads(dataset.info.description or "{}").get("curate_format")
    except (ValueError, AttributeError):
        fmt = None
    return {
        "format": fmt,
        "n_rows": len(dataset),
        "n_usable": len(dataset) - sum(counts.values()),
        **_id_counts(dataset),
        "reasons": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
    }


def _id_counts(dataset) -> dict:
    """``n_duplicate_ids``: rows whose id an earlier row already has; ``n_null_ids``: rows without an id."""
    import pyarrow.compute as pc

    if C.ID not in dataset.column_names:
        return {"n_duplicate_ids": 0, "n_null_ids": 0}
    ids = dataset.with_format("arrow")[C.ID]
    try:
        distinct = pc.count_distinct(ids, mode="only_valid").as_py()
    except (NotImplementedError, TypeError, ValueError):  # ids of mixed types (datasets' Json column): as text
        distinct = len({json.dumps(i, sort_keys=True, default=str) for i in ids.to_pylist() if i is not None})
    return {"n_duplicate_ids": len(ids) - ids.null_count - distinct, "n_null_ids": ids.null_count}
