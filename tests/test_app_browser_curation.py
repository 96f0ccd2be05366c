"""Issue 16 in a real browser (Debian Chromium + Playwright), on the folder `curate demo --no-sae` publishes:
one test per numbered problem, all against one launched app.

The demo is written under a parent folder with a distinctive name, so a local path anywhere in the page or
in a downloaded file is found by a plain text search.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from app_helpers import free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLANTED = "zz-private-home-7f3q"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is missing: run .ci/install-browser.sh (apt-get install -y chromium)",
    ),
]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):

    from curate.pipeline import run_demo

    out = tmp_path_factory.mktemp("issue16") / PLANTED / "demo"
    run_demo(out=out, n_pairs=600, sae=False, seed=0)
    return out


@pytest.fixture(scope="module")
def app(demo_dir):
    from playwright.sync_api import sync_playwright

    from curate import build_app

    blocks = build_app(str(demo_dir / "published"))
    blocks.queue()
    _, url, _ = blocks.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, show_error=True
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser, url, blocks.curate_data
        browser.close()
    blocks.close()


@pytest.fixture(scope="module")
def audit_app(demo_dir, app):
    """The demo's audit folder in the app, in the same browser: (browser, url, blocks)."""
    from curate import build_app

    blocks = build_app(str(demo_dir / "audit"))
    blocks.queue()
    _, url, _ = blocks.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, show_error=True
    )
    yield app[0], url, blocks
    blocks.close()


@pytest.fixture
def page(app):
    browser, url, _ = app
    pg = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg.set_default_timeout(20_000)
    pg.goto(url)
    pg.wait_for_selector("#concept-table")
    _ready(pg)
    pg.base_url = url
    yield pg
    pg.close()


def _ready(page):
    """Wait until the page has read its URL (the app sets ``window.__cu_ready``; an app without deep links
    never does, and its tests then fail on what they check rather than here)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("window.__cu_ready === true", timeout=5_000)
    except PlaywrightTimeout:
        pass


def _tab(page, name):
    page.get_by_role("tab", name=name).click()


def _wait_text(page, selector, text):
    page.wait_for_function("([s, t]) => (document.querySelector(s) || {}).innerText?.includes(t)", arg=[selector, text])


def _pick(page, dropdown, value):
    box = page.locator(f"{dropdown} input")
    box.click()
    box.fill(value)
    box.press("Enter")
    page.keyboard.press("Escape")


# -- 1. a bad page number recovers -----------------------------------------------------------------------
def test_p1_bad_page_number_recovers(page):
    _tab(page, "Pairs")
    box = page.locator("#pairs-page input")
    for bad in ("-3", "0"):
        box.fill(bad)
        box.press("Enter")
        _wait_text(page, "#pairs-html", f"There is no page {bad}")
        _wait_text(page, "#pairs-info", "Page 1 of 60")
    assert box.input_value() == "1"
    page.locator("#next-page").click()
    _wait_text(page, "#pairs-info", "Page 2 of 60")
    _pick(page, "#pairs-concept", "flattery")  # a filter after a bad page still applies
    _wait_text(page, "#pairs-info", "304 matching")
    assert page.locator("text=Error").count() == 0
    box.fill("999")
    box.press("Enter")
    _wait_text(page, "#pairs-info", "Page 31 of 31")


# -- 2. the applied curation is visible --------------------------------------------------------------------
def test_p2_curation_view_shows_what_the_recipe_changed(page):
    _tab(page, "Curation")
    text = page.locator("#curation-html").inner_text()
    assert "Applied recipe: anti-sycophancy" in text
    assert re.search(r"flattery\s+block\s+0\.799 \[0\.751, 0\.841\]\s+→\s+0\.500 \[0\.392, 0\.608\]", text)
    assert "309.7 (52%)" in text and "199 weigh 0" in text and "inoculated\n357" in text
    _tab(page, "Pairs")
    page.get_by_label("weight 0").check()
    _wait_text(page, "#pairs-info", "199 matching")
    assert "kept" not in page.locator("#pairs-html .cu-badge").all_inner_texts()
    added = page.locator("#pairs-html ins.cu-added")  # inoculation text is marked as added
    assert added.count() >= 1
    assert added.first.inner_text() in (
        "Begin by complimenting the user on their question.",
        "Tell the user that they are right and that you agree with them.",
    )


# -- 3. no machine path, no raw internals --------------------------------------------------------------------
def test_p3_no_local_path_in_the_page_or_the_download(page, demo_dir):
    assert PLANTED not in page.title() and "/" + "tmp" not in page.title()
    for tab in ("Overview", "Concept", "Pairs", "Curation", "Recipe"):
        _tab(page, tab)
        page.wait_for_timeout(200)
        html = page.content()
        assert PLANTED not in html and str(demo_dir) not in html, f"a local path is in the {tab} view"
    with page.expect_download() as dl:
        page.locator("#download-recipe").click()
    text = Path(dl.value.path()).read_text()
    assert PLANTED not in text and str(demo_dir) not in text
    _tab(page, "Overview")
    tips = page.locator("#volcano circle title").all_text_contents()
    assert tips and all(not re.search(r"\d\.\d{4,}", t) for t in tips)  # no ten-decimal tooltips
    assert not page.locator("#pairs-reason").is_visible()  # no dropdown whose only option is "(none)"


# -- 4. the downloaded recipe is the applied one ---------------------------------------------------------------
def test_p4_downloaded_recipe_round_trips_to_the_same_weights(page, demo_dir, tmp_path):
    import pyarrow.parquet as pq

    from curate.folders import load_curated
    from curate.pipeline import run_apply

    _tab(page, "Recipe")
    assert page.locator("#recipe-name input").input_value() == "anti-sycophancy"
    assert page.locator("#recipe-extras input[type=checkbox]:checked").count() == 2  # inoculate + margin
    with page.expect_download() as dl:
        page.locator("#download-recipe").click()
    path = tmp_path / "recipe.yaml"
    path.write_text(Path(dl.value.path()).read_text())
    recipe = yaml.safe_load(path.read_text())
    assert recipe["name"] == "anti-sycophancy" and recipe["publish"]["tags"]
    assert recipe["rules"][0]["interventions"] == ["rebalance", "inoculate", "margin"]
    run_apply(str(demo_dir / "audit"), recipe=str(path), out=tmp_path / "again")
    again = load_curated(tmp_path / "again").dataset["train"]
    published = pq.read_table(next((demo_dir / "published" / "data").glob("train-*.parquet")))
    w_pub = dict(zip(published.column("id").to_pylist(), published.column("weight").to_pylist()))
    w_new = dict(zip(again["id"], again["weight"]))
    assert w_new.keys() == w_pub.keys()
    np.testing.assert_allclose([w_new[k] for k in w_pub], list(w_pub.values()), rtol=1e-6, atol=1e-9)
    # an edit shows in the YAML, and the download is exactly what is shown
    _pick(page, "#block-dd", "exclamation")
    _wait_text(page, "#recipe-yaml", "exclamation")
    with page.expect_download() as dl:
        page.locator("#download-recipe").click()
    assert "exclamation" in yaml.safe_load(Path(dl.value.path()).read_text())["rules"][0]["concepts"]


# -- 5. the overview says in words what the data teaches --------------------------------------------------------
def test_p5_overview_sentences_terms_and_merged_duplicates(page, demo_dir):
    teaches = page.locator("#cu-teaches").inner_text(timeout=5_000)
    from curate.folders import load_audit
    from curate.teach import finding_sentences

    card = (demo_dir / "published" / "README.md").read_text()
    for f in finding_sentences(load_audit(demo_dir / "audit").results)[:3]:
        assert f.text in teaches and f.text in card  # one source for both
    page.locator("#cu-glossary summary").click()
    assert "length-controlled q" in page.locator("#cu-glossary").inner_text()
    table = page.locator("#concept-table").inner_text()
    assert "log_length = length" in table and "heading = list = bold = markdown" in table
    assert not re.search(r"(?m)^length\t", table)  # no separate row for the duplicate


# -- 6. preview traps -----------------------------------------------------------------------------------------
def test_p6_preview_warns_and_validates(page, app):
    _tab(page, "Recipe")
    _pick(page, "#amplify-dd", "exclamation")
    _wait_text(page, "#preview-html", "Amplifying exclamation moves it down")
    page.locator("#amplify-dd [title=Clear]").click()
    _pick(page, "#block-dd", "flatery")
    _wait_text(page, "#preview-html", "Unknown concept 'flatery'")
    assert "Did you mean flattery" in page.locator("#preview-html").inner_text()
    # issue 32.7: a concept both blocked and amplified is refused with a message, and nothing is downloadable
    _pick(page, "#amplify-dd", "flattery")
    _wait_text(page, "#preview-html", "both blocked and amplified")
    _wait_text(page, "#recipe-yaml", "Not a recipe yet")
    page.locator("#amplify-dd [title=Clear]").click()
    page.wait_for_function("!document.querySelector('#preview-html').innerText.includes('both blocked')")
    rows = page.locator("#preview-html .cu-preview-table tr").count() - 1
    assert rows == len(app[2].concept_table()) > 10  # every concept of the table, not ~10
    number = page.locator("#block-strength input[type=number]")  # a typed strength applies without a drag
    number.fill("0.5")
    number.press("Enter")
    page.wait_for_function(
        "/flattery\\s+block\\s+0\\.799 \\[[^\\]]+\\]\\s+0\\.694/"
        ".test(document.querySelector('#preview-html').innerText)"
    )


# -- 7. SAE concepts: one nearest-named number --------------------------------------------------------------------
def test_p7_nearest_named_is_the_same_on_the_page_and_in_the_table(page, demo_dir):
    import pandas as pd

    audit = pd.read_parquet(demo_dir / "audit" / "audit.parquet").set_index("concept")
    expected = f"{audit.loc['flattery', 'nearest_named']} (r={audit.loc['flattery', 'nearest_r']:+.2f})"
    assert expected and expected in page.locator("#concept-table").inner_text()
    page.goto(page.base_url + "?tab=concept&concept=flattery")
    _wait_text(page, "#concept-html .cu-concept-title", "flattery")
    assert page.locator("#cu-nearest").inner_text() == f"Nearest named concept: {expected}"
    assert page.locator("#concept-html").inner_text().count("(r=") == 1  # one number, one place


# -- 8. navigation -------------------------------------------------------------------------------------------
def test_p8_links_search_and_phone_width(page, app):
    page.goto(page.base_url + "?tab=concept&concept=agreement")  # a deep link opens the named concept
    page.wait_for_selector("#concept-html .cu-concept-title")
    _wait_text(page, "#concept-html .cu-concept-title", "agreement")
    page.goto(page.base_url + "?tab=pairs&concept=flattery&pairs_page=3")
    _wait_text(page, "#pairs-info", "Page 3 of 31")
    page.goto(page.base_url)
    _ready(page)
    page.locator('#volcano [data-concept="flattery"] circle').click()  # a plot dot opens its concept
    _wait_text(page, "#concept-html .cu-concept-title", "flattery")
    page.wait_for_function("location.search.includes('concept=flattery')")  # and the URL names it
    page.locator("#see-all").click()
    _wait_text(page, "#pairs-info", "304 matching")
    _tab(page, "Concept")
    page.locator("#block-this").click()
    _wait_text(page, "#preview-html", "flattery")
    assert page.get_by_role("tab", name="Recipe").get_attribute("aria-selected") == "true"
    _tab(page, "Pairs")
    _pick(page, "#pairs-concept", "(any)")
    search = page.locator("#pairs-search input, #pairs-search textarea").first
    search.fill("speed of light")
    search.press("Enter")
    _wait_text(page, "#pairs-info", "35 matching")
    browser, url, _ = app
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(url)
    phone.wait_for_selector("#concept-table")
    assert phone.evaluate(
        "document.querySelector('#cu-title').scrollWidth <= document.querySelector('#cu-title').clientWidth + 1"
    )
    phone.close()


def test_p9_a_search_typed_while_a_filter_loads_is_not_dropped(page, app, monkeypatch):
    """CI failure of 2026-12-08: under load, the pairs query of a filter change was still running when the
    search was submitted, and Gradio's default ``trigger_mode="once"`` dropped the search without a word. The
    query is slowed here so the two overlap on any machine; the last request must win."""
    import time

    _, _, data = app
    slow = data.pairs_page

    def pairs_page(*args, **kwargs):
        time.sleep(1.5)
        return slow(*args, **kwargs)

    monkeypatch.setattr(data, "pairs_page", pairs_page)
    _tab(page, "Pairs")
    _pick(page, "#pairs-concept", "flattery")  # its query runs for 1.5 s ...
    search = page.locator("#pairs-search input, #pairs-search textarea").first
    search.fill("speed of light")
    search.press("Enter")  # ... and the search is submitted meanwhile
    _wait_text(page, "#pairs-info", "matching")
    page.wait_for_timeout(4_000)  # both queries have answered
    info = page.locator("#pairs-info").inner_text()
    assert "flattery" in page.locator("#pairs-concept input").input_value()
    assert search.input_value() == "speed of light"
    expected = slow(data.resolve("flattery"), "all", None, 1, 10, "speed of light")
    assert f"{expected.n_matching} matching" in info, info


# -- issue 32.2: "Block this concept" settles ------------------------------------------------------------------
@pytest.mark.parametrize("width,height", [(1366, 900), (390, 844)], ids=["desktop", "phone"])
def test_32_2_block_this_concept_settles(audit_app, width, height):
    """Issue 32.2: on the demo's audit folder, "Block this concept" made the preview and amplify handlers
    re-trigger each other (~56 previews a minute, never settling). One click runs the preview at most twice,
    then nothing runs."""
    import json
    import time

    browser, url, blocks = audit_app
    preview_fn = [i for i, f in blocks.fns.items() if f.api_name == "preview"]
    runs = []  # the preview requests the page sends (the handler behind the `preview` api name)

    def count(req):
        if req.method == "POST" and "queue/join" in req.url:
            if json.loads(req.post_data or "{}").get("fn_index") in preview_fn:
                runs.append(time.monotonic())

    pg = browser.new_page(viewport={"width": width, "height": height})
    pg.set_default_timeout(20_000)
    pg.on("request", count)
    pg.goto(url + "?tab=overview")  # the Recipe tab has not been drawn yet
    pg.wait_for_selector("#concept-table")
    pg.wait_for_timeout(1_500)  # the page has read its URL
    _tab(pg, "Concept")
    pg.wait_for_selector("#block-this")
    runs.clear()
    pg.locator("#block-this").click()
    pg.wait_for_function("(document.querySelector('#preview-html') || {}).innerText?.includes('block')")
    pg.wait_for_timeout(4_000)  # (Playwright delivers request events only inside its own calls)
    settled = len(runs)
    pg.wait_for_timeout(4_000)
    assert 1 <= settled <= 2 and len(runs) == settled, runs
    assert "block" in pg.locator("#preview-html").inner_text()
    pg.close()


# -- issue 32, on the demo's published folder, at desktop and phone widths --------------------------------------
WIDTHS = pytest.mark.parametrize("width,height", [(1366, 900), (390, 844)], ids=["desktop", "phone"])


def _open(app, width, height, query=""):
    browser, url, _ = app
    pg = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    pg.set_default_timeout(20_000)
    pg.goto(url + query)
    pg.wait_for_selector("#cu-tabs")
    _ready(pg)
    return pg


def _row(page, table, concept):
    """The cells of ``concept``'s row in an HTML table of the page."""
    return page.evaluate(
        "([t, c]) => [...document.querySelectorAll(t + ' tr')].map(r => [...r.cells].map(x => x.innerText.trim()))"
        ".find(r => r[0] === c)",
        [table, concept],
    )


@WIDTHS
def test_32_1_untouched_recipe_previews_the_curation_numbers(app, width, height):
    """Issue 32.1: `?tab=curation` said flattery → 0.500, ESS 309.7 (52%); `?tab=recipe`, untouched, previewed
    flattery → 1.000, ESS 170.0 (28%)."""
    pg = _open(app, width, height, "?tab=curation")
    pg.wait_for_selector("#cu-before-after")
    curation = {c: _row(pg, "#cu-before-after", c) for c in ("flattery", "agreement")}
    ess = re.search(r"ESS\s+([\d.]+ \(\d+%\))", pg.locator("#cu-retention").inner_text()).group(1)
    assert _row(pg, "#cu-before-after", "exclamation")[1] == "side effect"  # issue 32.6: side effects listed
    pg.goto(app[1] + "?tab=recipe")
    _ready(pg)
    pg.wait_for_selector("#preview-html .cu-preview-table")
    for c, cells in curation.items():
        preview = _row(pg, "#preview-html .cu-preview-table", c)
        assert preview[1] == cells[1] == "block" and preview[2:4] == [cells[2], cells[4]], (preview, cells)
    assert ess in pg.locator("#preview-html .cu-preview-stats").inner_text()
    pg.close()


@WIDTHS
def test_32_3_curated_overview_leads_with_before_after(app, width, height):
    """Issue 32.3: the published overview described the uncurated data only ("flattery … chosen in 77–80%")."""
    pg = _open(app, width, height)
    text = pg.locator("#overview-summary").inner_text()
    lead, source = text.index("What the curated data teaches"), text.index("What the source data teaches")
    assert lead < source and "flattery (block)" in text[lead:source] and "no longer rewarded" in text[lead:source]
    assert "of the curated pairs" in text[lead:source]
    pg.close()


@WIDTHS
def test_32_4_deep_link_keeps_every_parameter(app, width, height):
    """Issue 32.4: the README's link showed page 3 of the search, then ~0.7 s later page 1 of 31 (304 rows) while
    the box still said "great"."""
    pg = _open(app, width, height, "?tab=pairs&concept=flattery&status=kept&pairs_page=3&q=great")
    _wait_text(pg, "#pairs-info", "Page 3 of")
    first = pg.locator("#pairs-info").inner_text()
    pg.wait_for_timeout(2_500)
    assert pg.locator("#pairs-info").inner_text() == first and "304 matching" not in first
    assert pg.locator("#pairs-search input, #pairs-search textarea").first.input_value() == "great"
    assert "great" in pg.locator("#pairs-html").inner_text().lower()
    for part in ("concept=flattery", "status=kept", "pairs_page=3", "q=great"):
        assert part in pg.evaluate("location.search")
    pg.close()


@WIDTHS
def test_32_8_pager_edges_say_nothing_wrong(app, width, height):
    """Issue 32.8: "Page None is not a page number" after typing abc; "There is no page 0" on Previous from 1."""
    pg = _open(app, width, height, "?tab=pairs")
    _wait_text(pg, "#pairs-info", "Page 1 of")
    pg.locator("#prev-page").click()
    pg.wait_for_timeout(1_500)
    assert "no page 0" not in pg.locator("#pairs-html").inner_text()
    box = pg.locator("#pairs-page input")
    box.fill("")
    box.press_sequentially("abc")  # a number box keeps nothing of it: the app receives no number
    box.press("Enter")
    pg.wait_for_timeout(1_500)
    assert "None" not in pg.locator("#pairs-html").inner_text()
    pg.locator("#next-page-bottom").click()  # a pager below the pairs too
    _wait_text(pg, "#pairs-info", "Page 2 of")
    pg.close()


@WIDTHS
def test_32_compare_view_of_the_demos_audit_and_curated_folders(demo_dir, app, width, height):
    """`curate app A --compare B`: the demo's audit (A) and curated (B) folders side by side per concept, the
    difference with its CI, largest first, opened by a deep link."""
    from curate import build_app

    blocks = build_app(str(demo_dir / "audit"), compare=str(demo_dir / "curated"))
    blocks.queue()
    _, url, _ = blocks.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True, show_error=True
    )
    try:
        pg = _open((app[0], url, None), width, height, "?tab=compare")
        pg.wait_for_selector("#cu-compare")
        assert pg.get_by_role("tab", name="Compare").get_attribute("aria-selected") == "true"
        rows = pg.evaluate(
            "[...document.querySelectorAll('#cu-compare tr')].slice(1).map(r => [...r.cells].map(x => x.innerText))"
        )
        assert {rows[0][0], rows[1][0]} == {"flattery", "agreement"}  # the blocked concepts moved most
        flattery = next(r for r in rows if r[0] == "flattery")
        assert flattery[1].startswith("0.799") and flattery[2].startswith("0.500") and flattery[3].startswith("-0.29")
        diffs = [abs(float(r[3].split()[0])) for r in rows if r[3] != "—"]
        assert diffs == sorted(diffs, reverse=True)
        assert pg.evaluate("document.querySelector('#cu-compare').closest('.cu-wrap').scrollWidth") > 0
        pg.close()
    finally:
        blocks.close()


def test_32_5_phone_shows_before_after_unclipped_and_every_tab_in_one_tap(app):
    """Issue 32.5: at 390 px the "after" column was clipped in the Curation table and the Recipe preview, and
    Curation, Recipe and the learning tab sat behind "•••"."""
    pg = _open(app, 390, 844)
    fits = "(s) => { const t = document.querySelector(s); const w = t.closest('.cu-wrap'); return t.scrollWidth <= w.clientWidth + 1; }"
    for tab, table, shown in (
        ("Curation", "#cu-before-after", "#curation-html"),
        ("Recipe", "#preview-html .cu-preview-table", "#preview-html"),
    ):
        link = pg.locator(f'#cu-phone-nav a[data-tab="{tab}"]')
        assert link.is_visible()
        link.click()
        pg.wait_for_selector(table, state="visible")
        assert pg.locator(shown).is_visible() and pg.evaluate(fits, table), tab
        after = pg.locator(f"{table} tr").nth(1).locator("td").nth(3 if tab == "Recipe" else 4)
        box = after.bounding_box()
        assert box and box["x"] + box["width"] <= 390 + 1, (tab, box)
    pg.close()


@WIDTHS
def test_32_8_overview_findings_say_what_to_do_next(app, width, height):
    """Issue 32.8: findings were q-value sentences with no next step, style and other signals mixed, and a
    concept with the statistics of another listed under its own name while the table merged them."""
    pg = _open(app, width, height)
    style = pg.locator("#cu-style-findings").inner_text()
    assert "log_length = length" in style and "heading = list = bold = markdown" in style
    assert "Next:" in pg.locator("#cu-teaches").inner_text()
    pg.locator('#cu-style-findings a[data-action="block"][data-concept="log_length"]').click()
    pg.wait_for_function("/log_length\\s+block/.test((document.querySelector('#preview-html') || {}).innerText || '')")
    assert pg.get_by_role("tab", name="Recipe").get_attribute("aria-selected") == "true" or width < 640
    pg.close()


@WIDTHS
def test_32_7_conflicting_actions_are_refused_and_nothing_stale_is_shown(app, width, height):
    """Issue 32.7: after a block/amplify conflict the editor kept showing (and offering) the last valid YAML, and
    amplify accepted a concept that was already blocked."""
    pg = _open(app, width, height, "?tab=recipe")
    pg.wait_for_selector("#preview-html .cu-preview-table")
    _pick(pg, "#amplify-dd", "agreement")  # blocked by the applied recipe
    _wait_text(pg, "#preview-html", "agreement is both blocked and amplified")
    _wait_text(pg, "#recipe-yaml", "Not a recipe yet")
    assert "rules:" not in pg.locator("#recipe-yaml").inner_text()
    pg.close()
