"""The learning folder's two PNGs: predicted vs observed shift, and the shift of each policy per concept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .._format import signed_r
from ..plots import _ACTION_COLOURS, _DPI


def _figure(w, h):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=_DPI, layout="constrained")


def plot_learning_scatter(table: pd.DataFrame, record: dict, path: str | Path) -> Path:
    """Predicted (x) vs observed standardised generation shift (y), original-data policy (filled) and
    curated-data policy (hollow), coloured by the recipe's action."""
    fig = _figure(6.2, 4.6)
    ax = fig.add_subplot()
    t = table[table["supported"]]
    for _, r in t.iterrows():
        colour = _ACTION_COLOURS.get(r["action"], "#7f8c8d")
        y = r["observed_original"] / r["scale"]
        lo, hi = r["observed_original_low"] / r["scale"], r["observed_original_high"] / r["scale"]
        ax.errorbar(r["predicted"], y, yerr=[[y - lo], [hi - y]], fmt="o", color=colour, capsize=2)
        ax.annotate(r["concept"], (r["predicted"], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if np.isfinite(r.get("observed_curated", np.nan)):
            ax.plot(r["predicted_curated"], r["observed_curated"] / r["scale"], "o", mfc="none", color=colour)
    ax.axhline(0, color="#bbb", lw=0.8)
    ax.axvline(0, color="#bbb", lw=0.8)
    ax.set_xlabel("predicted shift (audit: mean Δ / sd)")
    ax.set_ylabel("observed generation shift (policy − reference) / sd")
    rho = record.get("spearman")
    seeds = record.get("seeds")
    title = "predicted vs observed shift"
    signed = signed_r(record)
    if signed != "r —":  # signed r with its CI, never a squared correlation (it hides the sign)
        title = f"original-data policy: {signed.split(' (')[0]}" + (
            f", Spearman {rho:.2f}" if rho is not None and rho == rho else ""
        )
        title += (f", {len(seeds)} seeds pooled" if seeds else "") + "  (hollow: curated)"
    ax.set_title(title, fontsize=9)
    fig.savefig(path)
    return Path(path)


def plot_learning_bars(table: pd.DataFrame, path: str | Path) -> Path:
    """Observed generation shift per concept, original vs curated policy, with 95% CIs (standardised)."""
    t = table[table["supported"]].reset_index(drop=True)
    fig = _figure(max(5.0, 0.6 * len(t) + 2), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(t))
    for k, (arm, colour) in enumerate((("original", "#7f8c8d"), ("curated", "#2e86c1"))):
        y = t[f"observed_{arm}"] / t["scale"]
        err = np.vstack([y - t[f"observed_{arm}_low"] / t["scale"], t[f"observed_{arm}_high"] / t["scale"] - y])
        ax.bar(x + (k - 0.5) * 0.38, y, 0.38, yerr=np.nan_to_num(err), capsize=2, color=colour, label=f"{arm} data")
    ax.set_xticks(x, [f"{c}\n({a or '—'})" for c, a in zip(t["concept"], t["action"])], fontsize=7, rotation=45)
    ax.axhline(0, color="#444", lw=0.8)
    ax.set_ylabel("generation shift vs reference / sd")
    ax.legend(fontsize=8)
    fig.savefig(path)
    return Path(path)
