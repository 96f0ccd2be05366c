"""The inputs of a learning check: the original pairs, the curated folder (checked against them), the
held-out prompts (split by prompt, never trained on), the rows each arm trains on, and the recipe's
training-time interventions (ablation / steering hooks)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import _columns as C
from ..errors import CurateError, InputNotFoundError

MIN_EVAL_PROMPTS = 5
MIN_TRAIN_PROMPTS = 5


def split_by_prompt(prompts: list[str], n_eval: int, *, salt: str = "curate-learn") -> set[str]:
    """The held-out prompts: the ``n_eval`` distinct prompts first in the order of a salted hash.

    Raises:
        CurateError: fewer than ``n_eval + 5`` distinct prompts, or ``n_eval < 5``.
    """
    distinct = sorted(set(prompts), key=lambda p: hashlib.md5(f"{salt}|{p}".encode()).hexdigest())
    if n_eval < MIN_EVAL_PROMPTS:
        raise CurateError(
            f"Too few held-out prompts: eval_prompts={n_eval}; the shift needs at least "
            f"{MIN_EVAL_PROMPTS}. Pass --eval-prompts {MIN_EVAL_PROMPTS} or more."
        )
    if len(distinct) < n_eval + MIN_TRAIN_PROMPTS:
        raise CurateError(
            f"Too few held-out prompts: the data has {len(distinct)} distinct prompts, and {n_eval} held out would "
            f"leave {len(distinct) - n_eval} to train on (at least {MIN_TRAIN_PROMPTS} needed). Pass a smaller "
            f"--eval-prompts (at most {max(len(distinct) - MIN_TRAIN_PROMPTS, 0)}) or give more data."
        )
    return set(distinct[:n_eval])


def load_data(data, limit=None):
    from datasets import Dataset

    if isinstance(data, Dataset):
        return data
    from ..ingest import load_pairs

    return load_pairs(data, limit=limit)


def curated_splits(curated):
    """``(DatasetDict, recipe or None, folder or None)`` from a ``curate apply`` folder or a DatasetDict."""
    import datasets

    if isinstance(curated, datasets.DatasetDict):
        return curated, None, None
    folder = Path(curated)
    if not folder.is_dir():
        raise InputNotFoundError(
            f"Curated folder {str(folder)!r} does not exist (expected the --out folder of `curate apply`)."
        )
    from .. import folders as F
    from ..recipe import Recipe

    cf = F.load_curated(folder)  # refuses a folder that `curate apply` did not write, naming the fix
    recipe = Recipe.from_yaml(cf.recipe_text, validate_ids=False) if cf.recipe_text else None
    return cf.dataset, recipe, cf.path


def check_ids(data, train, dropped):
    ids = set(data[C.ID])
    cur = list(train[C.ID]) + list(dropped[C.ID])
    unknown = sorted({i for i in cur if i not in ids}, key=str)
    if unknown:
        raise CurateError(
            f"The curated folder does not match the data: {len(unknown)} curated ids are not in the data "
            f"(e.g. {unknown[:5]}; data ids look like {sorted(ids, key=str)[:5]}). Pass the same DATA that "
            "`curate apply` was run on (the --curated folder records it in apply.json)."
        )
    missing = len(ids - set(cur))
    usable = sum(1 for r in data[C.REASON] if not r) if C.REASON in data.column_names else len(data)
    if missing and missing > len(data) - usable:
        raise CurateError(
            f"The curated folder does not match the data: {missing} usable data rows are in neither its "
            f"{C.TRAIN_SPLIT!r} nor its {C.DROPPED_SPLIT!r} split. Pass the DATA that `curate apply` was run on."
        )


def training_intervention(recipe, folder):
    """A ``model -> context manager`` for the recipe's ablate/steer rules, with its record (or ``(None, None)``)."""
    if recipe is None:
        return None, None
    ablate_ids, steer_ids = recipe.with_intervention("ablate"), recipe.with_intervention("steer")
    if not (ablate_ids or steer_ids):
        return None, None
    path = folder / "directions.safetensors" if folder is not None else None
    if path is None or not path.exists():
        raise CurateError(
            f"The recipe uses {'ablate' if ablate_ids else 'steer'} for {ablate_ids or steer_ids}, but "
            "the curated folder has no directions.safetensors. Re-run `curate apply` (it exports them)."
        )
    from ..directions import ablate, load_directions, steer

    d = load_directions(path)
    alpha = next((r.alpha for r in recipe.rules if r.alpha is not None and set(r.concepts) & set(steer_ids)), 4.0)

    def ctx(model):
        import contextlib

        stack = contextlib.ExitStack()
        if ablate_ids:
            stack.enter_context(ablate(model, d.select([c for c in ablate_ids if c in d.concepts])))
        if steer_ids:
            stack.enter_context(steer(model, d.select([c for c in steer_ids if c in d.concepts]), alpha))
        return stack

    return ctx, {"ablate": ablate_ids, "steer": steer_ids, "alpha": alpha, "layer": d.layer}


def first_by_rank(dataset, n: int, seed: int):
    """The ``n`` rows that ``n`` training examples use: rows ordered by a seeded rank of their ``id`` (the same
    rank in both arms, so they train on the same pairs where the curation kept them), then the first ``n``.
    Only these get reference log-probs (TRL would otherwise precompute them for every row)."""
    if len(dataset) <= n:
        return dataset
    ranks = [hashlib.md5(f"{seed}|{i}".encode()).hexdigest() for i in dataset[C.ID]]
    order = sorted(range(len(dataset)), key=lambda j: (ranks[j], j))
    return dataset.select(order[:n])


def curate_trained_rows(rows, recipe, log=print):
    """The recipe applied to exactly the pairs the original arm trains on: ``(curated train rows, record)``.

    A learning check trains on a sample (``steps × batch size`` pairs, held-out prompts removed). The weights of
    the curated folder balance the blocked concepts over the *whole* data; over a sample they do not (1,200
    generated pairs, flattery and agreement rebalanced adjusting for every named concept: over the 384 trained
    pairs agreement's win-rate was 0.41 and markdown's Δ +0.17 where flattery wins vs +1.31 where it loses).
    So the curated arm re-applies the folder's recipe to the original arm's pairs, as one would curate the data
    one trains on: the curation holds on every trained row, and the held-out prompts never inform it.

    Returns ``(None, reason)`` when the recipe cannot be re-applied here (no recipe; SAE concepts the rows do not
    carry); the caller then trains on the folder's rows.
    """
    if recipe is None:
        return None, "no recipe with the curated rows"
    from ..errors import ConceptError, RecipeError
    from ..interventions import apply_recipe

    try:
        dd, report = apply_recipe(rows, recipe, audit=False)
    except (ConceptError, RecipeError) as err:
        return None, f"the recipe cannot be re-applied to the original rows ({err})"
    t = report.retention
    log(
        f"curated arm: the recipe re-applied to the {len(rows)} trained pairs (rows kept {t['rows_kept']}, "
        f"ESS {t['ess']:.1f})"
    )
    return dd[C.TRAIN_SPLIT], {"recurated": True, "rows": len(rows), **{k: t[k] for k in ("rows_kept", "ess")}}


def sham_rows(trained, curated, seed: int):
    """The sham arm's rows: as many of the original arm's trained rows as the curated arm keeps, chosen at random
    (``seed``), carrying the curated weights permuted across them.

    Same row count, same dropped count and same ESS (a permutation keeps the weights' multiset) as the curated
    arm, but no relation between a row's weight and its concepts: what "fewer effective rows" does on its own.
    A curated arm that moves a concept less than the sham arm moved it by curating, not by having less data.

    Example:

        >>> from datasets import Dataset
        >>> rows = Dataset.from_dict({"id": list(range(6)), "x": list(range(6))})
        >>> cur = Dataset.from_dict({"id": [0, 2, 4], "weight": [0.5, 1.0, 2.0]})
        >>> sham = sham_rows(rows, cur, 0)
        >>> len(sham), sorted(sham["weight"])
        (3, [0.5, 1.0, 2.0])
    """
    import numpy as np

    rng = np.random.default_rng(seed + 104729)
    keep = sorted(rng.choice(len(trained), size=len(curated), replace=False).tolist())
    rows = trained.select(keep)
    weights = np.asarray(curated[C.WEIGHT], float) if C.WEIGHT in curated.column_names else np.ones(len(curated), float)
    if C.WEIGHT in rows.column_names:
        rows = rows.remove_columns(C.WEIGHT)
    return rows.add_column(C.WEIGHT, rng.permutation(weights).tolist())
