"""The examples in the docstrings run and print what they say."""

import ast
import builtins
import doctest
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

# recipes/interventions and publish/plots run theirs in test_interventions.py and test_publish.py
MODULES = [
    "curate",
    "curate.cache",
    "curate.folders.checksums",
    "curate.folders.rows",
    "curate.generate",
    "curate.ingest",
    "curate.ingest.formats",
    "curate.ingest.load",
    "curate.concepts.named",
    "curate.scores",
    "curate.audit",
    "curate.audit_base",
    "curate.concepts.sae",
    "curate.concepts.sae_annotator",
    "curate.concepts.sae_fit",
    "curate.concepts.sae_ray",
    "curate.concepts.sae_config",
    "curate.concepts.activations",
    "curate.concepts.sae_source",
    "curate.concepts.labels",
    "curate.concepts.finding_labels",
    "curate.models",
    "curate.directions",
    "curate.reward_probe",
    "curate.browse",
    "curate.browse.loading",
    "curate.teach",
    "curate.stream_audit",
    "curate.stream_sample",
    "curate.ray_engine",
    "curate.learning.predict",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"


# -- README.md and docs/*.md: their python examples are `>>>` blocks that run here -----------------------------
ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
#: the fewest examples each page holds, so that a page whose blocks stop being found fails instead of passing empty
MIN_EXAMPLES = {
    "README.md": 11,
    "docs/audit.md": 13,
    "docs/concepts.md": 15,
    "docs/folders.md": 9,
    "docs/interventions.md": 11,
    "docs/large-datasets.md": 13,
    "docs/learning.md": 14,
}


def page_examples(page: Path) -> list[doctest.Example]:
    """The examples of every ```python block of ``page`` that holds ``>>>`` lines, in order, each with its
    line number in the page (0-based, as doctest counts)."""
    text = page.read_text(encoding="utf-8")
    parser = doctest.DocTestParser()
    examples = []
    for block in re.finditer(r"```python\n(.*?)```", text, flags=re.S):
        if ">>>" in block.group(1):
            offset = text.count("\n", 0, block.start(1))
            for ex in parser.get_examples(block.group(1)):
                ex.lineno += offset
                examples.append(ex)
    return examples


def _skipped(example: doctest.Example) -> bool:
    return example.options.get(doctest.SKIP, False)


def _resolve(node: ast.AST, env: dict, where: str):
    """The object an expression names (a module, class, function, or an object the examples made), checking
    every attribute on the way; None where it cannot be known without running (a call's result)."""
    if isinstance(node, ast.Name):
        return env.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, env, where)
        if base is None:
            return None
        if inspect.isclass(base) and not hasattr(base, node.attr):
            return None  # an instance attribute (set by __init__ or fit) of an object made by a skipped line
        assert hasattr(base, node.attr), f"{where}: {ast.unparse(node)} does not exist"
        return getattr(base, node.attr)
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute) and inspect.isclass(owner := _resolve(node.func.value, env, where)):
            assert hasattr(owner, node.func.attr), f"{where}: {owner.__name__} has no {node.func.attr!r}"
        func = _resolve(node.func, env, where)
        if func is None or not callable(func):
            return None
        params = inspect.signature(func).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            for kw in node.keywords:
                assert kw.arg is None or kw.arg in params, (
                    f"{where}: {ast.unparse(node.func)} takes no argument {kw.arg!r} (it takes {list(params)})"
                )
        return func if inspect.isclass(func) else None  # an instance stands for its class
    return None


def check_names_exist(example: doctest.Example, env: dict, assigned: set[str], page: str = "README.md") -> None:
    """A skipped example's names: every variable is defined (by an example that ran or an earlier skipped one),
    every attribute of a module or an object exists, every keyword argument is one the callee takes."""
    where = f"{page}:{example.lineno + 1}: {example.source.strip()}"
    tree = ast.parse(example.source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            assert node.id in env or node.id in assigned or hasattr(builtins, node.id), (
                f"{where}: {node.id!r} is not defined by an earlier example"
            )
        if isinstance(node, (ast.Attribute, ast.Call)):
            _resolve(node, env, where)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            assigned.add(node.id)


def write_example_data(folder: Path) -> None:
    """``data.jsonl`` as the pages describe it: 600 generated pairs (seed 0) and one row that cannot be used."""
    from curate import make_preference_pairs

    pairs = make_preference_pairs(600, seed=0).dataset.select_columns(["prompt", "chosen", "rejected"])
    pairs.to_json(folder / "data.jsonl")
    with open(folder / "data.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"prompt": "Hi", "chosen": "Hello!", "rejected": "Hello!"}) + "\n")


def run_page_examples(page: Path, examples: list[doctest.Example]) -> int:
    """Run ``examples`` of ``page`` in order in one namespace (in the current folder); the ``+SKIP`` ones only
    have their names checked. The number of failures (doctest prints each)."""
    name = str(page.relative_to(ROOT))
    globs: dict = {}
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    assigned: set[str] = set()
    for example in examples:
        if _skipped(example):
            check_names_exist(example, globs, assigned, name)
        else:
            test = doctest.DocTest([example], globs, name, str(page), 0, None)
            runner.run(test, clear_globs=False)
            globs = test.globs  # DocTest runs on a copy: carry what the example defined to the next one
    return runner.failures


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples(page, tmp_path, monkeypatch):
    """The python examples of README.md and of every docs page run, in order and in one namespace per page, in a
    temporary folder whose ``data.jsonl`` holds 600 generated pairs and one unusable row; the lines marked
    ``+SKIP`` (the Hub, an LLM server, minutes of SAE fitting, Ray) still name only things that exist."""
    name = str(page.relative_to(ROOT))
    examples = page_examples(page)
    assert len(examples) >= MIN_EXAMPLES.get(name, 0), f"{name}: {len(examples)} examples found"
    if not examples:
        return
    monkeypatch.chdir(tmp_path)
    write_example_data(tmp_path)
    failures = run_page_examples(page, examples)
    assert failures == 0, f"{failures} example(s) in {name} failed (see the output above)"


def test_every_page_with_examples_is_counted():
    """A page that gains examples is added to MIN_EXAMPLES, so its examples cannot later vanish unnoticed."""
    with_examples = {str(p.relative_to(ROOT)) for p in PAGES if page_examples(p)}
    assert with_examples == set(MIN_EXAMPLES), f"update MIN_EXAMPLES: pages with examples are {sorted(with_examples)}"


def test_the_readme_shows_every_command():
    """README's usage block has a line for every ``curate`` command, and names no command that does not exist."""
    import typer.main

    from curate.cli import cli

    commands = set(typer.main.get_command(cli).commands)
    usage = re.search(r"## Usage\n\n```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    shown = set(re.findall(r"^curate ([\w-]+)", usage.group(1), flags=re.M))
    assert commands - shown == set(), f"README's usage shows no line for {sorted(commands - shown)}"
    assert shown - commands == set(), f"README's usage names commands that do not exist: {sorted(shown - commands)}"


def test_the_readme_links_every_docs_page_and_stays_short():
    """README is the short entry (≤ 200 lines, issue 28); every page of docs/ is one link away from it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200, f"README.md has {len(text.splitlines())} lines: move detail to docs/"
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", text))
    assert pages - linked == set(), f"README links no {sorted(pages - linked)}"


# -- every `curate.X` a docstring, comment string or message names exists (issue 28) ------------------------------
#: names still wrong in files other engineers own (issue 28); fix the text there and remove the entry here
KNOWN_WRONG: dict[str, str] = {}
_CURATE_NAME = re.compile(r"(?<![\w./-])curate\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_NOT_NAMES = {"json"}  # curate.json: the folders' manifest file (curate.folders.MANIFEST)


def _exists(dotted: str) -> bool:
    """Whether ``curate.<dotted>`` names a module or an attribute (the longest importable prefix, then getattr)."""
    parts = dotted.split(".")
    for k in range(len(parts), -1, -1):
        try:
            obj = importlib.import_module(".".join(["curate", *parts[:k]]))
        except ImportError:
            continue
        for name in parts[k:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def curate_names_that_do_not_exist(root: Path) -> dict[str, list[str]]:
    """``{name: [where]}`` for each ``curate.X`` in a string of ``root``'s Python files (docstrings, messages)
    that does not resolve."""
    out: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            for m in _CURATE_NAME.finditer(node.value):
                if m.group(1) not in _NOT_NAMES and not _exists(m.group(1)):
                    out.setdefault(m.group(1), []).append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return out


def test_docstrings_and_messages_name_only_what_exists():
    """A docstring or message that sends users to ``curate.X`` for an X that does not exist (the recipe error's
    ``curate.list_concepts()`` raised AttributeError) fails here."""
    import curate

    wrong = curate_names_that_do_not_exist(Path(curate.__file__).resolve().parent)
    new = {k: v for k, v in wrong.items() if k not in KNOWN_WRONG}
    assert not new, f"docstrings/messages name curate.X that does not exist: {new}"
    fixed = sorted(set(KNOWN_WRONG) - set(wrong))
    assert not fixed, f"{fixed} no longer named wrongly: remove them from KNOWN_WRONG"


def test_the_name_check_finds_a_missing_name(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text('"""See :func:`curate.no_such_thing` and curate.audit_base.RULES."""\n')
    assert curate_names_that_do_not_exist(tmp_path / "pkg") == {"no_such_thing": ["pkg/m.py:1"]}
