"""How numbers, flags and Hub ids are read and written in the terminal tables, the dataset card and the app:
one home, so the CLI, the card and the app cannot drift apart."""

from __future__ import annotations

import re

#: a Hub repository id, ``owner/name``
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

MISSING = "—"


def _missing(x) -> bool:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return True
    return x != x or x in (float("inf"), float("-inf"))


def fmt_num(x, digits: int = 3) -> str:
    """``0.123``; ``—`` for None, NaN or infinity.

    Example:

        >>> fmt_num(0.12345), fmt_num(float("nan"))
        ('0.123', '—')
    """
    return MISSING if _missing(x) else f"{float(x):.{digits}f}"


def fmt_q(q) -> str:
    """A q-value: scientific below 0.001, three decimals otherwise; ``—`` when missing.

    Example:

        >>> fmt_q(0.00012), fmt_q(0.04), fmt_q(None)
        ('1.2e-04', '0.040', '—')
    """
    if _missing(q):
        return MISSING
    q = float(q)
    return f"{q:.1e}" if q < 1e-3 else f"{q:.3f}"


def pct(x) -> str:
    """A share as a whole percentage; ``—`` when missing.

    Example:

        >>> pct(0.799), pct(None)
        ('80%', '—')
    """
    return MISSING if _missing(x) else f"{100 * float(x):.0f}%"


def truthy(values):
    """A boolean array from a column of flags as files store them (bools, 0/1, "true"/"false", None, NaN).

    Example:

        >>> truthy([True, "false", 1, None, float("nan"), "yes"]).tolist()
        [True, False, True, False, False, True]
    """
    import numpy as np

    return np.array(
        [bool(v) and v == v and str(v).strip().lower() not in ("false", "0", "none", "nan") for v in values], dtype=bool
    )


def signed_r(rec: dict, tail: str = "") -> str:
    """``r +0.61 [+0.20, +0.80] (shuffled 95th pct +0.31)`` from a learning record's ``r{tail}``,
    ``r{tail}_low``, ``r{tail}_high`` and ``perm95{tail}``; ``r —`` for a folder written before signed scores
    (its squared correlation is not shown: it hides the sign).

    Example:

        >>> signed_r({"r": 0.61, "r_low": 0.2, "r_high": 0.8, "perm95": 0.31})
        'r +0.61 [+0.20, +0.80] (shuffled-prediction 95th percentile +0.31)'
        >>> signed_r({"r2": 0.5})
        'r —'
    """
    r = rec.get(f"r{tail}")
    if r is None or r != r:
        return "r —"
    lo, hi, perm = (rec.get(f"{k}{tail}") for k in ("r_low", "r_high", "perm95"))
    ci = f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None and lo == lo else ""
    base = f" (shuffled-prediction 95th percentile {perm:+.2f})" if perm is not None and perm == perm else ""
    return f"r {r:+.2f}{ci}{base}"
