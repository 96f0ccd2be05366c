import numpy as np
import pytest
from datasets import Dataset

from curate import annotate, register_concept
from curate.concepts import NamedConcepts, list_concepts
from curate.concepts.named import BUILTIN_CONCEPTS
from curate.errors import ConceptError

# concept -> (texts that carry it, texts that do not)
CASES = {
    "markdown": (
        ["## Title\n\n- item", "Use **bold** here", "See [docs](https://x.org)"],
        ["Plain prose only.", "A # not heading"],
    ),
    "heading": (["# Intro\ntext", "### Details"], ["No heading # here", "#hashtag"]),
    "list": (["- one\n- two", "1. first\n2. second", "* star item"], ["A - dash inside", "2023 was good."]),
    "bold": (["This is **important**.", "__very__ so"], ["Not * bold * at all", "2 ** 3"]),
    "code": (["```python\nx = 1\n```", "Run `pip install x`"], ["No code here.", "It's fine."]),
    "link": (["See https://huggingface.co", "[paper](http://arxiv.org/abs/1)"], ["No link.", "www is not a link"]),
    "emoji": (["Great job 🎉", "Sure 😊", "Launch 🚀"], ["No emoji :)", "Plain text."]),
    "exclamation": (["Wow!", "Hello there!"], ["Calm.", "Fine, thanks."]),
    "question": (["What do you mean?", "Could you clarify?"], ["I know.", "Here it is."]),
    "flattery": (
        [
            "What a great question!",
            "Excellent question, you clearly think deeply.",
            "You ask such brilliant questions.",
            "You have a sharp mind.",
        ],
        ["The answer is 4.", "This question is hard to answer.", "Great weather today."],
    ),
    "agreement": (
        ["You're absolutely right.", "I completely agree with you.", "Exactly right.", "That's correct, yes."],
        ["You are wrong about this.", "I disagree.", "Right now it is raining."],
    ),
    "refusal": (
        ["I can't help with that.", "I cannot provide instructions for that.", "I must decline."],
        ["I can help with that.", "Here is how to do it."],
    ),
    "deflection": (["I'm not sure.", "I don’t know."], ["I know.", "I'm sure."]),
    "clarifying_question": (["Do you mean Paris, Texas?", "What kind of dog is it?"], ["Why? Because.", "Paris."]),
    "discouragement": (
        ["I would not recommend that.", "It is never okay to hit someone."],
        ["I recommend it.", "It is okay."],
    ),
    "apology": (
        ["Sorry about that.", "I apologize for the confusion.", "My apologies."],
        ["No problem.", "Here you go."],
    ),
    "hedging": (
        ["I think it is Paris.", "It might rain.", "As far as I know, yes.", "Perhaps."],
        ["It is Paris.", "It will rain."],
    ),
    "sign_off": (
        ["Hope this helps!", "Let me know if you need more.", "Happy to help further!"],
        ["Paris.", "That is all I know."],
    ),
    "disclaimer": (
        ["As an AI, I have no body.", "As a language model I cannot feel.", "I'm an AI assistant."],
        ["As a teacher, I know.", "I am a person."],
    ),
}


def test_every_builtin_concept_has_a_definition_and_a_test():
    tested = set(CASES) | {"length", "log_length"}
    assert set(BUILTIN_CONCEPTS) == tested
    for cid, concept in BUILTIN_CONCEPTS.items():
        assert concept.label and "\n" not in concept.label, cid


@pytest.mark.parametrize("cid", sorted(CASES))
def test_positive_and_negative_examples(cid):
    pos, neg = CASES[cid]
    concept = BUILTIN_CONCEPTS[cid]
    assert (concept.score(pos) > 0).all(), [t for t, s in zip(pos, concept.score(pos)) if s <= 0]
    assert (concept.score(neg) == 0).all(), [t for t, s in zip(neg, concept.score(neg)) if s > 0]


def test_length_and_log_length():
    texts = ["one two three", "", None]
    assert BUILTIN_CONCEPTS["length"].score(texts).tolist() == [3, 0, 0]
    np.testing.assert_allclose(BUILTIN_CONCEPTS["log_length"].score(texts), np.log1p([3, 0, 0]), rtol=1e-6)


def test_spans_point_at_the_match():
    text = "Sure! What a great question. Paris."
    spans = BUILTIN_CONCEPTS["flattery"].spans(text)
    assert [text[a:b] for a, b in spans] == ["What a great"] or [text[a:b] for a, b in spans] == ["great question"]


def test_annotator_is_a_plain_batch_callable():
    ann = NamedConcepts(["length", "flattery"])
    out = ann({"chosen": ["Great question! Yes.", None], "rejected": ["No.", "x"]})
    assert out == {
        "chosen__length": [3.0, 0.0],
        "chosen__flattery": [1.0, 0.0],
        "rejected__length": [1.0, 1.0],
        "rejected__flattery": [0.0, 0.0],
    }


def test_runs_on_an_arrow_batch_like_ray_map_batches():
    import pyarrow as pa

    table = pa.table({"chosen": ["Hi 🎉"], "rejected": ["Hi"]})
    out = NamedConcepts(["emoji"])(table.to_pydict())
    assert out["chosen__emoji"] == [1.0] and out["rejected__emoji"] == [0.0]


def test_user_concepts_by_regex_and_callable():
    ann = (
        NamedConcepts(["length"])
        .add("python", r"\bpython\b", "Mentions Python.")
        .add("shouting", lambda texts: [float(t.isupper()) for t in texts])
    )
    out = ann({"chosen": ["PYTHON!"], "rejected": ["java"]})
    assert out["chosen__python"] == [1.0] and out["chosen__shouting"] == [1.0] and out["rejected__shouting"] == [0.0]
    c = register_concept("tldr_test", r"\btl;?dr\b", "Has a TL;DR.")
    assert "tldr_test" in list_concepts() and c.score(["TLDR: ok"]).tolist() == [1.0]
    with pytest.raises(ConceptError, match="built-in"):
        register_concept("length", r"x")


def test_bad_concepts_are_explained():
    with pytest.raises(ConceptError, match="Known concepts"):
        _ = NamedConcepts(["no_such_concept"]).concepts_
    with pytest.raises(ConceptError, match="letters"):
        NamedConcepts().add("bad id", r"x")
    with pytest.raises(ConceptError, match=r"expected \(2,\)"):
        NamedConcepts([]).add("broken", lambda texts: [1.0])({"chosen": ["a", "b"], "rejected": ["c", "d"]})
    with pytest.raises(KeyError, match="Columns in the batch"):
        NamedConcepts(["length"])({"prompt": ["x"]})


def test_annotation_preserves_order_and_count(generated):
    ds = generated.dataset
    out = annotate(ds)
    assert len(out) == len(ds) and out["id"] == ds["id"] and out["chosen"] == ds["chosen"]
    assert out.features["chosen__flattery"].dtype == "float32"


def test_annotation_is_cached_by_fingerprint(tmp_path):
    from curate import make_preference_pairs

    make_preference_pairs(50, seed=1).dataset.save_to_disk(str(tmp_path / "d"))
    from datasets import load_from_disk

    first = annotate(load_from_disk(str(tmp_path / "d")))
    second = annotate(load_from_disk(str(tmp_path / "d")))
    assert first._fingerprint == second._fingerprint
    assert first.cache_files == second.cache_files and first.cache_files
    other = annotate(load_from_disk(str(tmp_path / "d")), ["length"])
    assert other._fingerprint != first._fingerprint


def test_map_with_datasets_directly():
    ds = Dataset.from_dict({"chosen": ["a!"], "rejected": ["b"]})
    ann = NamedConcepts(["exclamation"])
    assert ds.map(ann, batched=True, features=ann.features(ds.features))[0]["chosen__exclamation"] == 1.0
