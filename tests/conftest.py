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

# In CI every part of the stack is required: a test that would skip (no browser, no optional package, no
# ../shared data) fails instead, so a green run means every test ran. Tests that may legitimately skip
# there (e.g. CUDA-only checks on a CPU runner) carry ``@pytest.mark.may_skip``.
_REQUIRE_ALL = os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("CURATE_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _REQUIRE_ALL and report.skipped and item.get_closest_marker("may_skip") is None:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI, where every part is required: {reason}. Install the missing part "
            "(see .ci/run and the Makefile) or mark the test @pytest.mark.may_skip if it can never run here."
        )


if "CURATE_CACHE" not in os.environ:  # tests never write to the user's cache
    os.environ["CURATE_CACHE"] = tempfile.mkdtemp(prefix="curate-test-cache-")
    atexit.register(shutil.rmtree, os.environ["CURATE_CACHE"], True)


@pytest.fixture(autouse=True)
def _named_registry_restored():
    """A test (or a doctest) that registers a named concept must not change the default concept set of the
    tests that run after it in the same worker."""
    from curate.concepts import named

    saved = dict(named._REGISTRY)
    yield
    named._REGISTRY.clear()
    named._REGISTRY.update(saved)


@pytest.fixture(scope="session")
def generated():
    """600 generated pairs with planted concepts (shared, read-only)."""
    from curate import make_preference_pairs

    return make_preference_pairs(600, seed=0)


@pytest.fixture(scope="session")
def annotated(generated):
    from curate import annotate

    return annotate(generated.dataset)
