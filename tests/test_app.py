"""The app's data layer and its running Gradio server, driven through ``gradio_client``."""

from __future__ import annotations

import pytest
import yaml
from app_helpers import XSS_IMG, XSS_SCRIPT, launch, make_audit_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_audit_folder(tmp_path_factory.mktemp("app") / "audit")


@pytest.fixture(scope="module")
def data(folder):
    from curate.browse import load_app_data

    return load_app_data(folder)


@pytest.fixture(scope="module")
def client(folder):
    from gradio_client import Client

    blocks, url = launch(folder)
    yield Client(url, verbose=False)
    blocks.close()


# -- data layer ----------------------------------------------------------------------------------------
def test_summary_counts_kept_and_dropped(data):
    s = data.summary()
    assert (s["rows"], s["kept"], s["dropped"]) == (242, 240, 2)
    assert s["dropped_by_reason"] == {"invalid:empty_rejected": 1, "invalid:identical": 1}
    assert s["input_format"] == "standard" and s["concepts"] == len(data.audit) == 21
    assert (s["confirmed"], s["findings"]) == (int(data.audit["confirmed"].sum()), int(data.audit["finding"].sum()))
    assert (s["confirmed"], s["findings"]) == (8, 4)  # issue 30: `exclamation` passes the findings rule too


def test_concept_table_filters(data):
    full = data.concept_table()
    assert list(full.columns[:2]) == ["finding", "concept"]  # findings lead
    assert full["finding"].iloc[0].startswith("#")
    confirmed = data.concept_table("named", confirmed_only=True)
    assert confirmed["concept"].tolist() == full.loc[full["confirmed"] == "yes", "concept"].tolist()
    assert len(confirmed) == 5 and len(full) == 18  # 21 concepts, 3 pairs of equal ones shown as one row
    assert data.concept_table("named").equals(full) and data.concept_table("SAE").empty  # named concepts only
    findings = data.concept_table(findings_only=True)
    assert findings["finding"].tolist() == ["#1", "#2", "#3", "#4"]
    assert findings["concept"].tolist() == full.loc[full["finding"] != "", "concept"].tolist()


def test_pairs_filters_and_pages(data):
    flat = data.pairs_page("flattery", "kept", None, page=1, page_size=5)
    d = data.delta("flattery")
    assert all(d[r["row"]] != 0 and r["kept"] for r in flat.rows)
    assert [abs(r["delta"]) for r in flat.rows] == sorted((abs(r["delta"]) for r in flat.rows), reverse=True)
    dropped = data.pairs_page(None, "dropped", "invalid:identical")
    assert [r["reason"] for r in dropped.rows] == ["invalid:identical"]
    last = data.pairs_page(None, "all", None, page=10_000, page_size=10)
    assert last.page == last.n_pages == 25 and len(last.rows) == 2


def test_every_data_text_is_escaped(data):
    from curate.browse.render import render_concept, render_pairs

    page = render_pairs(data.pairs_page(None, "all", None, 1, 1))
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x onerror=" in page
    concept = render_concept(data, "emoji")  # its label is hostile too
    assert "<img" not in concept and "&lt;img" in concept


def test_named_concept_spans_are_highlighted(data):
    from curate.browse.render import render_pairs
    from curate.concepts.named import get_concept

    page = data.pairs_page("flattery", "all", None, 1, 3)
    html = render_pairs(page)
    spans = [get_concept("flattery").spans(r[side]) for r in page.rows for side in ("chosen", "rejected")]
    assert sum(map(len, spans)) == 6 and html.count('<mark class="cu-hl">') == 6  # every flattery phrase, once


def test_preview_blocking_moves_win_rate_to_half(data):
    from curate.browse.editor import EditorState, editor_preview

    d = data.delta("flattery")[data._source]
    before = editor_preview(data, EditorState())
    after = editor_preview(data, EditorState(["flattery"]))
    row = after["concepts"][0]
    assert row["concept"] == "flattery" and row["win_rate_before"] == (d > 0).sum() / (d != 0).sum()
    assert abs(row["win_rate_after"] - 0.5) < 1e-6
    assert after["ess_after"] < before["ess_after"] and after["rows_kept"] == before["rows_kept"]
    dropped = editor_preview(data, EditorState(["flattery"], method="filter"))
    assert dropped["rows_kept"] < before["rows_kept"]


def test_recipe_yaml_round_trips(data):
    from curate.browse.editor import EditorState, recipe_yaml
    from curate.recipe import Recipe

    text = recipe_yaml(data, EditorState(["flattery"], ["refusal"], strength=0.5))
    recipe = Recipe.from_yaml(text)
    assert recipe.blocked() == ["flattery"] and recipe.amplified() == ["refusal"]
    assert recipe.rules[0].strength == 0.5


def test_edited_recipe_keeps_the_applied_adjust_for(data, monkeypatch):
    from curate.browse import editor
    from curate.recipe import Recipe

    applied = {"name": "x", "rules": [{"concepts": ["flattery"], "action": "block", "adjust_for": "all"}]}
    monkeypatch.setattr(editor, "applied_recipe", lambda d: applied)
    kept = Recipe.from_yaml(editor.recipe_yaml(data, editor.EditorState(["flattery", "emoji"])))
    assert kept.rules[0].adjust_for == "all"  # the editor has no control for it: it is not dropped silently
    by_filter = Recipe.from_yaml(editor.recipe_yaml(data, editor.EditorState(["flattery"], method="filter")))
    assert by_filter.rules[0].adjust_for is None  # filter takes no adjust_for
    rows = editor.editor_preview(data, editor.EditorState(["flattery"]))
    assert abs(rows["concepts"][0]["win_rate_after"] - 0.5) < 1e-6


def test_load_errors_are_clear(tmp_path, monkeypatch):
    from curate.browse import load_app_data

    with pytest.raises(FileNotFoundError, match="neither an existing folder"):
        load_app_data(str(tmp_path / "nope"))
    from curate.folders import FolderError

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FolderError, match="has no curate.json"):
        load_app_data(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="Could not download the dataset 'someone/missing'"):
        load_app_data("someone/missing")


def test_cli_registers_app_command():
    from typer.testing import CliRunner

    from curate.cli import cli

    out = CliRunner().invoke(cli, ["app", "--help"])
    assert out.exit_code == 0 and "--port" in out.output


# -- the running app -------------------------------------------------------------------------------------
def test_client_concept_table_and_concept(client):
    table = client.predict("named", api_name="/concept_table")
    assert "flattery" in [row[table["headers"].index("concept")] for row in table["data"]]
    html = client.predict("flattery", api_name="/concept")
    assert "win-rate" in html and "Held-out check" in html and '<mark class="cu-hl">' in html


def test_client_pages_through_pairs(client):
    first = client.predict("(any)", "all", "(any)", 1, 5, "", api_name="/pairs")
    second = client.predict("(any)", "all", "(any)", 2, 5, "", api_name="/pairs")
    assert first[1].startswith("Page 1 of 49") and second[1].startswith("Page 2 of 49") and second[2] == 2
    assert first[0] != second[0]
    assert XSS_SCRIPT not in first[0] and XSS_IMG not in first[0] and "&lt;script&gt;" in first[0]


def test_client_block_changes_preview_and_downloads_yaml(client):
    from curate.recipe import Recipe

    base_html, _, _ = client.predict("draft", [], [], "rebalance", [], 1.0, 1.0, api_name="/preview")
    html, text, path = client.predict("draft", ["flattery"], [], "rebalance", [], 1.0, 1.0, api_name="/preview")
    assert html != base_html and "block" in html
    with open(path, encoding="utf-8") as f:
        downloaded = f.read()
    assert downloaded.strip() == text.strip()
    assert yaml.safe_load(downloaded)["rules"][0] == {
        "concepts": ["flattery"],
        "action": "block",
        "strength": 1.0,
        "interventions": ["rebalance"],
    }
    assert Recipe.from_yaml(downloaded).blocked() == ["flattery"]


# -- SAE features and groups (synthetic sparse columns) ------------------------------------------------------
def _sae_data():
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from curate import _columns as C
    from curate.browse import AppData

    rng = np.random.default_rng(0)
    n, src = 40, "toy"
    cols = {C.ID: list(range(n)), C.PROMPT: ["p"] * n, C.CHOSEN: ["a"] * n, C.REJECTED: ["b"] * n, C.REASON: [""] * n}
    for side in C.SIDES:
        cols[C.sae_index_column(side, src)] = [rng.choice(6, 3, replace=False).tolist() for _ in range(n)]
        cols[C.sae_value_column(side, src)] = [rng.random(3).round(3).tolist() for _ in range(n)]
    audit = pd.DataFrame(
        {
            "concept": ["group:toy:0", "sae:toy:3"],
            "label": ["g", "f3"],
            "source": ["sae:toy"] * 2,
            "n_differ": [1, 2],
            "win_rate": [0.5, 0.5],
            "ci_low": [0.4, 0.4],
            "ci_high": [0.6, 0.6],
            "effect_size": [0.0, 0.0],
            "q_value": [1.0, 1.0],
            "confirmed": [False, False],
        }
    )
    members = pd.DataFrame({"concept": ["sae:toy:1", "sae:toy:2"], "group": ["group:toy:0"] * 2})
    labels = pd.DataFrame(
        {
            "concept": ["sae:toy:1"],
            "label": ["<b>bold</b> words"],
            "top_ngrams": [[["<b>", 3.2], ["words", 2.0]]],
            "top_examples": [
                (
                    '[{"row": 1, "side": "chosen", "value": 2.5, "tokens": ["<", "script", ">"],'
                    ' "acts": [0.1, 2.5, 0.0]}]'
                )
            ],
        }
    )
    return AppData(source="toy", kind="test", audit=audit, table=pa.table(cols), members=members, labels=labels), cols


def test_sae_feature_and_group_scores():
    import numpy as np

    from curate import _columns as C

    data, cols = _sae_data()
    dense = {}
    for side in C.SIDES:
        m = np.zeros((40, 6))
        for i, (idx, val) in enumerate(
            zip(cols[C.sae_index_column(side, "toy")], cols[C.sae_value_column(side, "toy")])
        ):
            m[i, idx] = val
        dense[side] = m
    np.testing.assert_allclose(data.delta("sae:toy:3"), dense["chosen"][:, 3] - dense["rejected"][:, 3], atol=1e-6)
    stacked = np.concatenate([dense["chosen"][:, [1, 2]], dense["rejected"][:, [1, 2]]])
    rms = np.sqrt((stacked**2).mean(0))
    group = {s: (dense[s][:, [1, 2]] / rms).mean(1) for s in C.SIDES}
    np.testing.assert_allclose(data.delta("group:toy:0"), group["chosen"] - group["rejected"], atol=1e-5)


def test_group_card_lists_members_and_escapes_token_examples():
    from curate.browse.render import render_concept

    data, _ = _sae_data()
    html = render_concept(data, "group:toy:0")
    assert "sae:toy:1" in html and "Group members" in html and "n-gram label" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; words" in html
    assert "<script" not in html
    assert "&lt;b&gt;" in html and "&lt;" in html and 'title="activation 2.50"' in html


# -- a published folder (curate publish) ---------------------------------------------------------------------
def test_published_folder(folder, tmp_path):
    from datasets import load_from_disk

    from curate.browse import load_app_data
    from curate.interventions import apply_recipe
    from curate.publish import publish
    from curate.recipe import Recipe

    recipe = Recipe.from_ids(block=["flattery"], block_with=["filter"])
    from curate.folders import load_audit, save_curated

    dd, report = apply_recipe(load_from_disk(str(folder / "annotated")), recipe, audit=False)
    curated = tmp_path / "curated"
    save_curated(curated, dd, report=report, recipe=recipe, source_audit=load_audit(folder))
    out = publish(curated, repo_id="me/test", local_dir=tmp_path / "published", upload=False, audit_dir=folder)
    data = load_app_data(out)
    s = data.summary()
    assert s["kind"] == "published folder" and s["rows"] == 242 and s["dropped"] > 2
    assert "filter:flattery" in data.reasons()
    assert data.pairs_page(None, "dropped", "filter:flattery").n_matching == s["dropped_by_reason"]["filter:flattery"]
    from curate.browse.editor import EditorState, editor_preview, preset

    assert (preset(data).block, preset(data).amplify, preset(data).method) == (["flattery"], [], "filter")
    row = editor_preview(data, EditorState(["flattery"]))["concepts"][0]  # the preview starts from the source pairs
    d = data.delta("flattery")[data._source]
    assert row["win_rate_before"] == (d > 0).sum() / (d != 0).sum() and abs(row["win_rate_after"] - 0.5) < 1e-6


def test_sae_table_and_group_recipes():
    import yaml

    data, _ = _sae_data()
    table = data.concept_table("SAE")
    assert table["concept"].tolist() == ["group:toy:0", "sae:toy:3"] and not table.isna().any().any()
    assert data.expand_groups(["group:toy:0", "flattery"]) == ["sae:toy:1", "sae:toy:2", "flattery"]
    from curate.browse.editor import EditorState, editor_preview, recipe_yaml

    rule = yaml.safe_load(recipe_yaml(data, EditorState(["group:toy:0"])))["rules"][0]
    assert rule["concepts"] == ["sae:toy:1", "sae:toy:2"]  # ids that `curate apply` knows
    rows = editor_preview(data, EditorState(["group:toy:0"]), show_all=False)["concepts"]
    assert [(r["concept"], r["action"]) for r in rows] == [("group:toy:0", "block")]


# -- issue 16, problem 7: SAE token highlights in Pairs, one nearest-named number -----------------------------
def test_sae_token_activations_highlight_pairs_and_nearest_named_has_one_source():
    from curate.browse import PairPage
    from curate.browse.render import render_concept, render_pairs

    data, _ = _sae_data()
    rows = data._rows([1, 2], "sae:toy:1")
    html = render_pairs(PairPage(rows, 1, 1, 2, "sae:toy:1"), data)
    assert html.count('class="cu-tok"') == 3  # row 1's chosen side, from the feature's stored token activations
    assert "&lt;" in html and "<script" not in html
    data.audit["nearest_named"] = ["flattery", "flattery"]
    data.audit["nearest_r"] = [0.46, 0.2]
    data.labels["nearest_named"] = ["exclamation"]  # the label file's own (stale) value is not shown
    data.labels["nearest_r"] = [0.51]
    page = render_concept(data, "group:toy:0")
    assert "flattery (r=+0.46)" in page and "exclamation" not in page and page.count("(r=") == 1


def test_bad_page_numbers_are_corrected_with_a_note(data):
    for bad, shown in ((-3, 1), (0, 1), ("abc", 1), (None, 1), (float("nan"), 1), (10_000, 25)):
        p = data.pairs_page(None, "all", None, page=bad, page_size=10)
        assert p.page == shown and p.rows and p.note
    assert data.pairs_page(None, "all", None, page=2, page_size=10).note == ""


def test_block_strength_is_the_share_of_the_imbalance_removed_for_every_method(data):
    """Issue 16 problem 6: filter's passes compounded its strength (0.05 dropped 73 of 600 demo rows)."""
    from curate.browse.editor import EditorState, check, editor_preview

    d = data.delta("flattery")[data._source]
    n_more, n_less = int((d > 0).sum()), int((d < 0).sum())
    for method in ("filter", "relabel", "rebalance"):
        rates = []
        for s in (0.1, 0.5):
            row = editor_preview(data, EditorState(["flattery"], method=method, strength=s))["concepts"][0]
            excess = s * (n_more - n_less)  # the share of the imbalance removed, in pairs (unit weights)
            if method == "filter":  # drops that many pairs from the winning side
                expected = (n_more - excess) / (n_more - excess + n_less)
            elif method == "relabel":  # moves half as many from the winning side to the losing one
                expected = (n_more - excess / 2) / (n_more + n_less)
            else:  # re-weights: no closed form for the weighted rate here
                expected = None
            if expected is not None:
                assert abs(row["win_rate_after"] - expected) < 0.01, (method, s, row)
            assert row["win_rate_before"] > row["win_rate_after"] > 0.5
            rates.append(row["win_rate_after"])
        assert rates[0] > rates[1] + 0.05, (method, rates)  # a stronger block removes more
    state, warnings, err = check(data, EditorState(["flatery", "agreement"], ["agreement"]))
    assert state.block == ["agreement"] and "Did you mean flattery?" in warnings[0] and "agreement" in err


# -- issue 32.1: one code path for preview and apply ----------------------------------------------------------
ONE_PATH_RECIPE = """version: 1
name: one-path
concepts:
- {kind: named}
rules:
- concepts: [flattery, agreement]
  action: block
  strength: 1.0
  interventions: [resample, margin]
  adjust_for: all
- concepts: [exclamation]
  action: block
  interventions: [relabel]
- concepts: [refusal]
  action: amplify
  strength: 0.5
  interventions: [upweight]
seed: 0
"""


ORDER_FREE_RECIPE = ONE_PATH_RECIPE.replace("[resample, margin]", "[rebalance, margin]").replace(
    "[relabel]", "[rebalance]"
)


@pytest.fixture(scope="module")
def curated_and_published(folder, tmp_path_factory):
    """The audit folder curated by a recipe that resamples (row copies), relabels (swaps) and adjusts for every
    named concept; and a published folder. Without a ``row`` column a published folder does not keep the source
    order that seeded steps (resample, relabel) depend on, so it is curated by rebalancing only."""
    from curate.pipeline import run_apply
    from curate.publish import publish

    tmp = tmp_path_factory.mktemp("one-path")
    (tmp / "recipe.yaml").write_text(ONE_PATH_RECIPE)
    (tmp / "order-free.yaml").write_text(ORDER_FREE_RECIPE)
    curated = run_apply(str(folder), recipe=str(tmp / "recipe.yaml"), out=tmp / "curated")["out"]
    again = run_apply(str(folder), recipe=str(tmp / "order-free.yaml"), out=tmp / "curated-2")["out"]
    published = publish(again, repo_id="me/one-path", local_dir=tmp / "published", upload=False, audit_dir=folder)
    return curated, published


def _shown(numbers: dict) -> dict:
    """Rows kept, ESS and per concept the win-rates and CIs as the app prints them (3 decimals, ESS 1)."""
    import math

    def f(x):
        return "—" if x is None or math.isnan(x) else f"{x:.3f}"

    keys = ("n_differ_before", "win_rate_before", "ci_low_before", "ci_high_before")
    keys += ("n_differ_after", "win_rate_after", "ci_low_after", "ci_high_after")
    out = {"rows_kept": numbers["rows_kept"], "ess": f"{numbers['ess']:.1f}"}
    for r in numbers["table"]:
        out[r["concept"]] = tuple(f(r[k]) for k in keys)
    return out


@pytest.mark.parametrize("kind", ["curated", "published"])
def test_applied_recipe_unchanged_previews_the_curation_numbers(curated_and_published, kind):
    """Issue 32.1: on a curated (and a published) folder the applied recipe, untouched, previewed the curated
    rows (resampled copies counted twice, relabelled pairs already swapped): flattery 0.799 → 1.000 in the
    Recipe tab, → 0.500 in the Curation tab."""
    from curate.browse import load_app_data
    from curate.browse.editor import curation, editor_preview, preset

    data = load_app_data(curated_and_published[kind == "published"])
    cur, pre = curation(data), editor_preview(data, preset(data))
    applied = {"rows_kept": cur["retention"]["rows_kept"], "ess": cur["retention"]["ess"]}
    applied["table"] = cur["before_after"]
    acted = {r["concept"] for r in cur["before_after"]}
    previewed = {"rows_kept": pre["rows_kept"], "ess": pre["ess_after"]}
    previewed["table"] = [r for r in pre["concepts"] if r["concept"] in acted]
    assert _shown(previewed) == _shown(applied)
    assert len(acted) == 4 and previewed["table"] and all(r["action"] != "allow" for r in previewed["table"])
    if kind == "curated":  # the curated rows are not the source rows: copies and swapped pairs
        assert cur["retention"]["rows_swapped"] > 0 and data.n_rows > data.source_data().n_rows
    for r in previewed["table"]:
        a = next(x for x in cur["before_after"] if x["concept"] == r["concept"])
        if a["win_rate_after"] is not None:
            assert abs(r["win_rate_after"] - a["win_rate_after"]) < 1e-6 and r["action"] == a["action"]


def test_source_rows_of_a_result_come_back_in_source_order():
    import pyarrow as pa

    from curate.browse.source import rebuild_source

    t = pa.table(
        {
            "row": [2, 0, 0, 1],
            "id": ["c", "a", "a", "b"],
            "chosen": ["c1", "a1", "a1", "b2"],
            "rejected": ["c2", "a2", "a2", "b1"],
            "swapped": [False, False, False, True],
            "keep": [True, True, True, False],
            "weight": [1.0, 2.0, 2.0, 0.0],
            "reason": ["", "", "", "filter:x"],
        }
    )
    s = rebuild_source(t)
    assert s.column("id").to_pylist() == ["a", "b", "c"] and s.column("rejected").to_pylist() == ["a2", "b2", "c2"]
    assert s.column("reason").to_pylist() == ["", "", ""] and "weight" not in s.column_names


def test_a_recipe_previews_on_an_audit_folder_what_apply_makes(folder, data):
    """Issue 32.1 on an audit folder: the preview equals :func:`curate.interventions.apply_recipe` on its pairs."""
    from datasets import load_from_disk

    from curate.browse.editor import EditorState, editor_preview, recipe_dict
    from curate.interventions import apply_recipe
    from curate.recipe import Recipe

    st = EditorState(["flattery", "agreement"], ["refusal"], method="resample", extras=["margin"])
    recipe = Recipe.from_dict(recipe_dict(data, st), validate_ids=False)
    _, report = apply_recipe(load_from_disk(str(folder / "annotated")), recipe)
    pre = editor_preview(data, st)
    applied = {"rows_kept": report.retention["rows_kept"], "ess": report.retention["ess"]}
    applied["table"] = report.before_after.to_dict("records")
    previewed = {"rows_kept": pre["rows_kept"], "ess": pre["ess_after"]}
    previewed["table"] = [r for r in pre["concepts"] if r["action"] in ("block", "amplify")]
    assert _shown(previewed) == _shown(applied)


def test_curation_separates_ingestion_drops_lists_side_effects_and_counts_kept_once(curated_and_published):
    """Issue 32.6: rows unusable at ingestion were listed as "Dropped by the recipe", side effects were only in
    the Recipe preview, and "kept" was 1,498 on the Overview and 1,088 in the Pairs filter."""
    from curate.browse import load_app_data
    from curate.browse.editor import curation
    from curate.browse.render_recipe import render_curation

    curated = load_app_data(curated_and_published[0])
    moved = [r["concept"] for r in curation(curated)["side_effects"] if r["moved"]]
    assert moved and not {"flattery", "agreement", "exclamation", "refusal"} & set(moved)
    html = render_curation(curated, curation(curated))
    assert all(f"<td>{c}</td><td>side effect</td>" in html for c in moved)
    data = load_app_data(curated_and_published[1])
    cur = curation(data)
    assert cur["dropped_at_ingestion"] == {"invalid:empty_rejected": 1, "invalid:identical": 1}
    assert not any(k.startswith("invalid:") for k in cur["dropped_by_recipe"])
    assert (
        "Unusable at ingestion" in render_curation(data, cur) and cur["weights"]["zero"] > 0
    )  # weight-0 rows are kept rows
    kept = data.pairs_page(None, "kept", None, 1, 10).n_matching
    assert data.summary()["kept"] == cur["kept"] == kept == cur["retention"]["rows_kept"]


def test_curated_overview_leads_with_before_after_in_the_cards_words(curated_and_published, tmp_path):
    """Issue 32.3: a curated or published overview described the uncurated data only; the card and the app now
    say what the curated data teaches in the same sentences."""
    import html as H

    from curate.browse import load_app_data
    from curate.browse.render_recipe import render_overview
    from curate.publish.sentences import curation_sentences

    for folder in curated_and_published:
        data = load_app_data(folder)
        page = H.unescape(render_overview(data))
        lead, source = page.index("What the curated data teaches"), page.index("What the source data teaches")
        assert lead < source
        sentences = curation_sentences(data.applied["before_after"])
        assert len(sentences) == 4 and all(s["text"] in page[lead:source] for s in sentences)
    card = (curated_and_published[1] / "README.md").read_text()
    assert "What the curated data teaches" in card and all(s["text"] in card for s in sentences)
    done = card[card.index("## What was done") :]
    assert "<details><summary>settings</summary>" in done and "Re-weighted the pairs" in done


def test_compare_puts_a_curated_folder_beside_its_source(folder, data, curated_and_published):
    """The Compare view computes each side from its own rows under its weights: B's win-rate of a blocked
    concept is the Curation tab's "after", A's is the audit's; the difference has a CI; largest first."""
    import numpy as np

    from curate.browse import load_app_data
    from curate.browse.compare import compare_concepts
    from curate.browse.editor import curation

    curated = load_app_data(curated_and_published[0])
    table = compare_concepts(data, curated).set_index("concept")
    for r in curation(curated)["before_after"]:
        if r["win_rate_after"] is None:
            continue
        row = table.loc[r["concept"]]
        assert (
            abs(row["win_rate_b"] - r["win_rate_after"]) < 1e-6 and abs(row["win_rate_a"] - r["win_rate_before"]) < 1e-6
        )
        assert abs(row["ci_low_b"] - r["ci_low_after"]) < 1e-6
        assert row["diff_low"] < row["difference"] < row["diff_high"]
    diffs = np.abs(table["difference"].dropna().to_numpy())
    assert (np.diff(diffs) <= 1e-12).all() and len(table) > 10
    same = compare_concepts(data, data)
    assert (same["difference"].dropna() == 0).all()


def test_cli_app_has_a_compare_option():
    from typer.testing import CliRunner

    from curate.cli import cli

    out = CliRunner().invoke(cli, ["app", "--help"]).output
    assert "--compare" in out


def test_long_responses_expand_and_long_tokens_wrap():
    """Issue 32.8: responses were cut at 3,000 characters with no way to read the rest."""
    import html as H

    from curate.browse.render import CSS, MAX_CHARS, highlight

    text = "a" * MAX_CHARS + " great <b> zq-end"
    out = highlight(text, [(MAX_CHARS + 1, MAX_CHARS + 6)])
    assert "<details" in out and '<mark class="cu-hl">great</mark>' in out and "&lt;b&gt;" in out
    assert H.unescape(out.replace('<mark class="cu-hl">', "").replace("</mark>", "")).count("zq-end") == 1
    assert "overflow-wrap:anywhere" in CSS
