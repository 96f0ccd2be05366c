"""The learning folder: the per-concept table (:data:`LEARNING_COLUMNS`), ``learning.json``, the two PNGs
and the generations, written atomically with a ``curate.json`` manifest through :mod:`curate.folders`,
and read back by :func:`read_learning`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..folders import LEARNING_BARS as BARS_PNG
from ..folders import LEARNING_RECORD as LEARNING_JSON
from ..folders import LEARNING_SCATTER as SCATTER_PNG
from ..folders import LEARNING_TABLE as LEARNING_FILE

__all__ = [
    "ARMS",
    "BARS_PNG",
    "CARD_COLUMNS",
    "COUNTERFACTUALS_FILE",
    "COUNTERFACTUAL_COLUMNS",
    "LEARNING_COLUMNS",
    "LEARNING_FILE",
    "LEARNING_JSON",
    "SCATTER_PNG",
    "LearningResult",
    "learning_table",
    "read_learning",
    "save_learning_folder",
]

LEARNING_COLUMNS = [
    "concept",
    "label",
    "source",
    "action",
    "predicted",
    "predicted_curated",
    "scale",
    "observed_original",
    "observed_original_low",
    "observed_original_high",
    "observed_curated",
    "observed_curated_low",
    "observed_curated_high",
    "reference_mean",
    "original_mean",
    "curated_mean",
    "reward_original",
    "reward_original_low",
    "reward_original_high",
    "reward_curated",
    "reward_curated_low",
    "reward_curated_high",
    "reward_n",
    "reward_margin_original",
    "reward_margin_curated",
    "pred_delta_std",
    "pred_win_share",
    "pred_length_controlled",
    "n_differ",
    "supported",
    # the sham arm (curated rows' size and weights, permuted: :func:`curate.learning.inputs.sham_rows`)
    "predicted_sham",
    "observed_sham",
    "observed_sham_low",
    "observed_sham_high",
    "sham_mean",
    "reward_sham",
    "reward_sham_low",
    "reward_sham_high",
    "reward_margin_sham",
    # held-out placebo pairs: the mean β·log-ratio margin of the concept over its length-matched placebo (95% CI
    # over pairs) and the share of pairs where the placebo beats the base
    *(f"reward_adjusted_{arm}{end}" for arm in ("original", "curated", "sham") for end in ("", "_low", "_high")),
    *(f"reward_placebo_{arm}" for arm in ("original", "curated", "sham")),
]
#: ``counterfactuals.parquet``: one row per arm, concept and held-out placebo pair (β·log-ratio margins)
COUNTERFACTUALS_FILE = "counterfactuals.parquet"
COUNTERFACTUAL_COLUMNS = [
    "concept",
    "pair",
    "arm",
    "margin",
    "placebo_margin",
    "adjusted",
    "concept_tokens",
    "placebo_tokens",
]
#: the policies a learning check trains (``sham`` only with ``sham=True``)
ARMS = ("original", "curated", "sham")
#: the columns the card and the Space show
CARD_COLUMNS = [
    "concept",
    "action",
    "predicted",
    *(f"observed_{arm}{end}" for arm in ("original", "curated") for end in ("", "_low", "_high")),
    "reward_original",
    "reward_curated",
]


@dataclass
class LearningResult:
    """What :func:`learning_check` returns: the per-concept ``table`` (:data:`LEARNING_COLUMNS`), the summary
    ``record`` (what ``learning.json`` holds), the output folder (or None), the generations per model and the
    per-pair counterfactual margins (:data:`COUNTERFACTUAL_COLUMNS`, or None)."""

    table: pd.DataFrame
    record: dict
    out: Path | None = None
    generations: dict = field(default_factory=dict)
    counterfactuals: pd.DataFrame | None = None


def learning_table(names, pred_o, pred_c, shifts, reward, recipe, pred_s=None) -> pd.DataFrame:
    po, pc = pred_o.set_index("concept"), pred_c.set_index("concept")
    ps = pred_s.set_index("concept") if pred_s is not None else None
    actions = recipe.actions() if recipe is not None else {}
    rows = []
    for c in names:
        row = {
            "concept": c,
            "label": po.loc[c, "label"],
            "source": po.loc[c, "source"],
            "action": actions.get(c, ""),
            "predicted": po.loc[c, "predicted"],
            "predicted_curated": pc.loc[c, "predicted"] if c in pc.index else np.nan,
            "predicted_sham": ps.loc[c, "predicted"] if ps is not None and c in ps.index else np.nan,
            "scale": po.loc[c, "scale"],
            "n_differ": int(po.loc[c, "n_differ"]),
            **{k: po.loc[c, k] for k in ("pred_delta_std", "pred_win_share", "pred_length_controlled")},
        }
        for arm in ARMS:
            row.update(_arm_cells(arm, c, shifts.get(arm), reward.get((arm, c))))
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=LEARNING_COLUMNS)
    table["supported"] = (
        (table["n_differ"] > 0)
        & np.isfinite(table["scale"].astype(float))
        & np.isfinite(table["observed_original"].astype(float))
    )
    return table


def _arm_cells(arm: str, concept: str, shift, reward) -> dict:
    """One arm's cells of a learning-table row: its generation shift and its implicit-reward measurement."""
    row = {}
    if shift is not None and concept in shift.index:
        s = shift.loc[concept]
        row[f"observed_{arm}"], row[f"observed_{arm}_low"], row[f"observed_{arm}_high"] = (
            s["shift"],
            s["low"],
            s["high"],
        )
        row[f"{arm}_mean"] = s["policy_mean"]
        row["reference_mean"] = s["reference_mean"]
    if reward is not None:
        row[f"reward_{arm}"], row[f"reward_{arm}_low"], row[f"reward_{arm}_high"] = (
            reward["share"],
            reward["low"],
            reward["high"],
        )
        row["reward_n"] = reward["n"]
        row[f"reward_margin_{arm}"] = reward["mean_margin"]
        if "adjusted" in reward:
            for end in ("", "_low", "_high"):
                row[f"reward_adjusted_{arm}{end}"] = reward[f"adjusted{end}"]
            row[f"reward_placebo_{arm}"] = reward["placebo_share"]
    return row


def save_learning_folder(result: LearningResult, out: str | Path, *, made_from=None, source=None) -> Path:
    """Write the learning folder through :mod:`curate.folders` (atomic, with a ``curate.json`` manifest):
    ``learning.parquet``, ``learning.json``, the scatter and the before/after PNGs, and ``generations.parquet``."""
    from .. import folders as F
    from .plots import plot_learning_bars, plot_learning_scatter

    out = F.check_target(out, "learning")
    with F.atomic_folder(out, kind="learning") as tmp:
        result.table.to_parquet(tmp / LEARNING_FILE, index=False)
        (tmp / LEARNING_JSON).write_text(json.dumps(result.record, indent=2, default=_json_default))
        if result.generations:
            pd.concat([g.assign(model=k) for k, g in result.generations.items()], ignore_index=True).to_parquet(
                tmp / F.LEARNING_GENERATIONS, index=False
            )
        if result.counterfactuals is not None:
            result.counterfactuals.to_parquet(tmp / COUNTERFACTUALS_FILE, index=False)
        if result.table["observed_original"].notna().any():
            plot_learning_scatter(result.table, result.record, tmp / SCATTER_PNG)
            plot_learning_bars(result.table, tmp / BARS_PNG)
        rows = {
            "train_original": result.record.get("n_train_original"),
            "train_curated": result.record.get("n_train_curated"),
            "dropped": result.record.get("n_dropped"),
        }
        F.write_manifest(
            tmp,
            kind="learning",
            source=source,
            rows=rows,
            made_from=made_from,
            model=result.record.get("model"),
            steps=result.record.get("steps"),
        )
    return out


def read_learning(folder: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a learning folder written by :func:`learning_check`: ``(table, record)`` (refuses any other folder)."""
    from .. import folders as F

    f = F.open_folder(folder, kind="learning")
    table = pd.read_parquet(f.path / LEARNING_FILE)
    # a folder written before a column existed (reward_margin_*) reads with that column empty
    return table.reindex(
        columns=[*LEARNING_COLUMNS, *(c for c in table.columns if c not in LEARNING_COLUMNS)]
    ), json.loads((f.path / LEARNING_JSON).read_text())


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, float) and np.isnan(o):
        return None
    return str(o)
