"""Ingestion keeps every row, tells rows apart by their position, and reads hostile or broken input as data:
conversations that would be silently corrupted, content-free texts, missing prompts, bytes that are not UTF-8
and cells that are not JSON (issue 27)."""

import gzip
import json

import pytest
from datasets import Dataset, Value

from curate import load_pairs, make_preference_pairs
from curate.errors import FormatError
from curate.ingest import ensure_row_index, ingestion_summary


def msgs(*turns):
    """[("user", "hi"), ("assistant", "hello")] -> chat messages."""
    return [{"role": role, "content": text} for role, text in turns]


def hh(*turns):
    return "".join(f"\n\n{'Human' if role == 'user' else 'Assistant'}: {text}" for role, text in turns)


# -- row identity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"prompt": ["p0", "p1", "p2"], "chosen": ["a", "b", "same"], "rejected": ["x", "y", "same"]},
        {"chosen": [msgs(("user", "q"), ("assistant", f"a{i}")) for i in range(3)], "rejected": [None] * 2 + [[]]},
        {
            "chosen": [hh(("user", "q"), ("assistant", "a"))] * 3,
            "rejected": [hh(("user", "q"), ("assistant", "b"))] * 3,
        },
        {"chosen": ["Q: a? A: yes"] * 3, "rejected": ["Q: a? A: no"] * 3},
        {"prompt": ["p"] * 3, "completions": [[{"response": "a", "score": 1.0}, {"response": "b", "score": 2.0}]] * 3},
        {"instruction": ["i"] * 3, "output_1": ["a"] * 3, "output_2": ["b"] * 3, "preference": [1.0, 2.0, 1.5]},
    ],
    ids=["standard", "conversational", "hh", "implicit", "rated", "pairwise"],
)
def test_every_format_gets_row_the_source_position(raw):
    ds = load_pairs(Dataset.from_dict(raw))
    assert ds.features["row"] == Value("int64")
    assert ds["row"] == [0, 1, 2]  # invalid rows (identical, missing, empty, tie) included


def test_row_beside_repeated_and_null_ids_which_are_counted_and_kept():
    raw = {
        "id": ["a", "a", None, "b", "a", None],
        "prompt": ["p"] * 6,
        "chosen": ["c", "c", "c", "c", "c", ""],
        "rejected": ["r"] * 6,
    }
    ds = load_pairs(Dataset.from_dict(raw), limit=6)
    assert ds["row"] == [0, 1, 2, 3, 4, 5] and ds["id"] == raw["id"]
    summary = ingestion_summary(ds)
    assert (summary["n_duplicate_ids"], summary["n_null_ids"]) == (2, 2)
    assert (summary["n_rows"], summary["n_usable"]) == (6, 5)


def test_row_of_a_file_and_of_all_pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "chosen": "c", "rejected": "r"}) + "\n" for i in range(4)))
    assert load_pairs(str(path), limit=3)["row"] == [0, 1, 2]
    comps = [{"response": t, "score": s} for t, s in (("a", 1.0), ("b", 2.0), ("c", 3.0))]
    allp = load_pairs(
        Dataset.from_dict({"prompt": ["p", "q"], "completions": [comps, comps]}), rated_policy="all_pairs"
    )
    assert allp["row"] == list(range(6)) and allp.column_names[0] == "row"  # one identity per pair


def test_ensure_row_index_and_data_that_already_has_a_row_column():
    assert ensure_row_index(Dataset.from_dict({"id": [3, 3, 3]}))["row"] == [0, 1, 2]
    gen = make_preference_pairs(5, seed=0).dataset
    assert gen["row"] == [0, 1, 2, 3, 4] and ensure_row_index(gen) is gen
    assert load_pairs(gen).column_names == gen.column_names  # curate's own rows read back whole
    # a subset (or a resampled split) of rows curate read before: row is the position here, the old one kept
    again = load_pairs(load_pairs(gen).select([4, 1, 1]))
    assert (again["row"], again["input_row"]) == ([0, 1, 2], [4, 1, 1])
    raw = {"prompt": ["p", "q"], "chosen": ["a", "b"], "rejected": ["c", "d"], "row": ["x", None]}
    assert load_pairs(Dataset.from_dict(raw))["input_row"] == ["x", None]  # a user's own column named row
    with pytest.raises(FormatError, match=r"both 'row'.*and 'input_row'.*rename"):
        load_pairs(Dataset.from_dict({**raw, "input_row": [1, 2]}))


# -- conversations --------------------------------------------------------------------------------------


def test_a_user_turn_inside_a_conversational_response_is_unusable():
    prompt = msgs(("user", "Hi?"))
    bad = msgs(("assistant", "Hello."), ("user", "ignore that"), ("assistant", "Bye."))
    good = msgs(("assistant", "Hey."))
    ds = load_pairs(Dataset.from_dict({"prompt": [prompt, prompt], "chosen": [bad, good], "rejected": [good, bad]}))
    assert ds["reason"] == ["invalid:chosen_has_user_turn", "invalid:rejected_has_user_turn"]
    # implicit prompt: after the shared turns, one side goes on with the user speaking
    q = msgs(("user", "Hi?"))
    ds = load_pairs(Dataset.from_dict({"chosen": [q + bad], "rejected": [q + good]}))
    assert ds["reason"] == ["invalid:chosen_has_user_turn"]


def test_sides_that_repeat_an_explicit_prompt_stay_usable():
    # UltraFeedback-binarized: prompt is a string and each side is the whole conversation
    ds = load_pairs(
        Dataset.from_dict(
            {
                "prompt": ["Hi?"],
                "chosen": [msgs(("user", "Hi?"), ("assistant", "Hello."))],
                "rejected": [msgs(("user", "Hi?"), ("assistant", "Go."))],
            }
        )
    )
    assert (ds[0]["prompt"], ds[0]["chosen"], ds[0]["rejected"], ds[0]["reason"]) == ("Hi?", "Hello.", "Go.", "")


def test_an_hh_side_that_ends_with_a_human_turn_is_unusable():
    good, other = hh(("user", "Hi"), ("assistant", "Hello!")), hh(("user", "Hi"), ("assistant", "Yo."))
    bad = hh(("user", "Hi"), ("assistant", "Hello!"), ("user", "and now?"))
    empty_then_human = "\n\nHuman: Hi\n\nAssistant:\n\nHuman: and now?"  # nothing between the two markers
    ds = load_pairs(
        Dataset.from_dict({"chosen": [bad, good, empty_then_human, good], "rejected": [other, bad, other, other]})
    )
    assert ingestion_summary(ds)["format"] == "hh"
    assert ds["reason"] == [
        "invalid:chosen_ends_with_user_turn",
        "invalid:rejected_ends_with_user_turn",
        "invalid:chosen_ends_with_user_turn",
        "",
    ]
    assert (ds[3]["chosen"], ds[3]["rejected"]) == ("Hello!", "Yo.")


@pytest.mark.parametrize("fmt", ["conversational", "conversational_with_prompt", "hh"])
def test_one_null_first_row_does_not_condemn_the_rest(fmt, tmp_path):
    rows = []
    for i in range(60):
        if fmt == "hh":
            row = {
                "chosen": hh(("user", f"q{i}"), ("assistant", "yes")),
                "rejected": hh(("user", f"q{i}"), ("assistant", "no")),
            }
        else:
            row = {
                "chosen": msgs(("user", f"q{i}"), ("assistant", "yes")),
                "rejected": msgs(("user", f"q{i}"), ("assistant", "no")),
            }
            if fmt == "conversational_with_prompt":
                row = {"prompt": msgs(("user", f"q{i}")), "chosen": row["chosen"][1:], "rejected": row["rejected"][1:]}
        rows.append(row)
    rows[0] = dict.fromkeys(rows[1])  # every field of the first row is null
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = load_pairs(str(path))
    summary = ingestion_summary(ds)
    assert summary["format"] == ("hh" if fmt == "hh" else "conversational")
    assert summary["n_usable"] == 59 and ds["reason"][0].startswith("invalid:missing_")
    assert ds["chosen"][1:] == ["yes"] * 59


# -- content-free texts and missing prompts ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["\u200b\u200b", "\x00\x00\x00", " \ufeff\u200d\n", "\u200c", "\u2060\x00 \t"])
def test_content_free_responses_are_unusable(text):
    ds = load_pairs(
        Dataset.from_dict(
            {"prompt": ["p", "q", "r"], "chosen": ["ok", text, "\u200bhi"], "rejected": ["no", "no", "no"]}
        )
    )
    assert ds["reason"] == ["", "invalid:empty_chosen", ""]
    conv = load_pairs(
        Dataset.from_dict(
            {"prompt": ["p"], "chosen": [msgs(("assistant", "ok"))], "rejected": [msgs(("assistant", text))]}
        )
    )
    assert conv["reason"] == ["invalid:empty_rejected"]


@pytest.mark.parametrize(
    "raw",
    [
        {"prompt": ["p", None], "chosen": ["a", "a"], "rejected": ["b", "b"]},
        {"instruction": ["i", None], "output_1": ["a", "a"], "output_2": ["b", "b"], "preference": [1.0, 1.0]},
        {"prompt": ["p", None], "responses": [["a", "b"]] * 2, "scores": [[1.0, 2.0]] * 2},
    ],
    ids=["standard", "pairwise", "rated"],
)
def test_a_missing_prompt_makes_the_pair_unusable(raw):
    ds = load_pairs(Dataset.from_dict(raw))
    assert ds["reason"] == ["", "invalid:missing_prompt"] and ds["row"] == [0, 1]


# -- errors name the file, the line or row, and the fix ----------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".csv"])
def test_invalid_utf8_names_the_file_the_line_and_the_fix(tmp_path, suffix):
    base = suffix.removesuffix(".gz")
    if base == ".csv":
        lines = [b"prompt,chosen,rejected", b"p,a,b", b"p,caf\xe9,b", b"p,c,d"]
    else:
        lines = [json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}).encode() for _ in range(3)]
        lines[2] = b'{"prompt": "p", "chosen": "caf\xe9", "rejected": "b"}'
        if base == ".json":
            lines = [b"["] + [line + b"," for line in lines[:2]] + [lines[2], b"]"]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path / f"pairs{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    with pytest.raises(FormatError) as err:
        load_pairs(str(path))
    msg = str(err.value)
    line = 4 if base == ".json" else 3  # the JSON document opens with "[" on a line of its own
    assert f"{path}, line {line}: not valid UTF-8" in msg and "Save the file as UTF-8" in msg


@pytest.mark.parametrize("cell", ["not json [", '{"response": "a", "score": 1}'])
def test_a_completions_cell_that_is_not_a_json_list_names_the_file_the_row_and_the_fix(tmp_path, cell):
    good = json.dumps([{"response": "a", "score": 1}, {"response": "b", "score": 2}])
    path = tmp_path / "rated.jsonl"
    path.write_text("".join(json.dumps({"prompt": "p", "completions": c}) + "\n" for c in (good, good, cell, good)))
    with pytest.raises(FormatError) as err:
        load_pairs(str(path))
    msg = str(err.value)
    assert f"{path}, row 2" in msg and "completions cell" in msg and "JSON list" in msg


def test_a_conversational_prompt_that_is_not_messages_is_marked_not_a_crash():
    turn = msgs(("assistant", "x"))
    ds = load_pairs(
        Dataset.from_dict({"prompt": [["just", "strings"]], "chosen": [turn], "rejected": [msgs(("assistant", "y"))]})
    )
    assert ds["reason"] == ["invalid:non_messages_prompt"]


def test_ids_of_mixed_types_are_counted(tmp_path):
    """A JSON Lines file with numeric and text ids (datasets reads them as one Json column)."""
    from curate import load_pairs

    rows = [
        {"id": i, "prompt": f"q{n}", "chosen": f"a{n}", "rejected": f"b{n}"} for n, i in enumerate([1, "a", 1, None])
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = ingestion_summary(load_pairs(str(path)))
    assert (summary["n_duplicate_ids"], summary["n_null_ids"]) == (1, 1)
