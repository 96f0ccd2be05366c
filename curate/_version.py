"""The package version (one home: the card, the manifests and ``curate.__version__`` read it)."""

__version__ = "0.1.0"
