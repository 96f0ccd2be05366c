import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import pytest  # noqa: E402

if "CURATE_CACHE" not in os.environ:  # tests never write to the user's cache
    os.environ["CURATE_CACHE"] = tempfile.mkdtemp(prefix="curate-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CURATE_CACHE"], True)


@pytest.fixture(scope="session")
def generated():
    """600 generated pairs with planted concepts (shared, read-only)."""
    from curate import make_preference_pairs

    return make_preference_pairs(600, seed=0)


@pytest.fixture(scope="session")
def annotated(generated):
    from curate import annotate

    return annotate(generated.dataset)
