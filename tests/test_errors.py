"""curate raises a CurateError for every failure a user can cause (the CLI prints those as one line, anything
else as a bug with its traceback), and each subclass keeps the builtin base that callers caught before."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from curate import errors as E

ROOT = Path(__file__).resolve().parent.parent / "curate"
BUILTIN = {"ValueError", "KeyError", "TypeError", "FileNotFoundError", "OSError", "LookupError", "IndexError"}

#: plain builtin raises that stay, file -> count: a pydantic validator must raise ValueError (pydantic turns it
#: into the RecipeError that names the key), and the learning files another branch was editing when this test
#: was written (convert them, then remove them here: the test fails until the count matches)
ALLOWED = {"recipe/__init__.py": 1}


def _builtin_raises(path: Path) -> int:
    count = 0
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            count += isinstance(exc, ast.Name) and exc.id in BUILTIN
    return count


def test_curate_raises_no_plain_builtin_error_for_bad_input():
    found = Counter({str(f.relative_to(ROOT)): _builtin_raises(f) for f in ROOT.rglob("*.py")})
    found = +found  # files with none drop out
    assert found == Counter(ALLOWED), (
        "raise a curate.errors.CurateError subclass (ConfigError, FormatError, ColumnError, ...) instead of a "
        f"builtin error; files and counts now: {dict(found)}, allowed: {ALLOWED}"
    )


@pytest.mark.parametrize(
    "error,builtin",
    [
        (E.FormatError, ValueError),
        (E.ColumnError, KeyError),
        (E.ColumnError, E.FormatError),
        (E.ConceptError, KeyError),
        (E.ConfigError, ValueError),
        (E.InputNotFoundError, FileNotFoundError),
        (E.RecipeError, ValueError),
        (E.ModelError, ValueError),
        (E.MissingDependencyError, ImportError),
    ],
)
def test_each_error_is_a_curate_error_and_keeps_its_builtin_base(error, builtin):
    assert issubclass(error, E.CurateError) and issubclass(error, builtin)


def test_key_errors_print_their_message_unquoted():
    message = "Column 'x' not in the dataset. Current columns: ['a']."
    assert str(E.ColumnError(message)) == str(E.ConceptError(message)) == message
