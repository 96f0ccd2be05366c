"""What a model learns from a preference dataset: predict each concept's shift from the audit
(:mod:`.predict`), train LoRA DPO on the original and the curated pairs (:mod:`.train`), and measure what
each policy learned (:mod:`.measure`); :func:`learning_check` (:mod:`.check`) runs all three, and
:func:`pool_learning` (:mod:`.pool`) averages the checks of several seeds (:func:`learning_check_seeds` runs
and pools them)."""

from .check import LEARNING_COLUMNS, LearningResult, learning_check, read_learning, split_by_prompt
from .pool import learning_check_seeds, pool_learning
from .predict import DEFAULT_ESTIMATOR, ESTIMATORS, predict_learning
from .train import LearnConfig

__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "LEARNING_COLUMNS",
    "LearnConfig",
    "LearningResult",
    "learning_check",
    "learning_check_seeds",
    "pool_learning",
    "predict_learning",
    "read_learning",
    "split_by_prompt",
]
