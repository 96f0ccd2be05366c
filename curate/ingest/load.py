"""The entry point: :func:`load_pairs` reads a source (:mod:`~curate.ingest.read`), detects its format
(:mod:`~curate.ingest.formats`) and normalises every row to the one pair schema (:mod:`~curate.ingest.normalise`);
:func:`ingestion_summary` counts what it read.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

from .. import _columns as C
from ..errors import FormatError
from . import formats, normalise, read
from .formats import FORMATS, RATED_POLICIES, detect_format
from .normalise import CONSUMED, CONVERTERS, from_rated, pair_features
from .read import read_source


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
        A `datasets.Dataset` with ``id, prompt, prompt_messages, chosen, rejected, reason`` in input order;
        the input's ``id`` column is kept (else the row index). Columns outside the schema are carried
        along unchanged (except for ``rated``/``all_pairs``, which changes the row count).

    Raises:
        FormatError: unknown column set (lists the columns found and the accepted formats), unknown
            split, unreadable file.
    """
    import datasets as hf
    import numpy as np

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
    columns = data.column_names
    if format is None:
        format = detect_format(columns, data[0])
    elif format not in FORMATS:
        raise FormatError(f"Unknown format {format!r}. Accepted formats: {list(FORMATS)}.")

    def convert(ex, i):
        id_ = ex[C.ID] if has_id else i
        if format == "rated":
            return from_rated(ex, id_, rated_policy, np.random.default_rng([seed, i]))
        rows = CONVERTERS[format](ex, id_)
        known = ex.get(C.REASON) if has_reason else None
        if isinstance(known, str) and known.startswith(C.INVALID_PREFIX):
            # rows curate already read (an annotated/ or curated split): an unusable row stays unusable
            for row in rows:
                row[C.REASON] = known
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

    import hashlib

    from ..cache import module_hash

    fp = getattr(data, "_fingerprint", None)
    code = module_hash(read, formats, normalise, sys.modules[__name__])  # the reader's own code is part of the identity
    new_fp = (
        None
        if fp is None
        else hashlib.sha256(f"{fp}|ingest|{code}|{format}|{rated_policy}|{seed}".encode()).hexdigest()[:32]
    )
    ds = data.map(
        convert_batch,
        batched=True,
        with_indices=True,
        remove_columns=columns,
        features=features,
        new_fingerprint=new_fp,
        desc="Reading pairs",
    )
    ds.info.description = json.dumps(
        {"curate_format": format, "rated_policy": rated_policy if format == "rated" else None}
    )
    return ds


def ingestion_summary(dataset) -> dict:
    """Counts of usable and unusable rows by reason, and the detected format.

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
        "reasons": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
    }
