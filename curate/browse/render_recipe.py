"""HTML of what a recipe does: the Curation tab (what the applied recipe did), the Recipe tab's preview, and the
Overview's lead on a curated dataset (what the curated data teaches, in the card's words). Every text from the
data or the recipe goes through :func:`html.escape`."""

from __future__ import annotations

import math

from ..publish.sentences import curation_sentences, step_sentence
from ..teach import fmt_q
from .queries import AppData
from .render import CSS, GLOSSARY, _counts, _num, esc, render_summary, stat

SIDE_EFFECT = "side effect"


def render_overview(data: AppData) -> str:
    """The Overview: on a curated or published folder, what the curated data teaches (before → after) leads and
    the audit of the source pairs follows under its own heading; on an audit folder, what the data teaches."""
    from .editor import curation

    return render_summary(data, render_curated_teaches(data, curation(data)) if data.kind != "audit folder" else "")


def render_curated_teaches(data: AppData, cur: dict | None) -> str:
    """ "What the curated data teaches": before → after per blocked / amplified concept, in the card's sentences
    (:func:`curate.publish.sentences.curation_sentences`), then the side effects; "" for an audit folder."""
    if cur is None:
        return ""
    items = [
        f"<li><b>{esc(t['concept'])}</b> ({esc(t['action'])}): {esc(t['text'])}</li>"
        for t in curation_sentences(cur["before_after"])
    ]
    side = [r for r in cur.get("side_effects") or [] if r.get("moved")]
    if side:
        names = ", ".join(
            f"<b>{esc(r['concept'])}</b> {_num(r['win_rate_before'])} → {_num(r['win_rate_after'])}" for r in side
        )
        items.append(f"<li>Side effects (concepts the recipe did not name whose win-rate moved): {names}.</li>")
    body = f"<ol>{''.join(items)}</ol>" if items else "<p>The apply record holds no before/after table.</p>"
    return (
        '<div class="cu-teach" id="cu-curated-teaches"><h3>What the curated data teaches</h3><p>Win-rates of the '
        "source pairs → the curated pairs (under their weights), for each concept the recipe acted on. See the "
        "<b>Curation</b> tab for every number.</p>" + body + "</div>"
    )


def render_curation(data: AppData, cur: dict | None) -> str:
    if cur is None:
        return (
            CSS + '<p id="cu-no-curation">No recipe has been applied to this data: it is an audit of the '
            "source pairs. Draft one in the <b>Recipe</b> tab, then run <code>curate apply</code>.</p>"
        )
    rec, ret = cur["recipe"] or {}, cur["retention"]
    out = [CSS, f"<h3>Applied recipe: {esc(rec.get('name', '(unnamed)'))}</h3>"]
    if rec.get("description"):
        out.append(f"<p>{esc(rec['description'])}</p>")
    rules = "".join(
        f"<li><b>{esc(r.get('action'))}</b> {esc(', '.join(map(str, r.get('concepts') or [])))}"
        + (f" via {esc(', '.join(r.get('interventions') or []))}" if r.get("interventions") else "")
        + (f" (strength {esc(r.get('strength'))})" if r.get("strength") is not None else "")
        + "</li>"
        for r in rec.get("rules") or []
    )
    out.append(f"<ul>{rules}</ul>")
    if ret:
        usable = ret.get("rows_usable") or 0
        ess = ret.get("ess")
        tiles = [
            ("rows kept", f"{cur['kept']} of {usable}", "rows in train (a resampled row counts once)"),
            ("dropped by the recipe", sum(cur["dropped_by_recipe"].values()), None),
            (
                "ESS",
                f"{ess:.1f} ({100 * ret.get('ess_fraction', 0):.0f}%)" if ess is not None else "—",
                "effective sample size: " + GLOSSARY["ESS"],
            ),
            ("weight 0", cur["weights"]["zero"], "kept pairs the weights give nothing"),
            ("inoculated", ret.get("rows_inoculated", 0), "pairs whose prompt got an added instruction"),
        ]
        out.append('<div class="cu-summary" id="cu-retention">' + "".join(stat(*t) for t in tiles) + "</div>")
    rows = [dict(r) for r in cur["before_after"]]
    rows += [{**r, "action": SIDE_EFFECT} for r in cur.get("side_effects") or [] if r.get("moved")]
    if rows:
        body = "".join(
            f"<tr{' class=cu-side-effect' if r['action'] == SIDE_EFFECT else ''}><td>{esc(r.get('concept'))}</td>"
            f"<td>{esc(r.get('action'))}</td><td>{_wr(r, 'before')}</td><td class=cu-wide>→</td><td>{_wr(r, 'after')}</td>"
            f"<td class=cu-wide>{esc(fmt_q(r.get('q_before')))} → {esc(fmt_q(r.get('q_after')))}</td></tr>"
            for r in rows
        )
        out.append(
            "<h4>Before → after, per concept</h4><p>Every concept the recipe acted on, and every other concept "
            "whose win-rate moved significantly (marked <i>side effect</i>: the two 95% intervals, taken as "
            'independent, differ at the 5% level).</p><div class="cu-wrap"><table class="cu-t" id="cu-before-after">'
            "<tr><th>concept</th><th>action</th><th>win-rate before <span class=cu-wide>[95% CI]</span></th>"
            f"<th class=cu-wide></th><th>after <span class=cu-wide>[95% CI]</span></th><th class=cu-wide>q</th></tr>"
            f"{body}</table></div>"
        )
    steps = [s for s in (cur.get("steps") or []) if isinstance(s, dict) and s.get("intervention")]
    if steps:
        items = "".join(f"<li>{esc(step_sentence(s))}</li>" for s in steps)
        out.append(f'<h4>What was done</h4><ol id="cu-steps">{items}</ol>')
    w = cur["weights"]
    if w["rows"]:
        out.append(
            f"<p><b>Weights</b> of the {w['rows']} kept pairs: min {_num(w['min'])}, median "
            f"{_num(w['median'])}, max {_num(w['max'])}; {w['zero']} weigh 0 (they stay in the data but do "
            "not count in training; filter Pairs by status <i>weight 0</i> to read them).</p>"
        )
    by_recipe, at_ingestion = cur["dropped_by_recipe"], cur["dropped_at_ingestion"]
    out.append(
        f'<p id="cu-dropped-recipe"><b>Dropped by the recipe:</b> {_counts(by_recipe)}'
        + (" (filter Pairs by status <i>dropped</i> to read them)" if by_recipe else "")
        + "</p>"
    )
    if at_ingestion:
        out.append(
            f'<p id="cu-dropped-ingestion"><b>Unusable at ingestion</b> (before any recipe): '
            f"{_counts(at_ingestion)}</p>"
        )
    if cur["added"]:
        items = "".join(
            f"<li><b>{esc(c)}</b>: <ins class='cu-added'>{esc(t)}</ins></li>" for c, t in cur["added"].items()
        )
        out.append(
            "<p><b>Text added to prompts</b> by inoculation (marked <ins class='cu-added'>like this</ins> in "
            f"Pairs):</p><ul>{items}</ul>"
        )
    for warn in cur["warnings"]:
        out.append(f'<p class="cu-warn">{esc(warn)}</p>')
    return "".join(out)


def _wr(r: dict, when: str) -> str:
    w, lo, hi = r.get(f"win_rate_{when}"), r.get(f"ci_low_{when}"), r.get(f"ci_high_{when}")
    if w is None or (isinstance(w, float) and math.isnan(w)):
        return "—"
    return f"{w:.3f} <span class=cu-ci>[{_num(lo)}, {_num(hi)}]</span>" + _mean_delta(r, when)


def _mean_delta(r: dict, when: str) -> str:
    """A magnitude's weighted mean Δ under the win-rate (in sd and in its unit, with its CI): a block of length
    is done only when both are balanced; "" for a count concept."""
    from ..interventions.balance import mean_delta_text

    scale = r.get("scale")
    if not isinstance(scale, (int, float)) or math.isnan(scale):
        return ""
    return f"<br><span class=cu-md>mean Δ {esc(mean_delta_text(r, when))}</span>"


# -- Recipe preview ------------------------------------------------------------------------------------
def render_preview(result: dict, warnings: list[str] = (), error: str | None = None) -> str:
    notes = "".join(f'<p class="cu-warn">{esc(w)}</p>' for w in [*warnings, *result.get("warnings", [])])
    if error:
        return CSS + f'<p class="cu-no" id="cu-preview-error">{esc(error)}</p>' + notes
    rows = "".join(
        f"<tr><td>{esc(r['concept'])}</td><td>{esc(r['action'] or 'allow')}</td><td>{_wr(r, 'before')}</td>"
        f"<td>{_wr(r, 'after')}</td></tr>"
        for r in result["concepts"]
    )
    frac = result.get("ess_fraction")
    stats = [
        ("rows kept", f"{result['rows_kept']} of {result['rows_before']}"),
        (
            "effective sample size",
            f"{result['ess_after']}" + (f" ({100 * frac:.0f}%)" if frac else "") + f" (was {result['ess_before']})",
        ),
    ]
    return (
        CSS
        + notes
        + '<div class="cu-summary cu-preview-stats">'
        + "".join(stat(k, v) for k, v in stats)
        + '</div><div class="cu-wrap"><table class="cu-t cu-preview-table"><tr><th>concept</th><th>action</th>'
        "<th>win-rate before <span class=cu-wide>[95% CI]</span></th><th>after <span class=cu-wide>[95% CI]</span>"
        f"</th></tr>{rows}</table></div>"
    )
