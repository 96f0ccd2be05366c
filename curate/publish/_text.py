"""Escaping and number formatting for the dataset card: every text quoted from the data or a recipe is
HTML- and markdown-escaped and truncated."""

from __future__ import annotations

import html
import re
from typing import Any

import numpy as np

from .._format import fmt_num, fmt_q, truthy

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


def escape_text(text: Any, max_len: int = 120) -> str:
    """Make a text from the data safe to quote in a markdown card: one line, truncated, escaped.

    Whitespace runs (newlines included) become one space; texts longer than ``max_len`` characters are cut
    and end in ``…``; ``& < >`` are HTML-escaped and the markdown characters ``\\ ` * _ [ ] | ~ $`` are
    backslash-escaped, so quoted text cannot open a tag, a link, emphasis, a code span or a table cell.

    Example:

        >>> escape_text("<b>Great</b> question! | **yes**\\n[x](http://a)")
        '&lt;b&gt;Great&lt;/b&gt; question! \\\\| \\\\*\\\\*yes\\\\*\\\\* \\\\[x\\\\](http://a)'
        >>> escape_text("a" * 10, max_len=5)
        'aaaa…'
    """
    text = " ".join(str(text).split())
    if len(text) > max_len:
        text = text[: max_len - 1].rstrip() + "…"
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _code(text: Any, max_len: int = 60) -> str:
    """Text for inside a `code span` in a table cell (no backticks, pipes escaped)."""
    text = " ".join(str(text).split()).replace("`", "'")
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text.replace("|", "\\|")


def _isnan(x) -> bool:
    try:
        return x is None or bool(np.isnan(float(x)))
    except (TypeError, ValueError):
        return False


_fmt = fmt_num
_fmt_q = fmt_q
_truthy = truthy


def _fmt_wr(wr, lo=None, hi=None) -> str:
    if _isnan(wr):
        return "—"
    if _isnan(lo) or _isnan(hi):
        return f"{float(wr):.3f}"
    return f"{float(wr):.3f} [{float(lo):.3f}, {float(hi):.3f}]"


def _fmt_value(v, max_len: int = 80) -> str:
    """A compact, escaped rendering of a value from an intervention record (escaped once, as a whole).

    Example:

        >>> _fmt_value({"flattery": "Be *very* <b>kind</b>"})
        '{flattery: Be \\\\*very\\\\* &lt;b&gt;kind&lt;/b&gt;}'
    """
    if isinstance(v, (bool, int, float, np.integer, np.floating)) or v is None:
        return _plain_value(v)
    return escape_text(_plain_value(v), max_len) or ("none" if isinstance(v, (list, tuple)) else "")


def _plain_value(v) -> str:
    """The text :func:`_fmt_value` escapes: numbers formatted, flat lists and dicts inline, nested ones counted."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _fmt(v, 3) if abs(v) < 1e4 else f"{float(v):.3g}"
    if isinstance(v, dict):
        if all(not isinstance(x, (dict, list)) for x in v.values()):
            return "{" + ", ".join(f"{k}: {_plain_value(x)}" for k, x in v.items()) + "}"
        return f"({len(v)} entries, see audit/)"
    if isinstance(v, (list, tuple)):
        if all(not isinstance(x, (dict, list)) for x in v):
            return ", ".join(_plain_value(x) for x in v)
        return f"({len(v)} entries, see audit/)"
    return str(v)
