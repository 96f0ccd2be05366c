"""The rows a recipe starts from: what ``curate apply`` read, recovered from any folder the app opens.

An audit folder's pairs are that source already. A curated folder keeps the source audit's annotated pairs
(``source_audit/annotated``): those are read as they are. A published folder (or a curated one without its
source audit) holds only the result, so the source is rebuilt from it: every row once (a resampled row's
copies are one row), relabelled rows swapped back (``swapped``), the recipe's drops made usable again, the
recipe's own columns (``keep``, ``weight``, ``margin``, ``swapped``) removed, and the rows put back in their
source order when the data has a ``row`` column.

The preview of a recipe is computed on these rows, so the applied recipe, unchanged, previews the numbers
the Curation tab reads from the apply record.
"""

from __future__ import annotations

import numpy as np

from .. import _columns as C

RECIPE_COLUMNS = (C.KEEP, C.WEIGHT, C.MARGIN, C.SWAPPED)


def rebuild_source(table):
    """The source rows of a curated result (``train`` rows then ``dropped`` rows, as a pyarrow Table).

    Example:

        >>> import pyarrow as pa
        >>> t = pa.table({"id": ["a", "a", "b"], "chosen": ["x", "x", "y"], "rejected": ["p", "p", "q"],
        ...               "chosen__n": [1.0, 1.0, 0.0], "rejected__n": [0.0, 0.0, 2.0],
        ...               "swapped": [False, False, True], "reason": ["", "", ""]})
        >>> s = rebuild_source(t)
        >>> s.column("id").to_pylist(), s.column("chosen").to_pylist(), s.column("chosen__n").to_pylist()
        (['a', 'b'], ['x', 'q'], [1.0, 2.0])
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    names = table.column_names
    key = C.ROW if C.ROW in names else C.ID if C.ID in names else None
    if key is not None:
        _, first = np.unique(np.asarray(table.column(key).to_pylist(), dtype=object).astype(str), return_index=True)
        order = np.sort(first)  # each row once, at its first appearance
        if key == C.ROW:
            rows = np.asarray(table.column(C.ROW).to_numpy(zero_copy_only=False))[order]
            order = order[np.argsort(rows, kind="stable")]
        table = table.take(pa.array(order, pa.int64()))
    if C.SWAPPED in names:
        mask = pa.array(np.asarray(table.column(C.SWAPPED).to_numpy(zero_copy_only=False), dtype=bool))
        for name in list(table.column_names):
            if name == C.CHOSEN or name.startswith(C.CHOSEN + C.SEP):
                other = C.REJECTED + name[len(C.CHOSEN) :]
                if other in table.column_names:
                    a, b = table.column(name).combine_chunks(), table.column(other).combine_chunks()
                    table = table.set_column(table.column_names.index(name), name, pc.if_else(mask, b, a))
                    table = table.set_column(table.column_names.index(other), other, pc.if_else(mask, a, b))
    if C.REASON in table.column_names:
        reason = [r if (r or "").startswith(C.INVALID_PREFIX) else "" for r in table.column(C.REASON).to_pylist()]
        table = table.set_column(table.column_names.index(C.REASON), C.REASON, pa.array(reason, pa.string()))
    return table.drop_columns([c for c in RECIPE_COLUMNS if c in table.column_names])
