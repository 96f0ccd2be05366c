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

from __future__ import annotations

import html
import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _columns as C
from .errors import CurateError

__all__ = ["check_card", "escape_text", "make_card", "publish", "read_curated"]

logger = logging.getLogger(__name__)

CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "dataset_card.md"
DATA_DIR, AUDIT_DIR, IMAGES_DIR = "data", "audit", "images"
VOLCANO_PNG, BEFORE_AFTER_PNG = "volcano.png", "before_after.png"
SPLITS = (C.TRAIN_SPLIT, C.DROPPED_SPLIT)


def _written_splits(dataset) -> list[str]:
    """The splits that get a data file: ``train`` always, ``dropped`` when it has rows (``datasets`` cannot
    load an empty split from parquet)."""
    return [s for s in SPLITS if s == C.TRAIN_SPLIT or dataset[s].num_rows > 0]
# where curate's weighted DPO trainer lives (shown in the card's TRL snippet)
DPO_TRAINER = ("curate.interventions", "WeightedDPOTrainer")

SIZE_CATEGORIES = ["n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
                   "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")


# -- escaping and formatting ---------------------------------------------------------------------------
def escape_text(text: Any, max_len: int = 120) -> str:
    """Make a text from the data safe to quote in a markdown card: one line, truncated, escaped.

    Whitespace runs (newlines included) become one space; texts longer than ``max_len`` characters are cut
    and end in ``…``; ``& < >`` are HTML-escaped and the markdown characters ``\\ ` * _ [ ] | ~ $`` are
    backslash-escaped, so quoted text cannot open a tag, a link, emphasis, a code span or a table cell.

    Example:

        >>> escape_text("<b>Great</b> question! | **yes**\\n[x](http://a)")
        '&lt;b&gt;Great&lt;/b&gt; question! \\\\| \\\\*\\\\*yes\\\\*\\\\* \\\\[x\\\\](http://a)'
        >>> escape_text("a" * 10, max_len=5)
        'aaaa…'
    """
    text = " ".join(str(text).split())
    if len(text) > max_len:
        text = text[: max_len - 1].rstrip() + "…"
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def _code(text: Any, max_len: int = 60) -> str:
    """Text for inside a `code span` in a table cell (no backticks, pipes escaped)."""
    text = " ".join(str(text).split()).replace("`", "'")
    if len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text.replace("|", "\\|")


def _isnan(x) -> bool:
    try:
        return x is None or bool(np.isnan(float(x)))
    except (TypeError, ValueError):
        return False


def _fmt(x, digits: int = 3) -> str:
    return "—" if _isnan(x) else f"{float(x):.{digits}f}"


def _fmt_q(q) -> str:
    if _isnan(q):
        return "—"
    q = float(q)
    return f"{q:.1e}" if q < 1e-3 else f"{q:.3f}"


def _pct(x) -> str:
    return "—" if _isnan(x) else f"{100 * float(x):.0f}%"


def _fmt_wr(wr, lo=None, hi=None) -> str:
    if _isnan(wr):
        return "—"
    if _isnan(lo) or _isnan(hi):
        return f"{float(wr):.3f}"
    return f"{float(wr):.3f} [{float(lo):.3f}, {float(hi):.3f}]"


def _fmt_value(v, max_len: int = 80) -> str:
    """A compact, escaped rendering of a value from an intervention record."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _fmt(v, 3) if abs(v) < 1e4 else f"{float(v):.3g}"
    if isinstance(v, dict):
        if all(not isinstance(x, (dict, list)) for x in v.values()):
            return escape_text("{" + ", ".join(f"{k}: {_fmt_value(x)}" for k, x in v.items()) + "}", max_len)
        return f"({len(v)} entries, see audit/)"
    if isinstance(v, (list, tuple)):
        if all(not isinstance(x, (dict, list)) for x in v):
            return escape_text(", ".join(_fmt_value(x) for x in v), max_len) or "none"
        return f"({len(v)} entries, see audit/)"
    return escape_text(v, max_len)


# -- reading a curated folder --------------------------------------------------------------------------
@dataclass
class CuratedData:
    """Everything :func:`publish` found in a curated folder (see :func:`read_curated`).

    Attributes:
        folder: the curated folder.
        dataset: the ``DatasetDict`` with ``train`` and (possibly empty) ``dropped`` splits.
        recipe: the recipe as a plain dict (``Recipe.to_dict()`` layout), or None.
        recipe_text: the recipe YAML as written by ``curate apply`` (comments kept), or None.
        report: the apply record (intervention ``to_dict()``\\ s, retention, proxy check...), or {}.
        before_after: one row per concept with ``win_rate_before``/``_after`` (and CIs, q), or None.
        audit: the audit of the source data (``audit.parquet``), or None.
        audit_summary: the source audit's ``summary.json``, or None.
        labels: SAE feature labels (``feature_labels.parquet``), or None.
        proxy: the proxy reward check table (``proxy*.parquet``), or None (then read from ``report``).
        annotated_dir: the annotated source pairs (``annotated/`` of the audit), for quoted examples.
        files: extra files to copy into ``audit/`` (name in the folder → source path).
    """

    folder: Path
    dataset: Any
    recipe: dict | None = None
    recipe_text: str | None = None
    report: dict = field(default_factory=dict)
    before_after: pd.DataFrame | None = None
    audit: pd.DataFrame | None = None
    audit_summary: dict | None = None
    labels: pd.DataFrame | None = None
    proxy: pd.DataFrame | None = None
    annotated_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)


def read_curated(curated_dir: str | Path, *, audit_dir: str | Path | None = None) -> CuratedData:
    """Read a curated folder (:func:`curate.folders.load_curated`) and the audit of its source rows.

    The source audit is the one ``curate apply`` saved in the curated folder (``source_audit/``);
    ``audit_dir`` (an audit folder) replaces it, and is refused when it audited other rows than the
    curated folder was made from.

    Args:
        curated_dir: the output folder of ``curate apply``.
        audit_dir: the output folder of ``curate audit`` on the same source data (optional).

    Returns:
        A :class:`CuratedData`.
    """
    from . import folders as F

    cur = F.load_curated(curated_dir)
    out = CuratedData(folder=cur.path, dataset=cur.dataset, report=cur.report, recipe_text=cur.recipe_text,
                      proxy=cur.proxy)
    out.files[F.APPLY_RECORD] = cur.path / F.APPLY_RECORD
    if cur.proxy is not None:
        out.files[F.PROXY] = cur.path / F.PROXY
    out.recipe = _recipe_dict(cur.recipe_text) if cur.recipe_text else None
    if out.recipe is None and isinstance(cur.report.get("recipe"), dict):
        out.recipe = cur.report["recipe"]
    out.before_after = _normalize_before_after(cur.before_after) if cur.before_after is not None else None
    if out.before_after is None:
        out.before_after = _before_after_from_report(cur.report)
    audit = cur.audit
    if audit_dir is not None:
        audit = F.load_audit(audit_dir)
        ours, theirs = cur.manifest.get("source_fingerprint"), audit.manifest.get("source_fingerprint")
        if ours and theirs and ours != theirs:
            raise F.FolderError(f"{str(audit_dir)!r} audited other rows (fingerprint {theirs}) than "
                                f"{str(cur.path)!r} was made from ({ours}); leave out --audit-dir to use the "
                                "audit saved with it.")
    if audit is not None:
        out.audit, out.labels, out.audit_summary = audit.results, audit.labels, audit.summary
        out.annotated_dir = audit.path / F.ANNOTATED
        out.files.update(audit.files())
    return out


def _recipe_dict(text: str) -> dict | None:
    try:
        from .recipe import Recipe

        return Recipe.from_yaml(text, validate_ids=False).to_dict()
    except Exception:  # an older or hand-written recipe: read it as plain YAML
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return None
        return value if isinstance(value, dict) else None


def _normalize_before_after(table: pd.DataFrame) -> pd.DataFrame | None:
    """The before/after table as ``curate apply`` writes it (:data:`curate.interventions.apply.BEFORE_AFTER_COLUMNS`),
    or None when it is not that table."""
    if not {"concept", "win_rate_before", "win_rate_after"} <= set(table.columns):
        return None
    return table.rename(columns={"q_value_before": "q_before", "q_value_after": "q_after"})


def _before_after_from_report(report: dict) -> pd.DataFrame | None:
    """The table from ``apply.json``'s ``before_after`` records (when ``before_after.parquet`` is absent)."""
    value = report.get("before_after")
    return _normalize_before_after(pd.DataFrame(value)) if isinstance(value, list) and value else None


# -- the card ------------------------------------------------------------------------------------------
def _actions(recipe: dict | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for rule in (recipe or {}).get("rules", []) or []:
        concepts = rule.get("concepts", [])
        for c in [concepts] if isinstance(concepts, str) else concepts:
            out[str(c)] = str(rule.get("action", ""))
    return out


def _dataset_info(dataset) -> dict:
    """The ``dataset_info`` block of the YAML header (features, split sizes), as ``push_to_hub`` writes it.

    Besides documenting the schema, it makes ``load_dataset(folder)`` cache by content: datasets keys the
    cache of a local folder with ``configs`` by the folder name and this block, not by the files' times.
    """
    splits = [{"name": s, "num_bytes": int(dataset[s].data.nbytes), "num_examples": int(dataset[s].num_rows)}
              for s in _written_splits(dataset)]
    info: dict[str, Any] = {"splits": splits, "dataset_size": sum(x["num_bytes"] for x in splits)}
    features = dataset[C.TRAIN_SPLIT].features
    if all(dataset[s].features == features for s in _written_splits(dataset)):
        info = {"features": features._to_yaml_list(), **info}
    return info


def _is_hub_id(source) -> bool:
    """``owner/name`` that is not a local path or a data file."""
    return (isinstance(source, str) and bool(_REPO_ID.match(source)) and not Path(source).exists()
            and not re.search(r"\.(jsonl?|parquet|csv|tsv|gz|arrow|txt)$", source, re.I))


def _size_category(n: int) -> str:
    bounds = [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12]
    return SIZE_CATEGORIES[int(np.searchsorted(bounds, n, side="right"))]


def _kish(w: np.ndarray) -> float:
    w = np.asarray(w, float)
    s2 = float((w ** 2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def _retention(dataset, report: dict | None = None) -> tuple[dict, list[dict]]:
    """Rows kept / dropped by reason, effective sample size, swaps, margins — from the data itself, with the
    apply record's numbers (``retention``) where it has them."""
    rec = (report or {}).get("retention") or {}
    train, dropped = dataset[C.TRAIN_SPLIT], dataset[C.DROPPED_SPLIT]
    n_train, n_dropped = train.num_rows, dropped.num_rows
    info: dict[str, Any] = {"n_rows": rec.get("rows", n_train + n_dropped), "n_train": n_train,
                            "n_dropped": n_dropped, "n_inoculated": rec.get("rows_inoculated", 0)}
    if rec.get("rows_in_train") is not None and rec.get("rows_kept") is not None \
            and rec["rows_in_train"] != rec["rows_kept"]:
        info["resampled"] = f"{rec['rows_kept']:,} distinct pairs kept, drawn {rec['rows_in_train']:,} times"
    reasons: dict[str, int] = {}
    if C.REASON in dropped.column_names:
        for r in dropped[C.REASON]:
            reasons[r or "(none given)"] = reasons.get(r or "(none given)", 0) + 1
    cols = train.column_names
    keep = np.asarray(train[C.KEEP], bool) if C.KEEP in cols else np.ones(n_train, bool)
    if C.KEEP in cols and (~keep).any():
        for r in np.asarray(train[C.REASON] if C.REASON in cols else [""] * n_train, object)[~keep]:
            key = f"{r or '(none given)'} (kept in train with keep=False)"
            reasons[key] = reasons.get(key, 0) + 1
    if C.WEIGHT in cols and n_train:
        w = np.asarray(train[C.WEIGHT], float)[keep]
        ess = float(rec["ess"]) if rec.get("ess") is not None else _kish(w)
        base = rec.get("rows_usable") or len(w)
        share = float(rec["ess_fraction"]) if rec.get("ess_fraction") is not None else ess / max(base, 1)
        info.update(ess=f"{ess:,.1f}", ess_share=f"{share:.0%}", ess_base=f"{base:,}", w_min=_fmt(w.min(), 3),
                    w_max=_fmt(w.max(), 3), w_mean=_fmt(w.mean(), 3), ess_value=ess)
    info["n_swapped"] = int(np.asarray(train[C.SWAPPED], bool).sum()) if C.SWAPPED in cols else \
        int(rec.get("rows_swapped") or 0)
    if C.MARGIN in cols and n_train:
        m = np.asarray(train[C.MARGIN], float)
        if np.any(np.abs(m) > 1e-6):
            info.update(margin=True, margin_min=_fmt(m.min(), 3), margin_max=_fmt(m.max(), 3))
    rows = [{"reason": _code(k, 80), "rows": v} for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])]
    return info, rows


def _truthy(values) -> np.ndarray:
    return np.array([bool(v) and v == v and str(v).strip().lower() not in ("false", "0", "none", "nan")
                     for v in values], dtype=bool)


def _audit_rows(audit: pd.DataFrame, actions: dict, top: int, alpha: float = 0.05) -> list[dict]:
    """Rows for the card's audit table, in the audit's own order (findings first, then by length-controlled
    q): findings, then significant concepts, up to ``top``; every concept in the recipe is always shown."""
    res = audit.reset_index(drop=True)
    finding = _truthy(res["finding"]) if "finding" in res else np.zeros(len(res), bool)
    significant = res["q_value"].astype(float).fillna(1.0).to_numpy() < alpha
    in_recipe = res["concept"].isin(list(actions)).to_numpy()
    chosen = list(np.flatnonzero(finding)) + list(np.flatnonzero(significant & ~finding))
    if not chosen:
        chosen = list(range(len(res)))
    chosen = chosen[:top]
    chosen += [i for i in np.flatnonzero(in_recipe) if i not in chosen]
    rows = []
    for i in sorted(chosen):
        r = res.iloc[i]
        label = escape_text(r.get("label", ""), 90)
        members = r.get("n_members")
        if not _isnan(members) and int(members) > 1:
            label += f" (group of {int(members)} features)"
        rows.append({
            "concept": _code(r["concept"]), "label": label,
            "n_differ": int(r["n_differ"]) if not _isnan(r.get("n_differ")) else "—",
            "win_rate": _fmt_wr(r["win_rate"], r.get("ci_low"), r.get("ci_high")),
            "q": _fmt_q(r["q_value"]), "lc_q": _fmt_q(r.get("length_controlled_q")),
            "confirmed": "yes" if bool(r.get("confirmed", False)) else "no",
            "action": actions.get(r["concept"], ""),
            "finding": "yes" if finding[i] else "",
        })
    return rows


def _findings(audit: pd.DataFrame | None, top: int = 10) -> list[str]:
    """One sentence per finding the audit marked, in Markdown (the app shows the same sentences)."""
    from .teach import finding_sentences

    out = []
    for f in finding_sentences(audit, top):
        if f.given:
            out.append(escape_text(f.text, 300))
            continue
        label = escape_text(f.label, 100)
        out.append(f"`{_code(f.concept)}` ({label}" + (f"; {f.note}" if f.note else "") + f"): {f.text}")
    return out


def _examples(data: CuratedData, concepts: list[str], n: int = 3) -> list[dict]:
    """One quoted pair per concept (escaped, truncated): the chosen response shows the concept, the rejected
    does not. From the annotated source pairs when available, else from the curated ``train`` split."""
    import datasets

    source = None
    if data.annotated_dir is not None:
        try:
            source = datasets.load_from_disk(str(data.annotated_dir))
        except Exception:  # noqa: BLE001 - examples are optional
            source = None
    if source is None:
        source = data.dataset[C.TRAIN_SPLIT]
    cols = set(source.column_names)
    out, used = [], set()
    for concept in concepts:
        c_col, r_col = C.score_column(C.CHOSEN, concept), C.score_column(C.REJECTED, concept)
        if c_col not in cols or r_col not in cols or len(out) >= n:
            continue
        chosen, rejected = np.asarray(source[c_col], float), np.asarray(source[r_col], float)
        usable = np.asarray([not r for r in source[C.REASON]], bool) if C.REASON in cols else np.ones(len(chosen), bool)
        hits = [i for i in np.flatnonzero((chosen > 0) & (rejected <= 0) & usable) if i not in used]
        if not hits:
            continue
        used.add(hits[0])
        row = source[int(hits[0])]
        out.append({"concept": _code(concept), "prompt": escape_text(row.get(C.PROMPT, ""), 140),
                    "chosen": escape_text(row.get(C.CHOSEN, ""), 240),
                    "rejected": escape_text(row.get(C.REJECTED, ""), 240)})
    return out


def _interventions(report: dict) -> list[dict]:
    """One row per step of ``apply.json``'s ``steps`` (each intervention's ``to_dict()``)."""
    out = []
    for item in report.get("steps") or []:
        name = item["intervention"]
        concepts = item.get("concepts")
        parts = []
        for k, v in item.items():
            if k in ("intervention", "concepts", "strata"):
                continue
            if isinstance(v, (list, dict)) and any(isinstance(x, (dict, list)) for x in
                                                   (v.values() if isinstance(v, dict) else v)):
                continue
            parts.append(f"{escape_text(k, 40)}: {_fmt_value(v)}")
        what = "; ".join(parts)
        out.append({"name": escape_text(name, 40),
                    "concepts": ", ".join(f"`{_code(c)}`" for c in (concepts or [])) if concepts else "",
                    "what": what if len(what) <= 900 else what[:899] + "…"})
    return out


def _before_after_rows(table: pd.DataFrame | None, actions: dict) -> list[dict]:
    if table is None:
        return []
    order = [c for c in actions if c in set(table["concept"])]
    order += [c for c in table["concept"] if c not in order]
    tab = table.set_index("concept")
    rows = []
    for c in order:
        r = tab.loc[c]
        if isinstance(r, pd.DataFrame):
            r = r.iloc[0]
        rows.append({
            "concept": _code(c), "action": actions.get(c) or escape_text(r.get("action", "") or "", 20),
            "before": _fmt_wr(r.get("win_rate_before"), r.get("ci_low_before"), r.get("ci_high_before")),
            "q_before": _fmt_q(r.get("q_before")),
            "after": _fmt_wr(r.get("win_rate_after"), r.get("ci_low_after"), r.get("ci_high_after")),
            "q_after": _fmt_q(r.get("q_after")),
        })
    return rows


def _proxy(report: dict, table: pd.DataFrame | None = None) -> dict | None:
    """The proxy reward check as a text and a small table, or None when it was not run."""
    value = table if table is not None else report.get("proxy")
    text = ("A Bradley–Terry probe on frozen response embeddings, fitted once on the original and once on the "
            "curated data, scored on counterfactual pairs that differ only in one concept: how often each probe "
            "prefers the variant that shows the concept (0.5 = indifferent).")
    if isinstance(value, dict):
        if value.get("skipped") or value.get("ran") is False:
            why = value.get("reason") or value.get("skipped")
            return {"text": "Not run" + (f": {escape_text(why, 200)}." if isinstance(why, str) else "."),
                    "columns": [], "rows": []}
        text = escape_text(value.get("description") or value.get("summary") or text, 600)
        per = value.get("concepts") or value.get("per_concept") or value.get("results") or value.get("rows")
        if isinstance(per, dict):
            per = [{"concept": k, **v} if isinstance(v, dict) else {"concept": k, "value": v} for k, v in per.items()]
        if not per:
            scalars = {k: v for k, v in value.items() if not isinstance(v, (dict, list)) and k != "description"}
            text += " " + "; ".join(f"{escape_text(k, 40)}: {_fmt_value(v)}" for k, v in scalars.items())
        value = per
    if isinstance(value, list):
        value = pd.DataFrame([v for v in value if isinstance(v, dict)])
    if not isinstance(value, pd.DataFrame) or value.empty:
        return None
    known = {"concept": "concept", "counterfactual": "counterfactual pairs of", "n_pairs": "pairs",
             "before": "probe fitted on the original data", "after": "probe fitted on the curated data"}
    if {"concept", "before", "after"} <= set(value.columns):
        columns = [c for c in known if c in value.columns]
        headers = [known[c] for c in columns]
    else:
        columns = [c for c in value.columns if not isinstance(value[c].iloc[0], (dict, list, np.ndarray))][:8]
        headers = [escape_text(c, 40) for c in columns]
    rows = [[f"`{_code(v)}`" if c == "concept" else _fmt_value(v, 60) for c, v in zip(columns, r)]
            for r in value[columns].head(30).itertuples(index=False)]
    return {"text": text, "columns": headers, "rows": rows}


def _repro(data: CuratedData, fingerprints: dict) -> list[dict]:
    from . import __version__

    rows = [("curate version", __version__)]
    summary = data.audit_summary or {}
    recipe = data.recipe or {}
    source = ((recipe.get("data") or {}).get("source")) or summary.get("source") or data.report.get("data")
    if source:
        rows.append(("source data", source))
    if summary.get("concept_sources"):
        rows.append(("concept sources", ", ".join(summary["concept_sources"])))
    sae = summary.get("sae") or {}
    if isinstance(sae, dict) and sae:
        names = {"backend": "SAE backend", "model": "model", "layer": "layer", "sae": "SAE", "release": "SAE release",
                 "sae_id": "SAE id", "source": "SAE source name", "pooling": "pooling", "k": "top-k kept per response",
                 "d_sae": "SAE width (d_sae)", "max_length": "max tokens per text", "version": "annotator version"}
        for key, name in names.items():
            if sae.get(key) not in (None, "", [], {}):
                rows.append((name, sae[key]))
        fit = sae.get("fit") or sae.get("fit_settings")
        if fit:
            rows.append(("SAE fit settings", fit))
    elif summary:
        rows.append(("model", "none (named concepts only)"))
    audit_cfg = summary.get("audit") or {}
    if audit_cfg:
        rows.append(("audit settings", {k: audit_cfg[k] for k in ("alpha", "seed", "min_active", "split_salt")
                                        if k in audit_cfg}))
    if "seed" in recipe:
        rows.append(("recipe seed", recipe["seed"]))
    if summary.get("fingerprint"):
        rows.append(("source dataset fingerprint", summary["fingerprint"]))
    for split, fp in fingerprints.items():
        rows.append((f"`{split}` fingerprint", fp))
    rows.append(("card written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")))
    return [{"key": escape_text(k, 60) if not k.startswith("`") else k,
             "value": _fmt_value(v, 200) if not isinstance(v, str) else escape_text(v, 200)} for k, v in rows]


def _limitations(data: CuratedData, actions: dict, license_given: bool) -> list[str]:
    out = [
        "Concepts are what curate can measure: named detectors are heuristics (patterns and word lists), and SAE "
        "features carry automatic labels from their top-activating examples; a concept that is not measured "
        "can be neither audited nor blocked.",
        "Win-rates are associations. A concept that travels with real quality (for example length with complete "
        "answers) can be rewarded for a good reason; the length-controlled column separates the two for length "
        "only.",
        "Reweighting and filtering change which pairs the reward sees, not the texts: under the weights a blocked "
        "concept is no longer rewarded on its own, but a model can still pick it up from correlated features.",
    ]
    ret = _retention(data.dataset, data.report)[0]
    if "ess_value" in ret and ret["n_train"]:
        out.append(f"Weighted training sees fewer effective pairs ({ret['ess']} of {ret['n_train']}); expect more "
                   "variance than the row count suggests, and use a trainer that reads `weight` (or resample).")
    if data.before_after is not None and "q_after" in data.before_after:
        still = data.before_after[(data.before_after["concept"].isin([c for c, a in actions.items() if a == "block"]))
                                  & (data.before_after["q_after"].astype(float) < 0.05)]
        for c in still["concept"]:
            out.append(f"`{_code(c)}` is blocked but still significant after curation (q < 0.05); see Verification.")
    if not license_given:
        out.append("The license of the source data was not given to curate; check it before reusing this data.")
    return out


def make_card(data: CuratedData, *, repo_id: str, license: str | None = None, pretty_name: str | None = None,
              tags: list[str] | None = None, images: dict[str, str] | None = None,
              fingerprints: dict[str, str] | None = None, top: int = 15, learning: str | None = None):
    """Render the dataset card of a curated dataset.

    Args:
        data: what :func:`read_curated` found.
        repo_id: the Hub id the card is written for (``user/name``).
        license: license id; default: the recipe's ``publish.license``, else ``"unknown"``.
        pretty_name: title; default: the recipe's ``publish.pretty_name``, else from ``repo_id``.
        tags: extra tags (``curate``, the blocked concept ids and the recipe's tags are always added).
        images: ``{"volcano": "images/volcano.png", "before_after": ...}`` paths relative to the card.
        fingerprints: split → content fingerprint, for the reproducibility section.
        top: how many audit rows to show (plus every concept in the recipe).
        learning: markdown of the section "What a model learned from it" (:func:`curate.learning.card.card_section`).

    Returns:
        A :class:`huggingface_hub.DatasetCard`.

    Example:

        >>> card = make_card(read_curated("outputs/demo/curated"), repo_id="me/x")  # doctest: +SKIP
        >>> card.data.tags[:1]  # doctest: +SKIP
        ['curate']
    """
    from huggingface_hub import DatasetCard, DatasetCardData

    from . import __version__

    recipe = data.recipe or {}
    pub = recipe.get("publish") or {}
    actions = _actions(recipe)
    images = images or {}
    license_given = bool(license or pub.get("license"))
    license = license or pub.get("license") or "unknown"
    name = repo_id.split("/")[-1]
    title = pretty_name or pub.get("pretty_name") or f"{name} (curated with curate)"
    blocked = [c for c, a in actions.items() if a == "block"]
    all_tags = list(dict.fromkeys(["curate", "preference", "dpo", *(pub.get("tags") or []), *(tags or []),
                                   *blocked]))
    n_total = sum(data.dataset[s].num_rows for s in SPLITS)
    source = (recipe.get("data") or {}).get("source") or (data.audit_summary or {}).get("source")
    source_datasets = [source] if _is_hub_id(source) else ["original"]
    card_data = DatasetCardData(
        license=license, pretty_name=title, task_categories=["text-generation"], tags=all_tags,
        size_categories=[_size_category(n_total)], source_datasets=source_datasets,
        configs=[{"config_name": "default",
                  "data_files": [{"split": s, "path": f"{DATA_DIR}/{s}-*.parquet"}
                                 for s in _written_splits(data.dataset)]}],
        dataset_info=_dataset_info(data.dataset),
    )
    audit = data.audit
    summary = (data.audit_summary or {}).get("audit") or {}
    retention, dropped_reasons = _retention(data.dataset, data.report)
    recipe_rules = [{
        "concepts": ", ".join(f"`{_code(c)}`" for c in ([r["concepts"]] if isinstance(r.get("concepts"), str)
                                                       else r.get("concepts", []))),
        "action": escape_text(r.get("action", ""), 20), "strength": _fmt_value(r.get("strength", "")),
        "interventions": escape_text(", ".join(r.get("interventions") or []) or "none", 80),
    } for r in recipe.get("rules", []) or []]
    desc = pub.get("description") or recipe.get("description") or ""
    blocked_txt = ", ".join(f"`{_code(c)}`" for c in blocked)
    desc = escape_text(desc, 400)
    summary_line = (desc + ("" if desc.endswith((".", "!", "?")) else ".") + " " if desc else "") + (
        f"A curated copy of a preference dataset in which {blocked_txt} "
        f"{'is' if len(blocked) == 1 else 'are'} no longer rewarded." if blocked else
        "A curated copy of a preference dataset.")
    dpo_module, dpo_class = DPO_TRAINER
    context = dict(
        title=escape_text(title, 120), summary=summary_line, curate_version=__version__,
        repo_id=_code(repo_id, 120).replace('"', ""),
        splits=[{"name": C.TRAIN_SPLIT, "rows": f"{retention['n_train']:,}",
                 "what": "the curated pairs to train on (`weight`, `margin` per pair)"},
                {"name": C.DROPPED_SPLIT, "rows": f"{retention['n_dropped']:,}",
                 "what": "pairs an intervention removed, with the `reason`" if retention["n_dropped"] else
                 "empty (no pair was dropped), so it has no data file"}],
        findings=_findings(audit), **_subset_context(data),
        audit_rows=_audit_rows(audit, actions, top) if audit is not None else [],
        audit_n_pairs=f"{summary.get('n_pairs', int(audit['n_pairs'].max()) if audit is not None else 0):,}",
        audit_n_concepts=len(audit) if audit is not None else 0,
        audit_n_significant=int((audit["q_value"] < summary.get("alpha", 0.05)).sum()) if audit is not None else 0,
        audit_n_confirmed=int(audit["confirmed"].sum()) if audit is not None and "confirmed" in audit else 0,
        alpha=summary.get("alpha", 0.05), heldout_auc=summary.get("heldout_auc"),
        volcano=images.get("volcano"),
        examples=_examples(data, list(dict.fromkeys(
            [c for c, a in actions.items() if a != "allow"]
            + (list(audit.loc[_truthy(audit["finding"]), "concept"]) if audit is not None and "finding" in audit
               else [])))),
        recipe_name=escape_text(recipe.get("name", "recipe"), 60), recipe_description=escape_text(
            recipe.get("description", ""), 300), rules=recipe_rules,
        interventions=_interventions(data.report), retention=retention, dropped_reasons=dropped_reasons,
        before_after=_before_after_rows(data.before_after, actions), before_after_plot=images.get("before_after"),
        proxy=_proxy(data.report, data.proxy), dpo_module=dpo_module, dpo_class=dpo_class,
        dpo_pad=" " * (len(dpo_class) + 1),
        repro=_repro(data, fingerprints or {}), limitations=_limitations(data, actions, license_given),
        learning=learning,
    )
    import jinja2

    # text from the data is inserted as values, never parsed as template; so a response that quotes
    # "{{ user.name }}" is data, and no check may read it as an unrendered variable
    template = jinja2.Environment().from_string(CARD_TEMPLATE.read_text(encoding="utf-8"))
    return DatasetCard(template.render(card_data=card_data.to_yaml(), **context))


def _subset_context(data) -> dict:
    """The card's per-subset section: findings with where they hold, and held-out AUC by subset."""
    from . import folders as F

    files = getattr(data, "files", {}) or {}
    by = ((getattr(data, "audit_summary", None) or {}).get("audit") or {}).get("by")
    if not by or F.AUDIT_FINDINGS not in files:
        return {"subset_by": None, "subset_findings": [], "subset_auc": []}
    f = pd.read_parquet(files[F.AUDIT_FINDINGS])
    rows = [{"rank": int(r["finding_rank"]), "where": escape_text(str(r[C.WHERE]), 120),
             "concept": _code(str(r["concept"])), "label": escape_text(str(r["label"]), 100),
             "direction": "chosen ↑" if r["win_rate"] > 0.5 else "rejected ↑",
             "win_rate": f"{r['win_rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
             "example": escape_text(str(r.get("example") or ""), 160)} for _, r in f.iterrows()]
    auc = []
    if F.AUDIT_AUC_BY in files:
        a = pd.read_parquet(files[F.AUDIT_AUC_BY])
        auc = [{"subset": escape_text(str(r[C.SUBSET]) or "all pairs", 60), "n": int(r["n_heldout"]),
                "auc": _fmt_value(round(float(r["heldout_auc"]), 3)) if r["heldout_auc"] == r["heldout_auc"] else "—",
                "auc_i": _fmt_value(round(float(r["heldout_auc_interactions"]), 3))
                if r["heldout_auc_interactions"] == r["heldout_auc_interactions"] else "—"} for _, r in a.iterrows()]
    return {"subset_by": escape_text(str(by), 60), "subset_findings": rows, "subset_auc": auc}


def check_card(folder: str | Path):
    """Check a published folder's card offline: it parses, and its metadata is complete and consistent.

    Checks ``license``, ``tags`` (with ``curate``), ``task_categories``, ``size_categories`` (a known
    value), ``configs`` (valid for ``datasets``; every ``data_files`` pattern matches a file in the
    folder). Text quoted from the data is data: ``{{ … }}`` in a response is not a template variable, so
    it is not checked for. The Hub's own validation
    (:meth:`huggingface_hub.RepoCard.validate`) needs the network; the Hub runs it on upload.

    Args:
        folder: a folder written by :func:`publish`.

    Returns:
        The :class:`huggingface_hub.DatasetCard`. Raises ``ValueError`` listing every problem found.
    """
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    folder = Path(folder)
    card = DatasetCard.load(folder / "README.md")
    meta = card.data.to_dict()
    problems = []
    lic = meta.get("license")
    if not lic or not all(isinstance(x, str) and re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", x)
                          for x in ([lic] if isinstance(lic, str) else lic)):
        problems.append(f"license: expected a Hub license id such as 'cc-by-4.0', got {lic!r}")
    if "curate" not in (meta.get("tags") or []):
        problems.append(f"tags: 'curate' missing from {meta.get('tags')}")
    if not meta.get("task_categories"):
        problems.append("task_categories: missing")
    for s in meta.get("size_categories") or [None]:
        if s not in SIZE_CATEGORIES:
            problems.append(f"size_categories: {s!r} is not one of {SIZE_CATEGORIES}")
    try:
        configs = MetadataConfigs.from_dataset_card_data(card.data)
    except ValueError as err:
        problems.append(f"configs: {err}")
        configs = {}
    if not configs:
        problems.append("configs: missing")
    for name, config in configs.items():
        for entry in config.get("data_files", []):
            if not list(folder.glob(entry["path"])):
                problems.append(f"configs[{name}].data_files: {entry['path']!r} matches no file in {folder}")
    if problems:
        raise ValueError(f"The dataset card in {folder} is not valid:\n- " + "\n- ".join(problems))
    return card


# -- writing and uploading -----------------------------------------------------------------------------
def _write_audit_files(data: CuratedData, folder: Path) -> None:
    audit = folder / AUDIT_DIR
    audit.mkdir(exist_ok=True)
    for name, src in data.files.items():
        if src.suffix == ".csv":
            pd.read_csv(src).to_parquet(audit / (Path(name).stem + ".parquet"), index=False)
        else:
            shutil.copy(src, audit / name)
    if data.before_after is not None:
        data.before_after.to_parquet(audit / "before_after.parquet", index=False)
    if data.recipe_text is not None:
        (audit / "recipe.yaml").write_text(data.recipe_text, encoding="utf-8")
    elif data.recipe is not None:
        import yaml

        (audit / "recipe.yaml").write_text(yaml.safe_dump(data.recipe, sort_keys=False), encoding="utf-8")


def _write_images(data: CuratedData, folder: Path) -> dict[str, str]:
    from .plots import plot_before_after, plot_volcano

    images = folder / IMAGES_DIR
    actions = _actions(data.recipe)
    out = {}
    if data.audit is not None and len(data.audit):
        plot_volcano(data.audit, images / VOLCANO_PNG, actions=actions)
        out["volcano"] = f"{IMAGES_DIR}/{VOLCANO_PNG}"
    ba = data.before_after
    if ba is not None and len(ba) and "win_rate_after" in ba:
        order = [c for c in actions if c in set(ba["concept"])] or list(ba["concept"])
        plot_before_after(ba, images / BEFORE_AFTER_PNG, actions=actions or None, concepts=order[:20])
        out["before_after"] = f"{IMAGES_DIR}/{BEFORE_AFTER_PNG}"
    return out


def _content_fingerprint(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]


def _is_connection_error(err: BaseException) -> bool:
    names = {c.__name__ for c in type(err).__mro__}
    return isinstance(err, (ConnectionError, TimeoutError)) or bool(names & {
        "ConnectError", "ConnectTimeout", "TransportError", "NetworkError", "TimeoutException", "ProxyError"})


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def _upload(folder: Path, repo_id: str, *, private: bool, token: str) -> str:
    from huggingface_hub import HfApi

    from . import __version__

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=str(folder),
                      commit_message=f"Publish curated dataset (curate {__version__})")
    return str(url)


def publish(curated_dir: str | Path, *, repo_id: str | None = None, local_dir: str | Path | None = None,
            private: bool | None = None, upload: bool | None = None, token: str | None = None,
            audit_dir: str | Path | None = None, license: str | None = None,
            learning_dir: str | Path | None = None) -> Path:
    """Write a Hub-ready folder for a curated dataset, with its concept-audit card, and upload it if possible.

    Args:
        curated_dir: the ``--out`` folder of ``curate apply`` (a saved ``DatasetDict`` with ``train`` and
            ``dropped``, plus the recipe, re-audit and apply record when present).
        repo_id: the dataset repository, ``user/name`` (default: the recipe's ``publish.repo_id``).
        local_dir: where to write the folder (default: ``<curated_dir>/../published``). An existing folder
            must be empty or a previous ``curate publish`` output (which is replaced).
        private: create the repository private (default: the recipe's ``publish.private``, else False).
        upload: ``None`` uploads when a token is available and the Hub is reachable (and otherwise says why
            and keeps the folder); ``False`` never uploads; ``True`` uploads or raises.
        token: Hub token (default: ``HF_TOKEN`` or the stored login). Never written or logged.
        audit_dir: the ``curate audit`` folder of the source data, when it is not found automatically.
        license: license id for the card (default: the recipe's ``publish.license``, else ``unknown``).
        learning_dir: the folder of ``curate learn`` (default: ``<curated_dir>/learning`` or a ``learning*``
            sibling, when one exists); adds the card section "What a model learned from it".

    Returns:
        The local folder (``Path``).

    Example:

        >>> from curate.publish import publish
        >>> folder = publish("outputs/demo/curated", repo_id="me/demo", upload=False)  # doctest: +SKIP
        >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
        ['README.md', 'audit', 'data', 'images']
    """
    data = read_curated(curated_dir, audit_dir=audit_dir)
    pub = (data.recipe or {}).get("publish") or {}
    repo_id = repo_id or pub.get("repo_id")
    if not repo_id or not _REPO_ID.match(repo_id):
        raise CurateError(f"repo_id must look like 'user/name' (letters, digits, '-', '_', '.'); got {repo_id!r}.")
    if private is None:
        private = bool(pub.get("private", False))
    folder = Path(local_dir) if local_dir is not None else Path(curated_dir).resolve().parent / "published"
    from . import folders as F

    replacing = folder.exists() and any(folder.iterdir())
    with F.atomic_folder(folder, kind="published") as tmp:
        (tmp / DATA_DIR).mkdir()
        fingerprints = {}
        for split in _written_splits(data.dataset):
            path = tmp / DATA_DIR / f"{split}-00000-of-00001.parquet"
            data.dataset[split].to_parquet(str(path))
            fingerprints[split] = _content_fingerprint(path)
        _write_audit_files(data, tmp)
        images = _write_images(data, tmp)
        from .learning.card import card_section, copy_learning, find_learning_dir

        found = find_learning_dir(curated_dir, learning_dir)
        learning = card_section(found, copy_learning(found, tmp)) if found is not None else None
        card = make_card(data, repo_id=repo_id, license=license, images=images, fingerprints=fingerprints,
                         learning=learning)
        card.save(tmp / "README.md")
        check_card(tmp)
        made_from = F.read_manifest(data.folder)
        F.write_manifest(tmp, kind="published", source=made_from.get("source"),
                         source_fingerprint=made_from.get("source_fingerprint"), rows=made_from.get("rows"),
                         made_from=made_from, repo_id=repo_id, has_audit=data.audit is not None)
    if replacing:
        logger.info("replaced the earlier published folder %s (nothing of it is kept)", folder)
    logger.info("wrote %s", folder)

    later = f"upload later with `hf upload {repo_id} {folder} --repo-type dataset`"
    if upload is False:
        logger.info("not uploaded (upload=False); the folder is ready at %s; %s", folder, later)
        return folder
    from huggingface_hub import constants, get_token

    token = token or get_token()
    reason = "offline (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else None
    if not token:
        reason = "no token" + (f" / {reason}" if reason else " (set HF_TOKEN or run `hf auth login`)")
    if reason:
        message = f"not uploaded: {reason}; the folder is ready at {folder}; {later}"
        if upload:
            raise CurateError(message)
        logger.warning(message)
        return folder
    try:
        url = _upload(folder, repo_id, private=private, token=token)
    except Exception as err:  # noqa: BLE001 - reported without the token, and the folder is kept
        message = _scrub(f"{type(err).__name__}: {err}", token)
        if upload is None and _is_connection_error(err):
            logger.warning("not uploaded: the Hub is not reachable (%s); the folder is ready at %s; %s",
                           message, folder, later)
            return folder
        raise CurateError(f"Upload of {folder} to {repo_id} failed ({message}); the folder is kept; {later}.") from None
    logger.info("uploaded %s to %s", folder, url)
    return folder
