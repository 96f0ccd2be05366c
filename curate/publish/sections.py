"""The sections of the dataset card, each computed from the curated folder: retention, the audit table and
findings, examples, the interventions, before/after, the proxy check, reproducibility and limitations."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _columns as C
from .._format import HUB_ID
from ..stats import kish_n
from ._text import _code, _fmt, _fmt_q, _fmt_value, _fmt_wr, _isnan, _truthy, escape_text
from .read import CuratedData, _written_splits
from .sentences import step_sentence

SIZE_CATEGORIES = [
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
]
_REPO_ID = HUB_ID


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
    splits = [
        {"name": s, "num_bytes": int(dataset[s].data.nbytes), "num_examples": int(dataset[s].num_rows)}
        for s in _written_splits(dataset)
    ]
    info: dict[str, Any] = {"splits": splits, "dataset_size": sum(x["num_bytes"] for x in splits)}
    features = dataset[C.TRAIN_SPLIT].features
    if all(dataset[s].features == features for s in _written_splits(dataset)):
        info = {"features": features._to_yaml_list(), **info}
    return info


def _is_hub_id(source) -> bool:
    """``owner/name`` that is not a local path or a data file."""
    return (
        isinstance(source, str)
        and bool(_REPO_ID.match(source))
        and not Path(source).exists()
        and not re.search(r"\.(jsonl?|parquet|csv|tsv|gz|arrow|txt)$", source, re.I)
    )


def _size_category(n: int) -> str:
    bounds = [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12]
    return SIZE_CATEGORIES[int(np.searchsorted(bounds, n, side="right"))]


def _kish(w: np.ndarray) -> float:
    return float(kish_n(w))


def _retention(dataset, report: dict | None = None) -> tuple[dict, list[dict]]:
    """Rows kept / dropped by reason, effective sample size, swaps, margins — from the data itself, with the
    apply record's numbers (``retention``) where it has them."""
    rec = (report or {}).get("retention") or {}
    train, dropped = dataset[C.TRAIN_SPLIT], dataset[C.DROPPED_SPLIT]
    n_train, n_dropped = train.num_rows, dropped.num_rows
    info: dict[str, Any] = {
        "n_rows": rec.get("rows", n_train + n_dropped),
        "n_train": n_train,
        "n_dropped": n_dropped,
        "n_inoculated": rec.get("rows_inoculated", 0),
    }
    if (
        rec.get("rows_in_train") is not None
        and rec.get("rows_kept") is not None
        and rec["rows_in_train"] != rec["rows_kept"]
    ):
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
        info.update(
            ess=f"{ess:,.1f}",
            ess_share=f"{share:.0%}",
            ess_base=f"{base:,}",
            w_min=_fmt(w.min(), 3),
            w_max=_fmt(w.max(), 3),
            w_mean=_fmt(w.mean(), 3),
            ess_value=ess,
        )
    info["n_swapped"] = (
        int(np.asarray(train[C.SWAPPED], bool).sum()) if C.SWAPPED in cols else int(rec.get("rows_swapped") or 0)
    )
    if C.MARGIN in cols and n_train:
        m = np.asarray(train[C.MARGIN], float)
        if np.any(np.abs(m) > 1e-6):
            info.update(margin=True, margin_min=_fmt(m.min(), 3), margin_max=_fmt(m.max(), 3))
    rows = [{"reason": _code(k, 80), "rows": v} for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])]
    return info, rows


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
        rows.append(
            {
                "concept": _code(r["concept"]),
                "label": label,
                "n_differ": int(r["n_differ"]) if not _isnan(r.get("n_differ")) else "—",
                "win_rate": _fmt_wr(r["win_rate"], r.get("ci_low"), r.get("ci_high")),
                "q": _fmt_q(r["q_value"]),
                "lc_q": _fmt_q(r.get("length_controlled_q")),
                "confirmed": "yes" if bool(r.get("confirmed", False)) else "no",
                "action": actions.get(r["concept"], ""),
                "finding": "yes" if finding[i] else "",
            }
        )
    return rows


def _findings(audit: pd.DataFrame | None, top: int = 10) -> list[str]:
    """One sentence per finding the audit marked, in Markdown (the app shows the same sentences)."""
    from ..teach import finding_sentences

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
        out.append(
            {
                "concept": _code(concept),
                "prompt": escape_text(row.get(C.PROMPT, ""), 140),
                "chosen": escape_text(row.get(C.CHOSEN, ""), 240),
                "rejected": escape_text(row.get(C.REJECTED, ""), 240),
            }
        )
    return out


def _interventions(report: dict) -> list[dict]:
    """One row per step of ``apply.json``'s ``steps``: what it did as a sentence (:func:`step_sentence`), its
    settings (each intervention's ``to_dict()``) in a collapsed table."""
    out = []
    for item in report.get("steps") or []:
        name = item["intervention"]
        concepts = item.get("concepts")
        cells = []
        for k, v in item.items():
            if k in ("intervention", "concepts", "strata"):
                continue
            if isinstance(v, (list, dict)) and any(
                isinstance(x, (dict, list)) for x in (v.values() if isinstance(v, dict) else v)
            ):
                continue
            cells.append(f"<tr><td>{escape_text(k, 40)}</td><td>{_fmt_value(v)}</td></tr>")
        settings = f" <details><summary>settings</summary><table>{''.join(cells)}</table></details>" if cells else ""
        out.append(
            {
                "name": escape_text(name, 40),
                "concepts": ", ".join(f"`{_code(c)}`" for c in (concepts or [])) if concepts else "",
                "what": escape_text(step_sentence(item), 900) + settings,
            }
        )
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
        rows.append(
            {
                "concept": _code(c),
                "action": actions.get(c) or escape_text(r.get("action", "") or "", 20),
                "before": _fmt_wr(r.get("win_rate_before"), r.get("ci_low_before"), r.get("ci_high_before"))
                + _mean_delta(r, "before"),
                "q_before": _fmt_q(r.get("q_before")),
                "after": _fmt_wr(r.get("win_rate_after"), r.get("ci_low_after"), r.get("ci_high_after"))
                + _mean_delta(r, "after"),
                "q_after": _fmt_q(r.get("q_after")),
            }
        )
    return rows


def _mean_delta(row, side: str) -> str:
    """For a magnitude (length, an SAE feature): ``; mean Δ +0.01 sd (+0.3 words) [CI]`` — a block of a
    magnitude is done only when both its win-rate is ≈ 0.5 and its weighted mean Δ ≈ 0; ``""`` otherwise."""
    from ..interventions.balance import mean_delta_text

    scale = row.get("scale")
    if scale is None or not isinstance(scale, (int, float)) or scale != scale:
        return ""
    text = mean_delta_text({k: row.get(k) for k in row.index} if hasattr(row, "index") else dict(row), side)
    return f"; mean Δ {escape_text(text, 120)}" if text else ""


def _proxy(report: dict, table: pd.DataFrame | None = None) -> dict | None:
    """The proxy reward check as a text and a small table, or None when it was not run."""
    value = table if table is not None else report.get("proxy")
    text = (
        "A Bradley–Terry probe on frozen response embeddings, fitted once on the original and once on the "
        "curated data, scored on counterfactual pairs that differ only in one concept: how often each probe "
        "prefers the variant that shows the concept (0.5 = indifferent)."
    )
    if isinstance(value, dict):
        if value.get("skipped") or value.get("ran") is False:
            why = value.get("reason") or value.get("skipped")
            return {
                "text": "Not run" + (f": {escape_text(why, 200)}." if isinstance(why, str) else "."),
                "columns": [],
                "rows": [],
            }
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
    known = {
        "concept": "concept",
        "counterfactual": "counterfactual pairs of",
        "n_pairs": "pairs",
        "before": "probe fitted on the original data",
        "after": "probe fitted on the curated data",
    }
    if {"concept", "before", "after"} <= set(value.columns):
        columns = [c for c in known if c in value.columns]
        headers = [known[c] for c in columns]
    else:
        columns = [c for c in value.columns if not isinstance(value[c].iloc[0], (dict, list, np.ndarray))][:8]
        headers = [escape_text(c, 40) for c in columns]
    rows = [
        [f"`{_code(v)}`" if c == "concept" else _fmt_value(v, 60) for c, v in zip(columns, r)]
        for r in value[columns].head(30).itertuples(index=False)
    ]
    return {"text": text, "columns": headers, "rows": rows}


def _repro(data: CuratedData, fingerprints: dict) -> list[dict]:
    from .._version import __version__

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
        names = {
            "backend": "SAE backend",
            "model": "model",
            "layer": "layer",
            "sae": "SAE",
            "release": "SAE release",
            "sae_id": "SAE id",
            "source": "SAE source name",
            "pooling": "pooling",
            "k": "top-k kept per response",
            "d_sae": "SAE width (d_sae)",
            "max_length": "max tokens per text",
            "version": "annotator version",
        }
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
        rows.append(
            (
                "audit settings",
                {k: audit_cfg[k] for k in ("alpha", "seed", "min_active", "split_salt") if k in audit_cfg},
            )
        )
    if "seed" in recipe:
        rows.append(("recipe seed", recipe["seed"]))
    if summary.get("fingerprint"):
        rows.append(("source dataset fingerprint", summary["fingerprint"]))
    for split, fp in fingerprints.items():
        rows.append((f"`{split}` fingerprint", fp))
    rows.append(("card written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")))
    return [
        {
            "key": escape_text(k, 60) if not k.startswith("`") else k,
            "value": _fmt_value(v, 200) if not isinstance(v, str) else escape_text(v, 200),
        }
        for k, v in rows
    ]


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
        out.append(
            f"Weighted training sees fewer effective pairs ({ret['ess']} of {ret['n_train']}); expect more "
            "variance than the row count suggests, and use a trainer that reads `weight` (or resample)."
        )
    if data.before_after is not None and "q_after" in data.before_after:
        still = data.before_after[
            (data.before_after["concept"].isin([c for c, a in actions.items() if a == "block"]))
            & (data.before_after["q_after"].astype(float) < 0.05)
        ]
        for c in still["concept"]:
            out.append(f"`{_code(c)}` is blocked but still significant after curation (q < 0.05); see Verification.")
    if not license_given:
        out.append("The license of the source data was not given to curate; check it before reusing this data.")
    return out


def _subset_context(data) -> dict:
    """The card's per-subset section: findings with where they hold, and held-out AUC by subset."""
    from .. import folders as F

    files = getattr(data, "files", {}) or {}
    by = ((getattr(data, "audit_summary", None) or {}).get("audit") or {}).get("by")
    if not by or F.AUDIT_FINDINGS not in files:
        return {"subset_by": None, "subset_findings": [], "subset_auc": []}
    f = pd.read_parquet(files[F.AUDIT_FINDINGS])
    rows = [
        {
            "rank": int(r["finding_rank"]),
            "where": escape_text(str(r[C.WHERE]), 120),
            "concept": _code(str(r["concept"])),
            "label": escape_text(str(r["label"]), 100),
            "direction": "chosen ↑" if r["win_rate"] > 0.5 else "rejected ↑",
            "win_rate": f"{r['win_rate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
            "example": escape_text(str(r.get("example") or ""), 160),
        }
        for _, r in f.iterrows()
    ]
    auc = []
    if F.AUDIT_AUC_BY in files:
        a = pd.read_parquet(files[F.AUDIT_AUC_BY])
        auc = [
            {
                "subset": escape_text(str(r[C.SUBSET]) or "all pairs", 60),
                "n": int(r["n_heldout"]),
                "auc": _fmt_value(round(float(r["heldout_auc"]), 3)) if r["heldout_auc"] == r["heldout_auc"] else "—",
                "auc_i": _fmt_value(round(float(r["heldout_auc_interactions"]), 3))
                if r["heldout_auc_interactions"] == r["heldout_auc_interactions"]
                else "—",
            }
            for _, r in a.iterrows()
        ]
    return {"subset_by": escape_text(str(by), 60), "subset_findings": rows, "subset_auc": auc}
