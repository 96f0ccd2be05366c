"""The app in a real headless Chromium (Debian ``chromium`` driven by Playwright): every view, the recipe
round trip, and hostile text rendered as text. Screenshots of each view go to ``artifacts/screenshots/``
(or ``$CURATE_ARTIFACTS/screenshots``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from app_helpers import XSS_IMG, XSS_LABEL, XSS_SCRIPT, launch, make_audit_folder
from playwright.sync_api import sync_playwright

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
SHOTS = Path(os.environ.get("CURATE_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")) / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is missing: run .ci/install-browser.sh (apt-get install -y chromium)",
    ),
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    blocks, url = launch(make_audit_folder(tmp_path_factory.mktemp("browser") / "audit"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        pg.set_default_timeout(20_000)
        pg.goto(url)
        pg.wait_for_selector("#concept-table")
        yield pg
        browser.close()
    blocks.close()


def _no_script_ran(page):
    assert page.evaluate("window.__xss") is None, "a script from the data ran in the page"


def _tab(page, name):
    page.get_by_role("tab", name=name).click()


def test_overview(page):
    table = page.locator("#concept-table")
    assert "flattery" in table.inner_text()
    page.wait_for_selector("#volcano canvas, #volcano svg")  # the effect plot drew
    assert "rows" in page.locator("#overview-summary").inner_text()
    page.get_by_label("Confirmed only").check()
    page.wait_for_function("!document.querySelector('#concept-table').innerText.includes('apology')")
    page.get_by_label("Confirmed only").uncheck()
    page.wait_for_function("document.querySelector('#concept-table').innerText.includes('apology')")
    assert XSS_LABEL in table.inner_text()  # the hostile label shows as text
    text = table.inner_text()
    assert text.index("log_length") < text.index("disclaimer")
    # sortable through the header's menu: ascending "pairs differ" puts concepts that never differ (such as
    # `link` here) above the findings (led by log_length). The table is virtualised (only the first rows are in
    # the DOM); under a loaded CI machine the menu can open before its handlers are attached: retried.
    is_sorted = (
        "(t => { const i = t.indexOf('log_length'), j = t.indexOf('link');"
        " return j !== -1 && (i === -1 || j < i); })(document.querySelector('#concept-table').innerText)"
    )
    assert not page.evaluate(is_sorted)
    header = table.locator("thead th").filter(has_text="pairs differ").first
    for attempt in range(3):
        header.click()
        try:
            page.get_by_text("Sort ascending").first.wait_for(state="visible", timeout=3_000)
        except Exception:  # noqa: BLE001 - the menu did not open on the header click: use its button
            header.locator("button[aria-label='Open cell menu']").click()
        page.get_by_text("Sort ascending").first.click()
        try:
            page.wait_for_function(is_sorted, timeout=10_000)
            break
        except Exception:  # noqa: BLE001
            if attempt == 2:
                page.screenshot(path=str(SHOTS / "overview-sort-failed.png"), full_page=True)
                raise
            page.keyboard.press("Escape")
    _no_script_ran(page)
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)


def test_open_concept_from_table(page):
    _tab(page, "Overview")
    page.locator("#concept-table").get_by_text("flattery", exact=True).first.click()
    page.wait_for_function(
        "(document.querySelector('#concept-html .cu-concept-title') || {}).innerText?.includes('flattery')"
    )
    html = page.locator("#concept-html")
    assert "Held-out check" in html.inner_text()
    assert html.locator("mark.cu-hl").count() >= 3
    page.screenshot(path=str(SHOTS / "concept.png"), full_page=True)


def test_page_through_pairs_and_hostile_text(page):
    _tab(page, "Pairs")
    info = page.locator("#pairs-info")
    assert re.search(r"Page 1 of 25\b", info.inner_text())
    text = page.locator("#pairs-html").inner_text()
    assert XSS_SCRIPT in text and XSS_IMG in text  # shown literally
    assert page.locator("#pairs-html script").count() == 0 and page.locator("#pairs-html img").count() == 0
    _no_script_ran(page)
    page.screenshot(path=str(SHOTS / "pairs.png"), full_page=True)
    page.locator("#next-page").click()
    page.wait_for_function("document.querySelector('#pairs-info').innerText.includes('Page 2 of 25')")
    assert XSS_SCRIPT not in page.locator("#pairs-html").inner_text()
    page.get_by_label("dropped").check()
    page.wait_for_function("document.querySelector('#pairs-info').innerText.includes('2 matching')")


def test_block_concept_preview_and_download(page):
    _tab(page, "Recipe")
    preview = page.locator("#preview-html")
    before = preview.inner_text()
    assert "block" not in before
    box = page.locator("#block-dd input")
    box.click()
    box.fill("flattery")
    box.press("Enter")
    page.wait_for_function("document.querySelector('#preview-html').innerText.includes('block')")
    after = preview.inner_text()
    assert after != before and re.search(r"flattery\s+block\s+0\.\d+ \[[^\]]+\]\s+0\.500", after)
    page.keyboard.press("Escape")  # close the menu so the screenshot shows the preview
    page.screenshot(path=str(SHOTS / "recipe.png"), full_page=True)
    with page.expect_download() as dl:
        page.locator("#download-recipe").click()
    recipe = yaml.safe_load(Path(dl.value.path()).read_text())
    assert recipe["rules"][0]["concepts"] == ["flattery"] and recipe["rules"][0]["action"] == "block"
    _no_script_ran(page)
