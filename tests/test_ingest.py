import gzip
import json

import pytest
from datasets import Dataset, DatasetDict, IterableDataset

from curate import load_pairs
from curate.errors import FormatError
from curate.ingest import detect_format, ingestion_summary

STD = {"prompt": ["p1", "p2", "p3"], "chosen": ["good 1", "good 2", "good 3"], "rejected": ["bad 1", "bad 2", "bad 3"]}


def rows(ds):
    return [(r["id"], r["prompt"], r["chosen"], r["rejected"], r["reason"]) for r in ds]


def test_standard_keeps_order_and_row_index_as_id():
    ds = load_pairs(Dataset.from_dict(STD))
    assert rows(ds) == [
        (0, "p1", "good 1", "bad 1", ""),
        (1, "p2", "good 2", "bad 2", ""),
        (2, "p3", "good 3", "bad 3", ""),
    ]
    assert ds[0]["prompt_messages"] == [{"role": "user", "content": "p1"}]
    assert ingestion_summary(ds) == {
        "format": "standard",
        "n_rows": 3,
        "n_usable": 3,
        "n_duplicate_ids": 0,
        "n_null_ids": 0,
        "reasons": {},
    }


def test_existing_id_column_is_kept():
    ds = load_pairs(Dataset.from_dict({**STD, "id": ["a", "b", "c"]}))
    assert ds["id"] == ["a", "b", "c"]


def test_extra_columns_are_carried():
    ds = load_pairs(Dataset.from_dict({**STD, "source": ["x", "y", "z"]}))
    assert ds["source"] == ["x", "y", "z"]


def test_conversational_explicit_and_implicit_prompt():
    msgs = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
    explicit = Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": "What is 2+2?"}]], "chosen": [msgs("4")], "rejected": [msgs("5")]}
    )
    ds = load_pairs(explicit)
    assert detect_format(explicit.column_names, explicit[0]) == "conversational"
    assert (ds[0]["prompt"], ds[0]["chosen"], ds[0]["rejected"]) == ("What is 2+2?", "4", "5")
    user = {"role": "user", "content": "Hi"}
    implicit = Dataset.from_dict({"chosen": [[user, *msgs("Hello!")]], "rejected": [[user, *msgs("Go away.")]]})
    ds = load_pairs(implicit)
    assert (ds[0]["prompt"], ds[0]["chosen"], ds[0]["rejected"], ds[0]["reason"]) == ("Hi", "Hello!", "Go away.", "")
    assert ds[0]["prompt_messages"] == [user]


def test_implicit_string_prompt_is_the_shared_prefix():
    ds = load_pairs(
        Dataset.from_dict({"chosen": ["Q: capital of France? A: Paris"], "rejected": ["Q: capital of France? A: Lyon"]})
    )
    assert (ds[0]["prompt"], ds[0]["chosen"], ds[0]["rejected"]) == ("Q: capital of France? A:", "Paris", "Lyon")


def test_implicit_without_shared_prompt_is_marked():
    ds = load_pairs(Dataset.from_dict({"chosen": ["Paris"], "rejected": ["Lyon"]}), format="implicit")
    assert ds[0]["reason"] == "invalid:no_shared_prompt"


def test_hh_rlhf_transcripts():
    chosen = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant: It is 4."
    rejected = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: What is 2+2?\n\nAssistant: No idea."
    other = "\n\nHuman: Something else\n\nAssistant: No idea."
    ds = load_pairs(Dataset.from_dict({"chosen": [chosen, chosen], "rejected": [rejected, other]}))
    assert ingestion_summary(ds)["format"] == "hh"
    assert (ds[0]["chosen"], ds[0]["rejected"], ds[0]["reason"]) == ("It is 4.", "No idea.", "")
    assert ds[0]["prompt_messages"] == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert ds[1]["reason"] == "invalid:prompt_mismatch"


def test_rated_completions_policies():
    raw = Dataset.from_dict(
        {
            "instruction": ["Name a colour.", "Say hi."],
            "completions": [
                [
                    {"response": "Blue.", "overall_score": 7.0},
                    {"response": "Red!", "overall_score": 9.0},
                    {"response": "Dog.", "overall_score": 1.0},
                ],
                [{"response": "Hi", "overall_score": 5.0}, {"response": "Hello", "overall_score": 5.0}],
            ],
        }
    )
    ds = load_pairs(raw)
    assert (ds[0]["chosen"], ds[0]["rejected"]) == ("Red!", "Dog.")
    assert ds[1]["reason"] == "invalid:tie"
    allp = load_pairs(raw, rated_policy="all_pairs")
    assert allp["id"][:3] == ["0:0-1", "0:0-2", "0:1-2"] and len(allp) == 4
    rnd = load_pairs(raw, rated_policy="best_vs_random", seed=3)
    assert rnd[0]["chosen"] == "Red!" and rnd[0]["rejected"] in {"Blue.", "Dog."}
    assert load_pairs(raw, rated_policy="best_vs_random", seed=3)["rejected"] == rnd["rejected"]
    with pytest.raises(FormatError, match="best_vs_worst"):
        load_pairs(raw, rated_policy="nope")


def test_rated_responses_and_scores_columns():
    ds = load_pairs(Dataset.from_dict({"prompt": ["p"], "responses": [["a", "b"]], "scores": [[1.0, 2.0]]}))
    assert (ds[0]["chosen"], ds[0]["rejected"]) == ("b", "a")


def test_pairwise_alpacaeval_style_with_ties_and_bad_preferences():
    raw = Dataset.from_dict(
        {
            "instruction": ["a", "b", "c", "d", "e"],
            "output_1": ["one", "one", "one", "one", "one"],
            "output_2": ["two", "two", "two", "two", "two"],
            "preference": ["1.0000630276", "1.98", "1.5", None, "3"],
        }
    )
    ds = load_pairs(raw)
    assert ingestion_summary(ds)["format"] == "pairwise"
    assert (ds[0]["chosen"], ds[1]["chosen"]) == ("one", "two")
    assert [r for r in ds["reason"]] == ["", "", "invalid:tie", "invalid:bad_preference", "invalid:bad_preference"]


@pytest.mark.parametrize(
    "value, reason",
    [
        (None, "invalid:missing_chosen"),
        ("", "invalid:empty_chosen"),
        ("   ", "invalid:empty_chosen"),
        ("bad", "invalid:identical"),
    ],
)
def test_bad_rows_are_marked_not_dropped(value, reason):
    ds = load_pairs(Dataset.from_dict({"prompt": ["p", "q"], "chosen": ["ok", value], "rejected": ["meh", "bad"]}))
    assert len(ds) == 2 and ds[0]["reason"] == "" and ds[1]["reason"] == reason
    assert ingestion_summary(ds)["reasons"] == {reason: 1}


def test_non_string_response_is_marked():
    ds = load_pairs(
        Dataset.from_dict({"prompt": ["p", "q"], "chosen": [[1], [2]], "rejected": [[3], [4]]}), format="standard"
    )
    assert ds["reason"] == ["invalid:non_string_chosen"] * 2


def test_unknown_columns_list_what_was_found_and_accepted():
    with pytest.raises(FormatError) as err:
        load_pairs(Dataset.from_dict({"question": ["q"], "answer": ["a"]}))
    msg = str(err.value)
    assert "['answer', 'question']" in msg and "pairwise" in msg and "hh" in msg and "format=" in msg


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".parquet", ".csv", ".csv.gz"])
def test_local_files(tmp_path, suffix):
    ds = Dataset.from_dict(STD)
    path = tmp_path / f"pairs{suffix}"
    base = suffix.removesuffix(".gz")
    plain = tmp_path / f"plain{base}"
    if base == ".jsonl":
        ds.to_json(str(plain), lines=True)
    elif base == ".json":
        plain.write_text(json.dumps(ds.to_list()))
    elif base == ".parquet":
        ds.to_parquet(str(plain))
    else:
        ds.to_csv(str(plain), index=False)
    if suffix.endswith(".gz"):
        path.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        plain.rename(path)
    assert rows(load_pairs(str(path)))[1] == (1, "p2", "good 2", "bad 2", "")


def test_save_to_disk_folder_datasetdict_and_iterable(tmp_path):
    dd = DatasetDict({"train": Dataset.from_dict(STD), "test": Dataset.from_dict(STD).select([0])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert len(load_pairs(str(tmp_path / "dd"))) == 3
    assert len(load_pairs(str(tmp_path / "dd"), split="test")) == 1
    with pytest.raises(FormatError, match=r"Available splits: \['train', 'test'\]"):
        load_pairs(dd, split="validation")
    Dataset.from_dict(STD).save_to_disk(str(tmp_path / "single"))
    assert len(load_pairs(str(tmp_path / "single"))) == 3
    it = IterableDataset.from_generator(lambda: iter(Dataset.from_dict(STD)))
    assert rows(load_pairs(it, limit=2)) == rows(load_pairs(Dataset.from_dict(STD)))[:2]


def test_limit_and_missing_path():
    assert len(load_pairs(Dataset.from_dict(STD), limit=2)) == 2
    with pytest.raises(FormatError, match="No such file"):
        load_pairs("./does/not/exist.jsonl")


def test_hub_id_offline_says_what_to_do():
    with pytest.raises(FormatError, match="network/token"):
        load_pairs("someone/preference-data")
