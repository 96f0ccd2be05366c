"""The data behind the app's views (no Gradio): :class:`AppData` loads once and answers each view's question.

Scores come from the library: named concepts from their score columns, SAE features through
:func:`curate.scores.sae_feature_scores`, feature groups through :func:`curate.grouping.scaled_mean`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import _columns as C
from ..errors import ConfigError
from ..teach import is_missing, truthy

STATUS_CHOICES = ("all", "kept", "weight 0", "dropped")
SOURCE_CHOICES = ("all", "named", "SAE")
ALL_SUBSETS = "all pairs"  # the Overview's subset filter: the pooled audit
ANY = "(any)"
NO_REASON = "(none)"
SAE_ID = re.compile(r"^sae:(?P<source>[^:]+):(?P<feature>\d+)$")
GROUP_ID = re.compile(r"^group:(?P<source>[^:]+):(?P<group>\d+)$")
#: statistics that, when all equal, make two concepts one row of the table ("length = log_length")
SAME_STATS = ("n_differ", "win_rate", "ci_low", "ci_high", "q_value")


@dataclass
class PairPage:
    """One page of the pair browser: ``rows`` are dicts (row, id, prompt, chosen, rejected, kept, reason,
    weight, delta); ``note`` says what was corrected in the request (a page out of range), or ""."""

    rows: list[dict]
    page: int
    n_pages: int
    n_matching: int
    concept: str | None = None
    note: str = ""
    search: str = ""


@dataclass
class AppData:
    """Everything the app shows, loaded once; the views' queries are methods.

    Attributes:
        source: the dataset's display name (never a local path; see :func:`curate.browse.loading.dataset_name`).
        kind: ``"audit folder"``, ``"curated folder"`` or ``"published folder"``.
        audit: the audit table of the source pairs (:data:`curate.audit.RESULT_COLUMNS`, maybe ``finding``).
        table: every pair (kept and dropped) as a pyarrow Table, with its concept score columns.
        record: the audit's run record (``summary.json``: ingestion counts, audit settings).
        labels: SAE feature labels, if any.
        recipe_text: the recipe YAML the data was curated with, if any.
        members: for grouped SAE features, which feature (``concept``) belongs to which ``group``.
        applied: the apply record (``apply.json``: retention, before/after, steps), or {} for an audit folder.
        by_audit: the per-subset audit (``audit_by.parquet``: one row per subset and concept), if any.
        learning: what a model learned (``(markdown, scatter PNG path or None, table)`` from
            :func:`curate.learning.card.app_view`), if the folder has a learning check.
        source_loader: a function returning the source rows (a pyarrow Table) the recipe was applied to, when
            the folder keeps them; else they are rebuilt from ``table`` (:mod:`curate.browse.source`).
    """

    source: str
    kind: str
    audit: pd.DataFrame
    table: object
    record: dict = field(default_factory=dict)
    labels: pd.DataFrame | None = None
    recipe_text: str | None = None
    members: pd.DataFrame | None = None
    applied: dict = field(default_factory=dict)
    by_audit: pd.DataFrame | None = None
    learning: tuple | None = None
    source_loader: object = None

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
        self._cache: dict[str, np.ndarray | None] = {}
        self._index_cache: dict[tuple, np.ndarray] = {}
        self.audit = self._ordered_audit(self.audit)
        self.aliases = self._same_stats()

    def source_data(self) -> "AppData":
        """The rows the applied recipe started from (what ``curate apply`` read), as an :class:`AppData`: the
        data itself for an audit folder. A recipe preview is computed on these rows."""
        if self.kind == "audit folder" or (not self.applied and self.recipe_text is None):
            return self
        if getattr(self, "_source_data", None) is None:
            from .source import rebuild_source

            table = self.source_loader() if self.source_loader is not None else rebuild_source(self.table)
            self._source_data = AppData(
                self.source, "audit folder", self.audit, table, self.record, self.labels, members=self.members
            )
        return self._source_data

    # -- basics ----------------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return self.table.num_rows

    @property
    def concepts(self) -> list[str]:
        return self.audit["concept"].astype(str).tolist()

    @property
    def n_kept(self) -> int:
        """Kept rows, each once (a resampled row's copies are one row): the one "kept" count of every view."""
        if C.ROW in self.table.column_names or C.ID in self.table.column_names:
            col = C.ROW if C.ROW in self.table.column_names else C.ID
            ids = np.asarray(self.table.column(col).to_pylist(), dtype=object)[self._kept]
            return len(set(map(str, ids)))
        return int(self._kept.sum())

    @property
    def weights(self) -> np.ndarray:
        """Each row's training weight (0 for dropped rows, 1 for every kept row of an un-curated folder)."""
        return self._weight

    @property
    def has_findings(self) -> bool:
        return "finding" in self.audit.columns and bool(truthy(self.audit["finding"]).any())

    @staticmethod
    def _ordered_audit(audit: pd.DataFrame) -> pd.DataFrame:
        """Findings first when the audit has a ``finding`` column, else the audit's own order."""
        audit = audit.reset_index(drop=True)
        if "finding" in audit.columns:
            has = truthy(audit["finding"])
            audit = pd.concat([audit[has], audit[~has]], ignore_index=True)
        return audit

    def _same_stats(self) -> dict[str, list[str]]:
        """Concepts whose statistics are identical to an earlier row's: first concept -> the others."""
        a = self.audit
        if a.empty or not all(c in a for c in SAME_STATS):
            return {}
        vals = a[list(SAME_STATS)].astype(float).round(10).to_numpy()
        groups: dict[tuple, list[str]] = {}
        for c, v in zip(a["concept"].astype(str), vals):
            if np.isfinite(v).all() and v[0] > 0:
                groups.setdefault(tuple(v), []).append(c)
        return {names[0]: names[1:] for names in groups.values() if len(names) > 1}

    def hidden(self) -> set[str]:
        """Concepts shown inside another row (same statistics)."""
        return {c for others in self.aliases.values() for c in others}

    def reasons(self) -> list[str]:
        """Every distinct non-empty ``reason`` in the data, most common first."""
        counts = np.bincount(self._reason_codes, minlength=len(self._reasons))
        return [r for _, r in sorted(zip(-counts, self._reasons)) if r]

    def summary(self) -> dict:
        """Dataset summary and ingestion counts for the Overview."""
        ing = dict(self.record.get("ingestion") or {})
        aud = dict(self.record.get("audit") or {})
        dropped = {r: int(c) for r, c in pd.Series(self._reason[~self._kept]).value_counts().items()}
        a = self.audit
        return {
            "source": self.source,
            "kind": self.kind,
            "rows": self.n_rows,
            "kept": self.n_kept,
            "dropped": int((~self._kept).sum()),
            "dropped_by_reason": dropped,
            "zero_weight": int((self._kept & (self._weight == 0)).sum()),
            "input_format": ing.get("format"),
            "input_rows": ing.get("n_rows"),
            "usable": ing.get("n_usable"),
            "unusable_by_reason": ing.get("reasons") or {},
            "concepts": len(a),
            "significant": int((a["q_value"] < aud.get("alpha", 0.05)).sum()) if "q_value" in a else None,
            "confirmed": int(truthy(a["confirmed"]).sum()) if "confirmed" in a else None,
            "findings": int(truthy(a["finding"]).sum()) if "finding" in a else None,
            "heldout_auc": aud.get("heldout_auc"),
            "concept_sources": self.record.get("concept_sources"),
            "missing": list(self.record.get("missing") or []),
        }

    # -- concept table and effect plot -----------------------------------------------------------------
    @property
    def subsets(self) -> list[str]:
        """Subsets of the per-subset audit (empty without one)."""
        if self.by_audit is None or C.SUBSET not in self.by_audit:
            return []
        return [str(v) for v in pd.unique(self.by_audit[C.SUBSET])]

    def _subset_audit(self, subset: str) -> pd.DataFrame:
        """The audit rows of the tests within ``subset``, findings first (what the pooled table lacks from it)."""
        if subset not in self.subsets:
            raise ConfigError(f"Unknown subset {subset!r}. Subsets of this audit: {self.subsets or 'none'}.")
        a = self.by_audit[self.by_audit[C.SUBSET].astype(str) == subset]
        extra = [
            c
            for c in ("concept", "n_members", "nearest_named", "nearest_r", "group")
            if c in self.audit and (c == "concept" or c not in a)
        ]
        a = a.merge(self.audit[extra], on="concept", how="left")
        from ..audit_base import evidence_order  # ranked by evidence, never by raw win-rate

        return a.iloc[evidence_order(a)]

    def concept_table(
        self, source: str = "all", confirmed_only: bool = False, findings_only: bool = False, subset: str = ALL_SUBSETS
    ) -> pd.DataFrame:
        """The Overview's concept table, filtered by source (``all``, ``named``, ``SAE``), confirmation, findings
        and subset (``all pairs``: the pooled audit; a subset: the tests within it). Findings come first;
        concepts with identical statistics share one row (``length = log_length``)."""
        a = self.audit if subset in (None, "", ALL_SUBSETS) else self._subset_audit(subset)
        mask = ~a["concept"].astype(str).isin(self.hidden()).to_numpy()
        if findings_only and "finding" in a:
            mask &= truthy(a["finding"])
        src = a["source"].astype(str)
        if source == "named":
            mask &= (src == "named").to_numpy()
        elif str(source).lower() == "sae":
            mask &= src.str.startswith("sae").to_numpy()
        if confirmed_only and "confirmed" in a:
            mask &= truthy(a["confirmed"])
        a = a[mask].reset_index(drop=True)
        out = pd.DataFrame()
        if "finding" in a.columns:
            rank = a["finding_rank"] if "finding_rank" in a else pd.Series(np.nan, index=a.index)
            out["finding"] = [
                ("yes" if is_missing(r) else f"#{int(r)}") if f else "" for f, r in zip(truthy(a["finding"]), rank)
            ]
        if "group" in a.columns:
            out["group"] = a["group"].fillna("").astype(str)
        out["concept"] = [" = ".join([c] + self.aliases.get(c, [])) for c in a["concept"].astype(str)]
        out["label"] = [t if len(t) <= 56 else t[:55] + "…" for t in a["label"].fillna("").astype(str)]
        out["source"] = src[mask].to_numpy()
        if "n_members" in a.columns and (a["n_members"].fillna(1) > 1).any():
            out["n_members"] = a["n_members"].fillna(1).astype(int)
        out["pairs differ"] = a["n_differ"].astype(int)
        out["win-rate"] = a["win_rate"].round(3)
        out["95% CI"] = [ci_text(lo, hi) for lo, hi in zip(a["ci_low"], a["ci_high"])]
        out["effect d"] = a["effect_size"].round(2)
        out["q"] = [sig(q) for q in a["q_value"]]
        if "length_controlled_q" in a:
            out["length-ctrl q"] = [sig(q) for q in a["length_controlled_q"]]
        out["confirmed"] = ["yes" if c else "no" for c in truthy(a["confirmed"])]
        if "nearest_named" in a:
            out["nearest named"] = [nearest(n, r) for n, r in zip(a["nearest_named"], a.get("nearest_r", np.nan))]
        return out.reset_index(drop=True)

    def volcano(self) -> pd.DataFrame:
        """Points of the effect plot (win-rate against −log10 q, rounded for tooltips); findings drawn last."""
        a = self.audit[~self.audit["concept"].astype(str).isin(self.hidden())]
        q = a["q_value"].astype(float).fillna(1.0).clip(lower=1e-300)
        finding = truthy(a["finding"]) if "finding" in a else np.zeros(len(a), bool)
        out = pd.DataFrame(
            {
                "concept": [" = ".join([c] + self.aliases.get(c, [])) for c in a["concept"].astype(str)],
                "win_rate": a["win_rate"].astype(float).fillna(0.5).round(3),
                "neg_log10_q": (-np.log10(q)).round(2),
                "source": ["named" if s == "named" else "SAE" for s in a["source"].astype(str)],
                "status": [
                    ("finding" if f else "confirmed" if c else "not confirmed")
                    for f, c in zip(finding, truthy(a["confirmed"]))
                ],
            }
        )
        return out.iloc[np.argsort(finding, kind="stable")].reset_index(drop=True)

    # -- one concept -----------------------------------------------------------------------------------
    def resolve(self, concept: str | None) -> str | None:
        """A concept id from what a user or a table cell gives (``length = log_length`` -> ``length``)."""
        if concept in (None, "", ANY):
            return None
        return str(concept).split(" = ")[0].strip()

    def concept_row(self, concept: str) -> dict:
        hit = self.audit[self.audit["concept"].astype(str) == str(concept)]
        if hit.empty:
            from ..errors import ConceptError

            raise ConceptError(
                f"Unknown concept {concept!r}. Concepts in this audit: {self.concepts[:40]}"
                + (" …" if len(self.concepts) > 40 else "")
            )
        return hit.iloc[0].to_dict()

    def concept_details(self, concept: str) -> dict:
        """Label, statistics, SAE label columns, group members and same-statistics aliases of one concept."""
        row = self.concept_row(concept)
        extra = self._label_row(concept)
        members = None
        if self.members is not None and str(concept).startswith("group:") and "group" in self.members:
            m = self.members[self.members["group"].astype(str) == str(concept)]
            members = m[[c for c in ("concept", "label") if c in m]].to_dict("records")
            if not extra and members:  # describe a group by its first member
                extra = self._label_row(members[0]["concept"])
        return {"row": row, "labels": extra, "members": members, "aliases": self.aliases.get(str(concept), [])}

    def _label_row(self, concept: str) -> dict:
        if self.labels is None or "concept" not in self.labels:
            return {}
        hit = self.labels[self.labels["concept"].astype(str) == str(concept)]
        return {} if hit.empty else {k: v for k, v in hit.iloc[0].to_dict().items() if k != "concept"}

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
        c, r = self.side(concept, C.CHOSEN), self.side(concept, C.REJECTED)
        return None if c is None or r is None else c - r

    def side(self, concept: str, side: str) -> np.ndarray | None:
        """One side's scores of a concept over all rows (cached)."""
        key = f"{side}|{concept}"
        if key not in self._cache:
            if len(self._cache) > 512:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self.side_scores(concept, side)
        return self._cache[key]

    def side_scores(self, concept: str, side: str) -> np.ndarray | None:
        """One side's scores of a concept over all rows: its score column, SAE activations, a feature group's
        scaled mean, or a named concept recomputed from the text."""
        from ..scores import sae_feature_scores

        names = self.table.column_names
        col = C.score_column(side, concept)
        if col in names:
            return np.nan_to_num(np.asarray(self.table.column(col).to_numpy(zero_copy_only=False), dtype=np.float32))
        if m := SAE_ID.match(concept):
            dense = sae_feature_scores(self.table, m["source"], side, [int(m["feature"])])
            return None if dense is None else dense[:, 0]
        if g := GROUP_ID.match(concept):
            return self._group_side(concept, g["source"], side)
        from ..concepts.named import get_concept, list_concepts

        if concept in list_concepts() and side in names:
            return get_concept(concept).score(self.table.column(side).to_pylist())
        return None

    def _group_side(self, group: str, source: str, side: str) -> np.ndarray | None:
        """A group of SAE features, as :func:`curate.grouping.group_scores` computes it over usable pairs."""
        from ..grouping import scaled_mean, unit_rms
        from ..scores import sae_feature_scores

        if self.members is None or "group" not in self.members:
            return None
        ids = self.members.loc[self.members["group"].astype(str) == group, "concept"].astype(str)
        feats = np.unique([int(m["feature"]) for c in ids if (m := SAE_ID.match(c))])
        dense = {s: sae_feature_scores(self.table, source, s, feats) for s in C.SIDES}
        if not len(feats) or any(v is None for v in dense.values()):
            return None
        rms = unit_rms(np.concatenate([dense[s][self._source] for s in C.SIDES], axis=0))
        return scaled_mean(dense[side], rms).astype(np.float32)

    def expand_groups(self, ids) -> list[str]:
        """Concept ids with each SAE feature group replaced by its member features (what recipes know)."""
        out = []
        for c in ids_of(ids):
            if GROUP_ID.match(c) and self.members is not None and "group" in self.members:
                out += self.members.loc[self.members["group"].astype(str) == c, "concept"].astype(str).tolist()
            else:
                out.append(c)
        return list(dict.fromkeys(out))

    # -- pairs -----------------------------------------------------------------------------------------
    def pair_indices(
        self, concept: str | None = None, status: str = "all", reason: str | None = None, search: str = ""
    ) -> np.ndarray:
        """Rows matching the filters. With a concept: rows where it differs, largest |Δ| first. ``search``
        keeps rows whose prompt, chosen or rejected text contains it (case-insensitive)."""
        concept = self.resolve(concept)
        reason = None if reason in (None, "", ANY) else reason
        search = (search or "").strip()
        if status not in STATUS_CHOICES:
            raise ConfigError(f"status must be one of {list(STATUS_CHOICES)}, got {status!r}.")
        key = (concept, status, reason, search.lower())
        if key in self._index_cache:
            return self._index_cache[key]
        mask = np.ones(self.n_rows, bool)
        if status == "kept":  # every kept row, weight 0 included (one "kept" count everywhere)
            mask &= self._kept
        elif status == "weight 0":
            mask &= self._kept & (self._weight == 0)
        elif status == "dropped":
            mask &= ~self._kept
        if reason is not None:
            value = "" if reason == NO_REASON else reason
            code = self._reasons.index(value) if value in self._reasons else -2
            mask &= self._reason_codes == code
        if search:
            mask &= self._search(search)
        if concept is None:
            idx = np.flatnonzero(mask)
        else:
            d = self.delta(concept)
            idx = np.empty(0, np.int64) if d is None else np.flatnonzero(mask & (d != 0))
            if d is not None:
                idx = idx[np.argsort(-np.abs(d[idx]), kind="stable")]
        if len(self._index_cache) > 64:
            self._index_cache.pop(next(iter(self._index_cache)))
        self._index_cache[key] = idx
        return idx

    def _search(self, text: str) -> np.ndarray:
        import pyarrow.compute as pc

        hit = np.zeros(self.n_rows, bool)
        for col in (C.PROMPT, C.CHOSEN, C.REJECTED):
            if col in self.table.column_names:
                m = pc.match_substring(self.table.column(col), text, ignore_case=True)
                hit |= np.asarray(m.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)
        return hit

    def pairs_page(
        self,
        concept: str | None = None,
        status: str = "all",
        reason: str | None = None,
        page=1,
        page_size=10,
        search: str = "",
    ) -> PairPage:
        """One page (1-based) of the pairs matching the filters. A page out of range, empty or not a number
        is corrected (to 1 or the last page) and ``note`` says so; it never raises for a bad page."""
        idx = self.pair_indices(concept, status, reason, search)
        size = page_number(page_size, 10)
        size = min(max(size, 1), 100)
        n_pages = max(1, math.ceil(len(idx) / size))
        asked = page_number(page, None)
        page_n = 1 if asked is None else min(max(1, asked), n_pages)
        note = (
            ""
            if asked == page_n
            else (
                f"That is not a page number (pages run from 1 to {n_pages}): showing page 1."
                if asked is None
                else f"There is no page {asked}: showing page {page_n} (pages run from 1 to {n_pages})."
            )
        )
        rows = idx[(page_n - 1) * size : page_n * size]
        concept = self.resolve(concept)
        return PairPage(self._rows(rows, concept), page_n, n_pages, len(idx), concept, note, (search or "").strip())

    def _rows(self, rows: np.ndarray, concept: str | None) -> list[dict]:
        names = self.table.column_names
        cols = [c for c in (C.ID, C.PROMPT, C.CHOSEN, C.REJECTED) if c in names]
        sub = self.table.select(cols).take(np.asarray(rows, dtype=np.int64)).to_pydict()
        d = self.delta(concept) if concept else None
        return [
            {
                "row": int(i),
                "id": sub[C.ID][j] if C.ID in sub else int(i),
                "prompt": sub.get(C.PROMPT, [""] * len(rows))[j] or "",
                "chosen": sub[C.CHOSEN][j] or "",
                "rejected": sub[C.REJECTED][j] or "",
                "kept": bool(self._kept[i]),
                "reason": self._reason[i],
                "weight": float(self._weight[i]),
                "delta": None if d is None else float(d[i]),
            }
            for j, i in enumerate(rows)
        ]


def page_number(value, default):
    """An integer page (or page size) from what a box holds (``"3"``, ``3.0``, ``None``, ``"abc"``)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return default
    return default if not math.isfinite(x) else int(x)


def ids_of(values) -> list[str]:
    return list(dict.fromkeys(str(v) for v in (values or []) if v))


def sig(x, digits: int = 3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return float(f"{float(x):.{digits}g}")


def ci_text(lo, hi) -> str:
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return "—"
    return f"[{lo:.3f}, {hi:.3f}]"


def nearest(name, r) -> str:
    """``flattery (r=+0.46)``: the nearest named concept and its correlation, from the audit table only."""
    if name is None or (isinstance(name, float) and math.isnan(name)) or name == "":
        return ""
    return f"{name} (r={r:+.2f})" if isinstance(r, (int, float)) and not math.isnan(r) else str(name)
