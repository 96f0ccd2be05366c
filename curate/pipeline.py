"""End-to-end runs used by the CLI and the demo: load → annotate → audit → (apply → publish). Data only: the
CLI (:mod:`curate.cli`) prints what these return."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from . import _columns as C
from .errors import ColumnError, ConfigError
from .folders import FEATURE_LABELS
from .ingest import ensure_row_index

NO_SUBSET = "none"  # --by none: no per-subset audit even when the data has a subset column


def annotate_concepts(
    pairs,
    *,
    concepts: str = "named",
    model=None,
    layer: int = 15,
    sae: str = "fit",
    sae_kwargs: dict | None = None,
    engine: str = "local",
    engine_options: dict | None = None,
):
    """Add every requested concept source to a pair dataset. Returns (dataset, labels DataFrame or None, info).

    With ``engine="ray"`` each step runs on Ray Data (:mod:`curate.ray_engine`); ``engine_options["out"]``
    is the folder of the resumable jobs (``<out>/named``, ``<out>/sae``)."""
    from .concepts.named import annotate

    sources = [s.strip() for s in concepts.split(",") if s.strip()]
    unknown = sorted(set(sources) - {"named", "sae"})
    if unknown or not sources:
        raise ConfigError(f"Unknown concept sources {unknown or sources}. Choose from: named, sae (comma-separated).")
    info: dict = {"concept_sources": sources}

    # named concepts are always scored: length control and nearest_named need them
    def opts(step):
        if engine == "local":
            return {}
        o = dict(engine_options or {})
        if o.get("out"):
            o["out"] = str(Path(o["out"]) / step)
        return {"engine": engine, "engine_options": o}

    ds = annotate(pairs, **opts("named"))
    labels = None
    if "sae" in sources:
        from .concepts.labels import label_features
        from .concepts.sae import annotate_sae

        ds, annotator = annotate_sae(ds, model=model, layer=layer, sae=sae, **(sae_kwargs or {}), **opts("sae"))
        # the annotator gives the top examples token-level activations (one short extra forward)
        labels = label_features(ds, annotator.source, annotator=annotator)
        info["sae"] = annotator.to_dict() if hasattr(annotator, "to_dict") else {"source": annotator.source}
    return ds, labels, info


def audit_pairs(
    data,
    *,
    split=None,
    limit=None,
    format=None,
    concepts="named",
    model=None,
    layer=15,
    sae="fit",
    by=None,
    sae_kwargs=None,
    audit_kwargs=None,
    cache_dir=None,
    use_cache: bool = True,
    engine: str = "local",
    engine_options: dict | None = None,
) -> dict:
    """Load, annotate and audit ``data`` without writing an output folder.

    With ``use_cache`` (default) the fitted SAE, the annotated columns (with the SAE feature labels) and the audit
    are kept in ``cache_dir`` (default :func:`curate.cache.default_cache_dir`), keyed by the data's content,
    the concept sources, model, layer, SAE and fit settings, audit settings and curate's code: a second run on
    the same inputs (into another ``out``, or with another ``by``: the annotations are reused) reads them back.
    ``engine="ray"`` runs the annotation steps on Ray Data (:mod:`curate.ray_engine`, ``engine_options``:
    address, workers, gpus_per_worker, out); the columns are the same as the local engine's.

    Returns:
        ``{"dataset", "audit", "summary", "labels", "record", "files"}``; ``files`` are the keyword
        arguments of :func:`curate.folders.write_audit_files` (what an audit folder holds).
    """
    from .audit import ConceptAudit
    from .cache import cache_key, code_version, data_fingerprint, default_cache_dir, path_identity
    from .ingest import ingestion_summary, load_pairs

    t0 = time.perf_counter()
    pairs = load_pairs(data if not isinstance(data, Path) else str(data), split=split, limit=limit, format=format)
    pairs = ensure_row_index(pairs)  # a row is known by its position in the source, never by a user id
    # every step downstream (the SAE fit's key, datasets' map cache) is keyed by the content, not by the path
    content = data_fingerprint(pairs)
    pairs._fingerprint = content
    summary = ingestion_summary(pairs)
    by, summary["by_reason"] = resolve_by(by, pairs.column_names)
    cache = (Path(cache_dir) if cache_dir else default_cache_dir()) if use_cache else None
    sae_kwargs = dict(sae_kwargs or {})
    if cache is not None and "sae" in concepts:
        sae_kwargs.setdefault("cache_dir", str(cache / "sae"))
    from .concepts.named import NamedConcepts

    ann_key = cache_key(
        data=content,
        concepts=concepts,
        named=NamedConcepts().fingerprint(),
        model=path_identity(model),
        layer=layer,
        sae=path_identity(sae),
        sae_kwargs={k: v for k, v in sae_kwargs.items() if k != "cache_dir"},
        code=code_version(),
    )
    status = {"dir": str(cache) if cache is not None else None}
    if engine != "local" and not (engine_options or {}).get("out"):
        # the engine's resumable shards live in the cache (a killed run resumes), else in a temporary folder
        import tempfile

        shards = cache / f"{engine}-{ann_key}" if cache is not None else Path(tempfile.mkdtemp(prefix="curate-ray-"))
        engine_options = {**(engine_options or {}), "out": str(shards)}
    ds, labels, info, status["annotations"] = _cached_annotations(
        cache,
        ann_key,
        len(pairs),
        lambda: _annotate_with_engine(
            pairs,
            concepts=concepts,
            model=model,
            layer=layer,
            sae=sae,
            sae_kwargs=sae_kwargs,
            engine=engine,
            engine_options=engine_options,
        ),
    )
    audit_key = cache_key(annotations=ann_key, by=by, audit=audit_kwargs or {}, code=code_version())

    def fit_audit():
        audit = ConceptAudit(**(audit_kwargs or {})).fit(ds, by=by, labels=labels)
        label_findings(ds, audit, labels)
        return audit

    audit, status["audit"] = _cached_pickle(cache, f"audit-{audit_key}", fit_audit)
    source = str(data) if isinstance(data, (str, Path)) else type(data).__name__
    record = {
        "source": source,
        "ingestion": summary,
        "audit": audit.to_dict(),
        **info,
        "fingerprint": getattr(pairs, "_fingerprint", None),
        "cache": status,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    files = {
        "annotated": ds,
        "results": audit.results_,
        "summary": record,
        "members": audit.members_ if len(audit.members_) else None,
        "by": audit.results_by_ if by else None,
        "auc_by": audit.auc_by_ if by else None,
        "findings": audit.findings_,
        "labels": labels,
        "source": source,
    }
    return {"dataset": ds, "audit": audit, "summary": summary, "labels": labels, "record": record, "files": files}


def run_audit(data, *, out, **kwargs) -> dict:
    """Load, annotate and audit ``data``; write the audit folder ``out`` in one step (:mod:`curate.folders`:
    ``audit.parquet``, ``annotated/``, ``summary.json``, ``curate.json``, and the per-subset tables).

    ``kwargs`` are :func:`audit_pairs`'s (``split``, ``limit``, ``format``, ``concepts``, ``model``, ``layer``,
    ``sae``, ``by``, ``sae_kwargs``, ``audit_kwargs``, ``cache_dir``, ``use_cache``, ``engine``,
    ``engine_options``)."""
    from .folders import atomic_folder, check_target, write_audit_files

    out = check_target(out, "audit")  # refuses a foreign --out before the work starts
    result = audit_pairs(data, **kwargs)
    with atomic_folder(out, kind="audit") as tmp:
        write_audit_files(tmp, **result["files"])
    return result


def run_learn(data, curated, *, out, seeds=None, on_seed=None, **kwargs):
    """The learning check the way ``curate learn`` runs it: one seed (``seeds`` None or one value) writes ``out``
    with :func:`curate.learning_check`; several run one check per seed into ``<out>_seed<N>`` and pool them into
    ``out`` (:func:`curate.learning.learning_check_seeds`; ``on_seed(seed, result)`` after each).

    ``kwargs`` are :func:`curate.learning_check`'s; ``config`` is a :class:`curate.learning.LearnConfig` or a dict
    of its fields, its ``seed`` replaced by each seed. Returns the :class:`curate.learning.LearningResult`."""
    from dataclasses import replace

    from .learning import LearnConfig, learning_check, learning_check_seeds

    config = kwargs.pop("config", None)
    config = LearnConfig(**config) if isinstance(config, dict) else (config or LearnConfig())
    seeds = [config.seed] if seeds is None else list(seeds)
    if len(seeds) == 1:
        return learning_check(data, curated, out=out, config=replace(config, seed=seeds[0]), **kwargs)
    return learning_check_seeds(data, curated, seeds, out=out, config=config, on_seed=on_seed, **kwargs)


def run_apply(
    data,
    *,
    recipe: str | None = None,
    block: list[str] | None = None,
    amplify: list[str] | None = None,
    adjust_for: list[str] | str | None = None,
    out: str | Path,
    split: str | None = None,
    limit: int | None = None,
    proxy: str = "none",
    proxy_pairs: int = 200,
) -> dict:
    """What ``curate apply`` does, without printing (the CLI prints the result; the demo uses it).

    ``data`` is raw pairs (anything :func:`curate.load_pairs` reads), an audit folder (or its
    ``annotated/``) or a curated folder (:func:`curate.folders.resolve_input`). Raw data is audited first,
    exactly as ``curate audit`` does, and that audit is saved in the curated folder's ``source_audit/``;
    an audit folder is copied there; a curated folder's rows (``train`` once each, then ``dropped``, which
    stay dropped) are the input and its source audit is carried. Builds the recipe (a YAML path / shipped
    recipe name, or ``block``/``amplify`` ids, the block rule adjusted for ``adjust_for``), runs :func:`curate.interventions.apply_recipe`, optionally
    the proxy reward check, checks the row accounting (:func:`curate.folders.account_rows`) and writes the
    curated folder ``out`` in one step (:func:`curate.folders.save_curated`): ``train``/``dropped``,
    ``before_after.parquet``, ``apply.json``, ``recipe.yaml``, ``source_audit/``, ``curate.json``; when a
    rule uses ``ablate`` or ``steer``, also ``directions.safetensors``.

    Returns:
        ``{"out", "dataset", "report", "recipe", "warnings", "rows"}``.
    """
    from .folders import FolderError, check_target, resolve_input, save_curated
    from .interventions import apply_recipe
    from .recipe import Recipe, load_recipe

    if (recipe is None) == (not (block or amplify)):
        raise ConfigError(
            "Give either a recipe (--recipe FILE) or concept ids (--block IDS [--amplify IDS]), not both."
        )
    if adjust_for and not block:
        raise ConfigError(
            "--adjust-for adjusts the rebalancing of blocked concepts: give --block IDS with it, or set "
            "`adjust_for` on a rebalance rule of the recipe."
        )
    rec = (
        load_recipe(recipe)
        if recipe
        else Recipe.from_ids(block=block or [], amplify=amplify or [], adjust_for=adjust_for or None)
    )
    out = check_target(out, "curated")
    source = data if data is not None else rec.data.source
    kind, opened = resolve_input(source)
    audit_files = source_audit = made_from = None
    if kind == "raw":
        audited = audit_pairs(source, split=split or rec.data.split, limit=limit or rec.data.limit)
        dataset, audit_files = audited["dataset"], audited["files"]
    else:
        if split or limit:
            raise FolderError(
                f"--split/--limit select rows of raw data; {source!r} is a {kind} folder whose rows "
                "are fixed. Pass the data file instead, or leave them out."
            )
        made_from = opened.manifest
        if kind == "audit":
            dataset, source_audit = opened.annotated(), opened
        else:
            dataset, source_audit = opened.source_rows(), opened.audit
    dataset = ensure_row_index(dataset)
    dd, report = apply_recipe(dataset, rec)
    warnings = recipe_warnings(rec, report)
    report.extra["warnings"] = warnings
    if proxy and proxy != "none":
        from .reward_probe import proxy_check

        report.proxy = proxy_check(dataset, dd, rec.blocked() + rec.amplified(), embedder=proxy, n_pairs=proxy_pairs)

    def directions(tmp: Path) -> None:
        if rec.with_intervention("ablate") or rec.with_intervention("steer"):
            try:
                from .directions import export_directions

                d = export_directions(rec, dataset if len(dataset) else None, path=tmp / "directions.safetensors")
                report.extra["directions"] = d.to_dict()
            except Exception as err:  # the data is written; directions are an extra for training
                report.extra["directions_error"] = f"{type(err).__name__}: {err}"

    manifest = save_curated(
        out,
        dd,
        report=report,
        recipe=rec,
        source_audit=source_audit,
        audit_result=audit_files,
        input_rows=dataset,
        source=str(source),
        made_from=made_from,
        before_write=directions,
    )
    return {"out": out, "dataset": dd, "report": report, "recipe": rec, "warnings": warnings, "rows": manifest["rows"]}


def folders_written() -> list[Path]:
    """The output folders this process has put in place so far (what an interrupted command reports)."""
    from .folders.staging import WRITTEN

    return list(WRITTEN)


def recipe_warnings(rec, report) -> list[str]:
    """What a recipe did not do: no rules at all, or a concept that never differs between chosen and rejected."""
    out = []
    if not rec.rules:
        out.append("the recipe has no rules: every usable row is kept unchanged.")
    table = report.before_after
    for r in table.itertuples():
        if r.n_differ_before == 0:
            out.append(
                f"{r.action} {r.concept!r}: no usable pair differs in this concept (it never occurs, or "
                "occurs equally on both sides), so this rule changes nothing."
            )
    return out


def _annotate_with_engine(pairs, *, engine="local", engine_options=None, **kwargs):
    ds, labels, info = annotate_concepts(pairs, engine=engine, engine_options=engine_options, **kwargs)
    if engine != "local":
        from .ray_engine import last_engine

        info["engine"] = last_engine().to_dict() if last_engine() is not None else {"engine": engine}
    return ds, labels, info


def _cached_annotations(cache, key: str, n_rows: int, compute):
    """``compute()`` -> (dataset, labels, info), read from / written to the cache entry ``annotated-<key>``
    (:func:`curate.cache.read_entry`: a damaged entry, or one that does not hold ``n_rows`` rows, is computed
    again). The status says which: ``reused``, ``stored``, ``rebuilt (…)``, ``not stored (…)`` or ``off``."""
    import pandas as pd
    from datasets import load_from_disk

    from .cache import read_entry, write_entry
    from .folders import _to_parquet_safe

    if cache is None:
        return (*compute(), "off")
    path = Path(cache) / f"annotated-{key}"
    record, problem = read_entry(path)
    if record is not None:
        ds = load_from_disk(str(path / "data"))
        if len(ds) == n_rows == record.get("rows"):
            labels = pd.read_parquet(path / FEATURE_LABELS) if (path / FEATURE_LABELS).exists() else None
            return ds, labels, record["info"], "reused"
        problem = f"it holds {len(ds)} rows, the data {n_rows}"
        shutil.rmtree(path, ignore_errors=True)
    ds, labels, info = compute()

    def write(tmp: Path) -> dict:
        ds.save_to_disk(str(tmp / "data"))
        if labels is not None:
            _to_parquet_safe(labels, tmp / FEATURE_LABELS)
        return {"info": json.loads(json.dumps(info, default=str)), "rows": len(ds)}

    failed = write_entry(path, write)
    if failed:
        return ds, labels, info, f"not stored ({failed})"
    # the first run reads back the same files as every later one (same fingerprint and cache files)
    status = f"rebuilt (the entry was damaged: {problem})" if problem else "stored"
    return load_from_disk(str(path / "data")), labels, info, status


def _cached_pickle(cache, name: str, compute):
    """``compute()``, pickled into the cache entry ``name`` (checked on read like every entry)."""
    import pickle

    from .cache import read_entry, write_entry

    if cache is None:
        return compute(), "off"
    path = Path(cache) / name
    record, problem = read_entry(path)
    if record is not None:
        with open(path / "value.pkl", "rb") as fh:
            return pickle.load(fh), "reused"
    value = compute()

    def write(tmp: Path) -> None:
        with open(tmp / "value.pkl", "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)

    failed = write_entry(path, write)
    if failed:
        return value, f"not stored ({failed})"
    return value, f"rebuilt (the entry was damaged: {problem})" if problem else "stored"


def label_findings(ds, audit, labels) -> None:
    """Give every finding a readable label and marked example contexts (:func:`describe_findings`), in place."""
    from .concepts.finding_labels import describe_findings

    audit.findings_ = describe_findings(ds, audit, labels)
    readable = dict(zip(audit.findings_["concept"], audit.findings_["label"]))
    if readable:
        audit.results_["label"] = [
            readable.get(c, old) for c, old in zip(audit.results_["concept"], audit.results_["label"])
        ]


def resolve_by(by, columns) -> tuple[str | None, str]:
    """The subset column to audit by and why: the user's ``by``, ``none`` for no subsets, or detected.

    Raises:
        KeyError: ``by`` names a column the data does not have (the message lists the columns).
    """
    from .subsets import detect_subset_column

    if by is not None and str(by).lower() == NO_SUBSET:
        return None, "--by none: no per-subset audit"
    if by:
        if by not in columns:
            raise ColumnError(
                f"--by {by!r}: no such column. Columns of the data: {list(columns)}; "
                f"or --by {NO_SUBSET} for no per-subset audit."
            )
        return by, f"--by {by}"
    found = detect_subset_column(columns)
    if found:
        return (
            found,
            f"subset column {found!r} detected (one of {', '.join(C.SUBSET_CANDIDATES)}; --by none turns it off)",
        )
    return None, "no subset column (none of: " + ", ".join(C.SUBSET_CANDIDATES) + "); pass --by COLUMN for one"


def run_demo(*, out, n_pairs=600, sae=True, seed=0, card_example=None, on_step=None, learn_steps=0) -> dict:
    """Generate ``n_pairs`` pairs with planted concepts, audit them, apply the shipped ``anti_sycophancy`` recipe
    and publish the curated folder locally (no upload), all under ``out``.

    With ``learn_steps > 0`` the learning check (:func:`curate.learning_check`, LoRA DPO on SmolLM2 on the
    original and the curated pairs, ``learn_steps`` steps per policy) runs before publishing, so the card gets
    "What a model learned from it" (step ``"learn"``: the :class:`~curate.learning.LearningResult`).

    ``on_step(name, value)`` is called after each step (``"generate"``: the :class:`GeneratedPairs`,
    ``"audit"``: :func:`run_audit`'s result, ``"apply"``: :func:`run_apply`'s, ``"publish"``: the folder), so a
    caller (the CLI) can report progress; nothing is printed here.

    Returns:
        ``{"audit", "applied", "published", "seconds"}``.
    """
    from .generate import make_preference_pairs
    from .publish import publish
    from .recipe import shipped_recipes

    on_step = on_step or (lambda name, value: None)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    gen = make_preference_pairs(n_pairs, seed=seed)
    data_file = out / "pairs.jsonl"
    gen.dataset.to_json(str(data_file), lines=True)
    gen.truth.to_csv(out / "truth.csv", index=False)
    on_step("generate", gen)
    result = run_audit(str(data_file), out=out / "audit", concepts="named,sae" if sae else "named")
    on_step("audit", result)
    applied = run_apply(str(out / "audit"), recipe=str(shipped_recipes()["anti_sycophancy.yaml"]), out=out / "curated")
    on_step("apply", applied)
    if learn_steps:
        from .learning import LearnConfig, learning_check

        learned = learning_check(
            str(data_file),
            out / "curated",
            out=out / "learning",
            config=LearnConfig(steps=learn_steps),
            eval_prompts=20,
            samples=2,
            max_new_tokens=32,
            counterfactual_pairs=32,
            log=lambda m: None,
        )
        on_step("learn", learned)
    published = publish(out / "curated", repo_id="your-name/curate-demo", local_dir=out / "published", upload=False)
    if card_example:
        import shutil

        Path(card_example).mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(published) / "README.md", Path(card_example) / "README.md")
        if (Path(published) / "images").exists():
            shutil.copytree(Path(published) / "images", Path(card_example) / "images", dirs_exist_ok=True)
    on_step("publish", published)
    return {"audit": result, "applied": applied, "published": published, "seconds": round(time.perf_counter() - t0, 1)}


def run_fit_sae(
    data,
    *,
    out,
    model=None,
    layer: int = 15,
    backend: str = "lm",
    d_sae: int = 2048,
    k: int = 32,
    epochs: int = 3,
    limit=None,
    split=None,
    max_tokens: int = 1_000_000,
    seed: int = 0,
    device: str = "cpu",
    on_step=None,
):
    """What ``curate fit-sae`` does: collect response-token activations of ``data`` and fit a TopK SAE on them
    (sae-lens format, written to ``out``). ``on_step(name, value)`` is called with ``("pairs", n_pairs)`` and
    ``("activations", n_vectors)``. Returns the fitted sae-lens SAE."""
    from .concepts.sae import SAEConcepts, collect_activations, fit_metadata
    from .concepts.sae_source import fit_sae
    from .ingest import load_pairs

    on_step = on_step or (lambda name, value: None)
    ds = load_pairs(data, split=split, limit=limit)
    probe = SAEConcepts(None, model=model, layer=layer, backend=backend, device=device)
    on_step("pairs", len(ds))
    acts = collect_activations(ds, probe, max_tokens=max_tokens)
    on_step("activations", len(acts.acts))
    return fit_sae(
        acts.acts, d_sae=d_sae, k=k, epochs=epochs, seed=seed, device=device, metadata=fit_metadata(probe), out=out
    )
