"""The learning check in a published folder: the card section "What a model learned from it" and what
the Space shows (the scatter and the table). ``curate publish`` and the app call these; the layout of
the learning folder itself belongs to :mod:`curate.learning.folder`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from .._format import signed_r
from .folder import BARS_PNG, CARD_COLUMNS, LEARNING_FILE, LEARNING_JSON, SCATTER_PNG, read_learning

PUBLISHED_DIR = "learning"


def find_learning_dir(curated_dir: str | Path, learning_dir: str | Path | None = None) -> Path | None:
    """The learning folder for a curated folder: ``learning_dir`` if given (it must be one), else
    ``<curated_dir>/learning`` or a ``learning*`` sibling of it holding ``learning.parquet``; else None."""
    if learning_dir is not None:
        read_learning(learning_dir)  # raises with the fix when it is not a learning folder
        return Path(learning_dir)
    base = Path(curated_dir)
    for cand in [base / "learning", *sorted(base.resolve().parent.glob("learning*"))]:
        if (cand / LEARNING_FILE).exists() and (cand / LEARNING_JSON).exists():
            return cand
    return None


def copy_learning(learning_dir: Path, folder: Path) -> dict[str, str]:
    """Copy the learning folder (manifest included) into a published folder; returns the image paths (relative)."""
    dest = folder / PUBLISHED_DIR
    shutil.copytree(learning_dir, dest, dirs_exist_ok=True)
    return {name: f"{PUBLISHED_DIR}/{name}" for name in (SCATTER_PNG, BARS_PNG) if (dest / name).exists()}


def _ci(m, lo, hi) -> str:
    return "—" if m != m else f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _f(x) -> str:
    return "—" if x is None or x != x else f"{x:.2f}"


def with_signed_scores(table: pd.DataFrame, rec: dict) -> dict:
    """``rec`` with the signed scores (``r``, ``r_low``, ``r_high``, ``perm95`` and their ``_curated`` /
    ``_reward`` twins) filled in from ``table`` where the record lacks them (a folder written before they were
    recorded): the card never has to fall back on a squared correlation."""
    from .measure import generation_record, reward_record, score_predictions

    if rec.get("r") is not None and (rec.get("r_reward") is not None or (rec.get("n_concepts_reward") or 0) < 3):
        return rec
    extra = dict(generation_record(score_predictions(table)[0]))
    extra.update(reward_record(*score_predictions(table, against="reward")))
    out = dict(rec)
    for key, value in extra.items():
        if (key == "r" or key.startswith(("r_", "perm95"))) and out.get(key) is None:
            out[key] = value
    return out


def _seeds_sentence(rec: dict) -> str:
    """For a folder pooled over seeds (:func:`curate.learning.pool_learning`): which seeds and each one's r."""
    seeds = rec.get("seeds")
    if not seeds:
        return ""
    each = ", ".join(f"{s}: {signed_r(v)}" for s, v in (rec.get("by_seed") or {}).items())
    text = (
        f" Each arm was trained once per seed ({len(seeds)} seeds: {seeds}; the seed sets the trained sample, the "
        f"LoRA initialisation, the order and the decoding); the pooled shifts average the seeds and their 95% CIs "
        f"resample the seeds, then the prompts within each; r of each seed alone: {each}."
    )
    ceiling = (rec.get("noise_ceiling") or {}).get("original") or {}
    if ceiling.get("pairwise_r"):
        text += (
            f" The seeds' observed shifts agree with each other with Pearson r {ceiling['pairwise_r']}, so even an "
            f"exact prediction of the expected shift could expect r of about {_f(ceiling.get('r_pooled'))} "
            f"[{_f(ceiling.get('r_pooled_low'))}, {_f(ceiling.get('r_pooled_high'))}] against the pooled table "
            "(the noise ceiling; it runs high when the seeds share prompts and training rows)."
        )
    return text


def _reward_sentence(rec: dict) -> str:
    """The prediction against the implicit reward (what the policy learned to prefer, no sampling involved)."""
    n = rec.get("n_concepts_reward") or 0
    if n < 3:
        return ""
    text = (
        f"Against the implicit reward over the {n} concepts with counterfactual pairs: {signed_r(rec, '_reward')}, "
        f"Spearman {_f(rec.get('spearman_reward'))} (original); {signed_r(rec, '_reward_curated')}, Spearman "
        f"{_f(rec.get('spearman_reward_curated'))} (curated)"
    )
    ceiling = (rec.get("noise_ceiling_reward") or {}).get("original") or {}
    if ceiling.get("pairwise_r"):
        text += f"; the seeds' rewards agree with r {ceiling['pairwise_r']} (noise ceiling r {_f(ceiling.get('r_pooled'))} pooled)"
    return text + ". "


def _planted_sentence(rec: dict) -> str:
    """The generator's own ground truth as a predictor, when the record has it (a baseline, not a target)."""
    gen = (rec.get("prediction") or {}).get("generation") or {}
    if gen.get("planted_r") is None or gen.get("planted_r") != gen.get("planted_r"):
        return ""
    return (
        f"The planted-concept indicator alone (which concepts the generator planted) reaches r "
        f"{gen['planted_r']:+.2f} [{gen.get('planted_r_low', float('nan')):+.2f}, "
        f"{gen.get('planted_r_high', float('nan')):+.2f}]: a prediction must beat it to show more than the planting. "
    )


def card_section(learning_dir: Path, images: dict[str, str] | None = None) -> str:
    """Markdown for the card: how the check was run, the per-concept table and the prediction quality."""
    table, rec = read_learning(learning_dir)
    rec = with_signed_scores(table, rec)
    images = images or {}
    sham = "observed_sham" in table.columns and table["observed_sham"].notna().any()
    arms = ("original", "curated", "sham") if sham else ("original", "curated")
    lines = [
        f"Two LoRA DPO policies were trained from `{rec.get('model')}` with the same seed, steps "
        f"({rec.get('steps')}) and hyper-parameters ({rec.get('loss', 'sigmoid DPO')}): one on the original pairs, "
        f"one on this curated data as training would use it. {rec.get('eval_prompts')} prompts were held out; the shift "
        "is the concept's score in the policy's generations minus the reference model's (95% bootstrap CI over "
        "prompts); the implicit reward is the share of counterfactual pairs where β·log(π/π_ref) prefers the "
        "variant that carries the concept."
        + (
            " A third policy, the sham arm, trained on the curated rows with the curated weights permuted across "
            "rows (the same effective size, the same dropped rows): curation removed a concept only where the "
            "curated shift's CI lies below the sham's, since fewer effective rows alone can lower a shift."
            if sham
            else ""
        )
        + _seeds_sentence(rec),
        "",
        "| concept | recipe | predicted (audit) | shift, original data [95% CI] | shift, curated data [95% CI] | "
        + ("shift, sham: curated weights permuted [95% CI] | " if sham else "")
        + "implicit reward original / curated |",
        "|---|---|---:|---|---|" + ("---|" if sham else "") + "---|",
    ]
    for r in table.to_dict("records"):
        ci = {arm: _ci(r[f"observed_{arm}"], r[f"observed_{arm}_low"], r[f"observed_{arm}_high"]) for arm in arms}
        lines.append(
            f"| `{r['concept']}` | {r['action'] or '—'} | {r['predicted']:+.3f} | "
            + "".join(f"{ci[arm]} | " for arm in arms)
            + f"{_f(r['reward_original'])} / {_f(r['reward_curated'])} |"
        )
    lines += [
        "",
        f"The audit's prediction against the observed shift over {rec.get('n_concepts_supported')} concepts "
        f"(signed Pearson r, 95% CI; beside it the 95th percentile of r under shuffled predictions, which a "
        f"prediction must beat): {signed_r(rec)}, Spearman {_f(rec.get('spearman'))} (original-data policy); "
        f"{signed_r(rec, '_curated')}, Spearman {_f(rec.get('spearman_curated'))} (curated-data policy). "
        f"{_planted_sentence(rec)}{_reward_sentence(rec)}The check took {rec.get('seconds')} s on {rec.get('device')}.",
    ]
    if SCATTER_PNG in images:
        lines += ["", f"![Predicted vs observed shift per concept]({images[SCATTER_PNG]})"]
    if BARS_PNG in images:
        lines += ["", f"![Generation shift per concept, original vs curated data]({images[BARS_PNG]})"]
    return "\n".join(lines)


def app_view(folder: str | Path | None):
    """``(markdown, scatter_png_path or None, table)`` for the Space, or None when ``folder`` has no learning
    check (a published folder's ``learning/``, or a learning folder itself)."""
    if folder is None:
        return None
    folder = Path(folder)
    for cand in (folder / PUBLISHED_DIR, folder):
        if (cand / LEARNING_FILE).exists() and (cand / LEARNING_JSON).exists():
            table, rec = read_learning(cand)
            rec = with_signed_scores(table, rec)
            pooled = f", pooled over seeds {rec['seeds']}" if rec.get("seeds") else ""
            md = (
                f"**What a model learned from it.** LoRA DPO on `{rec.get('model')}`, {rec.get('steps')} steps per "
                f"policy{pooled}. The audit's prediction vs the observed shift: {signed_r(rec)} (original data), "
                f"{signed_r(rec, '_curated')} (curated data); Spearman {_f(rec.get('spearman'))} / "
                f"{_f(rec.get('spearman_curated'))}."
                + (
                    f" Against the implicit reward ({rec['n_concepts_reward']} concepts): {signed_r(rec, '_reward')}."
                    if (rec.get("n_concepts_reward") or 0) >= 3
                    else ""
                )
            )
            scatter = cand / SCATTER_PNG
            return md, (str(scatter) if scatter.exists() else None), pd.DataFrame(table[CARD_COLUMNS]).round(3)
    return None
