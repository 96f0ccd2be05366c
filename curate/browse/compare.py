"""Two datasets side by side, concept by concept (``curate app A --compare B``, the Compare tab).

Each side's win-rates are computed from its own rows under its own weights, as the audit computes them
(:func:`curate.stats.paired_win_stats`: kept rows, the ``weight`` column, a resampled row once per copy), so a
curated folder is compared as curated, not through the audit of its source. The difference B − A gets a 95%
interval from the two Wilson intervals taken as independent (conservative when A and B share pairs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import paired_win_stats
from ..teach import truthy
from .queries import AppData

Z = 1.959963984540054
COMPARE_COLUMNS = [
    "concept",
    "n_differ_a",
    "win_rate_a",
    "ci_low_a",
    "ci_high_a",
    "n_differ_b",
    "win_rate_b",
    "ci_low_b",
    "ci_high_b",
    "difference",
    "diff_low",
    "diff_high",
]


def compare_concepts(a: AppData, b: AppData, concepts: list[str] | None = None) -> pd.DataFrame:
    """Per concept scored in both datasets: win-rate and 95% CI in A and in B, and B − A with its 95% CI,
    sorted by the size of the difference (largest first; concepts that never differ last).

    Args:
        a, b: the two datasets (audit, curated or published folders, see :func:`curate.browse.load_app_data`).
        concepts: which concepts (default: every named concept and every confirmed SAE feature or group of A's
            audit that B's audit also has, one per row of the concept table).

    Example:

        >>> from curate.browse import load_app_data
        >>> from curate.browse.compare import compare_concepts
        >>> t = compare_concepts(load_app_data("outputs/demo/audit"), load_app_data("outputs/demo/curated"))  # doctest: +SKIP
        >>> t.set_index("concept").loc["flattery", ["win_rate_a", "win_rate_b"]].round(3).tolist()  # doctest: +SKIP
        [0.799, 0.5]
    """
    if concepts is None:
        named = set(a.audit.loc[a.audit["source"].astype(str) == "named", "concept"].astype(str))
        confirmed = set(a.audit.loc[truthy(a.audit["confirmed"]), "concept"].astype(str))
        concepts = [c for c in a.concepts if c not in a.hidden() and (c in named or c in confirmed)]
        concepts = [c for c in concepts if c in set(b.concepts)]
    ids = [c for c in concepts if a.delta(c) is not None and b.delta(c) is not None]
    if not ids:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    sa, sb = _stats(a, ids), _stats(b, ids)
    diff = sb["win_rate"] - sa["win_rate"]
    se = np.hypot(_se(sa), _se(sb))
    out = pd.DataFrame(
        {
            "concept": ids,
            "n_differ_a": sa["n_differ"],
            "win_rate_a": sa["win_rate"],
            "ci_low_a": sa["ci_low"],
            "ci_high_a": sa["ci_high"],
            "n_differ_b": sb["n_differ"],
            "win_rate_b": sb["win_rate"],
            "ci_low_b": sb["ci_low"],
            "ci_high_b": sb["ci_high"],
            "difference": diff,
            "diff_low": diff - Z * se,
            "diff_high": diff + Z * se,
        }
    )
    order = np.argsort(-np.nan_to_num(np.abs(diff), nan=-1.0), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def _stats(data: AppData, ids: list[str]) -> dict:
    """Win-rate statistics over a dataset's kept rows under its weights (a curated row once per copy)."""
    w = data.weights.astype(np.float32)
    rows = np.flatnonzero(data._kept & (w > 0))
    delta = np.column_stack([data.delta(c)[rows] for c in ids])
    return paired_win_stats(delta, w[rows])


def _se(s: dict) -> np.ndarray:
    return (np.asarray(s["ci_high"], float) - np.asarray(s["ci_low"], float)) / (2 * Z)


def render_compare(a: AppData, b: AppData, table: pd.DataFrame) -> str:
    """The Compare tab: one row per concept, A and B side by side, the difference with its CI (escaped)."""
    from .render import CSS, _num, esc

    def wr(r, s):
        w = r[f"win_rate_{s}"]
        if w is None or not np.isfinite(w):
            return "—"
        return f"{w:.3f} [{_num(r[f'ci_low_{s}'])}, {_num(r[f'ci_high_{s}'])}]"

    def diff(r):
        if not np.isfinite(r["difference"]):
            return "—", ""
        sig = r["diff_low"] > 0 or r["diff_high"] < 0
        text = f"{r['difference']:+.3f} [{r['diff_low']:+.3f}, {r['diff_high']:+.3f}]"
        return text, " class=cu-moved" if sig else ""

    body = []
    for r in table.to_dict("records"):
        d, cls = diff(r)
        body.append(
            f"<tr{cls} data-concept-row='{esc(r['concept'])}'><td>{esc(r['concept'])}</td><td>{wr(r, 'a')}</td>"
            f"<td>{wr(r, 'b')}</td><td>{d}</td><td>{int(r['n_differ_a'])} / {int(r['n_differ_b'])}</td></tr>"
        )
    return (
        CSS + f"<p><b>A</b>: {esc(a.source)} ({esc(a.kind)}, {a.n_kept} kept pairs) · <b>B</b>: {esc(b.source)} "
        f"({esc(b.kind)}, {b.n_kept} kept pairs). Win-rates over each dataset's kept pairs under its weights; "
        "B − A with a 95% interval (bold: the interval excludes 0), largest differences first.</p>"
        '<style>tr.cu-moved td{font-weight:600}</style><div class="cu-wrap"><table class="cu-t" id="cu-compare">'
        "<tr><th>concept</th><th>A win-rate [95% CI]</th><th>B win-rate [95% CI]</th><th>B − A [95% CI]</th>"
        f"<th>pairs differ A / B</th></tr>{''.join(body)}</table></div>"
    )
