"""Fingerprints follow the code: editing a named concept's function (or a helper it calls) changes the
annotator's fingerprint and misses the cache; the same code hits it."""

from __future__ import annotations

import importlib
import sys

import pytest

from curate.cache import code_hash
from curate.concepts import named

SCORER = '''
import re

WORD = re.compile(r"{word}")


def _count(text):
    return len(WORD.findall(text)){extra}


def score(texts):
    """Mentions of the word."""
    return [_count(t) for t in texts]
'''


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(named, "_REGISTRY", dict(named._REGISTRY))
    return named._REGISTRY


def _load(tmp_path, monkeypatch, name="user_scorer", word="the", extra=""):
    """Write (or rewrite) a module on disk and import it fresh, as an edited file is on the next run."""
    (tmp_path / f"{name}.py").write_text(SCORER.format(word=word, extra=extra))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


def test_editing_a_registered_function_changes_the_fingerprint(tmp_path, monkeypatch, registry):
    named.register_concept("polite", _load(tmp_path, monkeypatch).score)
    first = named.NamedConcepts(["polite"]).fingerprint()
    named.register_concept("polite", _load(tmp_path, monkeypatch).score)  # same code, imported again
    assert named.NamedConcepts(["polite"]).fingerprint() == first
    named.register_concept("polite", _load(tmp_path, monkeypatch, extra=" * 2").score)  # a helper edited
    assert named.NamedConcepts(["polite"]).fingerprint() != first
    named.register_concept("polite", _load(tmp_path, monkeypatch, word="thanks").score)  # a global constant edited
    assert named.NamedConcepts(["polite"]).fingerprint() != first


def test_code_hash_follows_closures_partials_and_methods():
    import functools

    def make(k):
        def f(texts):
            return [k * len(t) for t in texts]

        return f

    assert code_hash(make(1)) == code_hash(make(1)) != code_hash(make(2))
    assert code_hash(functools.partial(make(1))) != code_hash(functools.partial(make(2)))

    class Scorer:
        def __call__(self, texts):
            return [1.0] * len(texts)

    assert code_hash(Scorer()) == code_hash(Scorer())


def test_a_builtin_pattern_edit_changes_the_fingerprint(registry):
    before = named.NamedConcepts().fingerprint()
    old = registry["flattery"]
    registry["flattery"] = named.Concept(old.id, old.label, pattern=old.pattern + "|marvellous")
    assert named.NamedConcepts().fingerprint() != before


def test_the_audit_cache_hits_for_the_same_code_and_misses_after_an_edit(tmp_path, monkeypatch, registry):
    from curate import make_preference_pairs
    from curate.pipeline import audit_pairs

    data = tmp_path / "pairs.jsonl"
    make_preference_pairs(60, seed=0).dataset.to_json(str(data), lines=True)
    cache = tmp_path / "cache"

    named.register_concept("polite", _load(tmp_path, monkeypatch).score)
    first = audit_pairs(str(data), cache_dir=cache)
    assert first["record"]["cache"]["annotations"] != "reused"
    named.register_concept("polite", _load(tmp_path, monkeypatch).score)  # unchanged code, re-imported
    again = audit_pairs(str(data), cache_dir=cache)
    assert again["record"]["cache"]["annotations"] == "reused"

    named.register_concept("polite", _load(tmp_path, monkeypatch, extra=" * 2").score)
    edited = audit_pairs(str(data), cache_dir=cache)
    assert edited["record"]["cache"]["annotations"] != "reused"
    a, b = first["dataset"]["chosen__polite"], edited["dataset"]["chosen__polite"]
    assert [2 * x for x in a] == b and any(a)  # the new column comes from the edited code
