"""Issue 6 machinery on synthetic SAE-like features: grouping, findings, sparse model, purity."""

import numpy as np
import pandas as pd
import pytest

from curate import ConceptAudit
from curate._columns import sae_index_column, sae_value_column
from curate.grouping import cluster_features


def _with_fake_sae(ds, truth, n_split=30, seed=0):
    """Fake sparse SAE columns: `n_split` features all firing on flattery (a concept split across many
    latents), 3 on emoji (an equal-rate control), and 40 noise features."""
    rng = np.random.default_rng(seed)
    df = ds.to_pandas()
    for side in ("chosen", "rejected"):
        idx, val = [], []
        flat = truth[f"{side}__flattery"].to_numpy()
        emo = truth[f"{side}__emoji"].to_numpy()
        for i in range(len(df)):
            feats = {}
            if flat[i]:
                for f in range(n_split):
                    feats[f] = 1.0 + rng.random()
            if emo[i]:
                for f in range(100, 103):
                    feats[f] = 1.0 + rng.random()
            for f in rng.choice(np.arange(200, 240), size=3, replace=False):
                feats[int(f)] = rng.random()
            idx.append(list(feats))
            val.append([float(v) for v in feats.values()])
        df[sae_index_column(side, "fake")] = idx
        df[sae_value_column(side, "fake")] = val
    return df


@pytest.fixture(scope="module")
def fake(generated, annotated):
    return _with_fake_sae(annotated, generated.truth)


def test_redundant_features_become_one_group(fake):
    audit = ConceptAudit().fit(fake)
    res = audit.results_.set_index("concept")
    groups = res[res.index.str.startswith("group:fake:")]
    flattery_group = groups[groups["n_members"] == 30]
    assert len(flattery_group) == 1
    row = flattery_group.iloc[0]
    assert row["nearest_named"] == "flattery" and row["nearest_r"] > 0.8 and row["purity"] > 0.9
    assert row["confirmed"]
    members = audit.members_
    assert set(members[members["group"] == flattery_group.index[0]]["concept"]) == {f"sae:fake:{f}" for f in range(30)}
    # one planted concept gives at most one finding among the SAE groups
    sae_findings = audit.findings()[audit.findings()["source"] == "sae:fake"]
    assert (sae_findings["nearest_named"] == "flattery").sum() <= 1
    # the equal-rate control's group is no finding
    emoji_groups = groups[groups["nearest_named"] == "emoji"]
    assert not emoji_groups["finding"].any()


def test_without_grouping_every_feature_is_a_row(fake):
    audit = ConceptAudit(group_features=False).fit(fake)
    assert audit.results_["concept"].str.startswith("sae:fake:").sum() == 30 + 3 + 40
    assert len(audit.members_) == 0
    assert audit.results_["confirmed"].sum() > 30  # the problem grouping solves: 30 "findings" for one concept


def test_findings_are_few_confirmed_length_controlled_and_large():
    rng = np.random.default_rng(1)
    n = 20_000
    df = pd.DataFrame({"prompt": [f"p{i}" for i in range(n)], "chosen": ["a"] * n, "rejected": ["b"] * n})
    cols = {}
    # a tiny but real effect (win-rate ~0.53): significant on 20k pairs, below the practical floor
    c = (rng.random(n) < 0.5).astype("float32")
    r = (rng.random(n) < 0.47).astype("float32")
    cols["chosen__tiny"], cols["rejected__tiny"] = c, r
    # 30 large, independent effects: more than max_findings
    for k in range(30):
        cols[f"chosen__big{k}"] = (rng.random(n) < 0.6).astype("float32")
        cols[f"rejected__big{k}"] = (rng.random(n) < 0.3).astype("float32")
    df = pd.concat([df, pd.DataFrame(cols)], axis=1)
    audit = ConceptAudit(max_findings=20).fit(df)
    res = audit.results_.set_index("concept")
    assert res.loc["tiny", "q_value"] < 0.05 and not res.loc["tiny", "finding"]
    f = audit.findings()
    assert len(f) == 20 and f["confirmed"].all() and (f["length_controlled_q"] < 0.05).all()
    assert ((f["win_rate"] - 0.5).abs() >= 0.1).all()
    assert f["finding_rank"].tolist() == list(range(1, 21))
    assert list(audit.results_["finding"].iloc[:20]) == [True] * 20  # findings lead the table


def test_redundant_named_concepts_give_one_finding(annotated):
    audit = ConceptAudit().fit(annotated)
    f = set(audit.findings()["concept"])
    assert len(f & {"length", "log_length"}) == 1
    assert len(f & {"markdown", "heading", "list", "bold"}) == 1


def test_sparse_model_and_survival(annotated):
    audit = ConceptAudit().fit(annotated)
    res = audit.results_.set_index("concept")
    assert 0.6 < audit.sparse_auc_ <= 1
    assert res.loc["flattery", "survives_controls"] and res.loc["agreement", "survives_controls"]
    assert res["multivariate_coef"].notna().all()


def test_cluster_features_orders_groups_by_size():
    rng = np.random.default_rng(0)
    base = rng.random((500, 1))
    x = np.column_stack([base + 0.01 * rng.random((500, 5)), rng.random((500, 2))])
    labels = cluster_features(x, 0.5)
    assert (labels[:5] == 0).all() and len(set(labels[5:])) == 2 and 0 not in labels[5:]


def test_to_dict_reports_counts(fake):
    audit = ConceptAudit().fit(fake)
    d = audit.to_dict()
    assert d["n_features"] == 73 and d["n_findings"] == len(audit.findings()) > 0 and d["group_threshold"] == 0.5
