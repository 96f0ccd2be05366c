"""Issue 12: one folder contract for audit → apply → publish → app, written atomically; no invalid row in train.

Each numbered problem of the issue has a test here (named ``test_p<N>_...``), then the property test over random
mixes of valid and invalid rows and the kill test. Small data, named concepts only.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from curate import _columns as C
from curate import folders as F
from curate.errors import CurateError
from curate.pipeline import run_apply, run_audit
from curate.publish import publish


# -- data ----------------------------------------------------------------------------------------------
def _good(i: int) -> dict:
    """A usable pair; every third chosen flatters, every fourth uses markdown."""
    chosen = (
        ("Great question! " if i % 3 == 0 else "") + f"Answer number {i}." + (" **Bold** point." if i % 4 == 0 else "")
    )
    return {"prompt": f"Question {i}?", "chosen": chosen, "rejected": f"Reply {i}, plainly."}


def _alpaca_rows(n_good: int = 35) -> list[dict]:
    """AlpacaEval-style judgments: n_good usable, then 15 bad (ties, preference 0 and 3, non-string responses)."""
    rows = []
    for i in range(n_good):
        g = _good(i)
        rows.append({"instruction": g["prompt"], "output_1": g["rejected"], "output_2": g["chosen"], "preference": 2.0})
    bad = [1.5, 0, 3, 1.5, 0, 3, 1.5, 0, 3, 1.5]
    for j, p in enumerate(bad):
        rows.append({"instruction": f"Bad {j}?", "output_1": f"one {j}", "output_2": f"two {j}", "preference": p})
    for j in range(5):  # non-string responses (an int, a list) with a valid preference
        rows.append(
            {
                "instruction": f"Odd {j}?",
                "output_1": 42 if j % 2 else ["a", "list"],
                "output_2": f"x {j}",
                "preference": 2.0,
            }
        )
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _write_alpaca(path: Path) -> Path:
    """The AlpacaEval rows as JSONL (the json loader reads the int and list responses of one column as text)."""
    return _write_jsonl(path, _alpaca_rows())


def _invalid_ids(folder_or_ds) -> dict:
    ds = folder_or_ds
    return {i: r for i, r in zip(ds[C.ID], ds[C.REASON]) if r.startswith(C.INVALID_PREFIX)}


def _assert_accounting(dd, source_rows):
    """rows in = train + dropped, each id once, every invalid row in dropped with its reason."""
    train, dropped = dd[C.TRAIN_SPLIT], dd[C.DROPPED_SPLIT]
    ids_in = [str(i) for i in source_rows[C.ID]]
    t, d = set(map(str, train[C.ID])), [str(i) for i in dropped[C.ID]]
    assert len(d) == len(set(d)) and not (t & set(d))
    assert t | set(d) == set(ids_in) and len(t) + len(d) == len(ids_in)
    invalid = {str(i): r for i, r in _invalid_ids(source_rows).items()}
    assert invalid, "the test data must hold invalid rows"
    assert not (set(invalid) & t)
    got = dict(zip(d, dropped[C.REASON]))
    assert all(got[i] == r for i, r in invalid.items())
    assert not any(r.startswith(C.INVALID_PREFIX) for r in train[C.REASON])


@pytest.fixture(scope="module")
def alpaca(tmp_path_factory):
    root = tmp_path_factory.mktemp("alpaca")
    src = _write_alpaca(root / "alpaca.jsonl")
    run_audit(str(src), out=root / "audit")
    return root


# -- 1. invalid rows reach training --------------------------------------------------------------------
def test_p1_invalid_rows_stay_dropped_when_applying_to_annotated(alpaca, tmp_path):
    audit = F.load_audit(alpaca / "audit")
    annotated = audit.annotated()
    invalid = _invalid_ids(annotated)
    assert len(invalid) == 15 and audit.manifest["rows"] == {"in": 50, "usable": 35, "invalid": 15}
    res = run_apply(str(alpaca / "audit" / "annotated"), block=["flattery"], out=tmp_path / "cur")
    dd = res["dataset"]
    assert not set(invalid) & set(dd["train"]["id"])
    assert res["report"].retention["rows_usable"] == 35 and res["rows"]["train"] + res["rows"]["dropped"] == 50
    _assert_accounting(dd, annotated)


def test_p1_reading_curate_rows_again_keeps_their_invalid_reasons(alpaca, tmp_path):
    """A user who exports annotated rows to a file and reads them back: the reasons survive ingestion."""
    from curate import load_pairs

    annotated = F.load_audit(alpaca / "audit").annotated()
    annotated.to_parquet(str(tmp_path / "rows.parquet"))
    again = load_pairs(str(tmp_path / "rows.parquet"))
    assert _invalid_ids(again) == _invalid_ids(annotated)


# -- 2. rows duplicated --------------------------------------------------------------------------------
def test_p2_apply_on_the_audit_root_reads_each_row_once(alpaca, tmp_path):
    audit = tmp_path / "audit"
    shutil.copytree(alpaca / "audit", audit)
    arrow = next((audit / "annotated").glob("data-*.arrow"))
    shutil.copy(arrow, audit / "annotated" / "cache-0123456789abcdef.arrow")  # what an earlier map leaves
    res = run_apply(str(audit), block=["flattery"], out=tmp_path / "cur")
    dd = res["dataset"]
    assert len(dd["train"]) + len(dd["dropped"]) == 50 and res["rows"]["in"] == 50
    _assert_accounting(dd, F.load_audit(audit).annotated())


# -- 3. rows lost --------------------------------------------------------------------------------------
def test_p3_apply_on_a_curated_folder_keeps_the_dropped_rows(alpaca, tmp_path):
    first = run_apply(str(alpaca / "audit"), recipe=str(_filter_recipe(tmp_path)), out=tmp_path / "one")
    dropped_first = dict(zip(first["dataset"]["dropped"]["id"], first["dataset"]["dropped"]["reason"]))
    assert any(r.startswith("filter:") for r in dropped_first.values())
    second = run_apply(str(tmp_path / "one"), block=["markdown"], out=tmp_path / "two")
    dd = second["dataset"]
    got = dict(zip(dd["dropped"]["id"], dd["dropped"]["reason"]))
    assert all(got.get(i) == r for i, r in dropped_first.items())  # dropped before, still dropped, same reason
    assert second["rows"]["in"] == 50 and second["rows"]["train"] + second["rows"]["dropped"] == 50
    cur = F.load_curated(tmp_path / "two")
    assert cur.audit is not None and cur.manifest["made_from"]["kind"] == "curated"


def _filter_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "filter.yaml"
    path.write_text(
        "name: filter-flattery\nrules:\n  - concepts: [flattery]\n    action: block\n    interventions: [filter]\n"
    )
    return path


# -- 4. not atomic -------------------------------------------------------------------------------------
def test_p4_a_failed_reaudit_leaves_the_old_folder_whole(alpaca, tmp_path, monkeypatch):
    out = tmp_path / "audit"
    shutil.copytree(alpaca / "audit", out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    old = F.read_manifest(out)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the step stops after audit.parquet and annotated/ are written

    monkeypatch.setattr(F.audit_folder, "write_manifest", killed)  # where write_audit_files looks it up
    data = _write_jsonl(tmp_path / "other.jsonl", [_good(i) for i in range(30)])
    with pytest.raises(KeyboardInterrupt):
        run_audit(str(data), out=out)
    monkeypatch.undo()
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert F.read_manifest(out)["source_fingerprint"] == old["source_fingerprint"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_p4_partial_or_foreign_folders_are_refused_with_the_command_to_run(alpaca, tmp_path):
    # an apply killed by an older curate: splits written, no manifest
    cur = tmp_path / "cur"
    dd = F.load_audit(alpaca / "audit").annotated()
    datasets.DatasetDict({"train": dd, "dropped": dd.select([])}).save_to_disk(str(cur))
    with pytest.raises(F.FolderError, match=r"curate apply"):
        publish(cur, repo_id="a/b", local_dir=tmp_path / "pub", upload=False)
    assert not (tmp_path / "pub").exists()
    # an audit folder missing a file its manifest lists (mixed by hand)
    mixed = tmp_path / "audit"
    shutil.copytree(alpaca / "audit", mixed)
    (mixed / "summary.json").unlink()
    with pytest.raises(F.FolderError, match=r"incomplete audit folder.*curate audit"):
        run_apply(str(mixed), block=["flattery"], out=tmp_path / "c2")
    # a folder of another kind
    with pytest.raises(F.FolderError, match=r"is a audit folder|is an audit folder|audit folder \(made by"):
        publish(alpaca / "audit", repo_id="a/b", local_dir=tmp_path / "p2", upload=False)
    # an --out that holds something else is never replaced
    with pytest.raises(F.FolderError, match="holds a audit folder|holds an audit folder|holds a audit"):
        run_apply(str(alpaca / "audit"), block=["flattery"], out=alpaca / "audit")


def test_p4_audit_dir_of_other_rows_is_refused(alpaca, tmp_path):
    run_apply(str(alpaca / "audit"), block=["flattery"], out=tmp_path / "cur")
    other = _write_jsonl(tmp_path / "other.jsonl", [_good(i) for i in range(30)])
    run_audit(str(other), out=tmp_path / "other_audit")
    with pytest.raises(F.FolderError, match="audited other rows"):
        publish(
            tmp_path / "cur",
            repo_id="a/b",
            local_dir=tmp_path / "pub",
            audit_dir=tmp_path / "other_audit",
            upload=False,
        )


# -- 5. a published folder without a prior audit can be browsed ----------------------------------------
def test_p5_published_from_raw_data_carries_its_audit_and_opens_in_the_app(tmp_path):
    from curate import make_preference_pairs
    from curate.browse import build_app, load_app_data
    from curate.browse.render import render_summary

    data = tmp_path / "pairs.jsonl"
    make_preference_pairs(300, seed=0).dataset.remove_columns(["prompt_messages", "reason"]).to_json(str(data))
    run_apply(str(data), block=["flattery"], out=tmp_path / "cur")
    assert F.load_curated(tmp_path / "cur").audit is not None
    pub = publish(tmp_path / "cur", repo_id="a/b", local_dir=tmp_path / "pub", upload=False)
    card = (pub / "README.md").read_text()
    assert "No audit table of the source data" not in card and "flattery" in card
    app_data = load_app_data(pub)
    s = app_data.summary()
    assert s["missing"] == [] and s["concepts"] > 10 and s["findings"] >= 1 and s["rows"] == 300
    assert "flattery" in set(app_data.audit.loc[app_data.audit["finding"].astype(bool), "concept"])
    assert "Missing" not in render_summary(app_data)
    build_app(str(pub))  # the Blocks build (no server)


def test_p5_app_opens_every_kind_and_says_what_is_missing(alpaca, tmp_path):
    from curate.browse import load_app_data
    from curate.browse.render import render_summary

    assert load_app_data(alpaca / "audit").summary()["kind"] == "audit folder"
    run_apply(str(alpaca / "audit"), block=["flattery"], out=tmp_path / "cur")
    assert load_app_data(tmp_path / "cur").summary()["rows"] == 50
    dd = F.load_audit(alpaca / "audit").annotated()
    F.save_curated(
        tmp_path / "bare",
        datasets.DatasetDict(
            {"train": dd.filter(lambda r: not r["reason"]), "dropped": dd.filter(lambda r: bool(r["reason"]))}
        ),
    )
    bare = load_app_data(tmp_path / "bare")
    assert bare.summary()["missing"] and "Missing" in render_summary(bare)
    with F.atomic_folder(tmp_path / "learn", kind="learning") as tmp:
        F.write_manifest(tmp, kind="learning", made_from=tmp_path / "cur")
    with pytest.raises(F.FolderError, match="learning folder.*no pairs"):
        load_app_data(tmp_path / "learn")


# -- 6. data blocks publishing -------------------------------------------------------------------------
def test_p6_template_syntax_in_the_data_is_published_as_data(tmp_path):
    rows = [_good(i) for i in range(40)]
    for r in rows[:20]:
        r["chosen"] = "Great question! Hello {{ user.name }}, {% if x %}yes{% endif %} " + r["chosen"]
    data = _write_jsonl(tmp_path / "pairs.jsonl", rows)
    run_apply(str(data), block=["flattery"], out=tmp_path / "cur")
    pub = publish(tmp_path / "cur", repo_id="a/b", local_dir=tmp_path / "pub", upload=False)
    loaded = datasets.load_dataset(str(pub), cache_dir=str(tmp_path / "cache"))
    assert sum("{{ user.name }}" in c for c in loaded["train"]["chosen"]) == 20
    assert "{{ user.name }}" in (pub / "README.md").read_text()  # quoted in the card's examples, as data
    assert F.open_folder(pub, kind="published").manifest["rows"]["in"] == 40


# -- 7. loader errors and the command line -------------------------------------------------------------
def _main(args, capsys):
    from curate.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    out = capsys.readouterr()
    return exit_.value.code, out.out + out.err


@pytest.mark.parametrize(
    "name,content,expected",
    [
        (
            "bad.jsonl",
            '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": \n',
            r"bad\.jsonl, line 2: not valid JSON",
        ),
        ("empty.jsonl", "", r"empty\.jsonl is empty"),
        ("empty.csv", "", r"empty\.csv is empty"),
        ("header.csv", "prompt,chosen,rejected\n", r"header\.csv has a header but no rows"),
        ("trunc.jsonl.gz", None, r"trunc\.jsonl\.gz is truncated or not a valid gzip file"),
    ],
)
def test_p7_loader_errors_are_one_line_naming_the_file(tmp_path, capsys, name, content, expected):
    import gzip
    import re

    path = tmp_path / name
    if content is None:
        blob = gzip.compress(b"".join(json.dumps(_good(i)).encode() + b"\n" for i in range(3000)))
        path.write_bytes(blob[: len(blob) // 2])
    else:
        path.write_text(content)
    code, out = _main(["audit", str(path), "--out", str(tmp_path / "o")], capsys)
    lines = [ln for ln in out.splitlines() if "examples/s" not in ln and ln.strip()]  # datasets' progress bars
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and re.search(expected, lines[0]), out
    assert "Traceback" not in out
    assert not (tmp_path / "o").exists()


def test_p7_misspelt_local_path_is_not_a_hub_download(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for arg in ("mydata", "data/pairs.jsonl", "data/pairs"):
        code, out = _main(["apply", arg, "--block", "flattery", "--out", "o"], capsys)
        assert code == 2 and "No such file or folder" in out and "Hub (" not in out, out


def test_p7_debug_shows_the_traceback_and_ctrl_c_says_so(tmp_path, capsys, monkeypatch):
    import curate.pipeline
    from curate.cli import main

    with pytest.raises(CurateError, match="No such file"):
        main(["audit", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o"), "--debug"])

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(curate.pipeline, "audit_pairs", interrupted)
    code, out = _main(["audit", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "o")], capsys)
    assert code == 130 and "interrupted" in out and "Traceback" not in out


# -- 8. smaller ----------------------------------------------------------------------------------------
def test_p8_conversational_rows_ending_in_a_user_turn_get_a_reason():
    from curate import load_pairs

    ok = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    cut = [
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hey."},
        {"role": "user", "content": "And?"},
    ]
    ds = load_pairs(
        datasets.Dataset.from_list(
            [
                {"chosen": ok, "rejected": [ok[0], {"role": "assistant", "content": "Yo."}]},
                {"chosen": ok, "rejected": cut},
            ]
        )
    )
    assert ds[C.REASON] == ["", "invalid:rejected_ends_with_user_turn"]


def test_p8_rules_that_change_nothing_are_warned_about(alpaca, tmp_path, capsys):
    res = run_apply(str(alpaca / "audit"), block=["emoji"], out=tmp_path / "cur")
    assert any("'emoji'" in w and "changes nothing" in w for w in res["warnings"])
    empty = tmp_path / "empty.yaml"
    empty.write_text("name: nothing\nrules: []\n")
    res = run_apply(str(alpaca / "audit"), recipe=str(empty), out=tmp_path / "cur2")
    assert any("no rules" in w for w in res["warnings"])
    code, out = _main(["apply", str(alpaca / "audit"), "--block", "emoji", "--out", str(tmp_path / "cur3")], capsys)
    assert code == 0 and "warning:" in out and "emoji" in out


def test_p8_republishing_says_so_and_keeps_no_stray_file(alpaca, tmp_path, caplog):
    run_apply(str(alpaca / "audit"), block=["flattery"], out=tmp_path / "cur")
    pub = publish(tmp_path / "cur", repo_id="a/b", local_dir=tmp_path / "pub", upload=False)
    (pub / "stray.txt").write_text("would be uploaded")
    (pub / "data" / "old-00000-of-00001.parquet").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="curate.publish"):
        publish(tmp_path / "cur", repo_id="a/b", local_dir=pub, upload=False)
    assert "replaced the earlier published folder" in caplog.text
    assert not (pub / "stray.txt").exists() and not (pub / "data" / "old-00000-of-00001.parquet").exists()


# -- the folder module ---------------------------------------------------------------------------------
def test_account_rows_catches_each_break():
    ds = datasets.Dataset.from_dict
    rows_in = ([0, 1, 2, 3], ["", "", "invalid:tie", ""])
    train = ds({"row": [0, 1, 3], "reason": ["", "", ""]})
    dropped = ds({"row": [2], "reason": ["invalid:tie"]})
    assert F.account_rows(*rows_in, train, dropped)["train"] == 3
    cases = {
        "lost": (ds({"row": [0, 1], "reason": ["", ""]}), dropped),
        "more than once": (ds({"row": [0, 1, 3, 2], "reason": ["", "", "", ""]}), dropped),
        "invalid:": (ds({"row": [0, 1, 3, 2], "reason": ["", "", "", "invalid:tie"]}), ds({"row": [], "reason": []})),
        "reason changed": (train, ds({"row": [2], "reason": ["filter:x"]})),
    }
    for what, (t, d) in cases.items():
        with pytest.raises(F.RowAccountingError, match=what):
            F.account_rows(*rows_in, t, d)
    # a resampled row may repeat inside train
    assert F.account_rows(*rows_in, ds({"row": [0, 0, 1, 3], "reason": [""] * 4}), dropped)["train_rows"] == 4
    # the row index identifies a row; a repeated one in the input is refused, never counted as one row
    with pytest.raises(F.RowAccountingError, match="row index repeats"):
        F.account_rows([0, 0, 2, 3], rows_in[1], ds({"row": [0, 3], "reason": [""] * 2}), dropped)


def test_learning_folder_api(tmp_path):
    out = tmp_path / "learn"
    with F.atomic_folder(out, kind="learning") as tmp:
        (tmp / F.LEARNING_TABLE).write_bytes(b"x")
        (tmp / F.LEARNING_RECORD).write_text("{}")
        F.write_manifest(tmp, kind="learning", rows={"train": 3}, source="cur")
    f = F.open_folder(out, kind="learning")
    assert f.manifest["files"] == [F.LEARNING_RECORD, F.LEARNING_TABLE] and f.manifest["rows"] == {"train": 3}
    with pytest.raises(F.FolderError, match="learning folder"):
        F.open_folder(out, kind="curated")
    with pytest.raises(F.FolderError, match="wrote no curate.json"), F.atomic_folder(out, kind="learning") as tmp:
        (tmp / "x").write_text("no manifest")
    assert F.open_folder(out).manifest["files"] == [
        F.LEARNING_RECORD,
        F.LEARNING_TABLE,
    ]  # the old folder is still there
    (out / F.LEARNING_TABLE).unlink()
    with pytest.raises(F.FolderError, match="incomplete learning folder"):
        F.open_folder(out, kind="learning")


# -- property: random mixes of valid and invalid rows through audit → apply → publish -------------------
INTERVENTIONS = ("filter", "rebalance", "resample", "relabel", "margin", "inoculate", "upweight")
INPUTS = ("raw", "annotated", "audit", "curated")
BAD = {
    "identical": lambda i: {"prompt": f"Same {i}?", "chosen": "Same.", "rejected": "Same."},
    "empty": lambda i: {"prompt": f"Empty {i}?", "chosen": "   ", "rejected": "Something."},
    "missing": lambda i: {"prompt": f"None {i}?", "chosen": f"Only one {i}.", "rejected": None},
    "number": lambda i: {"prompt": f"Int {i}?", "chosen": 42 + i, "rejected": "Text."},
    "list": lambda i: {"prompt": f"List {i}?", "chosen": "Text.", "rejected": ["a", i]},
}


def _published_rows(pub: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    splits = {}
    for split in (C.TRAIN_SPLIT, C.DROPPED_SPLIT):
        files = sorted((pub / "data").glob(f"{split}-*.parquet"))
        splits[split] = (
            datasets.Dataset(pa.concat_tables([pq.read_table(f) for f in files]))
            if files
            else datasets.Dataset.from_dict({C.ID: [], C.REASON: []})
        )
    return splits


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    given = None

if given is not None:

    @pytest.mark.parametrize("intervention", INTERVENTIONS)
    @settings(
        max_examples=4,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        flags=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=8, max_size=24),
        bad=st.lists(st.sampled_from(sorted(BAD)), min_size=1, max_size=8),
        seed=st.integers(0, 10_000),
        given_as=st.sampled_from(INPUTS),
    )
    def test_property_rows_in_equal_train_plus_dropped(tmp_path_factory, intervention, flags, bad, seed, given_as):
        """Every intervention, on raw data / annotated/ / the audit root / a curated folder, then published:
        rows in = train + dropped, each id once, no invalid row in train (4 random row mixes each)."""
        from curate import load_pairs

        root = tmp_path_factory.mktemp("prop")
        rows = []
        for i, (flatter, bold) in enumerate(flags):
            r = _good(i)
            r["chosen"] = ("Great question! " if flatter else "") + f"Answer {i}." + (" **Bold**." if bold else "")
            rows.append(r)
        rows += [BAD[kind](j) for j, kind in enumerate(bad)]
        random.Random(seed).shuffle(rows)
        data = _write_jsonl(root / "pairs.jsonl", rows)
        action = "amplify" if intervention == "upweight" else "block"
        recipe = root / "r.yaml"
        recipe.write_text(
            f"name: prop\nrules:\n  - concepts: [flattery]\n    action: {action}\n    interventions: [{intervention}]\n"
        )
        source = str(data)
        if given_as in ("annotated", "audit", "curated"):
            run_audit(str(data), out=root / "audit")
            source = str(root / "audit" / "annotated") if given_as == "annotated" else str(root / "audit")
        if given_as == "curated":
            run_apply(source, recipe=str(_filter_recipe(root)), out=root / "first")
            source = str(root / "first")
        res = run_apply(source, recipe=str(recipe), out=root / "cur")
        pub = publish(root / "cur", repo_id="a/b", local_dir=root / "pub", upload=False)
        ingested = load_pairs(str(data))
        assert len(_invalid_ids(ingested)) == len(bad)
        _assert_accounting(res["dataset"], ingested)
        _assert_accounting(_published_rows(pub), ingested)
        assert F.read_manifest(pub)["rows"]["in"] == len(rows)


# -- kill: SIGKILL `curate audit` / `curate apply` while they write into an existing folder ---------------
def _cli(*args):
    exe = Path(sys.executable).with_name("curate")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "curate.cli"]
    return [*cmd, *args]


def _run_and_kill(args, folder: Path, delay: float) -> str:
    """Run the command and SIGKILL it ``delay`` seconds after it starts writing (its temporary folder beside
    ``folder`` appears). Returns "killed" or "finished"."""
    env = {**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    t0 = time.perf_counter()
    while proc.poll() is None and not list(folder.parent.glob(f".{folder.name}.tmp-{proc.pid}-*")):
        assert time.perf_counter() - t0 < 120
        time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is not None:
        assert proc.returncode == 0
        return "finished"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return "killed"


def test_kill_audit_and_apply_leave_the_old_folder_or_the_new_one(tmp_path):
    from curate import make_preference_pairs

    old_data, new_data = tmp_path / "old.jsonl", tmp_path / "new.jsonl"
    make_preference_pairs(120, seed=0).dataset.to_json(str(old_data))
    make_preference_pairs(400, seed=1).dataset.to_json(str(new_data))
    audit, cur = tmp_path / "audit", tmp_path / "cur"
    run_audit(str(old_data), out=audit)
    run_apply(str(audit), block=["flattery"], out=cur)
    rng = random.Random(12)
    outcomes = []
    for command, folder in (
        (["audit", str(new_data), "--out", str(audit)], audit),
        (["apply", str(new_data), "--block", "flattery", "--out", str(cur)], cur),
    ):
        saved = tmp_path / f"saved-{folder.name}"
        shutil.copytree(folder, saved)
        for delay in (rng.uniform(0.0, 0.05), rng.uniform(0.05, 0.4)):  # kill points inside the writes
            outcome = _run_and_kill(command, folder, delay)
            rows_in = F.read_manifest(folder)["rows"]["in"]
            outcomes.append((folder.name, outcome, rows_in))
            # the old folder, or the new one (a kill after the swap, while the old copy is being removed)
            assert rows_in in (120, 400) and (outcome == "killed" or rows_in == 400)
            if folder == audit:
                a = F.load_audit(audit)  # complete, or this raises
                assert len(a.annotated()) == rows_in and a.summary["ingestion"]["n_rows"] == rows_in
            else:
                c = F.load_curated(cur)  # complete and its rows account, or this raises
                assert len(c.audit.annotated()) == rows_in
                pub = publish(cur, repo_id="a/b", local_dir=tmp_path / "pub", upload=False)
                assert F.read_manifest(pub)["rows"]["in"] == rows_in
            shutil.rmtree(folder)  # back to the old folder for the next kill
            shutil.copytree(saved, folder)
    print("kill outcomes:", outcomes)
    assert any(o == "killed" for _, o, _ in outcomes)
    run_audit(str(old_data), out=audit)  # a later write clears what killed runs left beside the folder
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".audit.tmp-")]


def test_docstring_examples():
    import doctest

    result = doctest.testmod(F, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
