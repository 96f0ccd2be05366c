"""The README's learning numbers are the committed results, regenerated (the examples of README.md and
``docs/*.md`` run in ``tests/test_doctests.py::test_page_examples``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("learning_readme", ROOT / "benchmarks" / "learning_readme.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _block(text: str, mod) -> str:
    return mod.START + text.split(mod.START, 1)[1].split(mod.END, 1)[0] + mod.END


def test_readme_learning_block_is_what_the_committed_results_give():
    mod = _script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(mod.START) == 1 and readme.count(mod.END) == 1
    assert _block(readme, mod) == mod.render(), "run `python benchmarks/learning_readme.py` and commit README.md"
    assert mod.main(["--check"]) == 0


def _run(folder: Path, *, curated_high: float, date: str = "2026-12-08"):
    folder.mkdir(parents=True)
    gen = {"r": 0.41, "r_low": 0.12, "r_high": 0.66, "perm95": 0.31, "n": 14, "planted_r": 0.7}
    gen |= {"planted_r_low": 0.5, "planted_r_high": 0.85}
    rec = {
        "date": date,
        "seeds": [0, 1, 2],
        "model": "tiny",
        "merged_concepts": {"heading+list": ["heading", "list"]},
        "prediction": {"generation": gen, "reward": {"r": -0.2, "r_low": -0.5, "r_high": 0.1, "perm95": 0.3}},
        "blocked_concepts": ["flattery"],
        "blocked": {
            "original": {"shift": 0.9, "low": 0.7, "high": 1.1},
            "curated": {"shift": 0.1, "low": -0.1, "high": curated_high},
            "sham": {"shift": 0.5, "low": 0.35, "high": 0.65},
        },
        "noise_ceiling": {"original": {"r_pooled": 0.8, "r_pooled_low": 0.6, "r_pooled_high": 0.9}},
    }
    (folder / "learning.json").write_text(json.dumps(rec))
    (folder / "summary.txt").write_text("r=0.410 r_low=0.120 …\n")


def test_render_reports_the_newest_committed_run(tmp_path):
    mod = _script()
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    empty = mod.render(results)
    assert "No protocol run committed yet" in empty and mod.COMMAND in empty
    _run(results / "aaaaaaaaaaaa", curated_high=0.3, date="2026-12-07")
    _run(results / "bbbbbbbbbbbb", curated_high=0.45)  # newer: the block reports it
    (results / "notes").mkdir()  # a folder without summary.txt is not a protocol run
    block = mod.render(results)
    assert "benchmarks/results/bbbbbbbbbbbb/" in block and "3 independent seeds" in block
    assert "r +0.41 [+0.12, +0.66]; shuffled-prediction 95th percentile +0.31" in block
    assert "planted-indicator r +0.70 [+0.50, +0.85]" in block and "14 concepts after merging 1" in block
    assert "curated +0.10 [-0.10, +0.45], sham +0.50 [+0.35, +0.65]" in block
    assert "curated below sham: no (CIs overlap or reversed); curated below original: yes" in block
    assert "r above the shuffled 95th percentile: yes" in block and "`summary.txt`: `r=0.410 r_low=0.120 …`" in block
    assert "incomplete" not in block  # no protocol.yaml beside it: nothing to compare the seeds with
    (results / "bbbbbbbbbbbb" / "protocol.yaml").write_text("seeds: [0, 1, 2, 3]\n")
    assert "3 independent seeds of the protocol's 4: the run is incomplete" in mod.render(results)
    text = f"intro\n{empty}\noutro\n"
    assert mod.replace_block(text, block) == f"intro\n{block}\noutro\n"
    with pytest.raises(SystemExit, match="no <!-- learning-results:start -->"):
        mod.replace_block("no markers", block)
