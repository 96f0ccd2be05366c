"""HTML of the app's views. Every text that comes from the data (prompts, responses, ids, reasons, labels)
goes through :func:`html.escape`: a response holding ``<script>`` shows as text."""

from __future__ import annotations

import html
import json
import math

import numpy as np

from .. import _columns as C
from ..teach import finding_sentences, fmt_q, is_missing, truthy
from .queries import GROUP_ID, SAE_ID, AppData, PairPage, nearest

MAX_CHARS = 3000  # characters of one response shown on a page
# function concepts whose spans are the union of their regex parts
_SPAN_PARTS = {"markdown": ("heading", "list", "bold", "code", "link")}

#: plain-language meaning of the terms the views use (shown in the Overview's glossary and as tooltips)
GLOSSARY = {
    "win-rate": "Among pairs where chosen and rejected differ in a concept, the share where the chosen response "
    "has more of it. 0.5 means the data does not reward it; 0.8 means it is rewarded 4 to 1.",
    "95% CI": "The range the win-rate lies in with 95% confidence (Wilson interval).",
    "significant": "q below 0.05: after correcting for testing many concepts (Benjamini–Hochberg), the win-rate "
    "is unlikely to be 0.5 by chance.",
    "length-controlled q": "The same test after accounting for response length, so a concept that only rides "
    "along with longer answers is not reported as rewarded.",
    "confirmed": "Found on one half of the prompts and seen again on the other half (held out).",
    "finding": "Confirmed, significant after length control and large enough to act on.",
    "held-out AUC": "How well all concepts together predict which response was chosen, on held-out prompts "
    "(0.5: not at all, 1: perfectly).",
    "ESS": "Effective sample size: how many equally weighted pairs the weighted data is worth.",
}

CSS = """
<style>
.cu-summary{display:flex;flex-wrap:wrap;gap:.5rem;margin:.25rem 0}
.cu-stat{border:1px solid #d0d7de;border-radius:8px;padding:.35rem .7rem;min-width:7rem}
.cu-stat b{display:block;font-size:1.15rem}
.cu-pair{border:1px solid #d0d7de;border-radius:8px;margin:.6rem 0;padding:.5rem}
.cu-pair .cu-head{font-size:.85rem;color:#57606a;margin-bottom:.3rem}
.cu-prompt{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;border-radius:6px;padding:.3rem .5rem;margin-bottom:.4rem}
.cu-sides{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr));gap:.5rem}
.cu-side{white-space:pre-wrap;word-break:break-word;overflow-wrap:anywhere;border-radius:6px;padding:.4rem .5rem}
.cu-chosen{background:#eaf7ee}.cu-rejected{background:#fdeeee}
.cu-side h4{margin:0 0 .25rem 0;font-size:.8rem;text-transform:uppercase;color:#57606a}
mark.cu-hl{background:#ffe066;padding:0 1px;border-radius:2px}
ins.cu-added{background:#ddf4ff;text-decoration:none;border-bottom:2px dotted #0969da}
.cu-badge{display:inline-block;border-radius:999px;padding:0 .5rem;font-size:.8rem;border:1px solid #d0d7de}
.cu-yes{background:#dafbe1}.cu-no{background:#ffebe9}.cu-warn{background:#fff8c5;border-radius:6px;padding:.3rem .5rem}
table.cu-t{border-collapse:collapse;max-width:100%}
table.cu-t td,table.cu-t th{border-bottom:1px solid #eee;padding:.15rem .6rem;text-align:left;white-space:nowrap}
@media (max-width: 640px){table.cu-t td,table.cu-t th{white-space:normal;padding:.15rem .2rem;font-size:.8rem;word-break:break-word}
.cu-ci{display:block;font-size:.75rem;color:#57606a}.cu-wide{display:none}}
.cu-wrap{overflow-x:auto}
.cu-teach li{margin:.2rem 0}
</style>
"""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def stat(name: str, value, tip: str | None = None) -> str:
    title = f' title="{esc(tip)}"' if tip else ""
    return f'<div class="cu-stat"{title}><span>{esc(name)}</span><b>{esc(value)}</b></div>'


def _counts(d: dict) -> str:
    return ", ".join(f"{esc(k)}: {int(v)}" for k, v in d.items()) or "none"


def _num(x, fmt="{:.3f}") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


# -- Overview ------------------------------------------------------------------------------------------
def render_teaches(data: AppData, heading: str = "What this data teaches") -> str:
    """ "What this data teaches": the dataset card's finding sentences (:func:`curate.teach.finding_sentences`)."""
    sentences = finding_sentences(data.audit)
    if not sentences:
        return (
            f'<div class="cu-teach" id="cu-teaches"><h3>{esc(heading)}</h3><p>The audit marked no '
            "finding: no concept is confirmed, length-controlled and large enough to act on.</p></div>"
        )
    hidden, named = data.hidden(), set(data.audit.loc[data.audit["source"].astype(str) == "named", "concept"])
    style, other = [], []
    for f in sentences:
        if f.concept in hidden:  # the same statistics as a finding above: one row, as in the table
            continue
        if f.given:
            other.append(f"<li>{esc(f.text)}</li>")
            continue
        name = " = ".join([f.concept] + data.aliases.get(f.concept, []))
        label = f" ({esc(f.label)}" + (f"; {esc(f.note)}" if f.note else "") + ")" if f.label or f.note else ""
        actions = (
            f' <a href="#" data-concept="{esc(f.concept)}">open</a> · '
            f'<a href="#" data-concept="{esc(f.concept)}" data-action="pairs">read its pairs</a> · '
            f'<a href="#" data-concept="{esc(f.concept)}" data-action="block">block it</a>'
        )
        item = f"<li><b>{esc(name)}</b>{label}: {esc(f.text)}<br><small>{actions}</small></li>"
        (style if f.concept in named else other).append(item)
    parts = [
        f'<div class="cu-teach" id="cu-teaches"><h3>{esc(heading)}</h3><p>A model trained on these pairs '
        "learns to prefer what the chosen responses have more of. The audit found:</p>"
    ]
    if style:
        parts.append(
            "<h4>Style signals</h4><p>Detectors of form (length, Markdown, flattery, …). <b>Next:</b> read a few "
            "pairs; if the preference should not depend on it, block it (the Recipe tab previews the result).</p>"
            f'<ol id="cu-style-findings">{"".join(style)}</ol>'
        )
    if other:
        parts.append(
            "<h4>Other signals (SAE features)</h4><p>Features of the model's activations; one may mark answer "
            "quality (a wrong answer, a refusal) rather than style. <b>Next:</b> read its examples before "
            f'blocking it: a quality signal should stay rewarded.</p><ol id="cu-other-findings">{"".join(other)}</ol>'
        )
    return "".join(parts) + "</div>"


def render_glossary() -> str:
    items = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in GLOSSARY.items())
    return f'<details id="cu-glossary"><summary>What the terms mean</summary><ul>{items}</ul></details>'


def render_summary(data: AppData, lead: str = "") -> str:
    """The Overview's summary. ``lead`` (what the curated data teaches, from
    :func:`curate.browse.render_recipe.render_overview`) comes first; the audit of the source pairs then follows
    under its own heading."""
    heading = "What the source data teaches (the audit before curation)" if lead else "What this data teaches"
    s = data.summary()
    stats = [
        ("rows", s["rows"], None),
        ("kept", s["kept"], None),
        ("dropped", s["dropped"], None),
        ("concepts", s["concepts"], None),
        ("significant", s["significant"], GLOSSARY["significant"]),
        ("confirmed", s["confirmed"], GLOSSARY["confirmed"]),
    ]
    if s["findings"] is not None:
        stats.append(("findings", s["findings"], GLOSSARY["finding"]))
    if s["heldout_auc"] is not None:
        stats.append(("held-out AUC", f"{float(s['heldout_auc']):.3f}", GLOSSARY["held-out AUC"]))
    lines = [f"<p><b>Dataset:</b> {esc(s['source'])} ({esc(s['kind'])})"]
    if s["input_rows"] is not None:
        lines.append(
            f"<br><b>Ingestion:</b> format {esc(s['input_format'])}, {int(s['input_rows'])} rows read, "
            f"{int(s['usable'] or 0)} usable; unusable by reason: {_counts(s['unusable_by_reason'])}"
        )
    if s["dropped"]:
        lines.append(f"<br><b>Dropped by reason:</b> {_counts(s['dropped_by_reason'])}")
    if s["zero_weight"]:
        lines.append(
            f"<br><b>Weight 0:</b> {s['zero_weight']} kept pairs weigh nothing in training (see the Curation tab)"
        )
    for missing in s["missing"]:
        lines.append(f"<br><b>Missing:</b> {esc(missing)}")
    return (
        CSS
        + lead
        + render_teaches(data, heading)
        + '<div class="cu-summary">'
        + "".join(stat(k, v, t) for k, v, t in stats)
        + "</div>"
        + "".join(lines)
        + "</p>"
        + render_glossary()
    )


# -- Pairs ---------------------------------------------------------------------------------------------
def _merge(spans):
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def concept_spans(concept: str | None, text: str) -> list[tuple[int, int]]:
    """Character spans of a named concept in ``text`` (empty for SAE features and size concepts)."""
    if not concept or SAE_ID.match(concept) or GROUP_ID.match(concept):
        return []
    from ..concepts.named import get_concept
    from ..errors import ConceptError

    try:
        return _merge([s for p in _SPAN_PARTS.get(concept, (concept,)) for s in get_concept(p).spans(text)])
    except ConceptError:
        return []


def highlight(text: str, spans, max_chars: int = MAX_CHARS, tag: str = 'mark class="cu-hl"') -> str:
    """``text`` escaped, with ``spans`` wrapped in ``<mark>`` (or ``tag``); cut after ``max_chars`` characters."""
    text = text or ""
    shown = text[:max_chars]
    out, pos = [], 0
    close = tag.split()[0]
    for a, b in _merge(spans):
        if a >= len(shown):
            break
        b = min(b, len(shown))
        out += [esc(shown[pos:a]), f"<{tag}>{esc(shown[a:b])}</{close}>"]
        pos = b
    out.append(esc(shown[pos:]))
    if len(text) > max_chars:  # the rest, one click away (highlights kept)
        rest = [(a - max_chars, b - max_chars) for a, b in _merge(spans) if b > max_chars]
        more = highlight(text[max_chars:], [(max(a, 0), b) for a, b in rest], len(text), tag)
        out.append(
            f'<details class="cu-more"><summary>… show {len(text) - max_chars} more characters</summary>'
            f"{more}</details>"
        )
    return "".join(out)


def highlight_tokens(tokens: list[str], activations: list[float]) -> str:
    """Tokens escaped and shaded by activation (SAE features with token-level activations)."""
    top = max([float(a) for a in activations] + [1e-9])
    return "".join(
        f'<span class="cu-tok" title="activation {float(a):.2f}" style="background:rgba(255,170,0,'
        f'{max(0.0, float(a)) / top:.2f})">{esc(t)}</span>'
        for t, a in zip(tokens, activations)
    )


def _added_spans(prompt: str, added: list[str]) -> list[tuple[int, int]]:
    spans = []
    for t in added:
        start = prompt.find(t)
        while start >= 0:
            spans.append((start, start + len(t)))
            start = prompt.find(t, start + len(t))
    return spans


def token_examples(data: AppData | None, concept: str | None) -> dict[tuple[int, str], tuple[list, list]]:
    """(row, side) -> (tokens, activations) stored with an SAE feature's label, for highlights in Pairs."""
    if data is None or not concept or not (SAE_ID.match(concept) or GROUP_ID.match(concept)):
        return {}
    det = data.concept_details(concept) if concept in data.concepts else {"labels": data._label_row(concept)}
    examples = _parse_json((det.get("labels") or {}).get("top_examples"))
    out = {}
    for ex in examples if isinstance(examples, list) else []:
        if isinstance(ex, dict) and ex.get("tokens") is not None and ex.get("acts") is not None:
            out[(int(ex.get("row", -1)), str(ex.get("side")))] = (list(ex["tokens"]), list(ex["acts"]))
    return out


def render_pairs(page: PairPage, data: AppData | None = None, added: list[str] = ()) -> str:
    note = f'<p class="cu-warn" id="cu-page-note">{esc(page.note)}</p>' if page.note else ""
    if not page.rows:
        return CSS + note + '<p class="cu-no-pairs">No pairs match these filters.</p>'
    tokens = token_examples(data, page.concept)
    parts = [CSS, note]
    for r in page.rows:
        status = "dropped" if not r["kept"] else "weight 0" if r["weight"] == 0 else "kept"
        head = [
            f"row {r['row']}",
            f"id {esc(r['id'])}",
            f'<span class="cu-badge {"cu-yes" if status == "kept" else "cu-no"}">{status}</span>',
        ]
        if r["reason"]:
            head.append(f"reason: <code>{esc(r['reason'])}</code>")
        if r["kept"] and r["weight"] not in (0.0, 1.0):
            head.append(f"weight {r['weight']:.3g}")
        if r["delta"] is not None:
            head.append(f"Δ {esc(page.concept)} = {r['delta']:+.3g}")
        sides = []
        for side in C.SIDES:
            if (r["row"], side) in tokens:
                body = highlight_tokens(*tokens[(r["row"], side)])
            else:
                spans = concept_spans(page.concept, r[side])
                body = highlight(r[side], spans + (_find(r[side], page.search) if page.search else []))
            sides.append(f'<div class="cu-side cu-{side}"><h4>{side}</h4>{body}</div>')
        prompt = highlight(
            r["prompt"],
            _added_spans(r["prompt"], added),
            1500,
            tag='ins class="cu-added" title="added by inoculation (not in the source data)"',
        )
        parts.append(
            f'<div class="cu-pair"><div class="cu-head">{" · ".join(head)}</div>'
            f'<div class="cu-prompt">{prompt}</div><div class="cu-sides">{"".join(sides)}</div></div>'
        )
    return "".join(parts)


def _find(text: str, needle: str) -> list[tuple[int, int]]:
    low, n = text.lower(), needle.lower()
    return [(i, i + len(n)) for i in range(len(low)) if low.startswith(n, i)] if n else []


def page_info(page: PairPage) -> str:
    return f"Page {page.page} of {page.n_pages} · {page.n_matching} matching pairs"


# -- Concept -------------------------------------------------------------------------------------------
def render_concept(data: AppData, concept: str | None) -> str:
    if not concept:
        return CSS + "<p>Pick a concept.</p>"
    det = data.concept_details(concept)
    r = det["row"]
    confirmed = bool(truthy([r.get("confirmed")])[0])
    head = (
        f'<h3 class="cu-concept-title">{esc(r.get("concept"))} <span class="cu-badge '
        f'{"cu-yes" if confirmed else "cu-no"}">{"confirmed" if confirmed else "not confirmed"}</span></h3>'
        f"<p><b>Label:</b> {esc(r.get('label'))}<br><b>Source:</b> {esc(r.get('source'))}</p>"
    )
    if det["aliases"]:
        head += (
            f"<p>Same statistics as {esc(', '.join(det['aliases']))} (the two mark the same pairs), so the "
            "table shows them as one row.</p>"
        )
    if "finding" in r and truthy([r["finding"]])[0]:
        rank = r.get("finding_rank")
        head += (
            f'<p><span class="cu-badge cu-yes">finding{"" if is_missing(rank) else f" #{int(rank)}"}'
            "</span> confirmed, length-controlled and large enough to act on</p>"
        )

    def num(key, fmt="{:.3f}"):
        return _num(r.get(key), fmt)

    stats = [
        ("pairs", num("n_pairs", "{:.0f}"), None),
        ("differ", num("n_differ", "{:.0f}"), None),
        ("win-rate [95% CI]", f"{num('win_rate')} [{num('ci_low')}, {num('ci_high')}]", GLOSSARY["win-rate"]),
        ("effect size d", num("effect_size", "{:+.2f}"), None),
        ("q", fmt_q(r.get("q_value")), GLOSSARY["significant"]),
        ("length-controlled q", fmt_q(r.get("length_controlled_q")), GLOSSARY["length-controlled q"]),
    ]
    held = [
        ("discovery win-rate", num("discovery_win_rate")),
        ("discovery q", fmt_q(r.get("discovery_q"))),
        ("confirmation win-rate", num("confirmation_win_rate")),
        ("confirmation p", fmt_q(r.get("confirmation_p"))),
    ]
    body = (
        '<div class="cu-summary">'
        + "".join(stat(*s) for s in stats)
        + "</div>"
        + f'<p title="{esc(GLOSSARY["confirmed"])}"><b>Held-out check</b> (pairs split by prompt):</p>'
        + '<div class="cu-summary">'
        + "".join(stat(k, v) for k, v in held)
        + "</div>"
    )
    near = nearest(r.get("nearest_named"), r.get("nearest_r", float("nan")))
    body += f'<p id="cu-nearest"><b>Nearest named concept:</b> {esc(near or "—")}</p>'
    body += render_feature_labels(det["labels"], det.get("members"))
    top = data.top_pairs(concept, k=5)
    how = (
        "activation Δ shown per pair"
        if SAE_ID.match(concept) or GROUP_ID.match(concept)
        else "matched spans highlighted"
    )
    body += (
        f"<h4>Pairs where it differs most</h4><p>{top.n_matching} usable pairs differ; top 5 by |Δ| "
        f"({how}). <i>See all</i> opens them in Pairs.</p>" + render_pairs(top, data)
    )
    return CSS + head + body


def _parse_json(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def render_feature_labels(labels: dict, members: list[dict] | None = None) -> str:
    """An SAE feature's n-gram label, its top examples (token activations when stored) and group members.
    The nearest named concept is shown once, from the audit table (not from the label file)."""
    out = []
    if members:
        items = "".join(f"<li>{esc(m.get('concept'))}: {esc(m.get('label', ''))}</li>" for m in members[:12])
        more = f"<li>… {len(members) - 12} more</li>" if len(members) > 12 else ""
        out.append(f"<p><b>Group members</b> ({len(members)} correlated SAE features):</p><ul>{items}{more}</ul>")
    if not labels:
        return "".join(out)
    if labels.get("label"):
        out.append(f"<p><b>Feature label:</b> {esc(labels['label'])}</p>")
    ngrams = _parse_json(labels.get("top_ngrams"))
    if ngrams is not None and len(ngrams):
        terms = []
        for g in list(ngrams)[:10]:
            g = list(g) if isinstance(g, (list, tuple, np.ndarray)) else [g]
            z = f" (z={float(g[1]):.1f})" if len(g) > 1 and g[1] is not None else ""
            terms.append(f"<code>{esc(g[0])}</code>{z}")
        out.append(f"<p><b>n-gram label:</b> {', '.join(terms)}</p>")
    if labels.get("n_active") is not None and labels["n_active"] == labels["n_active"]:
        out.append(f"<p>Active in {int(labels['n_active'])} responses.</p>")
    examples = _parse_json(labels.get("top_examples"))
    if isinstance(examples, list) and examples:
        out.append("<p><b>Top-activating responses</b> (token-level activations where stored):</p>")
        for ex in examples[:5]:
            if not isinstance(ex, dict):
                continue
            head = f"row {esc(ex.get('row'))} · {esc(ex.get('side'))} · activation {_num(_float(ex.get('value')), '{:.2f}')}"
            if ex.get("tokens") is not None and ex.get("acts") is not None:
                text = highlight_tokens(list(ex["tokens"]), list(ex["acts"]))
            else:
                text = highlight(str(ex.get("text", "")), [])
            out.append(f'<div class="cu-pair"><div class="cu-head">{head}</div><div class="cu-side">{text}</div></div>')
    return "".join(out)


def _float(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


# -- effect plot ---------------------------------------------------------------------------------------
_COLORS = {"finding": "#d1242f", "confirmed": "#fb8500", "not confirmed": "#8c959f"}


def render_plot(points, width: int = 640, height: int = 340) -> str:
    """The effect plot as SVG: win-rate (x) against −log10 q (y), one dot per concept, findings drawn last and
    larger. A dot is a link: clicking it opens the concept (``?tab=concept&concept=…``)."""
    from urllib.parse import quote

    if points.empty:
        return "<p>No concepts to plot.</p>"
    pad_l, pad_b, pad_t, pad_r = 44, 36, 10, 10
    ymax = max(1.0, float(points["neg_log10_q"].max()) * 1.05)

    def sx(x):
        return pad_l + float(x) * (width - pad_l - pad_r)

    def sy(y):
        return pad_t + (1 - float(y) / ymax) * (height - pad_t - pad_b)

    grid = "".join(
        f'<line x1="{sx(x):.1f}" y1="{pad_t}" x2="{sx(x):.1f}" y2="{height - pad_b}" stroke="#eee"/>'
        f'<text x="{sx(x):.1f}" y="{height - pad_b + 14}" font-size="11" text-anchor="middle">{x:g}</text>'
        for x in (0, 0.25, 0.5, 0.75, 1)
    )
    ticks = np.linspace(0, ymax, 5)
    grid += "".join(
        f'<text x="{pad_l - 4}" y="{sy(t) + 4:.1f}" font-size="11" text-anchor="end">{t:.0f}</text>' for t in ticks
    )
    grid += (
        f'<line x1="{sx(0.5):.1f}" y1="{pad_t}" x2="{sx(0.5):.1f}" y2="{height - pad_b}" stroke="#bbb" '
        'stroke-dasharray="4 3"/>'
        f'<text x="{(width + pad_l) / 2:.0f}" y="{height - 4}" font-size="12" text-anchor="middle">win-rate '
        "(right: chosen has more of the concept)</text>"
        f'<text x="12" y="{(height - pad_b) / 2:.0f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 12 {(height - pad_b) / 2:.0f})">−log10 q</text>'
    )
    dots = []
    for p in points.itertuples():
        first = str(p.concept).split(" = ")[0]
        r = 7 if p.status == "finding" else 5
        tip = f"{p.concept} · win-rate {p.win_rate:.3f} · −log10 q {p.neg_log10_q:.1f} · {p.status}"
        dots.append(
            f'<a href="?tab=concept&amp;concept={esc(quote(first))}" data-concept="{esc(first)}" '
            f'data-action="open" class="cu-dot"><circle cx="{sx(p.win_rate):.1f}" cy="{sy(p.neg_log10_q):.1f}" '
            f'r="{r}" fill="{_COLORS.get(p.status, "#8c959f")}" fill-opacity=".85" stroke="#fff">'
            f"<title>{esc(tip)}</title></circle></a>"
        )
    legend = " ".join(f'<span style="color:{c}">●</span> {esc(k)}' for k, c in _COLORS.items())
    return (
        f'<div class="cu-plot"><p><b>Effect plot</b> (click a dot to open its concept) · {legend}</p>'
        f'<svg viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px" role="img" '
        f'aria-label="effect plot">{grid}{"".join(dots)}</svg></div>'
    )
