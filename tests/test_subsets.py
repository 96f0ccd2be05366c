"""Per-subset audit: opposite effects in two subsets are found, named and flagged where the pooled test is silent."""

import numpy as np
import pytest

from curate import ConceptAudit, annotate, make_preference_pairs
from curate.subsets import detect_subset_column

# flattery flips between the subsets; emoji is preferred in helpful only (it differs across subsets on one side)
FLIP = {"helpful": {"flattery": (0.5, 0.1), "emoji": (0.45, 0.1)}, "harmless": {"flattery": (0.1, 0.5)}}


@pytest.fixture(scope="module")
def flipped():
    gen = make_preference_pairs(1200, seed=3, subset_rates=FLIP)
    return annotate(gen.dataset)


@pytest.fixture(scope="module")
def audit(flipped):
    return ConceptAudit().fit(flipped, by="subset")


def test_generator_subset_option(flipped):
    assert set(flipped["subset"]) == {"helpful", "harmless"}
    with pytest.raises(ValueError, match="Unknown planted concepts"):
        make_preference_pairs(10, subset_rates={"a": {"nonsense": (0.5, 0.1)}})


def test_pooled_row_shows_nothing_but_subset_findings_name_both_effects(audit):
    pooled = audit.results_.set_index("concept").loc["flattery"]
    assert not pooled["finding"] and abs(pooled["win_rate"] - 0.5) < 0.1
    f = audit.findings()
    flat = f[f["concept"] == "flattery"].set_index("subset")
    assert set(flat.index) == {"helpful", "harmless"}
    assert flat.loc["helpful", "win_rate"] > 0.6 and flat.loc["harmless", "win_rate"] < 0.4
    assert flat["sign_flip"].all()
    assert "opposite in harmless" in flat.loc["helpful", "where"]
    assert "opposite in helpful" in flat.loc["harmless", "where"]
    assert len(f) <= audit.max_findings


def test_consistent_effects_stay_pooled(audit):
    f = audit.findings().set_index("concept")
    assert f.loc["agreement", "subset"] == "" and f.loc["agreement", "where"].startswith("all pairs")
    by = audit.results_by_.set_index(["concept", "subset"])
    assert not by.loc[("agreement", "helpful"), "sign_flip"]
    assert not by.loc[("agreement", "helpful"), "heterogeneous"]
    # a sign flip needs heterogeneity and a significant subset on each side of 0.5 (issue 28: one side passed)
    n_one_sided = 0
    for _, g in audit.results_by_.groupby("concept"):
        sig = (g["q_value"] < audit.alpha).to_numpy()
        up, down = (sig & (g["win_rate"] > 0.5).to_numpy()).any(), (sig & (g["win_rate"] < 0.5).to_numpy()).any()
        assert (g["sign_flip"] == (g["heterogeneous"] & up & down)).all()
        n_one_sided += bool(g["heterogeneous"].iloc[0] and up != down)
    assert n_one_sided >= 1  # the data hold a concept that differs across subsets on one side only


def test_q_values_are_bh_over_all_subset_tests(audit):
    from curate import stats as S

    by = audit.results_by_
    assert np.allclose(S.benjamini_hochberg(by["p_value"].to_numpy()), by["q_value"].to_numpy(), equal_nan=True)
    assert set(by.loc[by["finding"], "concept"]) >= {"flattery"}


def test_auc_pooled_and_per_subset(audit):
    auc = audit.auc_by_.set_index("subset")
    assert set(auc.index) == {"", "helpful", "harmless"}
    # the flattery flip is only usable with concept x subset terms
    assert auc.loc["", "heldout_auc_interactions"] > auc.loc["", "heldout_auc"]
    assert audit.to_dict()["heldout_auc_by_subset"]["helpful"]["heldout_auc"] is not None


def test_detect_subset_column():
    assert detect_subset_column(["prompt", "category", "dataset"]) == "dataset"
    assert detect_subset_column(["prompt", "chosen"]) is None


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory):
    from curate.pipeline import run_audit

    out = tmp_path_factory.mktemp("flip")
    data = out / "pairs.jsonl"
    make_preference_pairs(600, seed=3, subset_rates=FLIP).dataset.to_json(str(data))
    result = run_audit(str(data), out=out / "audit")
    return out / "audit", result


def test_pipeline_detects_the_subset_column_and_writes_findings(audit_dir):
    import pandas as pd

    folder, result = audit_dir
    assert result["audit"].by_ == "subset" and "'subset' detected" in result["summary"]["by_reason"]
    f = pd.read_parquet(folder / "audit_findings.parquet")
    assert set(f.loc[f["concept"] == "flattery", "subset"]) == {"helpful", "harmless"}
    assert set(pd.read_parquet(folder / "audit_auc_by.parquet")["subset"]) == {"", "helpful", "harmless"}


def test_by_none_and_unknown_column(tmp_path):
    from curate.pipeline import resolve_by

    assert resolve_by("none", ["subset"])[0] is None
    with pytest.raises(KeyError, match="Columns of the data"):
        resolve_by("nope", ["subset", "prompt"])


def test_app_filters_by_subset(audit_dir):
    from curate.browse import build_app, load_app_data

    data = load_app_data(audit_dir[0])
    assert sorted(data.subsets) == ["harmless", "helpful"]
    pooled = data.concept_table().set_index("concept")
    harmless = data.concept_table(subset="harmless").set_index("concept")
    assert pooled.loc["flattery", "win-rate"] > harmless.loc["flattery", "win-rate"]
    assert harmless.loc["flattery", "win-rate"] < 0.4 and harmless.loc["flattery", "finding"].startswith("#")
    assert "subset-filter" in {getattr(b, "elem_id", None) for b in build_app(data).blocks.values()}
    with pytest.raises(ValueError, match="Subsets of this audit"):
        data.concept_table(subset="nope")


def test_card_subset_section(audit_dir):
    import json
    from types import SimpleNamespace

    from curate.publish.sections import _subset_context

    folder = audit_dir[0]
    data = SimpleNamespace(
        files={p.name: p for p in folder.glob("*.parquet")},
        audit_summary=json.loads((folder / "summary.json").read_text()),
    )
    ctx = _subset_context(data)
    assert ctx["subset_by"] == "subset"
    wheres = [r["where"] for r in ctx["subset_findings"] if r["concept"] == "flattery"]
    assert any("opposite in" in w for w in wheres) and len(ctx["subset_auc"]) == 3


def test_cli_prints_subset_findings_with_labels_and_marked_examples(audit_dir, tmp_path):
    from typer.testing import CliRunner

    from curate.cli import cli

    data = audit_dir[0].parent / "pairs.jsonl"
    res = CliRunner().invoke(cli, ["audit", str(data), "--out", str(tmp_path / "a")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "subset column 'subset' detected" in res.output
    assert "opposite in" in res.output and "held-out AUC by subset" in res.output
    import pandas as pd

    f = pd.read_parquet(tmp_path / "a" / "audit_findings.parquet")
    assert len(f) and f["label"].str.len().gt(5).all()
    examples = [ln for ln in res.output.splitlines() if ln.strip().startswith("#") and "«" in ln and "»" in ln]
    assert len(examples) == len(f)


def test_second_run_reads_the_cache_and_gives_the_identical_audit(tmp_path):
    import pandas as pd

    from curate.pipeline import run_audit

    data = tmp_path / "pairs.jsonl"
    make_preference_pairs(200, seed=5, subset_rates=FLIP).dataset.to_json(str(data))
    first = run_audit(str(data), out=tmp_path / "a", cache_dir=tmp_path / "cache")
    second = run_audit(str(data), out=tmp_path / "b", cache_dir=tmp_path / "cache")
    assert first["record"]["cache"]["annotations"] == "stored" and second["record"]["cache"]["audit"] == "reused"
    for name in ("audit.parquet", "audit_findings.parquet", "audit_by.parquet", "audit_auc_by.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / name), pd.read_parquet(tmp_path / "b" / name))
    # another --by reuses the annotations but refits the audit
    third = run_audit(str(data), out=tmp_path / "c", cache_dir=tmp_path / "cache", by="none")
    assert third["record"]["cache"] == {"dir": str(tmp_path / "cache"), "annotations": "reused", "audit": "stored"}
    # changed data misses
    make_preference_pairs(201, seed=5, subset_rates=FLIP).dataset.to_json(str(data))
    assert (
        run_audit(str(data), out=tmp_path / "d", cache_dir=tmp_path / "cache")["record"]["cache"]["annotations"]
        == "stored"
    )
