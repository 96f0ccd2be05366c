"""Progress lines (what, how many, ETA) and the user cache's keys."""

import logging

import pytest

from curate._progress import Progress
from curate.cache import cache_key, code_version, data_fingerprint, default_cache_dir


def test_progress_lines_say_what_how_many_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="curate")
    p = Progress("Collecting activations", total=10, unit="responses", every=0)
    p.update(4)
    p.update(6)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Collecting activations: 4/10 responses (40%)") and "ETA" in lines[0]
    assert lines[-1].startswith("Collecting activations: 10/10 responses (100%)")


def test_fit_sae_reports_progress(caplog):
    import torch

    from curate.concepts.sae_source import fit_sae

    caplog.set_level(logging.INFO, logger="curate")
    fit_sae(torch.randn(1024, 16), d_sae=32, k=4, epochs=1, min_steps=20, batch_size=256, resample_rounds=0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Fitting the SAE")]
    assert lines and "steps (100%)" in lines[-1]


def test_cache_keys(monkeypatch, tmp_path):
    from datasets import Dataset

    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CURATE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "curate"
    a = Dataset.from_dict({"chosen": ["a", "b"], "rejected": ["c", "d"]})
    b = Dataset.from_dict({"chosen": ["a", "b"], "rejected": ["c", "e"]})
    assert data_fingerprint(a) == data_fingerprint(Dataset.from_dict(a.to_dict())) != data_fingerprint(b)
    assert cache_key(x=1, code=code_version()) != cache_key(x=2, code=code_version())


@pytest.mark.slow
def test_sae_audit_rerun_reuses_the_cache_without_a_model(tmp_path, monkeypatch):
    """A second SAE audit into another --out loads no model, fits nothing, and writes the identical audit."""
    import time

    import pandas as pd

    from curate import make_preference_pairs
    from curate.concepts.sae import SAEConcepts
    from curate.pipeline import run_audit

    data = tmp_path / "pairs.jsonl"
    make_preference_pairs(80, seed=2).dataset.to_json(str(data))
    kw = dict(concepts="named,sae", sae_kwargs={"backend": "embedding"}, cache_dir=tmp_path / "cache")
    t0 = time.perf_counter()
    first = run_audit(str(data), out=tmp_path / "a", **kw)
    t1 = time.perf_counter()

    def no_model(self):
        raise AssertionError("the second run must not load a model")

    monkeypatch.setattr(SAEConcepts, "_setup", no_model)
    second = run_audit(str(data), out=tmp_path / "b", **kw)
    t2 = time.perf_counter()
    assert second["record"]["cache"]["annotations"] == "reused" and second["record"]["cache"]["audit"] == "reused"
    assert first["record"]["cache"]["annotations"] == "stored"
    assert any((tmp_path / "cache" / "sae").iterdir()), "the fitted SAE is kept in the cache"
    for name in ("audit.parquet", "audit_members.parquet", "audit_findings.parquet", "feature_labels.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / name), pd.read_parquet(tmp_path / "b" / name))
    assert t2 - t1 < (t1 - t0) / 5  # the benchmark measures the real ratio on SmolLM2 (bench_cache.py)


def test_atomic_dir_first_writer_wins_and_an_error_leaves_nothing(tmp_path):
    from curate.cache import atomic_dir

    with atomic_dir(tmp_path / "entry") as tmp:
        (tmp / "x.txt").write_text("first")
    with atomic_dir(tmp_path / "entry") as tmp:
        (tmp / "x.txt").write_text("second")
    assert (tmp_path / "entry" / "x.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "broken") as tmp:
        (tmp / "x.txt").write_text("half")
        raise RuntimeError("killed mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]  # no entry, no staging folder left


def test_the_learning_cache_follows_the_one_cache_root(monkeypatch, tmp_path):
    """One environment rule for every cache: the learning check's is ``learning/`` under curate's cache root
    (it once read only ``$CURATE_CACHE`` and ignored ``$XDG_CACHE_HOME``)."""
    from curate.learning.train import learning_cache_dir

    monkeypatch.delenv("CURATE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert learning_cache_dir() == default_cache_dir() / "learning" == tmp_path / "x" / "curate" / "learning"
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "c"))
    assert learning_cache_dir() == tmp_path / "c" / "learning"
