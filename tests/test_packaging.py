"""The package installs from a wheel and runs with no checkout beside it.

The wheel is built from this checkout, then installed with ``--no-deps`` into a fresh venv whose only view of the
project's dependencies is a ``.pth`` line naming the project venv's ``site-packages`` (a plain path line: the
editable install of the checkout that lives there is *not* activated, so ``import curate`` can only find the
wheel). ``curate demo --no-sae`` and ``curate apply ... --recipe anti_sycophancy`` then run from an empty folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_recipes_and_card_template_match_the_repository_folders():
    """``curate/recipes`` and ``curate/templates`` are package data; the top-level folders are what the README
    names. They must not drift."""
    top = {p.name: p.read_bytes() for p in (ROOT / "recipes").glob("*.yaml")}
    packaged = {p.name: p.read_bytes() for p in (ROOT / "curate" / "recipes").glob("*.yaml")}
    assert top and top == packaged, "copy recipes/*.yaml into curate/recipes/ (or back) so both are equal"
    assert (ROOT / "curate" / "templates" / "dataset_card.md").read_bytes() == (
        ROOT / "dataset_cards" / "template.md"
    ).read_bytes()
    assert (ROOT / "curate" / "py.typed").exists()


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_wheel_installs_and_runs_without_the_checkout(tmp_path):
    # build from a copy: a build writes egg-info into its source tree
    src = tmp_path / "src"
    shutil.copytree(ROOT / "curate", src / "curate", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    dist = tmp_path / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        cwd=tmp_path,
        env=env,
    )
    (wheel,) = dist.glob("curate_prefs-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("curate/py.typed", "curate/recipes/anti_sycophancy.yaml", "curate/templates/dataset_card.md"):
        assert needed in names, f"{needed} missing from {wheel.name}"

    venv = tmp_path / "venv"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
        cwd=tmp_path,
        env=env,
    )
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    work = tmp_path / "work"
    work.mkdir()
    where = _run([str(py), "-c", "import curate; print(curate.__file__)"], cwd=work, env=env).stdout.strip()
    assert where.startswith(str(site)), f"curate imported from {where}, not from the installed wheel"

    curate = str(venv / "bin" / "curate")
    _run([curate, "demo", "--no-sae", "--n-pairs", "120", "--out", "demo"], cwd=work, env=env)
    assert (work / "demo" / "published" / "README.md").exists()
    _run([curate, "apply", "demo/audit", "--recipe", "anti_sycophancy", "--out", "applied"], cwd=work, env=env)
    assert (work / "applied").is_dir() and any((work / "applied").iterdir())
