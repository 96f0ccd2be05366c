"""curate: see what a preference dataset teaches before you train on it, and change it.

The flow: :func:`load_pairs` → :func:`annotate` (named concepts) / SAE concepts → :class:`ConceptAudit`
→ a recipe → interventions → re-audit → publish.

Example:

    >>> import curate
    >>> gen = curate.make_preference_pairs(300, seed=0)
    >>> audit = curate.ConceptAudit().fit(curate.annotate(gen.dataset))
    >>> "flattery" in set(audit.significant()["concept"])
    True
"""

from ._columns import score_column, sae_concept_id
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
]
