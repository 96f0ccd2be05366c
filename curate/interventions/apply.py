"""Apply a recipe to an annotated dataset: plan the interventions, run them, write the splits, re-audit."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .. import _columns as C
from .._format import fmt_q
from ..ingest import ensure_row_index
from ..recipe import Recipe
from ._plan import BUILDERS, ORDER, plan  # noqa: F401  (re-exported: the plan is part of apply's API)
from ._state import PairState, state_from_dataset
from .balance import MEAN_DELTA_COLUMNS, add_mean_delta, mean_delta_text, subset_balance  # noqa: F401
from .inoculate import add_system_instruction, render_prompt
from .relabel import Relabel

BEFORE_AFTER_COLUMNS = [
    "concept",
    "action",
    "interventions",
    "n_differ_before",
    "win_rate_before",
    "ci_low_before",
    "ci_high_before",
    "q_before",
    "n_differ_after",
    "win_rate_after",
    "ci_low_after",
    "ci_high_after",
    "q_after",
    *MEAN_DELTA_COLUMNS,
]


@dataclass
class ApplyReport:
    """What :func:`apply_recipe` did.

    Attributes:
        recipe: the recipe as a dict.
        steps: each intervention's ``to_dict()``, in the order run.
        retention: rows, usable rows, rows kept / dropped (by reason), rows swapped / inoculated, the
            Kish effective sample size of the weights (``ess``) and ``ess_fraction`` = ESS / usable rows.
        before_after: one row per recipe concept (:data:`BEFORE_AFTER_COLUMNS`).
        proxy: the proxy reward check (:func:`curate.reward_probe.proxy_check`), when run.
    """

    recipe: dict
    steps: list[dict]
    retention: dict
    before_after: pd.DataFrame
    proxy: pd.DataFrame | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "recipe": self.recipe,
            "steps": self.steps,
            "retention": self.retention,
            "before_after": _records(self.before_after),
            "seconds": self.seconds,
            **self.extra,
        }
        if self.proxy is not None:
            out["proxy"] = _records(self.proxy)
        return out

    def save(self, folder: str | Path) -> None:
        """Write ``apply.json`` (everything) and ``before_after.parquet`` (and ``proxy.parquet``) to ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "apply.json").write_text(json.dumps(self.to_dict(), indent=2, default=_json_default))
        self.before_after.to_parquet(folder / "before_after.parquet", index=False)
        if self.proxy is not None:
            self.proxy.to_parquet(folder / "proxy.parquet", index=False)

    @staticmethod
    def mean_delta(row: dict, side: str | None = None) -> str:
        """A magnitude's weighted mean Δ with its CI, as the tables print it (:func:`mean_delta_text`)."""
        return mean_delta_text(row, side)

    def table(self) -> str:
        """The before/after table as fixed-width plain text, for a log or a notebook: per concept its action and
        the win-rate [95% CI] and BH q before and after (and a magnitude's weighted mean Δ), then the rows kept
        and dropped and the ESS. ``curate apply`` does not print this text: it prints the same numbers from
        :attr:`before_after` as a rich table of its own."""
        df = self.before_after
        lines = [
            f"{'concept':<16}{'action':<9}{'win-rate before [95% CI]':<28}{'q':>8}   "
            f"{'win-rate after [95% CI]':<28}{'q':>8}"
        ]
        for r in df.itertuples():
            lines.append(
                f"{r.concept:<16}{r.action:<9}{_wr(r.win_rate_before, r.ci_low_before, r.ci_high_before):<28}"
                f"{_q(r.q_before):>8}   {_wr(r.win_rate_after, r.ci_low_after, r.ci_high_after):<28}{_q(r.q_after):>8}"
            )
            md = mean_delta_text(r._asdict())
            if md:
                lines.append(f"{'':<16}{'':<9}mean Δ {md}")
        t = self.retention
        lines.append(
            f"rows kept {t['rows_kept']}/{t['rows_usable']} · dropped {t['rows_dropped']} · "
            f"ESS {t['ess']:.1f} ({100 * t['ess_fraction']:.1f}% of usable rows)"
            + (f" · swapped {t['rows_swapped']}" if t.get("rows_swapped") else "")
            + (f" · inoculated {t['rows_inoculated']}" if t.get("rows_inoculated") else "")
        )
        return "\n".join(lines)


def apply_recipe(
    dataset, recipe: Recipe | str | Path, *, audit: bool = True, annotate_missing: bool = True, by: str | None = "auto"
):
    """Apply a recipe to a pair dataset and re-audit the result under its weights.

    Args:
        dataset: pairs in curate's schema (``curate.load_pairs``), annotated or not: named concepts the
            recipe needs but the data lacks are scored first when ``annotate_missing``; SAE concepts must
            already be annotated.
        recipe: a :class:`~curate.recipe.Recipe` or the path of a recipe YAML.
        audit: re-audit before and after with :class:`curate.ConceptAudit` (weighted). ``False`` uses
            the cheap per-concept statistics of :func:`preview` instead.
        annotate_missing: score missing named concepts.
        by: the subset column (the audit's ``--by``): weighting interventions balance a blocked concept
            within each subset unless the recipe says ``block_within: pooled``. ``"auto"``: the first of
            :data:`curate._columns.SUBSET_CANDIDATES` present with two or more values; ``None``: no subsets.

    Returns:
        ``(DatasetDict, ApplyReport)``. The ``train`` split holds the kept rows in the original order
        (a resampled row repeated as often as drawn) with every input column plus ``keep``, ``reason``,
        ``weight`` (mean 1), ``margin`` and, when relabelling (now or in an earlier step), ``swapped``
        (chosen/rejected and their score columns exchanged from the source's orientation); every row keeps its
        ``row`` index (added when the input has none); the ``dropped`` split holds every other row with its
        ``reason``.

    Example:

        >>> from curate import make_preference_pairs
        >>> from curate.recipe import Recipe
        >>> from curate.interventions import apply_recipe
        >>> dd, report = apply_recipe(make_preference_pairs(300).dataset, Recipe.from_ids(block=["flattery"]))
        >>> sorted(dd), round(float(report.before_after.set_index("concept").loc["flattery", "win_rate_after"]), 3)
        (['dropped', 'train'], 0.5)
    """
    from datasets import DatasetDict

    t0 = time.perf_counter()
    if not isinstance(recipe, Recipe):
        from ..recipe import load_recipe

        recipe = load_recipe(recipe)
    ids = recipe.concept_ids()
    ids += [c for c in _adjuster_ids(recipe) if c not in ids]
    dataset = ensure_annotated(ensure_row_index(dataset), ids, annotate_missing=annotate_missing)
    recipe.check_concepts(dataset)
    state0 = state_from_dataset(dataset, ids, subsets=subset_column(dataset, by))
    state = state0.copy()
    steps = plan(recipe)
    for step in steps:
        step.apply(state)
    relabelled = any(isinstance(s, Relabel) for s in steps) or C.SWAPPED in dataset.column_names
    train, dropped = materialize(dataset, state, with_swapped=relabelled)
    dd = DatasetDict({C.TRAIN_SPLIT: train, C.DROPPED_SPLIT: dropped})
    if audit:
        table = _audit_before_after(dataset, train, recipe)
    else:
        rids = recipe.concept_ids()
        table = before_after(_sub_state(state0, rids), _sub_state(state, rids), recipe)
    table = add_mean_delta(table, state0, state)
    report = ApplyReport(
        recipe=recipe.to_dict(), steps=[s.to_dict() for s in steps], retention=retention(state), before_after=table
    )
    if state0.subsets is not None:
        report.extra["by_subset"] = subset_balance(state0, state, recipe.blocked())
    report.seconds = round(time.perf_counter() - t0, 3)
    return dd, report


def subset_column(dataset, by: str | None = "auto") -> str | None:
    """The column whose values are the subsets to balance within: ``by`` itself (checked), the detected one
    for ``"auto"`` when it has two or more values, or ``None``. ``dataset``: a Dataset or a pyarrow Table."""
    from ..errors import CurateError
    from ..subsets import detect_subset_column

    if by is None or str(by).lower() == "none":
        return None
    if by != "auto":
        if by not in dataset.column_names:
            raise CurateError(f"by={by!r}: no such column. Columns of the data: {dataset.column_names}.")
        return by
    found = detect_subset_column(dataset.column_names)
    if found is None:
        return None
    values = dataset[found]
    values = values.to_pylist() if hasattr(values, "to_pylist") else values  # a pyarrow table's column
    return found if len(set(C.subset_values(values))) >= 2 else None


def _adjuster_ids(recipe: Recipe) -> list[str]:
    """The concepts the rebalancing rules adjust for (``"all"``: every named concept)."""
    adj = recipe.adjusters()
    if adj == "all":
        from ..concepts.named import list_concepts

        return list(list_concepts())
    return list(adj or [])


def ensure_annotated(dataset, concepts: Iterable[str], *, annotate_missing: bool = True):
    """Score the named concepts in ``concepts`` that have no ``chosen__<id>`` column yet."""
    names = set(dataset.column_names)
    missing = [c for c in concepts if not c.startswith(C.SAE_PREFIX) and C.score_column(C.CHOSEN, c) not in names]
    if missing and annotate_missing:
        from ..concepts.named import annotate, list_concepts

        known = [c for c in missing if c in list_concepts()]
        if known:
            dataset = annotate(dataset, known)
    return dataset


def materialize(dataset, state: PairState, *, with_swapped: bool = False):
    """Write a state back onto the dataset: ``(train, dropped)`` Datasets (see :func:`apply_recipe`)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import Dataset

    table = dataset.with_format("arrow")[:]
    # ``swapped`` says whether a row is the other way round from the source: earlier steps' swaps, then this one's
    before = (
        np.asarray(table.column(C.SWAPPED).fill_null(False).to_pylist(), bool)
        if C.SWAPPED in table.column_names
        else np.zeros(len(table), bool)
    )
    drop_cols = [c for c in (C.KEEP, C.REASON, C.WEIGHT, C.MARGIN, C.SWAPPED) if c in table.column_names]
    table = table.drop_columns(drop_cols)
    if state.swapped.any():
        mask = pa.array(state.swapped)
        names = table.column_names
        for name in names:
            if name == C.CHOSEN or name.startswith(C.CHOSEN + C.SEP):
                other = C.REJECTED + name[len(C.CHOSEN) :]
                if other in names:
                    a, b = table.column(name).combine_chunks(), table.column(other).combine_chunks()
                    table = table.set_column(table.column_names.index(name), name, pc.if_else(mask, b, a))
                    table = table.set_column(table.column_names.index(other), other, pc.if_else(mask, a, b))
    inoculated = [i for i, ins in enumerate(state.instructions) if ins]
    if inoculated:
        prompts = table.column(C.PROMPT).to_pylist()
        messages = (
            table.column(C.PROMPT_MESSAGES).to_pylist()
            if C.PROMPT_MESSAGES in table.column_names
            else [[{"role": "user", "content": p}] for p in prompts]
        )
        for i in inoculated:
            msgs = add_system_instruction(
                messages[i] or [{"role": "user", "content": prompts[i] or ""}], " ".join(state.instructions[i])
            )
            messages[i] = msgs
            prompts[i] = render_prompt(msgs)
        table = table.set_column(table.column_names.index(C.PROMPT), C.PROMPT, pa.array(prompts, pa.string()))
        mtype = (
            table.schema.field(C.PROMPT_MESSAGES).type
            if C.PROMPT_MESSAGES in table.column_names
            else pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        )
        col = pa.array([[{"role": m["role"], "content": m["content"]} for m in ms] for ms in messages], mtype)
        if C.PROMPT_MESSAGES in table.column_names:
            table = table.set_column(table.column_names.index(C.PROMPT_MESSAGES), C.PROMPT_MESSAGES, col)
        else:
            table = table.append_column(C.PROMPT_MESSAGES, col)
    table = table.append_column(C.KEEP, pa.array(state.keep, pa.bool_()))
    table = table.append_column(C.REASON, pa.array(state.reason.tolist(), pa.string()))
    table = table.append_column(C.WEIGHT, pa.array(state.weight.astype(np.float32), pa.float32()))
    table = table.append_column(C.MARGIN, pa.array(state.margin.astype(np.float32), pa.float32()))
    if with_swapped:
        table = table.append_column(C.SWAPPED, pa.array(before ^ state.swapped, pa.bool_()))
    full = Dataset(table)
    kept = np.flatnonzero(state.keep)
    train_idx = np.repeat(kept, state.copies[kept])
    train = full.select(train_idx.tolist()).flatten_indices()
    dropped = full.select(np.flatnonzero(~state.keep).tolist()).flatten_indices()
    return train, dropped


def retention(state: PairState) -> dict:
    """Rows kept, dropped (by reason), swapped, inoculated, and the effective sample size of the weights."""
    reasons = pd.Series(state.reason[~state.keep]).value_counts().to_dict()
    usable = int(state.usable.sum())
    ess = state.ess()
    return {
        "rows": state.n,
        "rows_usable": usable,
        "rows_kept": int(state.keep.sum()),
        "rows_in_train": int((state.copies * state.keep).sum()),
        "rows_dropped": int((~state.keep).sum()),
        "dropped_by_reason": {str(k): int(v) for k, v in reasons.items()},
        "rows_swapped": int(state.swapped.sum()),
        "rows_inoculated": int(sum(bool(x) for x in state.instructions)),
        "ess": ess,
        "ess_fraction": ess / usable if usable else 0.0,
        "weight_sum": float((state.weight * state.keep * state.copies).sum()),
    }


def before_after(before: PairState, after: PairState, recipe: Recipe | None = None) -> pd.DataFrame:
    """Per-concept win-rate, 95% Wilson CI (Kish effective n) and BH q-value, before vs after.

    The cheap path (no full audit): q-values are adjusted over the concepts of the table only.
    """
    from .. import stats as S

    def stats_of(state: PairState):
        # the rows of the train split: a resampled row once per copy, as the audit of the written split sees it
        rows = np.repeat(np.arange(state.n), state.copies * state.keep)
        w = state.weight[rows].astype(np.float32)  # the split's weight column
        d = state.delta()[rows][w > 0]
        res = S.paired_win_stats(d, w[w > 0]) if len(d) else None
        if res is None:
            nan = np.full(len(state.concepts), np.nan)
            return {
                "n_differ": np.zeros(len(state.concepts), int),
                "win_rate": nan,
                "ci_low": nan,
                "ci_high": nan,
                "q": nan,
            }
        res["q"] = S.benjamini_hochberg(res["p_value"])
        return res

    b, a = stats_of(before), stats_of(after)
    actions = recipe.actions() if recipe else {}
    rows = []
    for j, c in enumerate(before.concepts):
        rule = recipe.rule_for(c) if recipe and c in actions else None
        rows.append(
            {
                "concept": c,
                "action": actions.get(c, ""),
                "interventions": ",".join(rule.interventions) if rule else "",
                "n_differ_before": int(b["n_differ"][j]),
                "win_rate_before": float(b["win_rate"][j]),
                "ci_low_before": float(b["ci_low"][j]),
                "ci_high_before": float(b["ci_high"][j]),
                "q_before": float(b["q"][j]),
                "n_differ_after": int(a["n_differ"][j]),
                "win_rate_after": float(a["win_rate"][j]),
                "ci_low_after": float(a["ci_low"][j]),
                "ci_high_after": float(a["ci_high"][j]),
                "q_after": float(a["q"][j]),
            }
        )
    return pd.DataFrame(rows, columns=BEFORE_AFTER_COLUMNS)


def preview(
    dataset,
    block: Iterable[str] = (),
    amplify: Iterable[str] = (),
    *,
    recipe: Recipe | None = None,
    block_with: Iterable[str] | None = None,
    amplify_with: Iterable[str] = ("upweight",),
    state: PairState | None = None,
    by: str | None = "auto",
) -> dict:
    """A fast what-if for a set of block/amplify choices on an already annotated dataset (no text written).

    Args:
        dataset: an annotated pair dataset (ignored when ``state`` is given).
        block, amplify: concept ids (or pass a ``recipe``).
        block_with, amplify_with: interventions for the blocked / amplified concepts (``block_with=None``: the
            default, ``balance`` for a magnitude such as length, else ``rebalance``).
        state: a :class:`PairState` built once with :func:`state_from_dataset` over every concept the UI
            offers; reusing it makes each call a few milliseconds.

    Returns:
        ``{"rows", "rows_usable", "rows_kept", "ess", "ess_fraction", "table"}`` with ``table`` the
        :func:`before_after` DataFrame of the chosen concepts.

    Example:

        >>> from curate import make_preference_pairs, annotate
        >>> from curate.interventions import preview
        >>> p = preview(annotate(make_preference_pairs(300).dataset), block=["flattery"])
        >>> p["rows_kept"], round(float(p["table"]["win_rate_after"][0]), 3)
        (300, 0.5)
    """
    if recipe is None:
        recipe = Recipe.from_ids(
            block=block, amplify=amplify, block_with=block_with, amplify_with=amplify_with, validate_ids=False
        )
    ids = recipe.concept_ids()
    adj = [c for c in _adjuster_ids(recipe) if c not in ids]  # what rebalancing adjusts for, where scored
    if state is None:
        names = set(dataset.column_names)
        state = state_from_dataset(
            dataset, ids + [c for c in adj if C.score_column(C.CHOSEN, c) in names], subsets=subset_column(dataset, by)
        )
    base = _sub_state(state, ids + [c for c in adj if c in state.concepts])
    work = base.copy()
    for step in plan(recipe):
        step.apply(work)
    ret = retention(work)
    return {
        "rows": ret["rows"],
        "rows_usable": ret["rows_usable"],
        "rows_kept": ret["rows_kept"],
        "ess": ret["ess"],
        "ess_fraction": ret["ess_fraction"],
        "table": add_mean_delta(before_after(_sub_state(base, ids), _sub_state(work, ids), recipe), base, work),
    }


def _sub_state(state: PairState, concepts: list[str]) -> PairState:
    cols = [state.index(c) for c in concepts]
    sub = state.copy()
    sub.concepts = list(concepts)
    sub.chosen, sub.rejected = state.chosen[:, cols].copy(), state.rejected[:, cols].copy()
    sub.labels = {c: state.labels.get(c, c) for c in concepts}
    return sub


def _audit_before_after(original, train, recipe: Recipe) -> pd.DataFrame:
    from ..audit import ConceptAudit

    ids = recipe.concept_ids()
    before = ConceptAudit().fit(original).results_.set_index("concept")
    after = ConceptAudit().fit(train, weights=C.WEIGHT).results_.set_index("concept")
    rows = []
    for c in ids:
        rule = recipe.rule_for(c)
        b = before.loc[c] if c in before.index else None
        a = after.loc[c] if c in after.index else None

        def g(r, k):
            return float(r[k]) if r is not None else float("nan")

        rows.append(
            {
                "concept": c,
                "action": rule.action,
                "interventions": ",".join(rule.interventions or []),
                "n_differ_before": int(g(b, "n_differ")) if b is not None else 0,
                "win_rate_before": g(b, "win_rate"),
                "ci_low_before": g(b, "ci_low"),
                "ci_high_before": g(b, "ci_high"),
                "q_before": g(b, "q_value"),
                "n_differ_after": int(g(a, "n_differ")) if a is not None else 0,
                "win_rate_after": g(a, "win_rate"),
                "ci_low_after": g(a, "ci_low"),
                "ci_high_after": g(a, "ci_high"),
                "q_after": g(a, "q_value"),
            }
        )
    return pd.DataFrame(rows, columns=BEFORE_AFTER_COLUMNS)


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records"))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _wr(w, lo, hi) -> str:
    if not np.isfinite(w):
        return "—"
    return f"{w:.3f} [{lo:.3f}, {hi:.3f}]"


_q = fmt_q
