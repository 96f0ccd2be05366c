"""curate: see what a preference dataset teaches before you train on it, and change it.

The public API is the verbs of the flow; everything else lives in a subpackage named after its step.

==========================  ==================================================================================
Step                        Verbs
==========================  ==================================================================================
read pairs                  :func:`load_pairs` (any format, unusable rows kept with a reason),
                            :func:`make_preference_pairs` (generated pairs with planted concepts)
annotate concepts           :func:`annotate` (named regex/function detectors), :func:`register_concept`,
                            :func:`annotate_sae` (sparse-autoencoder features), :func:`label_features`
audit                       :class:`ConceptAudit` (scikit-learn style: ``fit`` → ``results_``, ``findings()``),
                            :class:`StreamingAudit` (annotated shards, memory bounded by concepts)
change the data             :class:`Recipe`, :func:`load_recipe`, :func:`apply_recipe`
learn                       :func:`predict_learning` (what preference optimisation on the data should teach),
                            :func:`learning_check` (LoRA DPO on the original and the curated pairs, measured),
                            :func:`pool_learning` (the checks of several seeds, pooled)
end to end (what the CLI    :func:`run_audit` (load → annotate → audit → audit folder),
runs)                       :func:`run_apply` (recipe → curated folder)
share                       :func:`curate.publish.publish` (Hub-ready folder + card),
                            :func:`curate.publish.read_curated` (the verbs live in their module: the module
                            ``curate.publish`` would shadow a top-level ``publish``)
browse                      :func:`build_app` (the Gradio app / Space)
errors                      :class:`CurateError` (every curate error; subclasses in :mod:`curate.errors`)
==========================  ==================================================================================

Subpackages: :mod:`curate.ingest`, :mod:`curate.concepts` (``named``, ``activations``, ``sae``, ``sae_config``,
``sae_source``, ``labels``),
:mod:`curate.audit`, :mod:`curate.recipe`, :mod:`curate.interventions` (the interventions, the weighted DPO
trainer), :mod:`curate.directions`, :mod:`curate.reward_probe`, :mod:`curate.learning`, :mod:`curate.publish`,
:mod:`curate.browse` (the app), :mod:`curate.pipeline`,
:mod:`curate.folders` (what each output folder holds), :mod:`curate.cli`. Heavy parts (torch, transformers,
sae-lens, TRL, Gradio) are imported only when first used.

Example:

    >>> import curate
    >>> gen = curate.make_preference_pairs(300, seed=0)
    >>> audit = curate.ConceptAudit().fit(curate.annotate(gen.dataset))
    >>> "flattery" in set(audit.significant()["concept"])
    True
"""

from importlib import import_module as _import_module

from ._version import __version__
from .audit import ConceptAudit
from .concepts.named import annotate, register_concept
from .errors import CurateError
from .generate import make_preference_pairs
from .ingest import load_pairs

# public name -> module that defines it (imported on first access)
_LAZY = {
    "annotate_sae": "curate.concepts.sae",
    "label_features": "curate.concepts.labels",
    "StreamingAudit": "curate.stream_audit",
    "Recipe": "curate.recipe",
    "load_recipe": "curate.recipe",
    "apply_recipe": "curate.interventions",
    "run_audit": "curate.pipeline",
    "run_apply": "curate.pipeline",
    "predict_learning": "curate.learning",
    "learning_check": "curate.learning",
    "pool_learning": "curate.learning",
    "build_app": "curate.browse",
}

__all__ = [
    "load_pairs",
    "make_preference_pairs",
    "annotate",
    "register_concept",
    "annotate_sae",
    "label_features",
    "ConceptAudit",
    "StreamingAudit",
    "Recipe",
    "load_recipe",
    "apply_recipe",
    "run_audit",
    "run_apply",
    "predict_learning",
    "learning_check",
    "pool_learning",
    "build_app",
    "CurateError",
    "__version__",
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'curate' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(__all__))
