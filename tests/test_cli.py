import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from datasets import load_from_disk

from curate import make_preference_pairs
from curate.pipeline import run_audit

REQUIRED = [
    "concept",
    "label",
    "source",
    "n_pairs",
    "n_differ",
    "win_rate",
    "ci_low",
    "ci_high",
    "effect_size",
    "p_value",
    "q_value",
    "length_controlled_coef",
    "length_controlled_p",
    "confirmed",
]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    make_preference_pairs(300, seed=2).dataset.to_json(str(path), lines=True)
    return path


def _curate(*args, cwd=None):
    exe = Path(sys.executable).with_name("curate")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "curate.cli"]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, cwd=cwd, timeout=300, env={**os.environ, "COLUMNS": "160"}
    )


def test_audit_command_writes_outputs_and_prints_a_table(pairs_file, tmp_path):
    proc = _curate("audit", str(pairs_file), "--out", str(tmp_path / "out"), "--limit", "250")
    assert proc.returncode == 0, proc.stderr
    assert "Ingestion" in proc.stdout and "Findings" in proc.stdout and "win_rate" in proc.stdout
    assert "how it passed" in proc.stdout and any(
        c in proc.stdout for c in ("flattery", "agreement", "heading", "markdown")
    )
    res = pd.read_parquet(tmp_path / "out" / "audit.parquet")
    assert set(REQUIRED) <= set(res.columns) and res["n_pairs"].iloc[0] == 250
    annotated = load_from_disk(str(tmp_path / "out" / "annotated"))
    assert len(annotated) == 250 and annotated["id"] == list(range(250))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ingestion"]["n_usable"] == 250 and summary["audit"]["n_pairs"] == 250


def test_audit_command_reports_bad_input_clearly(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n')
    proc = _curate("audit", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "Accepted formats" in proc.stdout and "answer" in proc.stdout


def test_second_audit_hits_the_datasets_cache(pairs_file, tmp_path):
    first = run_audit(str(pairs_file), out=tmp_path / "a")
    files = [f["filename"] for f in first["dataset"].cache_files]
    assert files
    mtimes = [os.path.getmtime(f) for f in files]
    second = run_audit(str(pairs_file), out=tmp_path / "b")
    assert second["dataset"]._fingerprint == first["dataset"]._fingerprint
    assert [f["filename"] for f in second["dataset"].cache_files] == files
    assert [os.path.getmtime(f) for f in files] == mtimes  # read back, not recomputed
    pd.testing.assert_frame_equal(first["audit"].results_, second["audit"].results_)


def test_generate_command(tmp_path):
    proc = _curate("generate", "--out", str(tmp_path / "g.jsonl"), "--n-pairs", "20")
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 20
    assert (tmp_path / "g.truth.csv").exists()


def test_demo_applies_a_recipe_and_ends_with_the_published_folder(tmp_path):
    """`make demo` without the SAE part (that part is covered in test_sae.py): generate → audit → apply
    the shipped recipe (before/after table) → publish locally, printing the folder last."""
    proc = _curate("demo", "--out", str(tmp_path / "demo"), "--n-pairs", "300", "--no-sae")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "win-rate before" in out and "win-rate after" in out and "flattery" in out
    last = [ln for ln in out.splitlines() if ln.strip()][-1]
    assert last.startswith("Published folder: ")
    folder = Path(last.split(": ", 1)[1].strip())
    assert folder == (tmp_path / "demo" / "published").resolve()
    assert (folder / "README.md").exists() and list((folder / "data").glob("train-*.parquet"))
    # the numbers printed are the curated folder's, each in its column (issue 28: the headers alone passed when
    # the after numbers were printed in the before column)
    ba = pd.read_parquet(next((tmp_path / "demo").glob("*/before_after.parquet")))
    flattery = ba.set_index("concept").loc["flattery"]
    assert flattery["win_rate_before"] > 0.6 and abs(flattery["win_rate_after"] - 0.5) < 0.05
    rows = {ln.split("│")[1].strip(): ln for ln in out.splitlines() if ln.count("│") >= 7}
    for r in ba.itertuples():
        before = f"{r.win_rate_before:.3f} [{r.ci_low_before:.3f}, {r.ci_high_before:.3f}]"
        after = f"{r.win_rate_after:.3f} [{r.ci_low_after:.3f}, {r.ci_high_after:.3f}]"
        line = rows[r.concept]
        assert before in line and after in line and line.index(before) < line.index(after), line


def test_text_from_the_data_prints_literally_never_as_markup(pairs_file, tmp_path):
    """Subset values and an upstream reason are data: `[/bold]` must not end audit/apply with a MarkupError,
    and `[s]x`, `[red]x`, `:smile:` print as written (not struck through, coloured or turned into an emoji)."""
    hostile = ["[/bold]", "[s]x", "[red]x", ":smile:"]
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    for i, r in enumerate(rows):
        r.pop("prompt_messages", None)
        r["subset"], r["reason"] = hostile[i % len(hostile)], "invalid:[/bold] upstream" if i < 3 else None
    data = tmp_path / "hostile.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = _curate("audit", str(data), "--out", str(tmp_path / "a"), "--by", "subset")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    by_subset = proc.stdout[proc.stdout.index("held-out AUC by subset") : proc.stdout.index("Wrote the audit folder")]
    assert all(f" {h} " in by_subset for h in hostile), by_subset
    assert "unusable by reason: invalid:[/bold] upstream: 3" in proc.stdout
    proc = _curate("apply", str(tmp_path / "a"), "--block", "flattery", "--out", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert '(dropped 3: {"invalid:[/bold] upstream": 3})' in proc.stdout


def test_table_cells_hold_text_never_markup():
    """Every table the CLI prints puts data in plain-text cells (a concept, label or subset named like markup)."""
    from rich.console import Console

    from curate.cli._tables import print_audit, print_findings

    row = {"concept": "[/bold]", "label": "[s]x", "win_rate": 0.7, "ci_low": 0.6, "ci_high": 0.8}
    row |= {"length_controlled_q": 0.01, "example": "[red]e"}
    console = Console(record=True, width=200)
    print_findings(pd.DataFrame([{**row, "finding_rank": 1, "where": "[red]x"}]), console)
    print_audit(pd.DataFrame([{**row, "finding": True, "confirmed": True, "n_members": 1}]), console)
    text = console.export_text()
    assert text.count("[/bold]") == 2 and text.count("[s]x") == 2 and "[red]x" in text and "[red]e" in text


def _main(args, capsys):
    from curate.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    out = capsys.readouterr()
    return exit_.value.code, out.out + out.err


def test_a_curate_error_is_one_line_and_any_other_exception_is_a_bug_with_its_traceback(
    pairs_file, tmp_path, capsys, monkeypatch
):
    """Only CurateError (and click's usage errors) print as one line; an internal KeyError is a bug: its
    traceback and a request to report it, never a line that reads like bad input."""
    import curate.pipeline
    from curate.errors import ConfigError

    def fail(exc):
        def raising(*args, **kwargs):
            raise exc

        return raising

    args = ["audit", str(pairs_file), "--out", str(tmp_path / "o")]

    monkeypatch.setattr(curate.pipeline, "audit_pairs", fail(ConfigError("min_pairs must be ≥ 1, got 0.")))
    code, out = _main(args, capsys)
    lines = [ln for ln in out.splitlines() if ln.strip() and "examples/s" not in ln]
    assert code == 2 and lines == ["error: min_pairs must be ≥ 1, got 0."], out

    monkeypatch.setattr(curate.pipeline, "audit_pairs", fail(KeyError("internal_column")))
    code, out = _main(args, capsys)
    assert code == 1, out
    assert "Traceback (most recent call last)" in out and "KeyError: 'internal_column'" in out, out
    assert "this is a bug in curate" in out and "please report it" in out, out
    assert not any(ln.startswith("error: internal_column") for ln in out.splitlines()), out
