"""curate: see what a preference dataset teaches before you train on it, and change it.

The flow, one verb per step: :func:`load_pairs` → :func:`annotate` (named concepts) and
:func:`annotate_sae` (SAE features) → :class:`ConceptAudit` → a :class:`Recipe` → :func:`apply_recipe`
(interventions + re-audit) → :func:`publish` → :func:`build_app` (the Space).

Heavy parts (torch, transformers, sae-lens, TRL, Gradio) are imported only when first used.

Example:

    >>> import curate
    >>> gen = curate.make_preference_pairs(300, seed=0)
    >>> audit = curate.ConceptAudit().fit(curate.annotate(gen.dataset))
    >>> "flattery" in set(audit.significant()["concept"])
    True
"""

from importlib import import_module as _import_module

from ._columns import sae_concept_id, score_column
from .audit import ConceptAudit
from .concepts.named import Concept, NamedConcepts, annotate, list_concepts, register_concept
from .errors import (
    ConceptError,
    CurateError,
    FormatError,
    MissingDependencyError,
    ModelError,
    NotFittedError,
    RecipeError,
)
from .generate import GeneratedPairs, make_counterfactual_pairs, make_preference_pairs
from .ingest import FORMATS, detect_format, ingestion_summary, load_pairs
from .scores import ConceptScores, concept_scores

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    # recipes and interventions
    "Recipe": "curate.recipe",
    "load_recipe": "curate.recipe",
    "apply_recipe": "curate.interventions",
    "preview": "curate.interventions",
    "ApplyReport": "curate.interventions",
    "save_curated": "curate.interventions",
    "Filter": "curate.interventions",
    "Rebalance": "curate.interventions",
    "Resample": "curate.interventions",
    "Relabel": "curate.interventions",
    "Inoculate": "curate.interventions",
    "Upweight": "curate.interventions",
    "Margin": "curate.interventions",
    "WeightedDPOTrainer": "curate.interventions",
    "Directions": "curate.directions",
    "ablate": "curate.directions",
    "steer": "curate.directions",
    "export_directions": "curate.directions",
    "load_directions": "curate.directions",
    "BradleyTerryProbe": "curate.proxy",
    "proxy_check": "curate.proxy",
    # SAE concepts
    "SAEConcepts": "curate.concepts.sae",
    "annotate_sae": "curate.concepts.sae",
    "fit_sae": "curate.concepts.sae_source",
    "load_sae": "curate.concepts.sae_source",
    "label_features": "curate.concepts.labels",
    "OpenAICompatibleLabeller": "curate.concepts.labels",
    "load_model": "curate.models",
    # scale: the Ray engine and the streaming audit
    "StreamingAudit": "curate.stream_audit",
    "RayEngine": "curate.ray_engine",
    # what a model learns
    "predict_learning": "curate.learning",
    "learning_check": "curate.learning",
    "LearnConfig": "curate.learning",
    # publishing and the Space
    "publish": "curate.publish",
    "read_curated": "curate.publish",
    "build_app": "curate.browse",
    "load_app_data": "curate.browse",
    "AppData": "curate.browse",
    "PairPage": "curate.browse",
}

__all__ = [
    "FORMATS",
    "Concept",
    "ConceptAudit",
    "ConceptError",
    "ConceptScores",
    "CurateError",
    "FormatError",
    "GeneratedPairs",
    "MissingDependencyError",
    "ModelError",
    "NamedConcepts",
    "NotFittedError",
    "RecipeError",
    "annotate",
    "concept_scores",
    "detect_format",
    "ingestion_summary",
    "list_concepts",
    "load_pairs",
    "make_counterfactual_pairs",
    "make_preference_pairs",
    "register_concept",
    "sae_concept_id",
    "score_column",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'curate' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
