"""The streaming audit: the same statistics as ConceptAudit, from one pass over shards, O(concepts) state."""

import numpy as np
import pytest

import curate
from curate import _columns as C
from curate.stream_audit import StreamingAudit

STREAMED = [
    "n_differ",
    "win_rate",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "effect_size",
    "mean_delta",
    "discovery_win_rate",
    "discovery_q",
    "confirmation_win_rate",
    "confirmation_p",
    "confirmed",
    "prevalence_chosen",
    "prevalence_rejected",
]


def _with_sae(ds, D=300, k=8, seed=0):
    """Synthetic sparse SAE columns: features 0..4 fire more often in chosen responses."""
    rng = np.random.default_rng(seed)
    for side, boost in ((C.CHOSEN, 0.3), (C.REJECTED, 0.0)):
        idx, val = [], []
        for _ in range(len(ds)):
            f = rng.choice(D, size=k, replace=False)
            if rng.random() < boost:
                f[0] = rng.integers(0, 5)
            f = np.unique(f)
            idx.append(f.astype(np.int32).tolist())
            val.append(rng.random(len(f)).astype(np.float32).tolist())
        ds = ds.add_column(C.sae_index_column(side, "x"), idx).add_column(C.sae_value_column(side, "x"), val)
    return ds


@pytest.fixture(scope="module")
def data():
    ds = curate.annotate(curate.make_preference_pairs(2000, seed=1).dataset)
    ds = _with_sae(ds)
    return ds.map(lambda r, i: {"reason": "invalid:x" if i % 97 == 0 else ""}, with_indices=True)


@pytest.fixture(scope="module")
def reference(data):
    return curate.ConceptAudit(group_features=False).fit(data).results_.set_index("concept")


def _check_equal(res, ref, cols=STREAMED):
    res = res.set_index("concept")
    assert set(res.index) == set(ref.index)  # same concepts (named + SAE features with >= min_active)
    assert res["n_differ"].sum() > 0 and res["confirmed"].any()
    for col in cols:
        a = res.loc[ref.index, col].astype(float).to_numpy()
        b = ref[col].astype(float).to_numpy()
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9, err_msg=col)


def test_stream_equals_in_memory_audit(data, reference):
    audit = StreamingAudit(batch_rows=300).fit(data)  # 7 record batches
    assert audit.n_pairs_ == reference["n_pairs"].iloc[0] == 2000 - 21
    # the sample covers every pair here, so the length-controlled effect of the sampled concepts matches too
    _check_equal(audit.results_, reference)
    res = audit.results_.set_index("concept")
    sampled = res.index[res["in_sample"]]
    assert len(sampled) == 256 + (res["source"] == "named").sum()
    np.testing.assert_allclose(
        res.loc[sampled, "length_controlled_coef"].astype(float),
        reference.loc[sampled, "length_controlled_coef"].astype(float),
        rtol=1e-6,
        atol=1e-9,
    )
    planted = {C.sae_concept_id("x", f) for f in range(5)}
    assert planted <= set(audit.findings()["concept"]) | set(res.index[res["confirmed"]])


def test_bounded_sample_and_state(data, reference):
    audit = StreamingAudit(batch_rows=500, sample_pairs=400, sample_concepts=50).fit(data)
    assert audit.n_sample_ == 400
    _check_equal(audit.results_, reference)  # streamed statistics do not depend on the sample
    acc = audit._sae_acc["x"]
    assert acc.nd.shape == (2, 300) and acc.s1.shape == (2, 300)  # state: halves x SAE width, not pairs
    assert sum(len(v[0]) for k, v in audit._sample.items() if "|" in k) <= 400 * 2 * 8


def test_reads_parquet_shards(data, reference, tmp_path):
    shards = tmp_path / "job" / "shards"
    shards.mkdir(parents=True)
    for i, s in enumerate(range(0, len(data), 600)):
        data.select(range(s, min(s + 600, len(data)))).to_parquet(str(shards / f"part-{i:05d}.parquet"))
    audit = StreamingAudit(batch_rows=256).fit(tmp_path / "job")
    _check_equal(audit.results_, reference)
    with pytest.raises(FileNotFoundError, match="parquet"):
        StreamingAudit().fit(tmp_path / "nothing-here")


def test_no_usable_pairs_is_an_error(data):
    bad = data.select(range(50)).map(lambda r: {"reason": "invalid:x"})
    with pytest.raises(ValueError, match="No usable pairs"):
        StreamingAudit().fit(bad)


def test_cli_stream_audit(data, tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from curate.cli import cli

    data.to_parquet(str(tmp_path / "part-00000.parquet"))
    res = CliRunner().invoke(cli, ["stream-audit", str(tmp_path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(tmp_path / "out" / "audit.parquet")
    assert "sae:x:0" in set(table["concept"]) and table["confirmed"].any()
    res = CliRunner().invoke(cli, ["stream-audit", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_cli_stream_audit_folder_is_what_apply_reads(data, tmp_path):
    """Issue 28: ``curate stream-audit … --out X && curate apply X --block flattery`` works: the streaming audit
    writes an audit folder through curate.folders (manifest, annotated/ with every row)."""
    import json

    from typer.testing import CliRunner

    from curate import folders
    from curate.cli import cli

    part = data.select(range(600))
    part.select(range(300)).to_parquet(str(tmp_path / "part-00000.parquet"))
    part.select(range(300, 600)).to_parquet(str(tmp_path / "part-00001.parquet"))
    res = CliRunner().invoke(cli, ["stream-audit", str(tmp_path), "--out", str(tmp_path / "audit")])
    assert res.exit_code == 0, res.output
    audit = folders.load_audit(tmp_path / "audit")
    assert audit.manifest["kind"] == "audit" and audit.manifest["rows"]["in"] == 600
    assert audit.summary["type"] == "StreamingAudit" and audit.summary["n_pairs"] == 600 - 7  # 7 invalid rows
    assert audit.annotated()["prompt"] == part["prompt"]  # every row, in order
    res = CliRunner().invoke(
        cli, ["apply", str(tmp_path / "audit"), "--block", "flattery", "--out", str(tmp_path / "cur")]
    )
    assert res.exit_code == 0, res.output
    cur = folders.load_curated(tmp_path / "cur")
    assert cur.manifest["made_from"]["kind"] == "audit"
    rows = cur.manifest["rows"]
    assert rows["in"] == 600 and rows["dropped"] >= 7
    ba = json.loads((tmp_path / "cur" / folders.APPLY_RECORD).read_text())["before_after"][0]
    assert ba["concept"] == "flattery" and abs(ba["win_rate_after"] - 0.5) < abs(ba["win_rate_before"] - 0.5)
    # a second run replaces the folder; a folder of another kind is refused before the pass
    res = CliRunner().invoke(cli, ["stream-audit", str(tmp_path), "--out", str(tmp_path / "cur")])
    assert res.exit_code == 2 and "curated folder" in res.output


def test_stream_findings_pass_the_one_findings_rule(data, reference):
    """Issue 30: the streaming audit decides findings with the same function as the in-memory audit, so on the
    same data (the sample covering every pair) the two agree on which named concepts pass and why."""
    from curate.audit_base import finding_evidence

    res = StreamingAudit(batch_rows=300).fit(data).results_.set_index("concept")
    named = res.index[res["source"] == "named"]
    mine = finding_evidence(res.loc[named].reset_index())
    ref = reference.loc[named]
    assert mine["passes"].tolist() == ref["passed"].astype(bool).tolist()
    assert res.loc[res["finding"], "passed"].str.startswith("full data q").all() and res["finding"].any()
