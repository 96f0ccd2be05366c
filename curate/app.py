"""The curate Space: browse a concept audit, read the pairs, and draft a recipe.

Two layers:

* :class:`AppData` (no Gradio): loads what the app shows — an audit folder (``curate audit DATA --out DIR``),
  a published folder (``curate publish``) or a Hub dataset id — and answers the views' questions: the concept
  table, one concept's statistics, a page of pairs, a recipe preview, the recipe YAML. Everything is plain
  data or escaped HTML, so it is testable without a browser.
* :func:`build_app`: the Gradio Blocks UI (Overview, Concept, Pairs, Recipe) on top of it. The Space in
  ``spaces_app/app.py`` and ``curate app`` both call it.

Every text that comes from the data (prompts, responses, ids, reasons, labels) goes through
:func:`html.escape` before it reaches an HTML component: a response holding ``<script>`` shows as text.

Example:

    >>> from curate.app import load_app_data
    >>> data = load_app_data("outputs/demo/audit")          # doctest: +SKIP
    >>> page = data.pairs_page(concept="flattery", status="kept", page=1, page_size=5)  # doctest: +SKIP
    >>> page.n_matching, len(page.rows)                     # doctest: +SKIP
    (212, 5)
"""

from __future__ import annotations

import atexit
import hashlib
import html
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import _columns as C

__all__ = ["AppData", "PairPage", "build_app", "default_source", "load_app_data"]

DEMO_DIRS = ("outputs/demo/published", "outputs/demo/audit")

STATUS_CHOICES = ("all", "kept", "dropped")
SOURCE_CHOICES = ("all", "named", "SAE")
ANY = "(any)"
NO_REASON = "(none)"
MAX_CHARS = 3000  # characters of one response shown on a page
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SAE_ID = re.compile(r"^sae:(?P<source>.+):(?P<feature>\d+)$")
_GROUP_ID = re.compile(r"^group:(?P<source>.+):(?P<group>\d+)$")
ALL_SUBSETS = "all pairs"
# function concepts whose spans are the union of their regex parts
_SPAN_PARTS = {"markdown": ("heading", "list", "bold", "code", "link")}


def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


# ------------------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------------------
def default_source() -> str:
    """The demo output the app opens without an argument (``outputs/demo/published``, else ``.../audit``)."""
    for d in DEMO_DIRS:
        if Path(d).exists():
            return d
    raise FileNotFoundError(
        f"No demo output found ({' or '.join(DEMO_DIRS)}). Run `curate demo` first, or pass a folder "
        "written by `curate audit DATA --out DIR` / `curate publish`, or a Hub dataset id.")


def load_app_data(source: str | os.PathLike | None = None) -> "AppData":
    """Load what the app shows from an audit folder, a published folder or a Hub dataset id.

    Args:
        source: a folder written by ``curate audit DATA --out DIR`` (``audit.parquet`` + ``annotated/``),
            a folder written by ``curate publish`` (``data/*.parquet`` + ``audit/``), or a Hub dataset id
            (``owner/name``, downloaded with ``huggingface_hub``). ``None`` opens the demo output.

    Raises:
        FileNotFoundError: the folder does not exist, has neither layout, or the Hub download failed
            (offline, unknown id); the message says what was expected.
    """
    source = default_source() if source is None else str(source)
    path = Path(source)
    if path.exists():
        return _load_folder(path, label=source)
    if _HUB_ID.match(source):
        return _load_folder(_download(source), label=source)
    raise FileNotFoundError(
        f"{source!r} is neither an existing folder nor a Hub dataset id (owner/name). Pass a folder written by "
        "`curate audit DATA --out DIR` or `curate publish`, or a Hub id.")


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset"))
    except Exception as err:  # offline, unknown repo, no permission: all end the same way for the user
        raise FileNotFoundError(
            f"Could not download the dataset {repo_id!r} from the Hugging Face Hub ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no details'}). If you are offline (HF_HUB_OFFLINE=1) "
            "or the repository is private, pass a local folder written by `curate publish` or "
            "`curate audit DATA --out DIR` instead.") from None


def _load_folder(path: Path, label: str) -> "AppData":
    """Open any folder curate wrote (:mod:`curate.folders`); what it lacks is said in ``record["missing"]``."""
    from . import folders as F

    kind = F.read_manifest(path)["kind"]
    if kind == "audit":
        af = F.load_audit(path)
        return AppData(source=label, kind="audit folder", audit=af.results,
                       table=af.annotated().with_format("arrow")[:], record=dict(af.summary), labels=af.labels,
                       members=af.members, by_audit=af.by)
    if kind == "curated":
        cf = F.load_curated(path)
        table = _concat([cf.dataset[s].with_format("arrow")[:] for s in (C.TRAIN_SPLIT, C.DROPPED_SPLIT)])
        af = cf.audit
        return _with_audit(AppData, label, "curated folder", table, cf.report, cf.recipe_text,
                           af.results if af else None, dict(af.summary) if af else {}, af.labels if af else None,
                           af.members if af else None, af.by if af else None)
    if kind == "published":
        return _load_published_folder(F.load_published(path), label)
    made_from = (F.read_manifest(path).get("made_from") or {}).get("path")
    raise F.FolderError(f"{label!r} is a {kind} folder: it has no pairs to browse. Open the folder it was made from"
                        + (f" ({made_from!r})" if made_from else "") + ", or an audit, curated or published folder.")


def _concat(parts):
    import pyarrow as pa

    parts = [t for t in parts if t.num_rows] or parts[:1]
    return pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]


def _with_audit(cls, label, kind, table, apply_record, recipe_text, audit, summary, labels, members,
                by_audit=None) -> "AppData":
    from .audit import RESULT_COLUMNS

    record = {**(apply_record or {}), **(summary or {})}
    if audit is None:
        record["missing"] = ["the audit of the source data (made by `curate audit`, or saved by `curate apply` "
                             "from this version on): the concept views are empty"]
        audit = pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS})
    return cls(source=label, kind=kind, audit=audit, table=table, record=record, labels=labels,
               recipe_text=recipe_text, members=members, by_audit=by_audit)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _load_published_folder(pf, label: str) -> "AppData":
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import folders as F

    parts = []
    for split, files in pf.split_files().items():
        for f in files:
            t = pq.read_table(f)
            if C.KEEP not in t.column_names:
                t = t.append_column(C.KEEP, pa.array(np.full(t.num_rows, split == C.TRAIN_SPLIT)))
            parts.append(t)
    if not parts:
        raise F.FolderError(f"{label!r}: data/ holds no {C.TRAIN_SPLIT}-*.parquet or {C.DROPPED_SPLIT}-*.parquet "
                            f"files; re-run `{F.KINDS['published']}`.")
    table = _concat(parts)

    def opt(name):
        f = pf.audit_file(name)
        return pd.read_parquet(f) if f is not None else None

    apply_record = _read_json(pf.audit_file(F.APPLY_RECORD)) if pf.audit_file(F.APPLY_RECORD) else {}
    summary = _read_json(pf.audit_file(F.AUDIT_SUMMARY)) if pf.audit_file(F.AUDIT_SUMMARY) else {}
    recipe = pf.audit_file(F.RECIPE)
    return _with_audit(AppData, label, "published folder", table, apply_record,
                       recipe.read_text(encoding="utf-8") if recipe else None, opt(F.AUDIT_TABLE), summary,
                       opt(F.FEATURE_LABELS), opt(F.AUDIT_MEMBERS), opt(F.AUDIT_BY))


# ------------------------------------------------------------------------------------------------------
# the data behind the views
# ------------------------------------------------------------------------------------------------------
@dataclass
class PairPage:
    """One page of the pair browser: ``rows`` are dicts (id, prompt, chosen, rejected, reason, kept, delta)."""

    rows: list[dict]
    page: int
    n_pages: int
    n_matching: int
    concept: str | None = None


@dataclass
class AppData:
    """Everything the app shows, loaded once; the views' queries are methods.

    Attributes:
        source: what was loaded (folder or Hub id), for display.
        kind: ``"audit folder"``, ``"curated folder"`` or ``"published folder"``.
        audit: the audit table (:data:`curate.audit.RESULT_COLUMNS`, maybe ``finding``/``group`` too).
        table: every pair (kept and dropped) as a pyarrow Table, with its concept score columns.
        record: the run record (``summary.json``: ingestion counts, audit settings).
        labels: SAE feature labels (``concept``, ``label`` and any n-gram/example columns), if any.
        recipe_text: the recipe YAML a published folder was made with, if any.
        members: for grouped SAE features, which feature (``concept``) belongs to which ``group``.
        by_audit: the per-subset audit (``audit_by.parquet``: one row per subset and concept), if any.
    """

    source: str
    kind: str
    audit: pd.DataFrame
    table: object
    record: dict = field(default_factory=dict)
    labels: pd.DataFrame | None = None
    recipe_text: str | None = None
    members: pd.DataFrame | None = None
    by_audit: pd.DataFrame | None = None

    def __post_init__(self):
        names = self.table.column_names
        n = self.table.num_rows
        reason = self.table.column(C.REASON).to_pylist() if C.REASON in names else [""] * n
        self._reason = np.array([r or "" for r in reason], dtype=object)
        codes, uniques = pd.factorize(self._reason)
        self._reason_codes, self._reasons = codes, list(uniques)
        if C.KEEP in names:
            self._kept = np.asarray(self.table.column(C.KEEP).to_numpy(zero_copy_only=False), dtype=bool)
        else:
            self._kept = self._reason == ""
        if C.WEIGHT in names:
            w = np.asarray(self.table.column(C.WEIGHT).to_numpy(zero_copy_only=False), dtype=float)
            self._weight = np.where(self._kept, np.nan_to_num(w), 0.0)
        else:
            self._weight = self._kept.astype(float)
        # the source pairs before any intervention: every row not unusable at ingestion
        self._source = ~pd.Series(self._reason).str.startswith(C.INVALID_PREFIX).to_numpy(dtype=bool)
        self._source_reason = np.where(self._source, "", self._reason).astype(object)
        self._no_instructions: list[list[str]] = []
        self._delta_cache: dict[str, np.ndarray | None] = {}
        self._index_cache: dict[tuple, np.ndarray] = {}
        self.audit = self._ordered_audit(self.audit)

    # -- basics ----------------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return self.table.num_rows

    @property
    def concepts(self) -> list[str]:
        return self.audit["concept"].astype(str).tolist()

    @staticmethod
    def _ordered_audit(audit: pd.DataFrame) -> pd.DataFrame:
        """Findings first when the audit has a ``finding`` column, else the audit's own order."""
        audit = audit.reset_index(drop=True)
        if "finding" in audit.columns:
            has = _truthy(audit["finding"])
            audit = pd.concat([audit[has], audit[~has]], ignore_index=True)
        return audit

    def reasons(self) -> list[str]:
        """Every distinct ``reason`` in the data (``"(none)"`` for kept/usable rows), most common first."""
        counts = np.bincount(self._reason_codes, minlength=len(self._reasons))
        return [r or NO_REASON for _, r in sorted(zip(-counts, self._reasons))]

    def summary(self) -> dict:
        """Dataset summary and ingestion counts for the Overview."""
        ing = dict(self.record.get("ingestion") or {})
        aud = dict(self.record.get("audit") or {})
        dropped = {r: int(c) for r, c in pd.Series(self._reason[~self._kept]).value_counts().items()}
        return {
            "source": self.source, "kind": self.kind, "rows": self.n_rows, "kept": int(self._kept.sum()),
            "dropped": int((~self._kept).sum()), "dropped_by_reason": dropped,
            "input_format": ing.get("format"), "input_rows": ing.get("n_rows"), "usable": ing.get("n_usable"),
            "unusable_by_reason": ing.get("reasons") or {},
            "concepts": len(self.audit),
            "significant": int((self.audit["q_value"] < aud.get("alpha", 0.05)).sum()) if "q_value" in self.audit else None,
            "confirmed": int(self.audit["confirmed"].fillna(False).astype(bool).sum()) if "confirmed" in self.audit else None,
            "findings": int(_truthy(self.audit["finding"]).sum()) if "finding" in self.audit else None,
            "heldout_auc": aud.get("heldout_auc"),
            "concept_sources": self.record.get("concept_sources"),
            "missing": list(self.record.get("missing") or []),
        }

    # -- concept table and volcano ---------------------------------------------------------------------
    @property
    def has_findings(self) -> bool:
        return "finding" in self.audit.columns and bool(_truthy(self.audit["finding"]).any())

    @property
    def subsets(self) -> list[str]:
        """Subsets of the per-subset audit (empty without one)."""
        if self.by_audit is None or C.SUBSET not in self.by_audit:
            return []
        return [str(v) for v in pd.unique(self.by_audit[C.SUBSET])]

    def _subset_audit(self, subset: str) -> pd.DataFrame:
        if subset not in self.subsets:
            raise ValueError(f"Unknown subset {subset!r}. Subsets of this audit: {self.subsets or 'none'}.")
        a = self.by_audit[self.by_audit[C.SUBSET].astype(str) == subset]
        extra = [c for c in ("concept", "n_members", "nearest_named", "nearest_r", "group") if c in self.audit
                 and (c == "concept" or c not in a)]
        a = a.merge(self.audit[extra], on="concept", how="left")
        rank = a["finding_rank"].fillna(np.inf) if "finding_rank" in a else pd.Series(np.inf, index=a.index)
        return a.assign(_r=rank.to_numpy()).sort_values(["_r", "length_controlled_q"]).drop(columns="_r")

    def concept_table(self, source: str = "all", confirmed_only: bool = False, findings_only: bool = False,
                      subset: str = ALL_SUBSETS) -> pd.DataFrame:
        """The Overview's concept table, filtered by source (``all``, ``named``, ``SAE``), confirmation, findings
        and subset (``all pairs``: the pooled audit; a subset: the tests within it).

        Findings (when the audit marks them) come first, with their rank in the ``finding`` column.
        """
        a = self.audit if subset in (None, "", ALL_SUBSETS) else self._subset_audit(subset)
        mask = np.ones(len(a), bool)
        if findings_only and "finding" in a:
            mask &= _truthy(a["finding"]).to_numpy()
        src = a["source"].astype(str)
        if source == "named":
            mask &= (src == "named").to_numpy()
        elif source.lower() == "sae":
            mask &= src.str.startswith("sae").to_numpy()
        if confirmed_only and "confirmed" in a:
            mask &= a["confirmed"].fillna(False).astype(bool).to_numpy()
        a = a[mask].reset_index(drop=True)
        out = pd.DataFrame()
        if "finding" in a.columns:
            rank = a["finding_rank"] if "finding_rank" in a else pd.Series(np.nan, index=a.index)
            out["finding"] = [(f"#{int(r)}" if r == r else "yes") if f else "" for f, r in zip(_truthy(a["finding"]), rank)]
        if "group" in a.columns:
            out["group"] = a["group"].fillna("").astype(str)
        out["concept"] = a["concept"].astype(str)
        out["label"] = [t if len(t) <= 56 else t[:55] + "…" for t in a["label"].fillna("").astype(str)]
        out["source"] = src[mask].to_numpy()
        if "n_members" in a.columns and (a["n_members"].fillna(1) > 1).any():
            out["n_members"] = a["n_members"].fillna(1).astype(int)
        out["n_differ"] = a["n_differ"].astype(int)
        out["win_rate"] = a["win_rate"].round(3)
        out["ci"] = [_ci(lo, hi) for lo, hi in zip(a["ci_low"], a["ci_high"])]
        out["effect_size"] = a["effect_size"].round(2)
        out["q_value"] = [_sig(q) for q in a["q_value"]]
        if "length_controlled_q" in a:
            out["len_ctrl_q"] = [_sig(q) for q in a["length_controlled_q"]]
        out["confirmed"] = ["yes" if bool(c) else "no" for c in a["confirmed"].fillna(False)]
        if "nearest_named" in a:
            out["nearest_named"] = [_nearest(n, r) for n, r in zip(a["nearest_named"], a.get("nearest_r", np.nan))]
        return out.reset_index(drop=True)

    def volcano(self) -> pd.DataFrame:
        """Points of the effect plot: win-rate against −log10 q, one per concept."""
        a = self.audit
        q = a["q_value"].astype(float).fillna(1.0).clip(lower=1e-300)
        return pd.DataFrame({
            "concept": a["concept"].astype(str),
            "win_rate": a["win_rate"].astype(float).fillna(0.5),
            "neg_log10_q": -np.log10(q),
            "source": ["named" if s == "named" else "SAE" for s in a["source"].astype(str)],
            "confirmed": ["confirmed" if bool(c) else "not confirmed" for c in a["confirmed"].fillna(False)],
            "status": [("finding" if f else "confirmed" if c else "not confirmed") for f, c in zip(
                _truthy(a["finding"]) if "finding" in a else [False] * len(a), _truthy(a["confirmed"]))],
        })

    # -- one concept -----------------------------------------------------------------------------------
    def concept_row(self, concept: str) -> dict:
        hit = self.audit[self.audit["concept"].astype(str) == str(concept)]
        if hit.empty:
            from .errors import ConceptError

            raise ConceptError(f"Unknown concept {concept!r}. Concepts in this audit: {self.concepts[:40]}"
                               + (" …" if len(self.concepts) > 40 else ""))
        return hit.iloc[0].to_dict()

    def concept_details(self, concept: str) -> dict:
        """Label, statistics, held-out check, SAE label columns and nearest named concept of one concept."""
        row = self.concept_row(concept)
        extra = {}
        if self.labels is not None and "concept" in self.labels:
            hit = self.labels[self.labels["concept"].astype(str) == str(concept)]
            if not hit.empty:
                extra = {k: v for k, v in hit.iloc[0].to_dict().items() if k not in ("concept",)}
        members = None
        if self.members is not None and str(concept).startswith("group:") and "group" in self.members:
            m = self.members[self.members["group"].astype(str) == str(concept)]
            members = m[[c for c in ("concept", "label") if c in m]].to_dict("records")
            if not extra and members and self.labels is not None:  # describe a group by its first member
                hit = self.labels[self.labels["concept"].astype(str) == str(members[0]["concept"])]
                extra = {} if hit.empty else {k: v for k, v in hit.iloc[0].to_dict().items() if k != "concept"}
        return {"row": row, "labels": extra, "members": members}

    def top_pairs(self, concept: str, k: int = 5) -> PairPage:
        """The ``k`` usable pairs where the concept's chosen − rejected score differs most."""
        delta = self.delta(concept)
        if delta is None:
            return PairPage([], 1, 1, 0, concept)
        cand = np.flatnonzero(self._source & (delta != 0))
        order = cand[np.argsort(-np.abs(delta[cand]), kind="stable")][:k]
        return PairPage(self._rows(order, concept), 1, 1, len(cand), concept)

    # -- concept scores --------------------------------------------------------------------------------
    def delta(self, concept: str) -> np.ndarray | None:
        """Score(chosen) − score(rejected) of a concept over all rows (None when it cannot be computed)."""
        if concept in self._delta_cache:
            return self._delta_cache[concept]
        side = {s: self._side(concept, s) for s in C.SIDES}
        d = None if side[C.CHOSEN] is None else side[C.CHOSEN] - side[C.REJECTED]
        if len(self._delta_cache) > 256:
            self._delta_cache.pop(next(iter(self._delta_cache)))
        self._delta_cache[concept] = d
        return d

    def side_scores(self, concept: str, side: str) -> np.ndarray | None:
        """One side's scores of a concept over all rows, from the score columns (or recomputed for a named one)."""
        names = self.table.column_names
        col = C.score_column(side, concept)
        if col in names:
            return np.nan_to_num(np.asarray(self.table.column(col).to_numpy(zero_copy_only=False), dtype=np.float32))
        m = _SAE_ID.match(concept)
        if m:
            idx_col, val_col = C.sae_index_column(side, m["source"]), C.sae_value_column(side, m["source"])
            if idx_col not in names or val_col not in names:
                return None
            idx = self.table.column(idx_col).combine_chunks()
            vals = self.table.column(val_col).combine_chunks()
            lengths = idx.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
            flat_i = idx.flatten().to_numpy(zero_copy_only=False)
            flat_v = vals.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
            rows = np.repeat(np.arange(self.n_rows), lengths)
            hit = flat_i == int(m["feature"])
            out = np.zeros(self.n_rows, np.float32)
            np.add.at(out, rows[hit], flat_v[hit])
            return out
        g = _GROUP_ID.match(concept)
        if g:
            return self._group_side_scores(concept, g["source"], side)
        from .concepts.named import list_concepts, get_concept

        if concept in list_concepts() and side in names:
            return get_concept(concept).score(self.table.column(side).to_pylist())
        return None

    def _group_side_scores(self, group: str, source: str, side: str) -> np.ndarray | None:
        """A group of SAE features: the mean of its members' activations, each scaled to unit RMS over usable
        responses (as :func:`curate.grouping.group_scores` computes it)."""
        if self.members is None or "group" not in self.members:
            return None
        ids = self.members.loc[self.members["group"].astype(str) == group, "concept"].astype(str)
        feats = np.unique([int(m["feature"]) for c in ids if (m := _SAE_ID.match(c))])
        names = self.table.column_names
        cols = {s: (C.sae_index_column(s, source), C.sae_value_column(s, source)) for s in C.SIDES}
        if not len(feats) or not all(c in names for pair in cols.values() for c in pair):
            return None
        flat = {}
        for s in C.SIDES:
            idx = self.table.column(cols[s][0]).combine_chunks()
            vals = self.table.column(cols[s][1]).combine_chunks()
            rows = np.repeat(np.arange(self.n_rows), idx.value_lengths().fill_null(0).to_numpy(zero_copy_only=False))
            fi = idx.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
            fv = vals.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
            hit = np.isin(fi, feats)
            flat[s] = (rows[hit], np.searchsorted(feats, fi[hit]), fv[hit])
        n_usable = max(1, int(self._source.sum()))
        sumsq = np.zeros(len(feats))
        for rows, pos, val in flat.values():
            ok = self._source[rows]
            sumsq += np.bincount(pos[ok], weights=val[ok] ** 2, minlength=len(feats))
        rms = np.sqrt(sumsq / (2 * n_usable))
        rms[rms == 0] = 1.0
        rows, pos, val = flat[side]
        out = np.zeros(self.n_rows, np.float64)
        np.add.at(out, rows, val / rms[pos])
        return (out / len(feats)).astype(np.float32)

    # -- pairs -----------------------------------------------------------------------------------------
    def pair_indices(self, concept: str | None = None, status: str = "all", reason: str | None = None) -> np.ndarray:
        """Rows matching the filters. With a concept: rows where it differs, largest |Δ| first."""
        concept = None if concept in (None, "", ANY) else concept
        reason = None if reason in (None, "", ANY) else reason
        if status not in STATUS_CHOICES:
            raise ValueError(f"status must be one of {list(STATUS_CHOICES)}, got {status!r}.")
        key = (concept, status, reason)
        if key in self._index_cache:
            return self._index_cache[key]
        mask = np.ones(self.n_rows, bool)
        if status == "kept":
            mask &= self._kept
        elif status == "dropped":
            mask &= ~self._kept
        if reason is not None:
            value = "" if reason == NO_REASON else reason
            code = self._reasons.index(value) if value in self._reasons else -2
            mask &= self._reason_codes == code
        if concept is None:
            idx = np.flatnonzero(mask)
        else:
            d = self.delta(concept)
            if d is None:
                idx = np.empty(0, dtype=np.int64)
            else:
                idx = np.flatnonzero(mask & (d != 0))
                idx = idx[np.argsort(-np.abs(d[idx]), kind="stable")]
        if len(self._index_cache) > 64:
            self._index_cache.pop(next(iter(self._index_cache)))
        self._index_cache[key] = idx
        return idx

    def pairs_page(self, concept: str | None = None, status: str = "all", reason: str | None = None,
                   page: int = 1, page_size: int = 10) -> PairPage:
        """One page (1-based) of the pairs matching the filters; ``page`` is clipped to the valid range."""
        idx = self.pair_indices(concept, status, reason)
        page_size = max(1, min(int(page_size or 10), 100))
        n_pages = max(1, math.ceil(len(idx) / page_size))
        page = min(max(1, int(page or 1)), n_pages)
        rows = idx[(page - 1) * page_size: page * page_size]
        concept = None if concept in (None, "", ANY) else concept
        return PairPage(self._rows(rows, concept), page, n_pages, len(idx), concept)

    def _rows(self, rows: np.ndarray, concept: str | None) -> list[dict]:
        names = self.table.column_names
        cols = [c for c in (C.ID, C.PROMPT, C.CHOSEN, C.REJECTED) if c in names]
        sub = self.table.select(cols).take(np.asarray(rows, dtype=np.int64)).to_pydict()
        d = self.delta(concept) if concept else None
        out = []
        for j, i in enumerate(rows):
            out.append({
                "row": int(i), "id": sub[C.ID][j] if C.ID in sub else int(i),
                "prompt": sub.get(C.PROMPT, [""] * len(rows))[j] or "",
                "chosen": sub[C.CHOSEN][j] or "", "rejected": sub[C.REJECTED][j] or "",
                "kept": bool(self._kept[i]), "reason": self._reason[i], "weight": float(self._weight[i]),
                "delta": None if d is None else float(d[i]),
            })
        return out

    # -- recipe ----------------------------------------------------------------------------------------
    def preview(self, block=(), amplify=(), *, method: str = "rebalance", strength: float = 1.0,
                amplify_strength: float = 1.0, show: int = 8) -> dict:
        """The effect of a draft recipe: rows kept, effective sample size, win-rates before and after.

        Runs the recipe's interventions (:func:`curate.interventions.plan`) on the cached scores of
        the marked concepts, plus up to ``show`` confirmed concepts reported as ``allow`` (to show side
        effects). Returns ``rows_before``, ``rows_kept``, ``ess_before``, ``ess_after`` and ``concepts``
        (one dict per concept: ``concept``, ``action``, ``win_rate_before``, ``win_rate_after``).
        """
        shown_block, shown_amplify = _ids(block), _ids(amplify)
        groups = {c: ("block" if c in shown_block else "amplify") for c in shown_block + shown_amplify
                  if _GROUP_ID.match(c)}
        block, amplify = self.expand_groups(shown_block), self.expand_groups(shown_amplify)
        both = sorted(set(block) & set(amplify))
        if both:
            from .errors import RecipeError

            raise RecipeError(f"Concepts {both} are both blocked and amplified; choose one action per concept.")
        confirmed = self.audit.loc[_truthy(self.audit["confirmed"]), "concept"].astype(str)
        marked = [c for c in block + amplify if self.delta(c) is not None]
        allow = [c for c in groups if self.delta(c) is not None]  # a group is acted on through its members
        allow += [c for c in confirmed if c not in block + amplify + allow and self.delta(c) is not None][:show]
        w0 = self._source.astype(float)  # the recipe acts on the source pairs (a published folder's too)
        out = {"rows_before": int((w0 > 0).sum()), "ess_before": _ess(w0)}
        if not marked and not allow:
            return {**out, "rows_kept": out["rows_before"], "ess_after": out["ess_before"], "concepts": []}
        try:
            from .interventions import PairState, before_after, plan, retention
            from .recipe import Recipe
        except ImportError:  # pragma: no cover - interventions ship with curate
            return {**out, **self._quick_preview(block, amplify, allow, method, strength, amplify_strength)}
        recipe = Recipe.from_dict(self._recipe_dict([c for c in block if c in marked], [c for c in amplify if c in marked],
                                                    method, strength, amplify_strength, allow=allow), validate_ids=False)
        ids = recipe.concept_ids()
        n = self.n_rows
        chosen = np.column_stack([self._side(c, C.CHOSEN) for c in ids])
        rejected = np.column_stack([self._side(c, C.REJECTED) for c in ids])
        if len(self._no_instructions) != n:  # shared: the app offers no `inoculate`, so nothing appends to it
            self._no_instructions = [[] for _ in range(n)]

        def state():
            return PairState(
                concepts=list(ids), chosen=chosen.copy(), rejected=rejected.copy(), usable=self._source.copy(),
                keep=self._source.copy(), reason=self._source_reason.copy(), weight=w0.copy(), margin=np.zeros(n),
                swapped=np.zeros(n, bool), copies=np.ones(n, np.int64), instructions=self._no_instructions,
                labels={c: c for c in ids})

        # what curate.interventions.preview does, without its per-call copies of 100k-row Python lists
        before, after = state(), state()
        for step in plan(recipe):
            step.apply(after)
        kept = retention(after)
        hidden = set(block + amplify) - set(shown_block + shown_amplify)  # members of a marked group
        rows = [{"concept": r["concept"], "action": groups.get(r["concept"]) or r["action"] or "allow",
                 "win_rate_before": _round(r["win_rate_before"]), "win_rate_after": _round(r["win_rate_after"])}
                for r in before_after(before, after, recipe).to_dict("records") if r["concept"] not in hidden]
        rows.sort(key=lambda r: r["action"] == "allow")
        return {**out, "rows_kept": int(kept["rows_kept"]), "ess_after": round(float(kept["ess"]), 1), "concepts": rows}

    def _side(self, concept: str, side: str) -> np.ndarray:
        key = f"{side}|{concept}"
        if key not in self._delta_cache:
            self._delta_cache[key] = self.side_scores(concept, side)
        return self._delta_cache[key]

    def _quick_preview(self, block, amplify, allow, method, strength, amplify_strength) -> dict:
        """Fallback without :mod:`curate.interventions`: each blocked concept's imbalance removed in turn."""
        from .stats import paired_win_stats

        w0 = self._source.astype(float)
        w = w0.copy()
        rng = np.random.default_rng(0)
        for c in block:
            d = self.delta(c)
            pos, neg = (d > 0) & (w > 0), (d < 0) & (w > 0)
            wp, wn = w[pos].sum(), w[neg].sum()
            big, small, big_w = (pos, wn, wp) if wp > wn else (neg, wp, wn)
            if big_w <= 0:
                continue
            target = small + (1 - strength) * (big_w - small)
            if method == "filter":
                rows = np.flatnonzero(big)
                w[rng.permutation(rows)[:int(round(len(rows) * (1 - target / big_w)))]] = 0.0
            else:
                w[big] *= target / big_w
        for c in amplify:
            d = self.delta(c)
            w[(d > 0) & (w > 0)] *= 1.0 + amplify_strength
        rows = []
        for c in block + amplify + allow:
            d = self.delta(c)[:, None]
            rows.append({"concept": c, "action": "block" if c in block else "amplify" if c in amplify else "allow",
                         "win_rate_before": _round(paired_win_stats(d, w0)["win_rate"][0]),
                         "win_rate_after": _round(paired_win_stats(d, w)["win_rate"][0])})
        return {"rows_kept": int((w > 0).sum()), "ess_after": _ess(w), "concepts": rows}

    def expand_groups(self, ids) -> list[str]:
        """Concept ids with each SAE feature group (``group:<source>:<n>``) replaced by its member features,
        which recipes and interventions know (``sae:<source>:<feature>``)."""
        out = []
        for c in _ids(ids):
            if _GROUP_ID.match(c) and self.members is not None and "group" in self.members:
                out += self.members.loc[self.members["group"].astype(str) == c, "concept"].astype(str).tolist()
            else:
                out.append(c)
        return list(dict.fromkeys(out))

    def _recipe_dict(self, block, amplify, method="rebalance", strength=1.0, amplify_strength=1.0, *, allow=(),
                     name="space-recipe") -> dict:
        rules = []
        if block:
            rules.append({"concepts": list(block), "action": "block", "strength": float(strength),
                          "interventions": [method]})
        if amplify:
            rules.append({"concepts": list(amplify), "action": "amplify", "strength": float(amplify_strength),
                          "interventions": ["upweight"]})
        if allow:
            rules.append({"concepts": list(allow), "action": "allow"})
        sae_sources = sorted({m["source"] for c in [*block, *amplify, *allow] if (m := _SAE_ID.match(c))})
        sources = [{"kind": "named"}] + [{"kind": "sae", "source": s} for s in sae_sources]
        return {"name": name, "description": f"Drafted in the curate app from {self.source}.",
                "data": {"source": self.source}, "concepts": sources, "rules": rules}

    def recipe_yaml(self, block=(), amplify=(), *, method: str = "rebalance", strength: float = 1.0,
                    amplify_strength: float = 1.0, name: str = "space-recipe") -> str:
        """The draft recipe as YAML, written by :class:`curate.recipe.Recipe` (loads with ``curate apply``)."""
        data = self._recipe_dict(self.expand_groups(block), self.expand_groups(amplify), method, strength,
                                 amplify_strength, name=name)
        groups = [c for c in _ids(block) + _ids(amplify) if _GROUP_ID.match(c)]
        if groups:
            data["description"] += " SAE feature groups are written as their member features: " + "; ".join(
                f"{g} = {', '.join(self.expand_groups([g]))}" for g in groups) + "."
        try:
            from .recipe import Recipe
        except ImportError:  # pragma: no cover - the recipe module ships with curate
            import yaml

            return yaml.safe_dump(data, sort_keys=False)
        return Recipe.from_dict(data, validate_ids=False).to_yaml()


def _ids(values) -> list[str]:
    return list(dict.fromkeys(str(v) for v in (values or []) if v))


def _truthy(col: pd.Series) -> pd.Series:
    """A bool or text column as booleans (text: non-empty, not "false"/"0")."""
    if col.dtype == bool:
        return col
    text = col.fillna("").astype(str).str.strip().str.lower()
    return ~text.isin(["", "false", "0", "none", "nan"])


def _round(x, nd: int = 3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def _ess(w: np.ndarray) -> float:
    s2 = float((w ** 2).sum())
    return round(float(w.sum()) ** 2 / s2, 1) if s2 > 0 else 0.0


def _sig(x, digits: int = 3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(f"{float(x):.{digits}g}")


def _ci(lo, hi) -> str:
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return "—"
    return f"[{lo:.3f}, {hi:.3f}]"


def _nearest(name, r) -> str:
    if name is None or (isinstance(name, float) and math.isnan(name)):
        return ""
    return f"{name} (r={r:+.2f})" if isinstance(r, (int, float)) and not math.isnan(r) else str(name)


# ------------------------------------------------------------------------------------------------------
# HTML (every data text escaped)
# ------------------------------------------------------------------------------------------------------
CSS = """
<style>
.cu-summary{display:flex;flex-wrap:wrap;gap:.5rem;margin:.25rem 0}
.cu-stat{border:1px solid #d0d7de;border-radius:8px;padding:.35rem .7rem;min-width:7rem}
.cu-stat b{display:block;font-size:1.15rem}
.cu-pair{border:1px solid #d0d7de;border-radius:8px;margin:.6rem 0;padding:.5rem}
.cu-pair .cu-head{font-size:.85rem;color:#57606a;margin-bottom:.3rem}
.cu-prompt{white-space:pre-wrap;background:#f6f8fa;border-radius:6px;padding:.3rem .5rem;margin-bottom:.4rem}
.cu-sides{display:grid;grid-template-columns:1fr 1fr;gap:.5rem}
.cu-side{white-space:pre-wrap;word-break:break-word;border-radius:6px;padding:.4rem .5rem}
.cu-chosen{background:#eaf7ee}.cu-rejected{background:#fdeeee}
.cu-side h4{margin:0 0 .25rem 0;font-size:.8rem;text-transform:uppercase;color:#57606a}
mark.cu-hl{background:#ffe066;padding:0 1px;border-radius:2px}
.cu-badge{display:inline-block;border-radius:999px;padding:0 .5rem;font-size:.8rem;border:1px solid #d0d7de}
.cu-yes{background:#dafbe1}.cu-no{background:#ffebe9}
table.cu-t{border-collapse:collapse}table.cu-t td,table.cu-t th{border-bottom:1px solid #eee;padding:.15rem .6rem;text-align:left}
</style>
"""


def _stat(name: str, value) -> str:
    return f'<div class="cu-stat"><span>{_esc(name)}</span><b>{_esc(value)}</b></div>'


def _counts(d: dict) -> str:
    return ", ".join(f"{_esc(k)}: {int(v)}" for k, v in d.items()) or "none"


def render_summary(data: AppData) -> str:
    s = data.summary()
    stats = [("rows", s["rows"]), ("kept", s["kept"]), ("dropped", s["dropped"]), ("concepts", s["concepts"]),
             ("significant", s["significant"]), ("confirmed", s["confirmed"])]
    if s["findings"] is not None:
        stats.append(("findings", s["findings"]))
    if s["heldout_auc"] is not None:
        stats.append(("held-out AUC", s["heldout_auc"]))
    lines = [f"<p><b>Source:</b> {_esc(s['source'])} ({_esc(s['kind'])})"]
    if s["input_rows"] is not None:
        lines.append(f"<br><b>Ingestion:</b> format {_esc(s['input_format'])}, {int(s['input_rows'])} rows read, "
                     f"{int(s['usable'] or 0)} usable; unusable by reason: {_counts(s['unusable_by_reason'])}")
    if s["dropped"]:
        lines.append(f"<br><b>Dropped by reason:</b> {_counts(s['dropped_by_reason'])}")
    if s["concept_sources"]:
        lines.append(f"<br><b>Concept sources:</b> {_esc(', '.join(map(str, s['concept_sources'])))}")
    for missing in s["missing"]:
        lines.append(f"<br><b>Missing:</b> {_esc(missing)}")
    return (CSS + '<div class="cu-summary">' + "".join(_stat(k, v) for k, v in stats) + "</div>"
            + "".join(lines) + "</p>")


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def concept_spans(concept: str | None, text: str) -> list[tuple[int, int]]:
    """Character spans of a named concept in ``text`` (empty for SAE features and size concepts)."""
    if not concept or _SAE_ID.match(concept):
        return []
    from .concepts.named import get_concept
    from .errors import ConceptError

    try:
        parts = _SPAN_PARTS.get(concept, (concept,))
        return _merge([s for p in parts for s in get_concept(p).spans(text)])
    except ConceptError:
        return []


def highlight(text: str, spans: list[tuple[int, int]], max_chars: int = MAX_CHARS) -> str:
    """``text`` escaped, with ``spans`` wrapped in ``<mark>``; cut after ``max_chars`` characters."""
    text = text or ""
    cut = len(text) > max_chars
    shown = text[:max_chars]
    out, pos = [], 0
    for a, b in _merge(spans):
        if a >= len(shown):
            break
        b = min(b, len(shown))
        out.append(_esc(shown[pos:a]))
        out.append(f'<mark class="cu-hl">{_esc(shown[a:b])}</mark>')
        pos = b
    out.append(_esc(shown[pos:]))
    if cut:
        out.append(f' <i>… ({len(text) - max_chars} more characters)</i>')
    return "".join(out)


def highlight_tokens(tokens: list[str], activations: list[float]) -> str:
    """Tokens escaped and shaded by activation (SAE features with token-level examples)."""
    top = max([float(a) for a in activations] + [1e-9])
    parts = []
    for tok, act in zip(tokens, activations):
        alpha = max(0.0, float(act)) / top
        parts.append(f'<span title="{float(act):.3g}" style="background:rgba(255,170,0,{alpha:.2f})">{_esc(tok)}</span>')
    return "".join(parts)


def render_pairs(page: PairPage, data: AppData | None = None) -> str:
    if not page.rows:
        return CSS + '<p class="cu-no-pairs">No pairs match these filters.</p>'
    parts = [CSS]
    for r in page.rows:
        status = "kept" if r["kept"] else "dropped"
        head = [f"row {r['row']}", f"id {_esc(r['id'])}",
                f'<span class="cu-badge {"cu-yes" if r["kept"] else "cu-no"}">{status}</span>']
        if r["reason"]:
            head.append(f"reason: <code>{_esc(r['reason'])}</code>")
        if r["kept"] and r["weight"] != 1.0:
            head.append(f"weight {r['weight']:.3g}")
        if r["delta"] is not None:
            head.append(f"Δ {_esc(page.concept)} = {r['delta']:+.3g}")
        sides = []
        for side in C.SIDES:
            sides.append(f'<div class="cu-side cu-{side}"><h4>{side}</h4>'
                         f'{highlight(r[side], concept_spans(page.concept, r[side]))}</div>')
        parts.append(f'<div class="cu-pair"><div class="cu-head">{" · ".join(head)}</div>'
                     f'<div class="cu-prompt">{highlight(r["prompt"], [], 1500)}</div>'
                     f'<div class="cu-sides">{"".join(sides)}</div></div>')
    return "".join(parts)


def page_info(page: PairPage) -> str:
    return f"Page {page.page} of {page.n_pages} · {page.n_matching} matching pairs"


def render_concept(data: AppData, concept: str | None) -> str:
    if not concept:
        return CSS + "<p>Pick a concept.</p>"
    det = data.concept_details(concept)
    r = det["row"]

    def num(key, fmt="{:.3f}"):
        v = r.get(key)
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    confirmed = bool(r.get("confirmed"))
    head = (f'<h3 class="cu-concept-title">{_esc(r.get("concept"))} <span class="cu-badge '
            f'{"cu-yes" if confirmed else "cu-no"}">{"confirmed" if confirmed else "not confirmed"}</span></h3>'
            f'<p><b>Label:</b> {_esc(r.get("label"))}<br><b>Source:</b> {_esc(r.get("source"))}</p>')
    if "finding" in r and bool(_truthy(pd.Series([r["finding"]])).iloc[0]):
        rank = r.get("finding_rank")
        head += (f'<p><span class="cu-badge cu-yes">finding{f" #{int(rank)}" if rank == rank and rank is not None else ""}'
                 "</span> confirmed, length-controlled and large enough to act on</p>")
    stats = [("pairs", num("n_pairs", "{:.0f}")), ("differ", num("n_differ", "{:.0f}")),
             ("win-rate [95% CI]", f'{num("win_rate")} [{num("ci_low")}, {num("ci_high")}]'),
             ("effect size d", num("effect_size", "{:+.2f}")), ("q", num("q_value", "{:.2g}")),
             ("length-controlled coef", num("length_controlled_coef", "{:+.2f}")),
             ("length-controlled q", num("length_controlled_q", "{:.2g}"))]
    held = [("discovery win-rate", num("discovery_win_rate")), ("discovery q", num("discovery_q", "{:.2g}")),
            ("confirmation win-rate", num("confirmation_win_rate")), ("confirmation p", num("confirmation_p", "{:.2g}"))]
    body = ('<div class="cu-summary">' + "".join(_stat(k, v) for k, v in stats) + "</div>"
            + "<p><b>Held-out check</b> (pairs split by prompt):</p>"
            + '<div class="cu-summary">' + "".join(_stat(k, v) for k, v in held) + "</div>")
    near = _nearest(r.get("nearest_named"), r.get("nearest_r", float("nan")))
    body += f"<p><b>Nearest named concept:</b> {_esc(near or '—')}</p>"
    body += render_feature_labels(det["labels"], det.get("members"))
    top = data.top_pairs(concept, k=5)
    how = ("activation Δ shown per pair" if _SAE_ID.match(concept) or _GROUP_ID.match(concept)
           else "matched spans highlighted")
    body += (f"<h4>Pairs where it differs most</h4><p>{top.n_matching} usable pairs differ; top 5 by |Δ| "
             f"({how}).</p>" + render_pairs(top))
    return CSS + head + body


def _parse_json(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def render_feature_labels(labels: dict, members: list[dict] | None = None) -> str:
    """An SAE feature's n-gram label, its top examples (token activations when stored) and group members."""
    out = []
    if members:
        items = "".join(f"<li>{_esc(m.get('concept'))}: {_esc(m.get('label', ''))}</li>" for m in members[:12])
        more = f"<li>… {len(members) - 12} more</li>" if len(members) > 12 else ""
        out.append(f"<p><b>Group members</b> ({len(members)} correlated SAE features):</p><ul>{items}{more}</ul>")
    if not labels:
        return "".join(out)
    if labels.get("label"):
        out.append(f"<p><b>Feature label:</b> {_esc(labels['label'])}</p>")
    ngrams = _parse_json(labels.get("top_ngrams"))
    if ngrams is not None and len(ngrams):
        terms = []
        for g in list(ngrams)[:10]:
            g = list(g) if isinstance(g, (list, tuple, np.ndarray)) else [g]
            z = f" (z={float(g[1]):.1f})" if len(g) > 1 and g[1] is not None else ""
            terms.append(f"<code>{_esc(g[0])}</code>{z}")
        out.append(f"<p><b>n-gram label:</b> {', '.join(terms)}</p>")
    for key in ("n_active", "nearest_named", "nearest_r"):
        if labels.get(key) is not None and labels.get(key) == labels.get(key):
            value = f"{labels[key]:+.2f}" if key == "nearest_r" else labels[key]
            out.append(f"<span class='cu-badge'>{_esc(key)}: {_esc(value)}</span> ")
    examples = _parse_json(labels.get("top_examples"))
    if isinstance(examples, list) and examples:
        out.append("<p><b>Top-activating responses</b> (token-level activations where stored):</p>")
        for ex in examples[:5]:
            if not isinstance(ex, dict):
                continue
            head = f"row {_esc(ex.get('row'))} · {_esc(ex.get('side'))} · activation {_esc(ex.get('value'))}"
            if ex.get("tokens") is not None and ex.get("acts") is not None:
                text = highlight_tokens(list(ex["tokens"]), list(ex["acts"]))
            else:
                text = highlight(str(ex.get("text", "")), [])
            out.append(f'<div class="cu-pair"><div class="cu-head">{head}</div><div class="cu-side">{text}</div></div>')
    return "".join(out)


def render_preview(result: dict) -> str:
    rows = "".join(
        f"<tr><td>{_esc(r['concept'])}</td><td>{_esc(r['action'])}</td><td>{_fmt(r['win_rate_before'])}</td>"
        f"<td>{_fmt(r['win_rate_after'])}</td></tr>" for r in result["concepts"])
    stats = [("rows kept", f"{result['rows_kept']} of {result['rows_before']}"),
             ("effective sample size", f"{result['ess_after']} (was {result['ess_before']})")]
    return (CSS + '<div class="cu-summary cu-preview-stats">' + "".join(_stat(k, v) for k, v in stats) + "</div>"
            + '<table class="cu-t cu-preview-table"><tr><th>concept</th><th>action</th><th>win-rate before</th>'
            f"<th>win-rate after</th></tr>{rows}</table><p><i>{_esc(result.get('engine', ''))}</i></p>")


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}"


# ------------------------------------------------------------------------------------------------------
# the Gradio app
# ------------------------------------------------------------------------------------------------------
def build_app(source: str | os.PathLike | AppData | None = None, *, title: str = "curate"):
    """The curate Space as a :class:`gradio.Blocks` (Overview, Concept, Pairs, Recipe).

    Args:
        source: anything :func:`load_app_data` accepts, or an :class:`AppData` already loaded.
        title: the browser tab's title.

    Every event has an ``api_name`` (``concept_table``, ``concept``, ``pairs``, ``preview``), so
    ``gradio_client`` can drive the same app the browser shows.

    Example:

        >>> from curate.app import build_app
        >>> build_app("outputs/demo/audit").launch()   # doctest: +SKIP
    """
    import gradio as gr

    data = source if isinstance(source, AppData) else load_app_data(source)
    concepts = data.concepts
    label_of = dict(zip(concepts, data.audit["label"].fillna("").astype(str)))
    choices = [(f"{c} — {label_of[c][:60]}" if label_of[c] and label_of[c] != c else c, c) for c in concepts]
    first = concepts[0] if concepts else None
    recipe_dir = Path(tempfile.mkdtemp(prefix="curate-app-"))
    atexit.register(shutil.rmtree, recipe_dir, True)
    preset_block, preset_amplify = _preset(data, set(concepts))

    def table_fn(source_filter, confirmed_only, findings_only=False, subset=ALL_SUBSETS):
        return data.concept_table(source_filter, bool(confirmed_only), bool(findings_only), subset or ALL_SUBSETS)

    def concept_fn(concept):
        return render_concept(data, concept)

    def pairs_fn(concept, status, reason, page, page_size):
        p = data.pairs_page(concept, status, reason, int(page or 1), int(page_size or 10))
        return render_pairs(p, data), page_info(p), p.page

    def step(delta):
        def fn(concept, status, reason, page, page_size):
            return pairs_fn(concept, status, reason, int(page or 1) + delta, page_size)
        return fn

    def preview_fn(block, amplify, method, strength):
        block, amplify = list(block or []), list(amplify or [])
        try:
            result = data.preview(block, amplify, method=method, strength=float(strength))
            text = data.recipe_yaml(block, amplify, method=method, strength=float(strength))
        except ValueError as err:  # RecipeError: a concept both blocked and amplified
            return CSS + f'<p class="cu-no">{_esc(err)}</p>', "", None
        # one file per distinct recipe: concurrent sessions never overwrite each other's download
        path = recipe_dir / hashlib.sha256(text.encode()).hexdigest()[:12] / "recipe.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return render_preview(result), text, str(path)

    def select_fn(evt: gr.SelectData, table):
        row = evt.row_value or []
        cols = list(table.columns) if isinstance(table, pd.DataFrame) else []
        j = cols.index("concept") if "concept" in cols else 0
        concept = str(row[j]) if len(row) > j else first
        return gr.update(value=concept), gr.Tabs(selected="concept")

    select_fn.__annotations__ = {"evt": gr.SelectData}  # resolved here: this module defers annotations

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.HTML(f"<h2>curate · {_esc(data.source)}</h2>", elem_id="cu-title")
        with gr.Tabs(elem_id="cu-tabs") as tabs:
            with gr.Tab("Overview", id="overview"):
                gr.HTML(render_summary(data), elem_id="overview-summary")
                with gr.Row():
                    src_filter = gr.Radio(list(SOURCE_CHOICES), value="all", label="Source", elem_id="source-filter")
                    conf_filter = gr.Checkbox(value=False, label="Confirmed only", elem_id="confirmed-filter")
                    find_filter = gr.Checkbox(value=False, label="Findings only", elem_id="findings-filter",
                                              visible=data.has_findings)
                    sub_filter = gr.Dropdown([ALL_SUBSETS] + data.subsets, value=ALL_SUBSETS, label="Subset",
                                             elem_id="subset-filter", visible=bool(data.subsets))
                table = gr.Dataframe(data.concept_table(), label="Concepts (a header's menu sorts; click a row to open it)",
                                     interactive=False, wrap=True, max_height=420, elem_id="concept-table")
                gr.ScatterPlot(data.volcano(), x="win_rate", y="neg_log10_q", color="status",
                               color_map={"finding": "#d1242f", "confirmed": "#fb8500", "not confirmed": "#8c959f"},
                               tooltip=["concept", "source", "win_rate", "neg_log10_q", "status"],
                               x_title="win-rate (chosen has more of the concept)", y_title="−log10 q",
                               title="Effect plot", x_lim=[0, 1], height=360, elem_id="volcano")
            with gr.Tab("Concept", id="concept"):
                concept_dd = gr.Dropdown(choices, value=first, label="Concept", elem_id="concept-dd")
                concept_html = gr.HTML(render_concept(data, first), elem_id="concept-html")
            with gr.Tab("Pairs", id="pairs"):
                with gr.Row():
                    p_concept = gr.Dropdown([(ANY, ANY)] + choices, value=ANY, label="Concept differs",
                                            elem_id="pairs-concept")
                    p_status = gr.Radio(list(STATUS_CHOICES), value="all", label="Status", elem_id="pairs-status")
                    p_reason = gr.Dropdown([ANY] + data.reasons(), value=ANY, label="Reason", elem_id="pairs-reason")
                    p_size = gr.Dropdown([5, 10, 20, 50], value=10, label="Per page", elem_id="pairs-size")
                with gr.Row():
                    prev_btn = gr.Button("◀ Previous", elem_id="prev-page", size="sm")
                    p_page = gr.Number(1, label="Page", precision=0, minimum=1, elem_id="pairs-page")
                    next_btn = gr.Button("Next ▶", elem_id="next-page", size="sm")
                first_page = data.pairs_page(page=1, page_size=10)
                p_info = gr.Markdown(page_info(first_page), elem_id="pairs-info")
                p_html = gr.HTML(render_pairs(first_page, data), elem_id="pairs-html")
            with gr.Tab("Recipe", id="recipe"):
                gr.Markdown("Mark concepts to **block** (stop rewarding them) or **amplify**; unmarked concepts "
                            "are allowed. The preview updates as you edit.")
                with gr.Row():
                    block_dd = gr.Dropdown(choices, value=preset_block, multiselect=True, label="Block",
                                           elem_id="block-dd")
                    amplify_dd = gr.Dropdown(choices, value=preset_amplify, multiselect=True, label="Amplify",
                                             elem_id="amplify-dd")
                with gr.Row():
                    method = gr.Radio(["rebalance", "filter"], value="rebalance", label="Block by",
                                      info="rebalance: down-weight pairs; filter: drop rows", elem_id="block-method")
                    strength = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Block strength (share of the "
                                         "imbalance removed)", elem_id="block-strength")
                init = preview_fn(preset_block, preset_amplify, "rebalance", 1.0)
                preview_html = gr.HTML(init[0], elem_id="preview-html")
                download = gr.DownloadButton("Download recipe YAML", value=init[2], elem_id="download-recipe")
                yaml_code = gr.Code(init[1], language="yaml", label="recipe.yaml", interactive=False,
                                    elem_id="recipe-yaml")

            learned = _learning_view(data)
            if learned is not None:
                with gr.Tab("What a model learned", id="learned"):
                    gr.Markdown(learned[0], elem_id="learned-md")
                    if learned[1]:
                        gr.Image(learned[1], show_label=False, elem_id="learned-scatter")
                    gr.Dataframe(learned[2], interactive=False, elem_id="learned-table")

        filters = [src_filter, conf_filter, find_filter, sub_filter]
        src_filter.change(table_fn, filters, table, api_name="concept_table")
        gr.on([conf_filter.change, find_filter.change, sub_filter.change], table_fn, filters, table, api_name=False)
        table.select(select_fn, [table], [concept_dd, tabs], api_name=False)
        concept_dd.change(concept_fn, concept_dd, concept_html, api_name="concept")
        inputs = [p_concept, p_status, p_reason, p_page, p_size]
        outputs = [p_html, p_info, p_page]
        gr.on([p_concept.change, p_status.change, p_reason.change, p_size.change],
              lambda c, s, r, _p, n: pairs_fn(c, s, r, 1, n), inputs, outputs, api_name=False)
        p_page.submit(pairs_fn, inputs, outputs, api_name="pairs")
        prev_btn.click(step(-1), inputs, outputs, api_name=False)
        next_btn.click(step(+1), inputs, outputs, api_name=False)
        recipe_inputs = [block_dd, amplify_dd, method, strength]
        gr.on([block_dd.change, amplify_dd.change, method.change, strength.release], preview_fn, recipe_inputs,
              [preview_html, yaml_code, download], api_name="preview")
    demo.curate_data = data  # the loaded data, for tests and notebooks
    return demo


def _learning_view(data: AppData):
    """The learning check shown by the Space (scatter + table), when the loaded folder has one."""
    from .learning.card import app_view

    path = Path(data.source)
    return app_view(path) if path.is_dir() else None


def _preset(data: AppData, known: set[str]) -> tuple[list[str], list[str]]:
    """Blocked/amplified concepts of the recipe a published folder was made with."""
    if not data.recipe_text:
        return [], []
    try:
        import yaml

        rules = (yaml.safe_load(data.recipe_text) or {}).get("rules") or []
    except Exception:
        return [], []
    block = [c for r in rules if r.get("action") == "block" for c in (r.get("concepts") or []) if c in known]
    amplify = [c for r in rules if r.get("action") == "amplify" for c in (r.get("concepts") or []) if c in known]
    return block, amplify
