"""Exceptions raised by curate.

The tree::

    CurateError                 base of everything curate raises on purpose
    ├── FormatError (ValueError)      input columns/rows curate cannot read as preference pairs
    │   └── ColumnError (KeyError)    a column the step needs is not in the data (lists the columns)
    ├── ConceptError (KeyError)       an unknown concept id (lists the known ones)
    ├── ConfigError (ValueError)      an argument or setting out of its allowed values (lists them)
    ├── InputNotFoundError (FileNotFoundError) a file or folder to read does not exist or holds nothing usable
    ├── RecipeError (ValueError)      an invalid recipe (points at the key, lists what is allowed)
    ├── NotFittedError (RuntimeError) a fitted object used before ``fit``
    ├── ModelError (ValueError)       a model/SAE that cannot be loaded or does not fit together
    └── MissingDependencyError (ImportError) an optional dependency is missing (says what to install)

(:class:`curate.folders.FolderError` and :class:`curate.folders.RowAccountingError` are curate errors too.)
The command line prints any ``CurateError`` as one line (``error: …``); any other exception is a bug in
curate and is shown with its traceback.
"""

from __future__ import annotations


class CurateError(Exception):
    """Base class of curate's errors."""


class FormatError(CurateError, ValueError):
    """The input cannot be read as preference pairs."""


class ColumnError(FormatError, KeyError):
    """A column the step needs is not in the data (the message lists the columns there are)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ConceptError(CurateError, KeyError):
    """An unknown concept id."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ConfigError(CurateError, ValueError):
    """An argument or setting outside its allowed values (the message lists them)."""


class InputNotFoundError(CurateError, FileNotFoundError):
    """A file or folder to read does not exist, or holds nothing curate can read."""


class RecipeError(CurateError, ValueError):
    """An invalid recipe."""


class NotFittedError(CurateError, RuntimeError):
    """An object that learns state was used before ``fit``."""


class ModelError(CurateError, ValueError):
    """A model or SAE cannot be loaded, or model and SAE do not fit together."""


class MissingDependencyError(CurateError, ImportError):
    """An optional dependency is missing."""


def require(module: str, *, extra: str | None = None, package: str | None = None):
    """Import ``module`` or raise :class:`MissingDependencyError` naming what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        what = f'pip install "curate-prefs[{extra}]"' if extra else f"pip install {package or module}"
        raise MissingDependencyError(f"{module!r} is needed for this step but is not installed. Run: {what}") from err
