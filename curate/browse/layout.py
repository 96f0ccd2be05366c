"""The Gradio layout of the curate app: Overview, Concept, Pairs, Curation, Recipe (and Compare) tabs.

Views link to each other (a table row, a plot dot or a finding opens its concept; a concept opens its pairs or
blocks it in the Recipe tab) and the URL names the view with every parameter it shows:
``?tab=concept&concept=flattery``, ``?tab=pairs&concept=flattery&status=kept&reason=…&pairs_page=3&per_page=10&q=great``
(Gradio reserves ``page``), ``?tab=compare`` (``build_app(A, compare=B)``) open it directly.
"""

import atexit
import hashlib
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from . import editor as E
from . import render as R
from . import render_recipe as RR
from .compare import compare_concepts, render_compare
from .loading import load_app_data
from .queries import ALL_SUBSETS, ANY, SOURCE_CHOICES, STATUS_CHOICES, AppData, page_number

TABS = ("overview", "concept", "pairs", "curation", "recipe", "compare")
PAGE_SIZES = (5, 10, 20, 50)
#: event delegation inside an HTML view: an element with data-concept triggers the view's click event
CLICKS = (
    "element.addEventListener('click', (e) => { const a = e.target.closest('[data-concept]'); "
    "if (!a) return; e.preventDefault(); trigger('click', {concept: a.dataset.concept, "
    "action: a.dataset.action || 'open'}); });"
)
HEADER_CSS = """<style>
#cu-title h2{margin:.2rem 0;overflow-wrap:anywhere;font-size:clamp(1rem,4vw,1.5rem)}
#concept-table thead th, #concept-table thead th span{white-space:nowrap !important;word-break:normal !important;overflow-wrap:normal !important}
#cu-phone-nav{display:none;gap:.3rem;flex-wrap:wrap;margin:.2rem 0}
#cu-phone-nav a{border:1px solid #d0d7de;border-radius:999px;padding:.1rem .55rem;font-size:.85rem;text-decoration:none}
@media (max-width: 640px){.cu-stat{min-width:5rem}#cu-tabs button[role=tab]{padding:.3rem .45rem}
#cu-phone-nav{display:flex}#pairs-status .info,#pairs-search .info{display:none}}
</style>"""
#: on a phone every tab is one tap away (Gradio moves tabs that do not fit behind "•••"): a link per tab
#: clicks that tab's button, wherever Gradio put it
PHONE_NAV_JS = (
    "element.addEventListener('click', (e) => { const a = e.target.closest('[data-tab]'); if (!a) return; "
    "e.preventDefault(); const b = [...document.querySelectorAll('#cu-tabs button')].find((x) => "
    "x.innerText.trim() === a.dataset.tab && !x.closest('.visually-hidden')); if (b) b.click(); });"
)


WIDTHS = {
    "finding": "80px",
    "group": "90px",
    "concept": "230px",
    "label": "300px",
    "source": "90px",
    "n_members": "110px",
    "pairs differ": "120px",
    "win-rate": "95px",
    "95% CI": "140px",
    "effect d": "95px",
    "q": "95px",
    "length-ctrl q": "125px",
    "confirmed": "105px",
    "nearest named": "210px",
}


def _url_js(*keys: str, tab: str | None = None) -> str:
    """JS for an event: write the inputs (named ``keys``) and the tab into the page URL, pass inputs on.
    Nothing is written before the page has read its own URL (``window.__cu_ready``, set by the load event)."""
    sets = "".join(f"set('{k}', args[{i}]);" for i, k in enumerate(keys))
    tab_set = f"u.searchParams.set('tab', '{tab}');" if tab else ""
    return (
        "(...args) => { if (!window.__cu_ready) return args.length === 1 ? args[0] : args; "
        "const u = new URL(window.location.href); const set = (k, v) => { "
        "if (v === null || v === undefined || v === '' || v === '(any)') u.searchParams.delete(k); "
        f"else u.searchParams.set(k, v); }}; {tab_set}{sets} window.history.replaceState(null, '', u); "
        "return args.length === 1 ? args[0] : args; }"
    )


def _options(widget, options: dict[str, str], value, label: str, elem_id: str):
    """A ``widget`` (Radio or CheckboxGroup) over ``options`` (name -> what it does), their meanings as its info."""
    info = "; ".join(f"{name}: {meaning}" for name, meaning in options.items())
    return widget(list(options), value=value, label=label, elem_id=elem_id, info=info)


def _strength_slider(low: float, high: float, step: float, value: float, label: str, elem_id: str):
    """A slider for a rule's strength, from ``low`` to ``high`` in steps of ``step``."""
    import gradio as gr

    return gr.Slider(low, high, value=value, step=step, label=label, elem_id=elem_id)


def build_app(source=None, *, title: str | None = None, compare=None):
    """The curate app as a :class:`gradio.Blocks`.

    Args:
        source: anything :func:`curate.browse.load_app_data` accepts, or an :class:`AppData` already loaded.
        title: the browser tab's title (default ``curate · <dataset name>``; never a local path).
        compare: a second dataset (anything ``source`` accepts) to show side by side with the first, concept by
            concept, in a Compare tab (``?tab=compare``).

    Events with an ``api_name`` (``concept_table``, ``concept``, ``pairs``, ``preview``) can be driven by
    ``gradio_client``. The loaded data is ``blocks.curate_data``.

    Example:

        >>> from curate import build_app
        >>> build_app("outputs/demo/published").launch()   # doctest: +SKIP
    """
    import gradio as gr

    data = source if isinstance(source, AppData) else load_app_data(source)
    other = compare if isinstance(compare, AppData) or compare is None else load_app_data(compare)
    concepts = data.concepts
    label_of = dict(zip(concepts, data.audit["label"].fillna("").astype(str)))
    choices = [(f"{c} — {label_of[c][:60]}" if label_of[c] and label_of[c] != c else c, c) for c in concepts]
    first = concepts[0] if concepts else None
    recipe_dir = Path(tempfile.mkdtemp(prefix="curate-app-"))
    atexit.register(shutil.rmtree, recipe_dir, True)
    start = E.preset(data)
    added = E.added_instructions(data)
    reasons = data.reasons()

    def concept_fn(concept):
        concept = data.resolve(concept)
        if concept and concept not in concepts:
            return R.CSS + f'<p class="cu-warn">Unknown concept {R.esc(concept)!s}: pick one from the list.</p>'
        return R.render_concept(data, concept)

    def pairs_fn(concept, status, reason, page, page_size, search=""):
        if status not in STATUS_CHOICES:
            status = "all"
        concept = data.resolve(concept)
        if concept and concept not in concepts:
            concept = None
        p = data.pairs_page(concept, status, reason, page, page_size, search or "")
        return R.render_pairs(p, data, added), R.page_info(p), p.page

    def step(delta):
        """Previous / Next: one page back or on; at either end the page stays, without a note."""

        def fn(concept, status, reason, page, page_size, search):
            if status not in STATUS_CHOICES:
                status = "all"
            concept = data.resolve(concept)
            concept = concept if concept in concepts else None
            p = data.pairs_page(concept, status, reason, (page_number(page, 1) or 1) + delta, page_size, search or "")
            p.note = ""
            return R.render_pairs(p, data, added), R.page_info(p), p.page

        return fn

    calls = {"preview": 0}  # how often the preview ran (a test checks that one edit runs it once)

    def preview_fn(name, block, amplify, method, extras, strength, amplify_strength):
        calls["preview"] += 1
        st = E.EditorState(
            list(block or []),
            list(amplify or []),
            method,
            strength,
            amplify_strength,
            list(extras or []),
            name or "draft-recipe",
        )
        st, warnings, err = E.check(data, st)
        if err:  # nothing to download: the YAML box and the button never hold a recipe the editor does not show
            text = "# Not a recipe yet: " + err.replace("\n", " ") + "\n"
            return RR.render_preview({}, warnings, err), text, None
        result = E.editor_preview(data, st)
        text = E.recipe_yaml(data, st)
        path = recipe_dir / hashlib.sha256(text.encode()).hexdigest()[:12] / "recipe.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return RR.render_preview(result, warnings), text, str(path)

    def table_fn(source_filter, confirmed_only, findings_only=False, subset=ALL_SUBSETS):
        return data.concept_table(source_filter, bool(confirmed_only), bool(findings_only), subset or ALL_SUBSETS)

    def select_fn(evt: gr.SelectData, table):
        row = evt.row_value or []
        cols = list(table.columns) if isinstance(table, pd.DataFrame) else []
        j = cols.index("concept") if "concept" in cols else 0
        concept = data.resolve(str(row[j])) if len(row) > j else first
        return gr.update(value=concept), gr.Tabs(selected="concept")

    def click_fn(evt: gr.EventData, block):
        concept = data.resolve(getattr(evt, "concept", None))
        action = getattr(evt, "action", "open")
        keep = gr.update()
        if concept not in concepts:
            return keep, keep, keep, keep
        if action == "pairs":
            return keep, gr.update(value=concept), keep, gr.Tabs(selected="pairs")
        if action == "block":
            block = [b for b in block or [] if b != concept] + [concept]
            return keep, keep, gr.update(value=block), gr.Tabs(selected="recipe")
        return gr.update(value=concept), keep, keep, gr.Tabs(selected="concept")

    def load_fn(request: gr.Request):
        """Open the view the URL names, with every parameter it names (tab, concept, status, reason, page, per
        page, search): the filters are set without running their own events, so nothing resets them after."""
        q = dict(request.query_params) if request is not None else {}
        tab = q.get("tab", "overview")
        tab = tab if tab in TABS and (tab != "compare" or other is not None) else "overview"
        concept = data.resolve(q.get("concept"))
        concept = concept if concept in concepts else None
        status = q.get("status") if q.get("status") in STATUS_CHOICES else "all"
        reason = q.get("reason") if q.get("reason") in reasons else ANY
        size = page_number(q.get("per_page"), 10)
        size = size if size in PAGE_SIZES else 10
        search = q.get("q", "")
        out = [gr.Tabs(selected=tab) if "tab" in q else gr.update()]
        out.append(gr.update(value=concept) if concept and tab != "pairs" else gr.update())
        if tab == "pairs":
            html, info, page = pairs_fn(concept, status, reason, q.get("pairs_page", 1), size, search)
            out += [gr.update(value=concept or ANY), gr.update(value=status), gr.update(value=reason)]
            out += [gr.update(value=size), gr.update(value=search), page, html, info]
        else:
            out += [gr.update()] * 8
        return out

    with gr.Blocks(title=title or f"curate · {data.source}", analytics_enabled=False) as blocks:
        labels = ["Overview", "Concept", "Pairs", "Curation"] + (["What a model learned"] if data.learning else [])
        labels += ["Recipe"] + (["Compare"] if other is not None else [])
        nav = "".join(f'<a href="#" data-tab="{t}">{t}</a>' for t in labels)
        gr.HTML(
            HEADER_CSS + f'<h2>curate · {R.esc(data.source)}</h2><nav id="cu-phone-nav">{nav}</nav>',
            elem_id="cu-title",
            js_on_load=PHONE_NAV_JS,
        )
        with gr.Tabs(elem_id="cu-tabs") as tabs:
            with gr.Tab("Overview", id="overview") as t_overview:
                overview_html = gr.HTML(RR.render_overview(data), elem_id="overview-summary", js_on_load=CLICKS)
                with gr.Row():
                    src_filter = gr.Radio(list(SOURCE_CHOICES), value="all", label="Source", elem_id="source-filter")
                    conf_filter = gr.Checkbox(value=False, label="Confirmed only", elem_id="confirmed-filter")
                    find_filter = gr.Checkbox(
                        value=False, label="Findings only", elem_id="findings-filter", visible=data.has_findings
                    )
                    sub_filter = gr.Dropdown(
                        [ALL_SUBSETS] + data.subsets,
                        value=ALL_SUBSETS,
                        label="Subset",
                        elem_id="subset-filter",
                        visible=bool(data.subsets),
                    )
                first_table = data.concept_table()
                table = gr.Dataframe(
                    first_table,
                    column_widths=[WIDTHS.get(c, "110px") for c in first_table.columns],
                    label="Concepts (click a row to open it; a header's menu "
                    "sorts; concepts with identical statistics share a row)",
                    interactive=False,
                    wrap=True,
                    max_height=420,
                    elem_id="concept-table",
                )
                plot = gr.HTML(R.render_plot(data.volcano()), elem_id="volcano", js_on_load=CLICKS)
            with gr.Tab("Concept", id="concept") as t_concept:
                concept_dd = gr.Dropdown(choices, value=first, label="Concept", elem_id="concept-dd")
                with gr.Row():
                    see_all = gr.Button("See all its pairs", elem_id="see-all", size="sm")
                    block_it = gr.Button("Block this concept", elem_id="block-this", size="sm")
                concept_html = gr.HTML(R.render_concept(data, first), elem_id="concept-html", js_on_load=None)
            with gr.Tab("Pairs", id="pairs") as t_pairs:
                with gr.Row():
                    p_concept = gr.Dropdown(
                        [(ANY, ANY)] + choices, value=ANY, label="Concept differs", elem_id="pairs-concept"
                    )
                    p_status = gr.Radio(
                        list(STATUS_CHOICES),
                        value="all",
                        label="Status",
                        elem_id="pairs-status",
                        info="weight 0: kept, but the weights give it nothing",
                    )
                    p_reason = gr.Dropdown(
                        [ANY] + reasons, value=ANY, label="Reason", elem_id="pairs-reason", visible=bool(reasons)
                    )
                    p_size = gr.Dropdown(list(PAGE_SIZES), value=10, label="Per page", elem_id="pairs-size")
                p_search = gr.Textbox(
                    label="Search the text (prompt, chosen, rejected; Enter to search)",
                    elem_id="pairs-search",
                    max_lines=1,
                )
                with gr.Row():
                    prev_btn = gr.Button("◀ Previous", elem_id="prev-page", size="sm")
                    p_page = gr.Number(1, label="Page", precision=0, elem_id="pairs-page")
                    next_btn = gr.Button("Next ▶", elem_id="next-page", size="sm")
                first_page = data.pairs_page(page=1, page_size=10)
                p_info = gr.Markdown(R.page_info(first_page), elem_id="pairs-info")
                p_html = gr.HTML(R.render_pairs(first_page, data, added), elem_id="pairs-html")
                with gr.Row():  # the pager again below the pairs: no scrolling back up to turn the page
                    prev_low = gr.Button("◀ Previous", elem_id="prev-page-bottom", size="sm")
                    next_low = gr.Button("Next ▶", elem_id="next-page-bottom", size="sm")
            with gr.Tab("Curation", id="curation") as t_curation:
                gr.HTML(RR.render_curation(data, E.curation(data)), elem_id="curation-html")
            if data.learning is not None:
                with gr.Tab("What a model learned", id="learned"):
                    gr.Markdown(data.learning[0], elem_id="learned-md")
                    if data.learning[1]:
                        gr.Image(data.learning[1], show_label=False, elem_id="learned-scatter")
                    gr.Dataframe(data.learning[2], interactive=False, elem_id="learned-table")
            t_compare = None
            if other is not None:
                with gr.Tab("Compare", id="compare") as t_compare:
                    gr.HTML(render_compare(data, other, compare_concepts(data, other)), elem_id="compare-html")
            with gr.Tab("Recipe", id="recipe") as t_recipe:
                gr.Markdown(
                    (
                        "Starts from the **applied recipe** (" + R.esc(start.name) + "): change it and the "
                        "preview updates; the download is exactly the YAML below."
                        if data.recipe_text
                        else "Mark concepts to **block** (stop rewarding them) or **amplify**; unmarked concepts are "
                        "allowed. The preview updates as you edit; the download is exactly the YAML below."
                    ),
                    elem_id="recipe-intro",
                )
                name = gr.Textbox(start.name, label="Recipe name", elem_id="recipe-name", max_lines=1)
                with gr.Row():
                    block_dd = gr.Dropdown(
                        choices,
                        value=start.block,
                        multiselect=True,
                        label="Block",
                        allow_custom_value=True,
                        elem_id="block-dd",
                    )
                    amplify_dd = gr.Dropdown(
                        choices,
                        value=start.amplify,
                        multiselect=True,
                        label="Amplify",
                        allow_custom_value=True,
                        elem_id="amplify-dd",
                    )
                with gr.Row():
                    method = _options(gr.Radio, E.BLOCK_METHODS, start.method, "Block by", "block-method")
                    extras = _options(gr.CheckboxGroup, E.EXTRAS, start.extras, "Also", "recipe-extras")
                with gr.Row():
                    strength = _strength_slider(
                        0.05,
                        1.0,
                        0.05,
                        start.strength,
                        "Block strength (share of the imbalance removed; 1 = no longer rewarded)",
                        "block-strength",
                    )
                    amp_strength = _strength_slider(
                        0.1, 3.0, 0.1, start.amplify_strength, "Amplify strength (extra weight)", "amplify-strength"
                    )
                init = preview_fn(
                    start.name,
                    start.block,
                    start.amplify,
                    start.method,
                    start.extras,
                    start.strength,
                    start.amplify_strength,
                )
                preview_html = gr.HTML(init[0], elem_id="preview-html")
                download = gr.DownloadButton("Download recipe YAML", value=init[2], elem_id="download-recipe")
                yaml_code = gr.Code(
                    init[1], language="yaml", label="recipe.yaml", interactive=False, elem_id="recipe-yaml"
                )

        filters = [src_filter, conf_filter, find_filter, sub_filter]
        src_filter.change(table_fn, filters, table, api_name="concept_table")
        gr.on([conf_filter.change, find_filter.change, sub_filter.change], table_fn, filters, table, api_name=False)
        table.select(select_fn, [table], [concept_dd, tabs], api_name=False)
        plot_event = gr.on(
            [plot.click, overview_html.click],
            click_fn,
            [block_dd],
            [concept_dd, p_concept, block_dd, tabs],
            api_name=False,
        )
        concept_dd.change(
            concept_fn, concept_dd, concept_html, api_name="concept", js=_url_js("concept", tab="concept")
        )
        see_event = see_all.click(
            lambda c: (gr.update(value=c), gr.Tabs(selected="pairs")), concept_dd, [p_concept, tabs], api_name=False
        )
        block_it.click(
            lambda c, b: (gr.update(value=[x for x in (b or []) if x != c] + [c]), gr.Tabs(selected="recipe")),
            [concept_dd, block_dd],
            [block_dd, tabs],
            api_name=False,
        )
        editor = [name, block_dd, amplify_dd, method, extras, strength, amp_strength]
        inputs = [p_concept, p_status, p_reason, p_page, p_size, p_search]
        outputs = [p_html, p_info, p_page]
        first_page_fn = lambda c, s, r, _p, n, q: pairs_fn(c, s, r, 1, n, q)  # noqa: E731
        # user edits only (`input`): a filter the URL or another view sets does not re-run the query and reset
        # the page or the search behind it; the views that set a filter refresh the pairs themselves (`then`).
        # `always_last`: Gradio's default ("once") drops an edit made while the previous query still runs
        edits = [p_concept.input, p_status.input, p_reason.input, p_size.input, p_search.submit]
        gr.on(edits, first_page_fn, inputs, outputs, api_name=False, trigger_mode="always_last")
        see_event.then(first_page_fn, inputs, outputs, api_name=False)
        plot_event.then(first_page_fn, inputs, outputs, api_name=False)
        p_page.submit(pairs_fn, inputs, outputs, api_name="pairs", trigger_mode="always_last")
        gr.on([prev_btn.click, prev_low.click], step(-1), inputs, outputs, api_name=False, trigger_mode="always_last")
        gr.on([next_btn.click, next_low.click], step(+1), inputs, outputs, api_name=False, trigger_mode="always_last")
        p_info.change(
            None, inputs, None, js=_url_js("concept", "status", "reason", "pairs_page", "per_page", "q", tab="pairs")
        )
        for tab_id, tab in zip(TABS, (t_overview, t_concept, t_pairs, t_curation, t_recipe, t_compare)):
            if tab is not None:
                tab.select(None, None, None, js=_url_js(tab=tab_id))
        # no handler of an editor event writes to an editor input (the amplify choices are not narrowed: a
        # concept both blocked and amplified is refused with a message), so no two handlers trigger each other
        gr.on(
            [
                name.submit,
                block_dd.change,
                amplify_dd.change,
                method.change,
                extras.change,
                strength.change,
                amp_strength.change,
            ],
            preview_fn,
            editor,
            [preview_html, yaml_code, download],
            api_name="preview",
            trigger_mode="always_last",
        )
        blocks.load(
            load_fn,
            None,
            [tabs, concept_dd, p_concept, p_status, p_reason, p_size, p_search, p_page, p_html, p_info],
            api_name=False,
        ).then(None, None, None, js="() => { window.__cu_ready = true; }")
    blocks.curate_data = data  # the loaded data, for tests and notebooks
    blocks.curate_calls = calls
    return blocks
