import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def generated():
    """600 generated pairs with planted concepts (shared, read-only)."""
    from curate import make_preference_pairs

    return make_preference_pairs(600, seed=0)


@pytest.fixture(scope="session")
def annotated(generated):
    from curate import annotate

    return annotate(generated.dataset)
