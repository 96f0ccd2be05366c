"""curate.publish: the Hub-ready folder, its card, its plots, and the upload path up to the network boundary."""

import logging
import struct
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from folder_helpers import record_edit
from huggingface_hub import DatasetCard, HfApi, constants

from curate.errors import CurateError
from curate.publish import check_card, escape_text, publish

SECRET = "hf_testSECRETtoken0123456789abcdef"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    """A small curated folder as `curate apply` writes it, next to the audit of its source data."""
    from curate.generate import make_preference_pairs
    from curate.interventions import apply_recipe
    from curate.pipeline import run_audit
    from curate.recipe import Recipe

    root = tmp_path_factory.mktemp("curation")
    audit = run_audit(make_preference_pairs(200, seed=0).dataset, out=root / "audit")
    recipe = Recipe.from_dict(
        {
            "name": "anti-sycophancy",
            "description": "Stop <script>x</script> | **rewarding** flattery",
            "rules": [
                {"concepts": ["flattery"], "action": "block", "interventions": ["filter", "margin"]},
                {"concepts": ["agreement"], "action": "block", "interventions": ["rebalance"]},
            ],
            "publish": {"license": "cc-by-4.0", "tags": ["unit-test"], "private": False},
        }
    )
    dd, report = apply_recipe(audit["dataset"], recipe)
    # the shape of curate.reward_probe.proxy_check's table (running it takes too long for a unit test)
    report.proxy = pd.DataFrame(
        {
            "concept": ["flattery", "agreement"],
            "counterfactual": ["flattery", "agreement"],
            "n_pairs": [60, 60],
            "before": [0.9, 0.8],
            "after": [0.55, 0.5],
            "before_logit": [1.2, 0.9],
            "after_logit": [0.1, 0.0],
        }
    )
    from curate.folders import load_audit, save_curated

    folder = root / "curated"
    save_curated(folder, dd, report=report, recipe=recipe, source_audit=load_audit(root / "audit"))
    return folder


@pytest.fixture(scope="module")
def published(curated):
    return publish(curated, repo_id="someone/curated-demo", local_dir=curated.parent / "published", upload=False)


@pytest.fixture
def online(monkeypatch):
    """Pretend the Hub is reachable; the HfApi calls are replaced, so nothing leaves the machine."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs, self.token))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, **kwargs):
        calls.append(("upload_folder", kwargs["repo_id"], kwargs, self.token))
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _all_text(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_folder_layout(published):
    names = {str(p.relative_to(published)) for p in published.rglob("*") if p.is_file()}
    assert {
        "README.md",
        "data/train-00000-of-00001.parquet",
        "data/dropped-00000-of-00001.parquet",
        "audit/recipe.yaml",
        "audit/audit.parquet",
        "audit/before_after.parquet",
        "audit/apply.json",
        "audit/proxy.parquet",
        "images/volcano.png",
        "images/before_after.png",
    } <= names


def test_folder_loads_with_the_same_rows_and_splits(curated, published, tmp_path):
    original = datasets.load_from_disk(str(curated))
    loaded = datasets.load_dataset(str(published), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "dropped"}
    for split in ("train", "dropped"):
        assert loaded[split].num_rows == original[split].num_rows
        assert loaded[split]["id"] == original[split]["id"]
        assert loaded[split]["chosen"] == original[split]["chosen"]
    assert loaded["dropped"].num_rows > 0 and set(loaded["dropped"]["reason"]) == {"filter:flattery"}
    np.testing.assert_allclose(loaded["train"]["weight"], original["train"]["weight"])
    np.testing.assert_allclose(loaded["train"]["margin"], original["train"]["margin"])


def test_card_parses_and_its_metadata_validates(published):
    card = DatasetCard.load(published / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-4.0"
    assert {"curate", "flattery", "agreement", "unit-test"} <= set(meta["tags"])
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    assert meta["source_datasets"] and meta["pretty_name"]
    assert {f["split"] for f in meta["configs"][0]["data_files"]} == {"train", "dropped"}
    check_card(published)
    text = card.text
    for section in (
        "## What the source data teaches",
        "## What was decided",
        "## What was done",
        "## Verification",
        "## How to train on it with TRL",
        "## Reproducibility",
        "## Limitations",
    ):
        assert section in text
    assert "images/volcano.png" in text and "images/before_after.png" in text
    assert "**Findings**" in text and "`flattery`" in text  # the audit marks findings: they lead
    assert "Effective sample size" in text and "filter:flattery" in text
    assert "RewardTrainer" in text and "WeightedDPOTrainer" in text and 'load_dataset("someone/curated-demo"' in text
    assert "curate version" in text and "source dataset fingerprint" in text
    assert "| `flattery` | flattery | 60 | 0.900 | 0.550 |" in text  # the proxy reward check
    assert "Example pairs (quoted from the data" in text and "> **`flattery`** — prompt:" in text


def test_quoted_texts_are_escaped(published):
    text = (published / "README.md").read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\\*\\*rewarding\\*\\*" in text and "\\|" in text
    assert escape_text("x" * 500, max_len=50).endswith("…") and len(escape_text("x" * 500, max_len=50)) == 50
    assert escape_text("a\n\n# b <i>[l](u)") == "a # b &lt;i&gt;\\[l\\](u)"


def test_plots_are_real_pngs(published):
    for name in ("volcano.png", "before_after.png"):
        w, h = _png_size(published / "images" / name)
        assert w >= 300 and h >= 100


def test_check_card_reports_problems(published, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(published, broken)
    shutil.rmtree(broken / "data")
    with pytest.raises(ValueError, match="matches no file"):
        check_card(broken)


def test_offline_says_so_and_keeps_the_folder(curated, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with caplog.at_level(logging.INFO, logger="curate.publish"):
        folder = publish(curated, repo_id="someone/x", local_dir=tmp_path / "out", token=SECRET)
    assert (folder / "README.md").exists()
    assert "not uploaded: " in caplog.text and "offline" in caplog.text
    assert f"the folder is ready at {folder}" in caplog.text and "hf upload someone/x" in caplog.text
    assert SECRET not in caplog.text


def test_no_token_says_so(curated, tmp_path, monkeypatch, caplog, online):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    with caplog.at_level(logging.WARNING, logger="curate.publish"):
        publish(curated, repo_id="someone/x", local_dir=tmp_path / "out")
    assert "not uploaded: no token" in caplog.text and not online
    with pytest.raises(CurateError, match="no token"):
        publish(curated, repo_id="someone/x", local_dir=tmp_path / "out", upload=True)


def test_upload_gets_the_folder_and_repo_id_and_the_token_is_never_written(curated, tmp_path, online, caplog, capsys):
    with caplog.at_level(logging.DEBUG):
        folder = publish(
            curated, repo_id="someone/curated-demo", local_dir=tmp_path / "out", token=SECRET, private=True
        )
    (kind1, repo1, kw1, tok1), (kind2, repo2, kw2, tok2) = online
    assert (kind1, repo1, kind2, repo2) == (
        "create_repo",
        "someone/curated-demo",
        "upload_folder",
        "someone/curated-demo",
    )
    assert kw1["repo_type"] == "dataset" and kw1["private"] is True and kw1["exist_ok"] is True
    assert kw2["repo_type"] == "dataset" and Path(kw2["folder_path"]) == folder
    assert tok1 == tok2 == SECRET  # handed to huggingface_hub only
    out = capsys.readouterr()
    assert SECRET not in caplog.text + out.out + out.err
    assert SECRET.encode() not in _all_text(folder)


def test_upload_errors_are_reported_without_the_token(curated, tmp_path, monkeypatch, online):
    def failing(self, repo_id, **kwargs):
        raise RuntimeError(f"403 Forbidden for token {self.token}")

    monkeypatch.setattr(HfApi, "create_repo", failing)
    with pytest.raises(CurateError) as err:
        publish(curated, repo_id="someone/x", local_dir=tmp_path / "out", token=SECRET)
    assert SECRET not in str(err.value) and "***" in str(err.value) and "folder is kept" in str(err.value)
    assert (tmp_path / "out" / "README.md").exists()


def test_unreachable_hub_keeps_the_folder(curated, tmp_path, monkeypatch, online, caplog):
    def unreachable(self, repo_id, **kwargs):
        raise ConnectionError("Failed to resolve huggingface.co")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    with caplog.at_level(logging.WARNING, logger="curate.publish"):
        folder = publish(curated, repo_id="someone/x", local_dir=tmp_path / "out", token=SECRET)
    assert "not uploaded: the Hub is not reachable" in caplog.text and (folder / "README.md").exists()


def test_missing_optional_pieces(tmp_path):
    """Only a DatasetDict (no recipe, re-audit, proxy check or source audit): the card says what is missing."""
    from curate.generate import make_preference_pairs

    ds = make_preference_pairs(40, seed=1).dataset
    ds = ds.add_column("weight", [1.0] * len(ds)).add_column("margin", [0.0] * len(ds))
    from curate.folders import save_curated

    save_curated(tmp_path / "cur", datasets.DatasetDict({"train": ds, "dropped": ds.select([])}))
    folder = publish(tmp_path / "cur", repo_id="someone/bare", upload=False)
    assert folder == tmp_path / "published"
    text = (folder / "README.md").read_text()
    assert "No recipe was found" in text and "No before/after re-audit was found" in text
    assert "Proxy reward check.** Not run" in text
    assert "No audit table of the source data" in text and "license: unknown" in text
    assert not (folder / "images").exists() or not any((folder / "images").iterdir())
    check_card(folder)
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train"} and loaded["train"].num_rows == 40  # an empty `dropped` gets no file


def test_findings_text_column_leads(curated, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(curated, src / "curated")
    table = src / "curated" / "source_audit" / "audit.parquet"  # the audit `curate apply` saved with the data
    audit = pd.read_parquet(table)
    audit["finding"] = ["Chosen answers <em>flatter</em> the user" if c == "flattery" else "" for c in audit["concept"]]
    audit.to_parquet(table)
    record_edit(src / "curated")  # an edit made on purpose
    folder = publish(src / "curated", repo_id="someone/x", upload=False)
    text = (folder / "README.md").read_text()
    assert "- Chosen answers &lt;em&gt;flatter&lt;/em&gt; the user" in text


def test_refuses_a_foreign_folder_and_replaces_its_own(curated, published, tmp_path):
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(CurateError, match="not a folder written by `curate publish`"):
        publish(curated, repo_id="someone/x", local_dir=tmp_path, upload=False)
    (published / "data" / "stale-00000-of-00001.parquet").write_bytes(b"")
    publish(curated, repo_id="someone/curated-demo", local_dir=published, upload=False)
    assert not (published / "data" / "stale-00000-of-00001.parquet").exists()


def test_bad_repo_id(curated, tmp_path):
    with pytest.raises(CurateError, match="user/name"):
        publish(curated, repo_id="no-namespace", local_dir=tmp_path / "o", upload=False)


def test_template_is_shipped_as_package_data():
    root = Path(__file__).resolve().parent.parent
    assert (root / "dataset_cards" / "template.md").read_text() == (
        root / "curate" / "templates" / "dataset_card.md"
    ).read_text()


def test_cli_publish(curated, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from curate.cli import cli

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = CliRunner().invoke(
        cli,
        ["publish", str(curated), "--repo-id", "someone/cli", "--local-dir", str(tmp_path / "cli"), "--token", SECRET],
    )
    assert result.exit_code == 0, result.output
    assert "not uploaded" in result.output and "Published folder" in result.output
    assert SECRET not in result.output and SECRET.encode() not in _all_text(tmp_path / "cli")
    assert (tmp_path / "cli" / "data" / "train-00000-of-00001.parquet").exists()


@pytest.mark.parametrize("name", ["curate.publish", "curate.plots"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_source_datasets_names_hub_sources_only():
    from curate.publish.sections import _is_hub_id

    assert _is_hub_id("Anthropic/hh-rlhf")
    assert not any(_is_hub_id(s) for s in ("data/pairs.jsonl", "outputs/demo/pairs.jsonl", "Dataset", None))


def test_the_card_escapes_inoculation_instructions_once():
    """An instruction is escaped as part of the step's line, not once inside and again outside."""
    from curate.publish.sections import _interventions

    step = {"intervention": "inoculate", "concepts": ["flattery"], "instructions": {"flattery": "Be *very* <b> & x_y"}}
    (row,) = _interventions({"steps": [step]})
    assert "{flattery: Be \\*very\\* &lt;b&gt; &amp; x\\_y}" in row["what"], row["what"]  # in the settings table
    assert "&amp;lt;" not in row["what"] and "\\\\" not in row["what"]  # escaped once, never twice


def test_nothing_local_leaves_the_machine(tmp_path, monkeypatch):
    """Published from a deep folder (data, audit, cache, curated folder and recipe all under it): no written file
    names that folder or any part of the temporary path, only the data file's name."""
    from curate.generate import make_preference_pairs
    from curate.pipeline import run_apply, run_audit

    deep = tmp_path / "a" / "very" / "deep" / "secret_dir_xyz"
    deep.mkdir(parents=True)
    monkeypatch.setenv("CURATE_CACHE", str(deep / "cache"))
    data = deep / "pairs.jsonl"
    make_preference_pairs(80, seed=0).dataset.to_json(str(data), lines=True)
    recipe = deep / "recipe.yaml"
    recipe.write_text(
        f"# made for {data}\nname: local\ndata:\n  source: {data}\nrules:\n  - concepts: [flattery]\n"
        "    action: block\n    interventions: [inoculate, rebalance]\n"
    )
    run_audit(str(data), out=deep / "audit")
    run_apply(str(deep / "audit"), recipe=str(recipe), out=deep / "curated")
    monkeypatch.chdir(deep)  # relative paths too
    folder = publish("curated", repo_id="someone/local", local_dir=deep / "published", upload=False)
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {"README.md", "curate.json", "audit/audit_summary.json", "audit/apply.json", "audit/recipe.yaml"} <= {
        str(p.relative_to(folder)) for p in files
    }
    secrets = {str(deep), "secret_dir_xyz", "very/deep", str(tmp_path), str(Path.home() / ".cache")}
    secrets |= {p for p in tmp_path.parts[2:]}  # /tmp/<pytest-of-user>/<pytest-N>/<test dir>
    leaks = {}
    for path in files:
        text = path.read_bytes().replace(b"\\", b"")  # the card escapes `_` as `\_`
        if found := sorted(s for s in secrets if s.encode() in text):
            leaks[str(path.relative_to(folder))] = found
    assert not leaks, leaks
    assert "| source data | pairs.jsonl |" in (folder / "README.md").read_text()
