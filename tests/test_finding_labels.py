"""Readable finding labels: no token fragments, marked example contexts, on real phrasings."""

import json
import re

import numpy as np
import pytest

from curate import ConceptAudit
from curate.concepts.finding_labels import (
    MARK_CLOSE,
    MARK_OPEN,
    describe_findings,
    detokenize,
    is_fragment,
    mark_context,
    readable_label,
    token_context,
)
from curate.concepts.labels import label_features

# labels the issue saw printed, and what real SAE n-grams look like
FRAGMENTS = ["t", "don", "can ’", ". # #", "ask . #", "s", "’", "#", "won", ". .", "isn ’"]
READABLE = ["I don't know", "can't help", "i’m not sure", "do you", "great question", "no", "sorry", "is it"]


def _pieces(text):
    """GPT-2/SmolLM-style pieces: leading spaces on words, contractions split off ("don", "'t")."""
    return re.findall(r"['’]\w+|\s?\w+|\s?[^\w\s]|\s+", text)


# real responses (HH-RLHF style) and the piece where the feature peaks
REAL = [
    ("I don't know, what do you think?", "'t", "I don't"),
    ("I’m not sure I understand what you mean.", " sure", "sure"),
    ("I’m sorry, but I don’t think I can help with that.", " help", "help"),
    ("Hm, I can't say. Do you know anyone who has tried it?", "'t", "can't"),
    ("Is it for a school project? I can suggest some books.", " school", "school"),
    ("## Steps\n\n1. Preheat the oven.\n2. Mix the flour.", " Preheat", "Preheat"),
    ("If I'm not mistaken, water freezes at 32 degrees.", " water", "water"),
    ("What a great question! The answer is Paris.", "What", "What a great"),
]


def test_fragments_are_detected_and_real_phrases_are_not():
    assert [p for p in FRAGMENTS if not is_fragment(p)] == []
    assert [p for p in READABLE if is_fragment(p)] == []
    assert detokenize("i don ’ t know") == "i don’t know"


@pytest.mark.parametrize("text,peak,word", REAL)
def test_token_context_marks_the_whole_word_around_the_strongest_token(text, peak, word):
    toks = _pieces(text)
    assert "".join(toks) == text
    acts = np.array([3.0 if t == peak else 0.1 for t in toks])
    assert acts.max() == 3.0
    marked, got = token_context(toks, acts)
    assert word in got and not is_fragment(got)
    assert got[0].isalnum() and len(got.split()) <= 3
    assert marked.count(MARK_OPEN) == 1 and marked.count(MARK_CLOSE) == 1
    inner = marked.split(MARK_OPEN)[1].split(MARK_CLOSE)[0]
    assert inner == got and "\n" not in marked


def test_mark_context_cuts_a_window_at_word_boundaries():
    text = "word " * 50 + "I don't know the answer to that. " + "tail " * 50
    out = mark_context(text, text.index("don"), text.index("don") + 3, width=30)
    assert f"{MARK_OPEN}don't{MARK_CLOSE}" in out and out.startswith("…") and out.endswith("…")
    assert len(out) < 120


def test_readable_label_never_shows_pieces():
    assert readable_label("i don't know", "deflection", 0.5) == "says “i don't know” (close to deflection, r=0.50)"
    assert "“" not in readable_label("", fallback="Markdown headings (#)")
    assert (
        readable_label("x", definition="Declining to do what was asked ('I can't help').")
        == "Declining to do what was asked"
    )


@pytest.fixture(scope="module")
def sae_audit(generated, annotated):
    from tests.test_findings import _with_fake_sae

    df = _with_fake_sae(annotated, generated.truth)
    labels = label_features(df, "fake")
    # token-level activations as label_features writes them with an annotator: peak on a flattery word
    rows = []
    for ex in labels["top_examples"]:
        items = json.loads(ex)
        for e in items[:3]:
            toks = _pieces(e["text"])
            e["tokens"] = toks
            e["acts"] = [2.5 if t.strip().lower() in ("question", "questions", "mind") else 0.1 for t in toks]
        rows.append(json.dumps(items))
    labels["top_examples"] = rows
    audit = ConceptAudit().fit(df, labels=labels)
    return df, audit, labels


def test_every_finding_gets_a_readable_label_and_a_marked_context(sae_audit):
    import copy

    import pandas as pd

    df, audit, labels = sae_audit
    # since issue 30 the SAE group that is flattery's idea is shown as flattery's alias; it is labelled as a
    # finding here, so the labeller of SAE groups is still tested
    alias = audit.results_.set_index("concept").loc["flattery", "aliases"]
    assert alias.startswith("group:fake:"), alias
    audit = copy.deepcopy(audit)
    row = audit.results_[audit.results_["concept"] == alias].reindex(columns=audit.findings_.columns)
    row = row.assign(finding_rank=len(audit.findings_) + 1, where=audit.findings_["where"].iloc[0])
    audit.findings_ = pd.concat([audit.findings_, row], ignore_index=True)
    f = describe_findings(df, audit, labels)
    assert len(f) >= 3 and (f["source"] == "sae:fake").any()
    for _, r in f.iterrows():
        assert r["label"] and not is_fragment(r["label"]), r["label"]
        assert MARK_OPEN in r["example"] and MARK_CLOSE in r["example"], r["concept"]
        assert r["example"].split(":")[0] in ("chosen", "rejected")
    sae = f[f["source"] == "sae:fake"].iloc[0]
    assert sae["label"].startswith("says “") and sae["phrase"] in ("question", "questions", "mind")
    assert "flattery" in sae["label"]
    assert len(sae["contexts_chosen"]) + len(sae["contexts_rejected"]) >= 1


def test_token_budget_goes_to_the_features_that_separate_chosen_from_rejected():
    """With more features than the token-activation budget, the separating features get their token examples
    (they are the likely findings) instead of the first features in id order."""
    import pandas as pd

    from curate import _columns as C

    n = 40
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        # features 0..28 fire equally on both sides (noise); feature 29 fires only on the chosen side
        both = sorted(rng.choice(29, size=4, replace=False).tolist())
        rows.append(
            {
                C.ID: str(i),
                "prompt": f"q{i}",
                "chosen": f"good answer {i}",
                "rejected": f"bad answer {i}",
                C.sae_index_column("chosen", "fake"): both + [29],
                C.sae_value_column("chosen", "fake"): [1.0] * 4 + [5.0 if i == n - 1 else 3.0],
                C.sae_index_column("rejected", "fake"): both,
                C.sae_value_column("rejected", "fake"): [1.0] * 4,
            }
        )
    df = pd.DataFrame(rows)

    class FakeAnnotator:
        def token_activations(self, items, features):
            return [(["x"], np.ones((1, len(features)))) for _ in items]

    labels = label_features(
        df, "fake", annotator=FakeAnnotator(), min_active=1, n_token_examples=1, max_token_responses=2
    ).set_index("feature")
    with_tokens = {f for f, ex in labels["top_examples"].items() if any("tokens" in e for e in json.loads(ex))}
    # feature 29's top example is the last pair's chosen response, which no noise feature's first example is:
    # in feature-id order the budget of 2 responses would be spent on features 0 and 1
    assert 29 in with_tokens
