"""PNG plots for dataset cards: the audit's volcano plot and the before/after plot of a curation.

Both functions draw on a bare :class:`matplotlib.figure.Figure` (the Agg canvas, no ``pyplot`` state and no
display needed) and write a PNG.

Example:

    >>> import tempfile, pathlib
    >>> from curate import annotate, make_preference_pairs, ConceptAudit
    >>> from curate.plots import plot_volcano
    >>> audit = ConceptAudit().fit(annotate(make_preference_pairs(200, seed=0).dataset))
    >>> path = plot_volcano(audit.results_, pathlib.Path(tempfile.mkdtemp()) / "volcano.png")
    >>> path.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

__all__ = ["plot_before_after", "plot_volcano"]

_DPI = 110
_BLOCK, _AMPLIFY, _ALLOW = "#c0392b", "#1e8449", "#2e86c1"
_ACTION_COLOURS = {"block": _BLOCK, "amplify": _AMPLIFY, "allow": _ALLOW}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _short(text: str, n: int = 28) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def plot_volcano(
    results: pd.DataFrame,
    path: str | Path,
    *,
    alpha: float = 0.05,
    actions: dict | None = None,
    label_top: int = 12,
    title: str | None = None,
) -> Path:
    """Volcano plot of an audit: win-rate (x) against −log10 q (y), one point per concept.

    Confirmed concepts are filled, the others hollow; concepts with an action in ``actions`` (a recipe's
    ``{concept: "block" | "amplify" | "allow"}``) are coloured by it. The ``label_top`` most significant
    concepts (q < ``alpha``) and every concept in ``actions`` are labelled.

    Args:
        results: an audit table (``ConceptAudit.results_`` or ``audit.parquet``): ``concept``, ``win_rate``,
            ``q_value`` and optionally ``confirmed``.
        path: the PNG file to write (parent folders are created).
        alpha: the significance level drawn as a dashed line.
        actions: optional concept → action map used for colours and labels.
        label_top: how many of the most significant concepts get a text label.
        title: optional title.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    actions = dict(actions or {})
    res = results[results["win_rate"].notna()].copy()
    q = res["q_value"].astype(float).fillna(1.0).clip(lower=1e-300)
    res["_y"] = -np.log10(q)
    res["_confirmed"] = res["confirmed"].astype(bool) if "confirmed" in res else False

    fig = _figure(7.0, 4.6)
    ax = fig.add_subplot()
    for confirmed in (False, True):
        part = res[res["_confirmed"] == confirmed]
        if part.empty:
            continue
        colours = [_ACTION_COLOURS.get(actions.get(c), "#7f8c8d") for c in part["concept"]]
        ax.scatter(
            part["win_rate"],
            part["_y"],
            s=36 if confirmed else 28,
            linewidths=1.2,
            facecolors=colours if confirmed else "none",
            edgecolors=colours,
            zorder=3,
        )
    ax.scatter([], [], s=30, color="#7f8c8d", label="confirmed on the held-out half")
    ax.scatter([], [], s=26, facecolors="none", edgecolors="#7f8c8d", label="not confirmed")
    half = max(0.1, float(np.nanmax(np.abs(res["win_rate"] - 0.5))) + 0.04) if len(res) else 0.5
    ax.set_xlim(0.5 - half, 0.5 + half)
    ax.axhline(-np.log10(alpha), color="#555", lw=0.8, ls="--", zorder=1)
    ax.axvline(0.5, color="#555", lw=0.8, ls=":", zorder=1)
    ax.text(0.5 - half, -np.log10(alpha), f" q = {alpha:g}", va="bottom", fontsize=8, color="#555")
    # concepts with identical statistics (e.g. detectors that fire together) share one label
    significant = res[res["_y"] > -np.log10(alpha)]
    to_label = list(significant.sort_values("_y", ascending=False)["concept"].head(label_top))
    to_label += [c for c in actions if c in set(res["concept"]) and c not in to_label]
    groups: dict[tuple, list[str]] = {}
    rows = res.set_index("concept")
    for concept in to_label:
        r = rows.loc[concept]
        groups.setdefault((round(float(r["win_rate"]), 4), round(float(r["_y"]), 3)), []).append(concept)
    for (x, yv), names in groups.items():
        text = ", ".join(_short(c, 20) for c in names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")
        colour = next((_ACTION_COLOURS[actions[c]] for c in names if actions.get(c) in _ACTION_COLOURS), "#222")
        ax.annotate(text, (x, yv), xytext=(4, 3), textcoords="offset points", fontsize=7.5, color=colour)
    for action, colour in _ACTION_COLOURS.items():
        if action in actions.values():
            ax.scatter([], [], color=colour, s=30, label=f"recipe: {action}")
    ax.set_xlabel("win-rate (share of differing pairs won by the response with more of the concept)")
    ax.set_ylabel("−log10 q (Benjamini–Hochberg)")
    ax.set_title(title or f"What the data rewards: {len(res)} concepts", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper left", frameon=False)
    ax.grid(alpha=0.25, lw=0.5)
    fig.savefig(path, format="png")
    return path


def plot_before_after(
    table: pd.DataFrame,
    path: str | Path,
    *,
    actions: dict | None = None,
    concepts: Iterable[str] | None = None,
    title: str | None = None,
) -> Path:
    """Before/after plot of a curation: each concept's win-rate (with its 95% CI) before and after.

    Args:
        table: one row per concept with ``concept``, ``win_rate_before``, ``win_rate_after`` and optionally
            ``ci_low_before``, ``ci_high_before``, ``ci_low_after``, ``ci_high_after``, ``action``.
        path: the PNG file to write.
        actions: optional concept → action map (else the table's ``action`` column) for colours.
        concepts: which concepts to draw, in order (default: every row).
        title: optional title.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tab = table.set_index("concept")
    if concepts is not None:
        tab = tab.loc[[c for c in concepts if c in tab.index]]
    if actions is None and "action" in tab:
        actions = tab["action"].dropna().to_dict()
    actions = dict(actions or {})
    n = max(len(tab), 1)
    fig = _figure(7.0, 1.4 + 0.42 * n)
    ax = fig.add_subplot()
    y = np.arange(len(tab))[::-1]
    for yi, (concept, r) in zip(y, tab.iterrows()):
        colour = _ACTION_COLOURS.get(actions.get(concept), "#34495e")
        for stage, dy, face in (("before", 0.14, "none"), ("after", -0.14, colour)):
            wr = r.get(f"win_rate_{stage}")
            if wr is None or wr != wr:
                continue
            lo, hi = r.get(f"ci_low_{stage}", np.nan), r.get(f"ci_high_{stage}", np.nan)
            if lo == lo and hi == hi:
                ax.plot([lo, hi], [yi + dy, yi + dy], color=colour, lw=1.4, alpha=0.7)
            ax.scatter([wr], [yi + dy], s=40, facecolors=face, edgecolors=colour, linewidths=1.4, zorder=3)
        b, a = r.get("win_rate_before"), r.get("win_rate_after")
        if b == b and a == a and b is not None and a is not None:
            ax.annotate(
                "",
                xy=(a, yi - 0.14),
                xytext=(b, yi + 0.14),
                arrowprops={"arrowstyle": "->", "color": colour, "lw": 0.8, "alpha": 0.6},
            )
    ax.axvline(0.5, color="#555", lw=0.8, ls=":")
    ax.set_yticks(y, [f"{_short(c)} ({actions[c]})" if c in actions else _short(c) for c in tab.index], fontsize=8)
    ax.set_ylim(-0.7, len(tab) - 0.3)
    ax.set_xlabel("win-rate with 95% CI (hollow: before, filled: after; 0.5 = not rewarded)")
    ax.scatter([], [], facecolors="none", edgecolors="#34495e", label="before")
    ax.scatter([], [], color="#34495e", label="after (under the curated weights)")
    ax.set_title(title or "Before and after curation", fontsize=10)
    fig.legend(fontsize=7.5, loc="outside lower center", ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.25, lw=0.5)
    fig.savefig(path, format="png")
    return path
