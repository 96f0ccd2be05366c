"""Browse an audited, curated or published preference dataset in the browser (the curate app and Space).

Layers, one way: :mod:`~curate.browse.loading` opens a folder (or a Hub id) →
:mod:`~curate.browse.queries` answers each view's question (:class:`AppData`, no Gradio) →
:mod:`~curate.browse.editor` previews a recipe and summarises the applied one (through
:func:`curate.interventions.preview`) → :mod:`~curate.browse.render` writes escaped HTML →
:mod:`~curate.browse.layout` is the Gradio app (:func:`build_app`).

Example:

    >>> from curate.browse import load_app_data
    >>> data = load_app_data("outputs/demo/published")        # doctest: +SKIP
    >>> data.pairs_page(concept="flattery", status="kept", page=1, page_size=5).n_matching  # doctest: +SKIP
    212
"""

from .layout import build_app
from .loading import dataset_name, default_source, load_app_data
from .queries import AppData, PairPage

__all__ = ["AppData", "PairPage", "build_app", "dataset_name", "default_source", "load_app_data"]
