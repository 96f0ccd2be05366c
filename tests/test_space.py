"""The Space folder is deployable: front matter, requirements, and an app that uses curate's public API only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the test extra installs tomli there
    import tomli as tomllib

SPACE = Path(__file__).resolve().parents[1] / "spaces_app"


def test_front_matter_says_gradio_app():
    text = (SPACE / "README.md").read_text()
    header = text.split("---")[1]
    assert "sdk: gradio" in header and "app_file: app.py" in header
    assert (SPACE / "requirements.txt").read_text().strip()


def test_space_imports_only_public_names():
    import curate

    tree = ast.parse((SPACE / "app.py").read_text())
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("curate"):
            assert node.module == "curate", f"the Space imports a private module: {node.module}"
            used += [a.name for a in node.names]
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("curate.") for a in node.names)
    assert used and set(used) <= set(curate.__all__)


def test_requirements_are_the_package_dependencies():
    """The Space installs curate's dependencies, never the unrelated PyPI project named `curate`."""
    deps = tomllib.loads((SPACE.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [
        ln.strip()
        for ln in (SPACE / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines == deps
    assert not any(ln.split(">")[0].split("=")[0].split("@")[0].strip() == "curate" for ln in lines)
