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
    "BARS_PNG",
    "CARD_COLUMNS",
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
]
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
    ``record`` (what ``learning.json`` holds) and the output folder (or None)."""

    table: pd.DataFrame
    record: dict
    out: Path | None = None
    generations: dict = field(default_factory=dict)


def learning_table(names, pred_o, pred_c, shifts, reward, recipe) -> pd.DataFrame:
    po, pc = pred_o.set_index("concept"), pred_c.set_index("concept")
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
            "scale": po.loc[c, "scale"],
            "n_differ": int(po.loc[c, "n_differ"]),
            **{k: po.loc[c, k] for k in ("pred_delta_std", "pred_win_share", "pred_length_controlled")},
        }
        for arm in ("original", "curated"):
            s = shifts.get(arm)
            if s is not None and c in s.index:
                row[f"observed_{arm}"], row[f"observed_{arm}_low"], row[f"observed_{arm}_high"] = (
                    s.loc[c, "shift"],
                    s.loc[c, "low"],
                    s.loc[c, "high"],
                )
                row[f"{arm}_mean"] = s.loc[c, "policy_mean"]
                row["reference_mean"] = s.loc[c, "reference_mean"]
            r = reward.get((arm, c))
            if r is not None:
                row[f"reward_{arm}"], row[f"reward_{arm}_low"], row[f"reward_{arm}_high"] = (
                    r["share"],
                    r["low"],
                    r["high"],
                )
                row["reward_n"] = r["n"]
                row[f"reward_margin_{arm}"] = r["mean_margin"]
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=LEARNING_COLUMNS)
    table["supported"] = (
        (table["n_differ"] > 0)
        & np.isfinite(table["scale"].astype(float))
        & np.isfinite(table["observed_original"].astype(float))
    )
    return table


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
