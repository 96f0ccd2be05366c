"""The examples in the docstrings run and print what they say."""

import doctest
import importlib

import pytest

# recipes/interventions and publish/plots run theirs in test_interventions.py and test_publish.py
MODULES = [
    "curate",
    "curate.generate",
    "curate.ingest",
    "curate.ingest.formats",
    "curate.ingest.load",
    "curate.concepts.named",
    "curate.scores",
    "curate.audit",
    "curate.audit_base",
    "curate.concepts.sae",
    "curate.concepts.sae_annotator",
    "curate.concepts.sae_fit",
    "curate.concepts.sae_ray",
    "curate.concepts.sae_config",
    "curate.concepts.activations",
    "curate.concepts.sae_source",
    "curate.concepts.labels",
    "curate.concepts.finding_labels",
    "curate.models",
    "curate.directions",
    "curate.proxy",
    "curate.browse",
    "curate.browse.loading",
    "curate.teach",
    "curate.stream_audit",
    "curate.stream_sample",
    "curate.ray_engine",
    "curate.learning.predict",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
