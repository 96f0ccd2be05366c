"""The statistical and curation rules, each checked against an independent computation (issue 28).

Each test here kills one of the one-line behaviour changes that the issue planted and that the older tests let
pass; the mutant a test guards against is named in its docstring.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from curate import ConceptAudit, make_preference_pairs
from curate import _columns as C
from curate.audit_base import finding_evidence
from curate.interventions import Filter, preview
from curate.interventions._state import PairState
from curate.interventions.apply import BEFORE_AFTER_COLUMNS, ApplyReport, plan
from curate.recipe import Recipe
from curate.scores import ConceptScores, prompt_halves
from curate.stream_audit import StreamingAudit
from curate.stream_sample import PairSample
from curate.subsets import heterogeneity


# -- held-out confirmation: the confirmation half must agree in direction (mutant 1) -----------------------------
@pytest.fixture(scope="module")
def flipping():
    """Pairs where concept ``flip`` wins every differing pair of the discovery half and loses every one of the
    confirmation half: significant in both halves, in opposite directions."""
    df = make_preference_pairs(400, seed=3).dataset.to_pandas()
    half = prompt_halves(df[C.PROMPT].tolist())
    df["chosen__flip"] = (half == 0).astype("float32")
    df["rejected__flip"] = (half == 1).astype("float32")
    df["chosen__steady"] = np.ones(len(df), "float32")
    df["rejected__steady"] = np.zeros(len(df), "float32")
    df["subset"] = np.where(np.arange(len(df)) % 2 == 0, "a", "b")
    return df


def _check_flip(res):
    assert res.loc["flip", "discovery_q"] < 0.05 and res.loc["flip", "confirmation_p"] < 0.05
    assert not res.loc["flip", "confirmed"]  # significant twice, but the halves disagree
    assert res.loc["steady", "confirmed"]


def test_confirmation_needs_the_same_direction(flipping):
    """Mutant 1 (audit.py ``_confirm``): ``confirmed`` without the same-direction condition."""
    _check_flip(ConceptAudit().fit(flipping).results_.set_index("concept"))


def test_streaming_confirmation_needs_the_same_direction(flipping):
    """Mutant 1 in the streaming audit's copy (stream_audit.py ``_finish``)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(flipping.drop(columns=["subset"]), preserve_index=False)
    _check_flip(StreamingAudit().fit(table).results_.set_index("concept"))


def test_subset_confirmation_needs_the_same_direction(flipping):
    """Mutant 1 in the per-subset audit's copy (subsets.py ``subset_table``)."""
    by = ConceptAudit().fit(flipping, by="subset").results_by_
    for subset in ("a", "b"):
        _check_flip(by[by[C.SUBSET] == subset].set_index("concept"))


def test_findings_rule_needs_both_halves_to_agree():
    """Mutant 1 under today's findings rule (``finding_evidence``): halves_agree without one of the halves."""
    t = pd.DataFrame(
        {
            "concept": ["both", "no_conf", "no_disc"],
            "source": "named",
            "n_differ": 200,
            "win_rate": 0.7,
            "p_value": 1e-8,
            "discovery_win_rate": [0.72, 0.75, 0.4],
            "confirmation_win_rate": [0.68, 0.4, 0.75],
            "length_controlled_coef": 0.5,
            "length_controlled_p": 1e-6,
        }
    )
    e = finding_evidence(t)
    assert e["halves_agree"].tolist() == [True, False, False]
    assert e["passes"].tolist() == [True, False, False]


# -- purity (mutant 2) -------------------------------------------------------------------------------------------
def _scores(concepts, source, chosen, rejected):
    chosen, rejected = np.asarray(chosen, "float32"), np.asarray(rejected, "float32")
    n = len(chosen)
    return ConceptScores(
        pd.DataFrame({"concept": concepts, "label": concepts, "source": source}),
        chosen,
        rejected,
        np.arange(n),
        [f"p{i}" for i in range(n)],
        np.zeros((n, 2)),
        np.ones(n),
        {},
    )


def test_purity_is_the_share_of_mass_on_responses_with_the_named_concept():
    """Mutant 2 (audit.py ``_purity``): purity fixed at 1.0. Here half the feature's mass is on flattery."""
    scores = _scores(
        ["flattery", "sae:x:1"], ["named", "sae:x"], [[1, 2], [0, 2], [1, 0], [0, 0]], [[0, 1], [0, 3], [0, 0], [0, 0]]
    )
    res = pd.DataFrame({"source": ["named", "sae:x"], "nearest_named": [None, "flattery"]})
    # the feature's mass 2 + 2 + 1 + 3 = 8; on the two responses with flattery: 2 + 0 (row 2 has 0) = 2
    assert ConceptAudit._purity(scores, res)[1] == pytest.approx(2 / 8)
    assert np.isnan(ConceptAudit._purity(scores, res)[0])  # a named concept has no purity


# -- heterogeneity and sign flips (mutants 3 and 8) -----------------------------------------------------------
def _by_table(rows):
    return pd.DataFrame(rows, columns=["concept", C.SUBSET, "n_differ", "win_rate", "q_value"])


def test_sign_flip_needs_a_significant_subset_on_each_side():
    """Mutant 3 (subsets.py ``heterogeneity``): ``sign_flip`` when only one subset is significant."""
    t = _by_table(
        [
            ("one_side", "a", 200, 0.80, 1e-9),
            ("one_side", "b", 200, 0.45, 0.30),  # the other way, but not significantly
            ("both", "a", 200, 0.80, 1e-9),
            ("both", "b", 200, 0.20, 1e-9),
        ]
    )
    h = heterogeneity(t).set_index("concept")
    assert h["heterogeneous"].all()
    assert not h.loc["one_side", "sign_flip"] and h.loc["both", "sign_flip"]


def test_heterogeneity_is_the_chi2_test_of_the_subsets_win_counts():
    """Mutant 8 (subsets.py ``heterogeneity``): degrees of freedom off by one. Oracle: scipy's 2 × k table."""
    n = np.array([120, 80, 150])
    wins = np.array([70, 52, 78])
    t = _by_table([("c", s, int(k), w / k, 0.5) for s, k, w in zip("abc", n, wins)])
    expected = st.chi2_contingency(np.stack([wins, n - wins]), correction=False).pvalue
    assert heterogeneity(t)["heterogeneity_p"].iloc[0] == pytest.approx(expected, rel=1e-9)


# -- curation: the before/after table, the preview's q, amplify steps, filter (mutants 4, 6, 9, 10) ----------------
def _report():
    counts = ["flattery", "block", "rebalance", 200, 0.71, 0.64, 0.77, 1e-6, 190, 0.52, 0.45, 0.59, 0.6]
    ba = pd.DataFrame([counts], columns=BEFORE_AFTER_COLUMNS[: len(counts)]).reindex(columns=BEFORE_AFTER_COLUMNS)
    retention = {"rows_kept": 290, "rows_usable": 300, "rows_dropped": 10, "ess": 250.0, "ess_fraction": 250 / 300}
    return ApplyReport(recipe={}, steps=[], retention=retention, before_after=ba)


def test_before_after_table_puts_each_number_in_its_column():
    """Mutant 4 (interventions/apply.py ``ApplyReport.table``): the after numbers in the before column."""
    header, row, footer = _report().table().splitlines()
    before, after = header.index("win-rate before"), header.index("win-rate after")
    assert row[before:].startswith("0.710 [0.640, 0.770]")
    assert row[after:].startswith("0.520 [0.450, 0.590]")
    assert footer.startswith("rows kept 290/300 · dropped 10 · ESS 250.0 (83.3% of usable rows)")


@pytest.fixture(scope="module")
def annotated():
    from curate import annotate

    return annotate(make_preference_pairs(300, seed=0).dataset, ["flattery", "emoji", "hedging"])


def test_preview_q_values_are_benjamini_hochberg(annotated):
    """Mutant 6 (interventions/apply.py ``before_after``): raw p instead of BH q. Oracle: scipy's sign test and
    BH over the table's concepts."""
    concepts = ["flattery", "emoji", "hedging"]
    table = preview(annotated, block=concepts)["table"].set_index("concept")
    df = annotated.to_pandas()
    p = []
    for c in concepts:
        d = df[f"chosen__{c}"].to_numpy(float) - df[f"rejected__{c}"].to_numpy(float)
        p.append(st.binomtest(int((d > 0).sum()), int((d != 0).sum())).pvalue)
    q = st.false_discovery_control(p)
    assert not np.allclose(p, q)  # the check can tell the two apart
    assert table.loc[concepts, "q_before"].to_numpy() == pytest.approx(q, rel=1e-6)


def test_amplify_steps_of_different_strengths_stay_apart():
    """Mutant 9 (interventions/apply.py ``plan``): Upweight steps of different strengths merged."""
    rules = [
        {"concepts": ["flattery"], "action": "amplify", "strength": 1.0},
        {"concepts": ["emoji"], "action": "amplify", "strength": 2.0},
        {"concepts": ["hedging"], "action": "amplify", "strength": 1.0},
        {"concepts": ["apology"], "action": "amplify", "strength": 1.0},
    ]
    steps = plan(Recipe.from_dict({"rules": rules}))
    # one step per strength, in rule order; consecutive equal strengths share a step
    assert [(s.name, s.concepts, s.strength) for s in steps] == [
        ("upweight", ["flattery"], 1.0),
        ("upweight", ["emoji"], 2.0),
        ("upweight", ["hedging", "apology"], 1.0),
    ]


def _state(chosen, rejected):
    chosen, rejected = np.asarray(chosen, "float32"), np.asarray(rejected, "float32")
    n = len(chosen)
    return PairState(
        concepts=["a", "b"],
        chosen=chosen,
        rejected=rejected,
        usable=np.ones(n, bool),
        keep=np.ones(n, bool),
        reason=np.array([""] * n, dtype=object),
        weight=np.ones(n),
        margin=np.zeros(n),
        swapped=np.zeros(n, bool),
        copies=np.ones(n, int),
        instructions=[[] for _ in range(n)],
    )


def test_filter_differ_leaves_rows_already_dropped_alone():
    """Mutant 10 (``filter_mode: differ``; the guard lives in ``PairState.drop``): rows dropped by an earlier step
    dropped again, their reason overwritten and counted twice."""
    state = _state([[1, 1], [1, 1], [0, 0], [1, 0]], [[0, 0], [0, 0], [0, 0], [1, 0]])
    Filter(["a"], mode="differ").apply(state)
    assert state.reason.tolist() == ["filter:a", "filter:a", "", ""]
    step = Filter(["b"], mode="differ").apply(state)  # b differs only in the rows a already dropped
    assert state.reason.tolist() == ["filter:a", "filter:a", "", ""]
    assert state.keep.tolist() == [False, False, True, True]
    assert step.stats_["rows_dropped"] == {"b": 0}


def test_drop_changes_only_kept_rows():
    """Mutant 10 at its guard (``PairState.drop``): a row already dropped dropped again, with a new reason."""
    state = _state([[1, 1], [1, 1], [0, 0], [1, 0]], [[0, 0], [0, 0], [0, 0], [1, 0]])
    assert state.drop(np.array([True, False, False, False]), "first") == 1
    assert state.drop(np.array([True, True, False, False]), "second") == 1
    assert state.reason.tolist() == ["first", "second", "", ""]


# -- the streaming audit: one finding per group, every setting recorded, a seeded sample (mutants 5, 7, 12) --------
def _stream_rows(groups):
    n = len(groups)
    return pd.DataFrame(
        {
            "concept": [f"sae:x:{i}" for i in range(n)],
            "source": "sae:x",
            "n_differ": 300,
            "win_rate": 0.75,
            "p_value": 1e-10,
            "discovery_win_rate": 0.75,
            "confirmation_win_rate": 0.75,
            "length_controlled_coef": np.linspace(1.0, 0.5, n),
            "length_controlled_p": 1e-8,
            "group": pd.Series(groups, dtype=object),  # None: a named concept, in no group
        }
    )


def test_streaming_findings_keep_one_row_per_group():
    """Mutant 5 (stream_audit.py ``_mark_findings``): several findings from one group."""
    res = StreamingAudit()._mark_findings(_stream_rows(["g:1", "g:1", "g:2", None, None]))
    assert res["finding"].tolist() == [True, False, True, True, True]
    assert res["finding_rank"].fillna(0).tolist() == [1, 0, 2, 3, 4]


def test_streaming_audit_records_every_setting():
    """Mutant 7 (stream_audit.py ``to_dict``): a setting lost. Every dataclass field is recorded."""
    for audit in (StreamingAudit(), ConceptAudit()):
        d = audit.to_dict()
        for f in dataclasses.fields(audit):
            assert f.name in d, f"{type(audit).__name__}.to_dict() omits {f.name}"
            assert d[f.name] == getattr(audit, f.name)


def test_streaming_sample_follows_its_seed():
    """Mutant 12 (stream_sample.py ``PairSample``): the sample ignoring its seed."""

    def sample(seed):
        smp = PairSample(size=20, seed=seed)
        for _ in range(2):  # two record batches of 100 rows
            rows = np.arange(100)
            z = np.zeros((100, 1))
            smp.add(rows, z, z, np.zeros((100, 2)), np.zeros(100, np.int8), {}, n=100)
        return sorted(smp.data_["gid"].tolist())

    assert sample(0) == sample(0)
    assert sample(0) != sample(1) != sample(2)
    assert len(sample(3)) == 20 and max(sample(3)) < 200


# -- nearest named concept: never log_length (mutant 11) -------------------------------------------------------------
def test_nearest_named_is_never_log_length():
    """Mutant 11 (audit.py ``_nearest_named``): log_length allowed as a feature's nearest named concept."""
    rng = np.random.default_rng(0)
    n = 200
    loglen = rng.normal(size=(n, 2))
    flat = (rng.random((n, 2)) < 0.5).astype(float)
    feat = loglen + 0.3 * flat  # tracks length closely, flattery a little
    chosen = np.stack([loglen[:, 0], flat[:, 0], feat[:, 0]], 1)
    rejected = np.stack([loglen[:, 1], flat[:, 1], feat[:, 1]], 1)
    scores = _scores(["log_length", "flattery", "sae:x:1"], ["named", "named", "sae:x"], chosen, rejected)
    near = ConceptAudit._nearest_named(scores)
    assert abs(np.corrcoef(feat.ravel(), loglen.ravel())[0, 1]) > 0.9  # log_length would be the nearest
    assert near["nearest_named"].iloc[[0, 2]].tolist() == ["flattery", "flattery"]
