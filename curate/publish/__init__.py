"""Publish a curated dataset: a Hub-ready folder with a concept-audit dataset card, uploaded when possible.

:func:`publish` reads what ``curate apply`` wrote (a ``DatasetDict`` with ``train`` and ``dropped`` splits,
the recipe, the before/after re-audit and the record of every intervention) plus the audit of the source
data, and writes one folder::

    README.md                               the dataset card (YAML header + what / decided / done / verified)
    data/train-00000-of-00001.parquet       the curated pairs (TRL columns + weight, margin, keep, reason, ...)
    data/dropped-00000-of-00001.parquet     the pairs an intervention dropped, with their reason
    audit/                                  audit tables (parquet), feature labels, recipe.yaml, apply record
    images/                                 volcano.png (source audit), before_after.png (verification)

The folder loads with ``datasets.load_dataset(folder)``. It is uploaded with ``huggingface_hub``
(``create_repo(repo_type="dataset")`` + ``upload_folder``) when a token is available and the Hub is
reachable; otherwise :func:`publish` says why and leaves the folder ready for a later ``hf upload``.
The token is passed to ``huggingface_hub`` only: it is never written to the folder or logged.

The card is rendered from a Jinja template (``curate/templates/dataset_card.md``, a copy of
``dataset_cards/template.md``) with :class:`huggingface_hub.DatasetCard` and
:class:`huggingface_hub.DatasetCardData`. Every text quoted from the data or a recipe is HTML- and
markdown-escaped and truncated (:func:`escape_text`).

Example:

    >>> from curate.publish import publish
    >>> folder = publish("outputs/demo/curated", repo_id="me/demo-curated", upload=False)  # doctest: +SKIP
    >>> import datasets
    >>> datasets.load_dataset(str(folder))  # doctest: +SKIP
    DatasetDict({train: Dataset(...), dropped: Dataset(...)})
"""

from ._text import escape_text
from .card import check_card, make_card
from .hub import publish
from .read import CuratedData, read_curated

__all__ = ["CuratedData", "check_card", "escape_text", "make_card", "publish", "read_curated"]
