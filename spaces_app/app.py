"""The curate Space: browse a published preference dataset's concept audit, its pairs, and draft a recipe.

Which dataset it shows, first match wins:
  1. the CURATE_DATASET environment variable (a Hub dataset id or a local folder; set it as a Space variable),
  2. a `data/` folder next to this file holding a folder written by `curate publish`,
  3. the demo output of `curate demo` (outputs/demo/...), when run from a checkout.
"""

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from curate import build_app  # noqa: E402  (the Space uses curate's public API only)

HERE = Path(__file__).resolve().parent


def _source():
    if os.environ.get("CURATE_DATASET"):
        return os.environ["CURATE_DATASET"]
    if (HERE / "data").is_dir():
        return str(HERE / "data")
    return None  # curate's default: the demo output


blocks = build_app(_source())
demo = blocks  # the name Gradio (`gradio app.py`) and Spaces look for

if __name__ == "__main__":
    blocks.launch()
