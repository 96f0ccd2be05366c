"""WIMHF check: an audit --by dataset of the WIMHF demo pairs rediscovers the authors' feature signs (where a
named concept matches). Skips when ../shared/data is absent."""

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "wimhf_check.py"
spec = importlib.util.spec_from_file_location("wimhf_check", BENCH)
wimhf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wimhf)

pytestmark = pytest.mark.skipif(
    not (wimhf.DEFAULT / wimhf.FILE).exists(), reason=f"WIMHF demo data not found at {wimhf.DEFAULT}"
)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    return wimhf.run(wimhf.DEFAULT, tmp_path_factory.mktemp("wimhf"))


def test_feature_rules_read_polarity():
    assert wimhf.match("refuses user's request") == (wimhf.REFUSALS, 1)
    assert wimhf.match("fulfills harmful requests instead of refusing") == (wimhf.REFUSALS, -1)
    assert wimhf.match("no markdown-style formatting (headings, bold, lists)") == ("markdown", -1)
    assert wimhf.match("expresses uncertainty/deflects instead of giving a direct answer") == ("deflection", 1)
    assert wimhf.match("provides direct advice/content instead of asking clarifying questions") == (
        "clarifying_question",
        -1,
    )
    assert wimhf.match("frames things optimistically") is None


@pytest.mark.parametrize("dataset,concept", wimhf.REQUIRED)
def test_required_signs_are_rediscovered(checked, dataset, concept):
    table, audit, _ = checked
    row = wimhf.strongest(table, dataset, concept)
    assert row["ours_n_differ"] >= 5
    assert row["ours_sign"] == row["authors_sign"] != 0, row.to_dict()


def test_audit_is_by_dataset_with_auc_per_dataset(checked):
    table, audit, _ = checked
    assert audit.by_ == "dataset"
    auc = audit.auc_by_.set_index("subset")
    assert {"", "HH-RLHF", "PKU", "ChatbotArena"} <= set(auc.index)
    assert auc["heldout_auc"].notna().all()
    # ChatbotArena's refusals are dispreferred: a finding within that dataset, marked with an example
    f = audit.findings()
    row = f[(f["concept"] == "refusal") & (f["subset"] == "ChatbotArena")].iloc[0]
    assert row["win_rate"] < 0.5 and "«" in row["example"]
