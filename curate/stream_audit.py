"""An audit that streams: sparse SAE scores read shard by shard, memory growing with the number of concepts.

:class:`~curate.audit.ConceptAudit` holds a dense ``pairs × concepts`` matrix — fine for 100k pairs and a
few thousand active features, not for a million pairs × a 16k-latent SAE. :class:`StreamingAudit` reads
the annotated shards (the Ray engine's ``shards/`` folder, parquet files, a `datasets.Dataset` or Arrow
tables) one record batch at a time and keeps only, per concept and per held-out half:

* counts of pairs where Δ = score(chosen) − score(rejected) differs from 0 and where it is positive,
* Σ Δ and Σ Δ² (effect size d_z = mean / sd over all usable pairs, a Δ of 0 where neither side fired),
* how many chosen / rejected responses carry the concept (prevalence, ``min_active``).

From these come — on **all** pairs, exactly as the in-memory audit computes them without weights —
``n_differ``, ``win_rate`` with its Wilson interval, the sign-test ``p_value``, BH ``q_value``,
``effect_size``, ``mean_delta``, the discovery/confirmation split by prompt hash (same salt, same halves)
and ``confirmed``.

What needs the pairs themselves runs on a **bounded sample**: a uniform random sample of at most
``sample_pairs`` usable pairs (bottom-k of a seeded random key, so it does not depend on shard sizes),
restricted to the named concepts and the ``sample_concepts`` SAE features with the smallest stream
p-values. On it: the length-controlled Bradley–Terry effect (``length_controlled_*``), feature grouping
(``group``, average linkage on 1 − r as :mod:`curate.grouping`), ``nearest_named``/``nearest_r``, and the
sparse L1 model (``multivariate_coef``, ``sparse_auc_`` on the sample's confirmation half); the sample and
these models are :mod:`curate.stream_sample`'s. Rows outside the sample's concepts have NaN there. Per-pair
weights are not supported (use ``ConceptAudit``).

Memory: O(concepts) for the statistics plus one record batch (``batch_rows`` rows) plus the sample.

Example:

    >>> import curate
    >>> from curate.stream_audit import StreamingAudit
    >>> ds = curate.annotate(curate.make_preference_pairs(400, seed=0).dataset)
    >>> audit = StreamingAudit(batch_rows=100).fit(ds)
    >>> row = audit.results_.set_index("concept").loc["flattery"]
    >>> bool(row["win_rate"] > 0.6), bool(row["confirmed"])
    (True, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from . import _columns as C
from . import stats as S
from .audit_base import EVIDENCE_COLUMNS, MEASURED, AuditSettings, evidence_order, mark_findings
from .errors import FormatError, InputNotFoundError, NotFittedError
from .scores import prompt_halves
from .stream_sample import PairSample, sample_models

__all__ = ["StreamingAudit", "STREAM_COLUMNS"]

STREAM_COLUMNS = [
    "concept",
    "source",
    "finding",
    "finding_rank",
    "group",
    *C.TEST_COLUMNS,
    "nearest_named",
    "nearest_r",
    "multivariate_coef",
    "in_sample",
    "prevalence_chosen",
    "prevalence_rejected",
    *EVIDENCE_COLUMNS,
]
_MASK32 = np.int64(0xFFFFFFFF)


def parquet_files(data) -> list[Path]:
    """The parquet files of ``data``: files, and folders of them (a Ray job folder's ``shards/`` is found)."""
    files = []
    for item in data if isinstance(data, (list, tuple)) else [data]:
        p = Path(item)
        if p.is_dir():
            sub = p / "shards" if (p / "shards").is_dir() else p
            files += sorted(sub.glob("*.parquet"))
        elif p.exists():
            files.append(p)
        else:
            raise InputNotFoundError(
                f"{item} does not exist. Pass parquet files, a folder of them (e.g. the Ray "
                "engine's job folder), a datasets.Dataset or a pyarrow Table."
            )
    if not files:
        raise InputNotFoundError(f"No .parquet files in {data}.")
    return files


def annotated_dataset(data, cache_dir: str | Path):
    """``data`` (what :meth:`StreamingAudit.fit` reads) as one `datasets.Dataset` with every row and column, for
    an audit folder's ``annotated/``; parquet files are converted through Arrow files in ``cache_dir`` (memory
    stays bounded)."""
    import pyarrow as pa
    from datasets import Dataset

    if isinstance(data, pa.Table):
        return Dataset(data)
    if hasattr(data, "with_format") and hasattr(data, "features"):
        return data
    return Dataset.from_parquet([str(f) for f in parquet_files(data)], cache_dir=str(cache_dir))


class _Acc:
    """Per-concept, per-half sufficient statistics; grows with the largest concept index seen."""

    def __init__(self, size: int = 0):
        self.nd = np.zeros((2, size), np.int64)
        self.wins = np.zeros((2, size), np.int64)
        self.s1 = np.zeros((2, size))
        self.s2 = np.zeros((2, size))
        self.act_c = np.zeros(size, np.int64)
        self.act_r = np.zeros(size, np.int64)

    def grow(self, size: int) -> None:
        if size <= self.nd.shape[1]:
            return
        pad = size - self.nd.shape[1]
        for name in ("nd", "wins", "s1", "s2"):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros((2, pad), a.dtype)], axis=1))
        for name in ("act_c", "act_r"):
            a = getattr(self, name)
            setattr(self, name, np.concatenate([a, np.zeros(pad, a.dtype)]))

    def add(self, half: np.ndarray, col: np.ndarray, d: np.ndarray) -> None:
        """Add Δ values ``d`` of concept ``col`` in pairs of half ``half`` (entries with Δ = 0 may be omitted)."""
        size = self.nd.shape[1]
        key = half.astype(np.int64) * size + col
        self.nd += np.bincount(key[d != 0], minlength=2 * size).reshape(2, size)
        self.wins += np.bincount(key[d > 0], minlength=2 * size).reshape(2, size)
        self.s1 += np.bincount(key, weights=d, minlength=2 * size).reshape(2, size)
        self.s2 += np.bincount(key, weights=d * d, minlength=2 * size).reshape(2, size)


@dataclass(eq=False, repr=False, kw_only=True)
class StreamingAudit(AuditSettings):
    """Audit annotated pairs shard by shard (see the module docstring for what is exact and what is sampled).

    Args:
        alpha, seed, min_active, split_salt, group_threshold, max_findings, min_effect: as
            :class:`~curate.audit_base.AuditSettings` (``seed`` draws the sample and orients the sparse
            model's pairs; ``group_threshold`` groups the sampled SAE features).
        sample_pairs: most usable pairs kept for the sample-based parts.
        sample_concepts: most SAE features (smallest stream p-values) analysed on the sample.
        batch_rows: rows per record batch read.

    Attributes (after :meth:`fit`):
        results_: one row per concept (:data:`STREAM_COLUMNS`), findings first, then by q-value.
        n_rows_: rows read; n_pairs_, n_discovery_, n_confirmation_, n_sample_: pair counts; ``sparse_auc_``:
        held-out AUC of the sparse model on the sample; ``seconds_``: time of the pass.
    """

    sample_pairs: int = 10_000
    sample_concepts: int = 256
    batch_rows: int = 65_536

    # -- input -----------------------------------------------------------------------------------------
    def _batches(self, data):
        import pyarrow as pa
        import pyarrow.parquet as pq

        if isinstance(data, pa.Table):
            yield from data.to_batches(max_chunksize=self.batch_rows)
            return
        if hasattr(data, "with_format") and hasattr(data, "features"):  # datasets.Dataset
            for table in data.with_format("arrow").iter(batch_size=self.batch_rows):
                yield from table.to_batches()
            return
        for f in parquet_files(data):
            pf = pq.ParquetFile(f)
            yield from pf.iter_batches(batch_size=self.batch_rows, columns=self._columns(pf.schema_arrow.names))

    def _columns(self, names: list[str]) -> list[str]:
        keep = [c for c in names if c in (C.PROMPT, C.REASON) or C.parse_score_column(c) or C.parse_sae_column(c)]
        if not any(C.parse_score_column(c) and c.endswith(C.SEP + "log_length") for c in names):
            keep += [c for c in C.SIDES if c in names]
        return keep

    # -- the pass ----------------------------------------------------------------------------------------
    def fit(self, data) -> "StreamingAudit":
        """Stream ``data`` once and compute the audit.

        Args:
            data: parquet file(s) or a folder of them (a Ray job folder's ``shards/`` is found), a
                `datasets.Dataset`, or a pyarrow Table — annotated by curate.

        Returns:
            self
        """
        t0 = time.perf_counter()
        self._named: list[str] | None = None
        self._named_acc = None
        self._sae_acc: dict[str, _Acc] = {}
        self._n_half = np.zeros(2, np.int64)
        self.n_rows_ = 0
        self._sampler = PairSample(self.sample_pairs, self.seed)
        for batch in self._batches(data):
            self._update(batch)
        if self._n_half.sum() == 0:
            raise FormatError("No usable pairs to audit: every row has a non-empty `reason` (or the input is empty).")
        if self._named_acc is None and not self._sae_acc:
            raise FormatError("The data has no concept scores. Annotate it first, e.g. `curate.annotate(ds)`.")
        self._finish()
        self.seconds_ = round(time.perf_counter() - t0, 3)
        return self

    def _update(self, batch) -> None:
        import pyarrow.compute as pc

        names = batch.schema.names
        n = batch.num_rows
        self.n_rows_ += n
        if C.REASON in names:
            usable = pc.fill_null(pc.equal(batch.column(C.REASON), ""), False).to_numpy(zero_copy_only=False)
        else:
            usable = np.ones(n, bool)
        rows = np.flatnonzero(usable)
        if len(rows) == 0:
            return
        prompts = batch.column(C.PROMPT).to_pylist() if C.PROMPT in names else [""] * n
        half_all = np.full(n, -1, np.int8)
        half_all[rows] = prompt_halves([prompts[i] or "" for i in rows], self.split_salt)
        half = half_all[rows]
        self._n_half += np.bincount(half, minlength=2)

        # named concepts: dense Δ
        named = [c for c in names if C.parse_score_column(c) and c.startswith(C.CHOSEN + C.SEP)]
        ids = [
            C.parse_score_column(c)[1] for c in named if C.score_column(C.REJECTED, C.parse_score_column(c)[1]) in names
        ]
        if self._named is None:
            self._named = ids
            self._named_acc = _Acc(len(ids)) if ids else None
        elif ids != self._named:
            raise FormatError(f"Shards disagree on named concepts: {self._named} vs {ids}. Audit shards of one job.")
        if ids:
            ch = np.stack([batch.column(C.score_column(C.CHOSEN, c)).to_numpy(zero_copy_only=False) for c in ids], 1)[
                rows
            ]
            rj = np.stack([batch.column(C.score_column(C.REJECTED, c)).to_numpy(zero_copy_only=False) for c in ids], 1)[
                rows
            ]
            ch, rj = np.nan_to_num(ch.astype(float)), np.nan_to_num(rj.astype(float))
            d = ch - rj
            K = len(ids)
            self._named_acc.add(np.repeat(half, K), np.tile(np.arange(K), len(rows)), d.ravel())
            self._named_acc.act_c += (ch > 0).sum(0)
            self._named_acc.act_r += (rj > 0).sum(0)
        else:
            ch = rj = np.zeros((len(rows), 0))
        if "log_length" in ids:
            j = ids.index("log_length")
            loglen = np.stack([ch[:, j], rj[:, j]], 1)
        else:
            from .concepts.named import log_length

            loglen = (
                np.stack([log_length([batch.column(s)[int(i)].as_py() or "" for i in rows]) for s in C.SIDES], 1)
                if all(s in names for s in C.SIDES)
                else np.zeros((len(rows), 2))
            )

        # SAE features: sparse Δ per (pair, feature)
        sparse = {}
        sources = sorted({C.parse_sae_column(c)[1] for c in names if C.parse_sae_column(c)})
        for src in sources:
            parts = []
            for sign, side in ((1.0, C.CHOSEN), (-1.0, C.REJECTED)):
                idx_col = batch.column(C.sae_index_column(side, src))
                val_col = batch.column(C.sae_value_column(side, src))
                lens = pc.fill_null(pc.list_value_length(idx_col), 0).to_numpy(zero_copy_only=False)
                fi = pc.list_flatten(idx_col).to_numpy(zero_copy_only=False).astype(np.int64)
                fv = pc.list_flatten(val_col).to_numpy(zero_copy_only=False).astype(np.float64)
                ri = np.repeat(np.arange(n, dtype=np.int64), lens)
                ok = usable[ri] & (fv > 0)
                parts.append((ri[ok], fi[ok], sign * fv[ok]))
            acc = self._sae_acc.setdefault(src, _Acc())
            top = max([int(p[1].max()) + 1 for p in parts if len(p[1])] + [0])
            acc.grow(top)
            acc.act_c += np.bincount(parts[0][1], minlength=acc.act_c.shape[0])
            acc.act_r += np.bincount(parts[1][1], minlength=acc.act_r.shape[0])
            # match each rejected entry to the chosen entry of the same (pair, feature): sort + searchsorted
            (rc, fc, vc), (rr, fr, vr) = parts
            ck = (rc << 32) | fc
            order = np.argsort(ck, kind="stable")
            ck, dc = ck[order], vc[order]
            rk = (rr << 32) | fr
            pos = np.minimum(np.searchsorted(ck, rk), max(len(ck) - 1, 0))
            hit = (ck[pos] == rk) if len(ck) else np.zeros(len(rk), bool)
            dc[pos[hit]] += vr[hit]  # vr is stored negative, so this is Δ = c − r; keys are unique per side
            uniq = np.concatenate([ck, rk[~hit]])
            d = np.concatenate([dc, vr[~hit]])
            r_of, f_of = (uniq >> 32), (uniq & _MASK32)
            acc.add(half_all[r_of], f_of, d)
            sparse[src] = parts
        self._sampler.add(rows, ch, rj, loglen, half, sparse, n)

    # -- statistics ----------------------------------------------------------------------------------------
    def _finish(self) -> None:
        frames, concept_ids = [], []
        n_pairs = int(self._n_half.sum())
        if self._named_acc is not None:
            frames.append(self._stats(self._named_acc, self._named, "named", np.ones(len(self._named), bool)))
            concept_ids += [("named", c, j) for j, c in enumerate(self._named)]
        for src, acc in self._sae_acc.items():
            feats = np.arange(acc.nd.shape[1])
            active = (acc.act_c + acc.act_r) >= self.min_active
            frames.append(self._stats(acc, [C.sae_concept_id(src, f) for f in feats], src, active))
            concept_ids += [(src, C.sae_concept_id(src, f), f) for f in feats[active]]
        res = pd.concat(frames, ignore_index=True)
        res["q_value"] = S.benjamini_hochberg(res["p_value"].to_numpy())
        disc_q = S.benjamini_hochberg(res.pop("_disc_p").to_numpy())
        conf_p = res.pop("_conf_p").to_numpy()
        carried = disc_q < self.alpha
        conf_p = np.where(carried, conf_p, np.nan)
        conf_q = S.benjamini_hochberg(conf_p)
        same_dir = np.sign(res["discovery_win_rate"] - 0.5) == np.sign(res["confirmation_win_rate"] - 0.5)
        res["discovery_q"] = disc_q
        res["confirmation_p"] = conf_p
        res["confirmed"] = np.nan_to_num(carried & (conf_q < self.alpha) & same_dir.to_numpy()).astype(bool)
        res["n_pairs"] = n_pairs
        self.n_pairs_ = n_pairs
        self.n_discovery_, self.n_confirmation_ = int(self._n_half[0]), int(self._n_half[1])
        self._sample = self._sampler.data_  # the kept pairs: named scores, halves and SAE entries
        self.n_sample_ = len(self._sampler)
        res, self.sparse_auc_ = sample_models(
            res,
            self._sampler,
            concept_ids,
            sample_concepts=self.sample_concepts,
            group_threshold=self.group_threshold,
            seed=self.seed,
        )
        res = self._mark_findings(res)
        self.results_ = res.iloc[evidence_order(res)][STREAM_COLUMNS].reset_index(drop=True)

    def _stats(self, acc: _Acc, ids: list[str], source: str, keep: np.ndarray) -> pd.DataFrame:
        n_half = self._n_half.astype(float)
        n = n_half.sum()
        nd, wins = acc.nd[:, keep], acc.wins[:, keep]
        s1, s2 = acc.s1[:, keep].sum(0), acc.s2[:, keep].sum(0)

        def win(nd_, wins_):
            with np.errstate(invalid="ignore", divide="ignore"):
                wr = np.where(nd_ > 0, wins_ / np.maximum(nd_, 1), np.nan)
            lo, hi = S.wilson_interval(wins_.astype(float), nd_.astype(float))
            return wr, lo, hi, S.sign_test(wins_.astype(float), nd_.astype(float))

        wr, lo, hi, p = win(nd.sum(0), wins.sum(0))
        dwr, _, _, dp = win(nd[0], wins[0])
        cwr, _, _, cp = win(nd[1], wins[1])
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(var > 0, mean / np.sqrt(var), 0.0)
        return pd.DataFrame(
            {
                "concept": np.asarray(ids, dtype=object)[keep],
                "source": "named" if source == "named" else f"sae:{source}",
                "n_differ": nd.sum(0),
                "win_rate": wr,
                "ci_low": lo,
                "ci_high": hi,
                "effect_size": d,
                "mean_delta": mean,
                "p_value": p,
                "discovery_win_rate": dwr,
                "_disc_p": dp,
                "confirmation_win_rate": cwr,
                "_conf_p": cp,
                "prevalence_chosen": acc.act_c[keep] / n,
                "prevalence_rejected": acc.act_r[keep] / n,
            }
        )

    def _mark_findings(self, res: pd.DataFrame) -> pd.DataFrame:
        """At most ``max_findings`` rows that pass :func:`~curate.audit_base.finding_evidence` (length control on
        the sample), one per group."""
        ev = self.evidence(res)
        for c in EVIDENCE_COLUMNS:
            res[c] = ev[c].to_numpy()
        picked, groups = [], set()
        strength = np.abs(res["length_controlled_coef"].fillna(0).to_numpy())
        ok = ev["passes"].to_numpy()
        for i in (int(i) for i in np.argsort(-strength, kind="stable") if ok[i]):
            if len(picked) >= self.max_findings:
                break
            g = res["group"].iat[i]
            if g is not None and g in groups:
                continue
            groups.add(g)
            picked.append(i)
        return mark_findings(res, picked)

    # -- reading ---------------------------------------------------------------------------------------
    def save(self, out: str | Path, data, *, source: str | None = None) -> Path:
        """Write an audit folder (:func:`curate.folders.save_audit`, with its manifest) that ``curate apply`` reads.

        Args:
            out: the folder (made or replaced in one step).
            data: what :meth:`fit` read; its rows, every column, become the folder's ``annotated/``.
            source: what the manifest records as the source (default: ``data`` when it is a path).

        Returns:
            ``out``.
        """
        import tempfile

        from .folders import check_target, save_audit

        self._check_fitted()
        out = check_target(out, "audit")
        if source is None and isinstance(data, (str, Path, list, tuple)):
            source = ", ".join(str(d) for d in data) if isinstance(data, (list, tuple)) else str(data)
        with tempfile.TemporaryDirectory(prefix=".curate-stream-", dir=out.parent) as cache:
            annotated = annotated_dataset(data, cache)
            if len(annotated) != self.n_rows_:
                raise FormatError(
                    f"The data holds {len(annotated)} rows; this audit read {self.n_rows_}. Pass the data it was "
                    "fitted on."
                )
            return save_audit(out, annotated=annotated, results=self.results_, summary=self.to_dict(), source=source)

    def fit_save(self, data, out: str | Path) -> "StreamingAudit":
        """:meth:`fit` on ``data``, then :meth:`save` the audit folder ``out``; ``out`` is checked first, so a
        folder that may not be replaced is refused before the pass. Returns self."""
        from .folders import check_target

        check_target(out, "audit")
        self.fit(data)
        self.save(out, data)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "results_"):
            raise NotFittedError("This StreamingAudit is not fitted yet. Call `fit(shards)` first.")

    def findings(self) -> pd.DataFrame:
        """The short list (rows that pass :func:`~curate.audit_base.finding_evidence`, one per group)."""
        self._check_fitted()
        return self.results_[self.results_["finding"]]

    def to_dict(self) -> dict:
        out = {
            "type": "StreamingAudit",
            **self.settings(*(f.name for f in fields(self))),  # every setting, introspected
            "findings_rule": {"rule": self.rule, **MEASURED.get(self.rule, {})},
        }
        if hasattr(self, "results_"):
            out.update(
                {
                    "n_pairs": self.n_pairs_,
                    "n_discovery": self.n_discovery_,
                    "n_confirmation": self.n_confirmation_,
                    "n_sample": self.n_sample_,
                    "n_concepts": len(self.results_),
                    "n_confirmed": int(self.results_["confirmed"].sum()),
                    "n_findings": int(self.results_["finding"].sum()),
                    "seconds": self.seconds_,
                    "sparse_heldout_auc": None if np.isnan(self.sparse_auc_) else round(self.sparse_auc_, 4),
                }
            )
        return out
