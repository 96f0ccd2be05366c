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
