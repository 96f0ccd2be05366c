"""The Ray Data engine on a real local Ray cluster (no mocks): same output as ``datasets.map``, resumable."""

import json
import os
import sys

import numpy as np
import pytest

os.environ.setdefault("RAY_TMPDIR", "/tmp/ray-curate-tests")  # Unix socket paths must stay short
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402  (after the environment above)
from _tiny_lm import build_tiny_lm, build_tiny_sae, multiturn  # noqa: E402

import curate  # noqa: E402
from curate import _columns as C  # noqa: E402
from curate.errors import MissingDependencyError  # noqa: E402
from curate.ray_engine import _Interrupted, last_engine, require_ray  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local cluster for the whole module (starting one costs ~3 s)."""
    os.makedirs(os.environ["RAY_TMPDIR"], exist_ok=True)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=300 * 2**20, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def pairs():
    ds = curate.make_preference_pairs(300, seed=3).dataset
    # one invalid row: the engines must keep it (scored, empty SAE lists), not drop it
    return ds.map(lambda r, i: {"reason": "invalid:empty_prompt" if i == 7 else r["reason"]}, with_indices=True)


def test_named_equals_datasets_map(pairs, tmp_path):
    local = curate.annotate(pairs)
    out = curate.annotate(pairs, engine="ray", engine_options={"out": tmp_path / "job", "rows_per_shard": 64})
    assert len(out) == len(local) == 300
    assert out.features == local.features
    assert out.to_dict() == local.to_dict()  # exact, in the input order
    assert out._fingerprint == local._fingerprint
    assert sorted(p.name for p in (tmp_path / "job" / "shards").iterdir()) == [
        f"part-{i:05d}.parquet" for i in range(5)
    ]


def test_a_concept_registered_in_the_driver_reaches_the_workers(pairs, tmp_path):
    """The workers are fresh processes: the annotator must carry the driver's registered concepts with it."""
    from curate.concepts import named

    named.register_concept("ray_paris", r"\bparis\b", "Mentions Paris.")
    try:
        data = pairs.select(range(40))
        out = curate.annotate(data, engine="ray", engine_options={"out": tmp_path / "job", "rows_per_shard": 20})
        assert out["chosen__ray_paris"] == curate.annotate(data)["chosen__ray_paris"]
    finally:
        named._REGISTRY.pop("ray_paris", None)


def test_interrupted_job_resumes_without_recomputing(pairs, tmp_path):
    job = tmp_path / "job"
    opts = {"out": job, "rows_per_shard": 50, "workers": 2}
    with pytest.raises(_Interrupted):
        curate.annotate(pairs, engine="ray", engine_options={**opts, "stop_after": 2})
    shards = sorted((job / "shards").glob("*.parquet"))
    assert len(shards) == 2
    stamps = {p.name: p.stat().st_mtime_ns for p in shards}
    out = curate.annotate(pairs, engine="ray", engine_options=opts)
    stats = last_engine().stats_
    assert (stats["shards"], stats["shards_done_before"], stats["shards_computed"]) == (6, 2, 4)
    assert stats["rows_computed"] == 200
    assert {p.name: p.stat().st_mtime_ns for p in shards} == stamps  # finished shards untouched
    assert out.to_dict() == curate.annotate(pairs).to_dict()


def test_resume_refuses_a_different_job(pairs, tmp_path):
    job = tmp_path / "job"
    curate.annotate(pairs.select(range(40)), engine="ray", engine_options={"out": job, "rows_per_shard": 20})
    with pytest.raises(ValueError, match="different job"):
        curate.annotate(pairs.select(range(60)), engine="ray", engine_options={"out": job, "rows_per_shard": 20})


def test_reads_pair_parquet_files_with_ray_data(pairs, tmp_path):
    path = tmp_path / "pairs.parquet"
    pairs.to_parquet(str(path))
    out = curate.annotate(str(path), engine="ray", engine_options={"out": tmp_path / "job", "rows_per_shard": 128})
    local = curate.annotate(pairs)
    assert out.features == local.features  # the same declared types (float32 scores), not inferred ones
    assert out.to_dict() == local.to_dict()
    with pytest.raises(ValueError, match="load_pairs"):
        curate.annotate(str(tmp_path / "pairs.csv"), engine="ray", engine_options={"out": tmp_path / "j2"})


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tinylm") / "lm")


def _dense(ds, side, src, d):
    idx, val = ds[C.sae_index_column(side, src)], ds[C.sae_value_column(side, src)]
    out = np.zeros((len(idx), d), np.float32)
    for r, (i, v) in enumerate(zip(idx, val)):
        out[r, i] = v
    return out


def test_sae_equals_datasets_map(pairs, tiny_lm, tmp_path):
    data = multiturn(pairs.select(range(60)), turns=1)
    sae = build_tiny_sae()
    kw = dict(model=tiny_lm, layer=2, sae=sae, k=128, source="tiny", batch_size=16)
    local, _ = curate.annotate_sae(data, **kw)
    out, ann = curate.annotate_sae(
        data, engine="ray", engine_options={"out": tmp_path / "job", "rows_per_shard": 20}, **kw
    )
    assert out.column_names == local.column_names and out["id"] == local["id"]
    assert out._fingerprint == local._fingerprint
    for side in C.SIDES:
        a, b = _dense(out, side, "tiny", 128), _dense(local, side, "tiny", 128)
        assert a.max() > 0.5  # real activations, not all-zero columns
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    assert out[C.sae_index_column(C.CHOSEN, "tiny")][7] == []  # the invalid row is kept, with empty lists


def test_missing_ray_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "curate-prefs\[ray\]"'):
        require_ray()
    with pytest.raises(MissingDependencyError, match="curate-prefs\\[ray\\]"):
        curate.annotate(curate.make_preference_pairs(5).dataset, engine="ray")


def test_cli_audit_engine_ray(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from curate.cli import cli

    data = tmp_path / "pairs.jsonl"
    curate.make_preference_pairs(200, seed=4).dataset.to_json(str(data), lines=True)
    runs = {}
    for engine in ("local", "ray"):
        # --cache-dir: a cache per engine, so the Ray run computes its annotations instead of reusing the local ones
        res = CliRunner().invoke(
            cli,
            [
                "audit",
                str(data),
                "--out",
                str(tmp_path / engine),
                "--engine",
                engine,
                "--workers",
                "2",
                "--cache-dir",
                str(tmp_path / f"cache-{engine}"),
            ],
        )
        assert res.exit_code == 0, res.output
        runs[engine] = pd.read_parquet(tmp_path / engine / "audit.parquet")
    pd.testing.assert_frame_equal(runs["ray"], runs["local"])
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["engine"]["engine"] == "ray" and summary["cache"]["annotations"] == "stored"
    # the resumable shards live in the cache, outside the atomically written audit folder
    assert list((tmp_path / "cache-ray").glob("ray-*/named/shards/part-00000.parquet"))
    assert not (tmp_path / "ray" / "ray").exists()


def test_fitted_sae_is_trained_once_on_a_sample_and_shipped(pairs, tiny_lm, tmp_path):
    from curate.concepts.sae_source import sae_metadata

    data = pairs.select(range(40))
    fit = {"d_sae": 64, "k": 8, "epochs": 1, "min_steps": 20, "resample_rounds": 0, "batch_size": 256}
    out, ann = curate.annotate_sae(
        data,
        model=tiny_lm,
        layer=2,
        k=64,
        fit_kwargs=fit,
        max_cache_tokens=800,
        batch_size=8,
        engine="ray",
        engine_options={"out": tmp_path / "job", "rows_per_shard": 20},
    )
    meta = sae_metadata(ann.sae)
    assert 800 <= meta["curate_fit_sample_tokens"] < 2000  # fitted on a sample, not on every response
    src = ann.source_
    local, _ = curate.annotate_sae(data, model=tiny_lm, layer=2, k=64, sae=ann.sae, source=src)
    for side in C.SIDES:  # the workers used exactly the SAE fitted on the driver
        a, b = _dense(out, side, src, 64), _dense(local, side, src, 64)
        assert a.max() > 0.1
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
