"""Hostile recipe YAML (issue 27, item 3): a 475-byte alias bomb, 20,000 nested brackets and a huge value are
refused quickly, with little memory, through every door a recipe comes in: ``load_recipe``, ``curate apply`` and
the app opening a folder whose ``recipe.yaml`` is the bomb. Each door runs in a fresh subprocess that reports its
own time and peak memory (``ru_maxrss``) around the call, so a regression ends in a failed assertion (or the
subprocess timeout), never in a test run that eats the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from curate.errors import RecipeError
from curate.recipe import Recipe, load_recipe


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": 9 levels of 9 aliases each expand to 9**9 (387 million) strings."""
    lines = ["a0: &a0 [" + ",".join(['"lol"'] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    lines += ["rules:", f"  - concepts: *a{levels - 1}", "    action: block"]
    return "\n".join(lines) + "\n"


def measure(setup: str, call: str, tmp_path: Path, *, warm: str | None = None, timeout: float = 60) -> dict:
    """Run ``setup``, then ``warm`` (the same door with a harmless bad recipe: what any call imports is loaded,
    so the timing is the bomb's own cost), then ``call``, in a fresh interpreter. Returns the seconds and the extra
    peak memory of ``call`` alone, the error it ended with (an exception's text, or ``SystemExit`` with the printed
    output), and ``warm_seconds`` (the baseline: the same door, refusing an ordinary bad recipe)."""
    out = tmp_path / "measure.json"
    script = textwrap.dedent(
        """
        import contextlib, io, json, resource, sys, time
        {setup}
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                {warm}
        except (SystemExit, Exception):
            pass
        warm_seconds = time.perf_counter() - t0
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        printed, error = io.StringIO(), None
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                {call}
        except SystemExit as err:
            error = f"exit {{err.code}}: {{printed.getvalue()}}"
        except Exception as err:
            error = f"{{type(err).__name__}}: {{err}}"
        seconds = time.perf_counter() - t0
        extra_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        result = {{"seconds": seconds, "extra_mb": extra_mb, "error": error, "warm_seconds": warm_seconds}}
        json.dump(result, open({out!r}, "w"))
        """
    ).format(setup=setup, warm=warm or "pass", call=call, out=str(out))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


def assert_refused(result: dict, *, names: str) -> None:
    assert result["error"] is not None, "the bomb was accepted"
    assert names in result["error"] and "alias" in result["error"], result["error"][:500]
    assert len(result["error"]) < 2000, "the error message repeats the expanded input"
    assert result["seconds"] < 1.0, result
    assert result["extra_mb"] < 100, result


@pytest.fixture
def bomb(tmp_path) -> Path:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 500
    return path


@pytest.fixture
def typo(tmp_path) -> Path:
    """An ordinary bad recipe (an unknown key): the baseline each door refuses."""
    path = tmp_path / "typo.yaml"
    path.write_text("rulez: []\n")
    return path


def test_load_recipe_refuses_the_alias_bomb_quickly(bomb, typo, tmp_path):
    result = measure(
        "from curate.recipe import load_recipe",
        f"load_recipe({str(bomb)!r}, validate_ids=False)",
        tmp_path,
        warm=f"load_recipe({str(typo)!r}, validate_ids=False)",
    )
    assert_refused(result, names=str(bomb))


def test_curate_apply_refuses_the_alias_bomb_quickly(bomb, typo, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "chosen": "yes, sure", "rejected": "no"}) + "\n" for i in range(3))
    )
    args = ["apply", str(data), "--recipe", str(bomb), "--out", str(tmp_path / "out")]
    warm = [a if a != str(bomb) else str(typo) for a in args]
    result = measure("from curate.cli import main", f"main({args!r})", tmp_path, warm=f"main({warm!r})")
    assert result["error"].startswith("exit 2: error:"), result["error"][:500]
    assert_refused(result, names="bomb.yaml")
    assert not (tmp_path / "out").exists()


def test_the_app_refuses_a_published_folder_whose_recipe_is_the_bomb(tmp_path):
    """What `curate app FOLDER` (and the Space, for a Hub id) calls to open a folder: load_app_data."""
    from curate.generate import make_preference_pairs
    from curate.pipeline import run_apply, run_audit
    from curate.publish import publish

    data = tmp_path / "pairs.jsonl"
    make_preference_pairs(60, seed=0).dataset.to_json(str(data), lines=True)
    run_audit(str(data), out=tmp_path / "audit")
    run_apply(str(tmp_path / "audit"), block=["flattery"], out=tmp_path / "curated")
    folder = publish(tmp_path / "curated", repo_id="someone/bomb", local_dir=tmp_path / "published", upload=False)
    bombed = tmp_path / "bombed"
    shutil.copytree(folder, bombed)
    (bombed / "audit" / "recipe.yaml").write_text(alias_bomb())
    opens = f"load_app_data({str(folder)!r})"  # the same folder with its own recipe: the baseline, and it opens
    assert measure("from curate.browse.loading import load_app_data", opens, tmp_path)["error"] is None
    result = measure(
        "from curate.browse.loading import load_app_data", f"load_app_data({str(bombed)!r})", tmp_path, warm=opens
    )
    assert_refused(result, names="audit/recipe.yaml")
    assert result["error"].startswith("RecipeError")


def test_deep_nesting_is_a_clear_error_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("rules: " + "[" * 20_000)
    with pytest.raises(RecipeError, match=r"deep\.yaml: line 1: .*nest deeper than \d+ levels"):
        load_recipe(path)


def test_validation_errors_show_at_most_about_200_characters_of_a_value():
    huge = "x" * 100_000
    for text in (f"name: [{huge}]", f"rules:\n  - concepts: [{huge}]\n    action: block", f"seed: {huge}"):
        with pytest.raises(RecipeError) as err:
            Recipe.from_yaml(text)
        assert len(str(err.value)) < 600, str(err.value)[:300]


def test_ordinary_anchors_still_load():
    r = Recipe.from_yaml(
        "rules:\n  - concepts: [flattery]\n    action: block\n    interventions: &how [rebalance, margin]\n"
        "  - concepts: [agreement]\n    action: block\n    interventions: *how\n"
    )
    assert r.blocked() == ["flattery", "agreement"] and r.rules[1].interventions == ["rebalance", "margin"]
