"""The learning check in a published folder: the card section "What a model learned from it" and what
the Space shows (the scatter and the table). ``curate publish`` and the app call these; the layout of
the learning folder itself belongs to :mod:`curate.learning.folder`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

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


def _seeds_sentence(rec: dict) -> str:
    """For a folder pooled over seeds (:func:`curate.learning.pool_learning`): which seeds and each one's R²."""
    seeds = rec.get("seeds")
    if not seeds:
        return ""
    each = ", ".join(f"{s}: {_f(v.get('r2'))}" for s, v in (rec.get("by_seed") or {}).items())
    text = (
        f" Each arm was trained once per seed ({len(seeds)} seeds: {seeds}; the seed sets the trained sample, the "
        f"LoRA initialisation, the order and the decoding) and the shifts are averaged over the seeds per held-out "
        f"prompt; R² of each seed alone: {each}."
    )
    ceiling = (rec.get("noise_ceiling") or {}).get("original") or {}
    if ceiling.get("pairwise_r"):
        text += (
            f" The seeds' observed shifts agree with each other with Pearson r {ceiling['pairwise_r']}, so even an "
            f"exact prediction of the expected shift could expect R² of about {_f(ceiling.get('r2_one_seed'))} "
            f"against one seed and {_f(ceiling.get('r2_pooled'))} against the pooled table (the noise ceiling)."
        )
    return text


def _reward_sentence(rec: dict) -> str:
    """The prediction against the implicit reward (what the policy learned to prefer, no sampling involved)."""
    n = rec.get("n_concepts_reward") or 0
    if n < 3:
        return ""
    text = (
        f"Against the implicit reward over the {n} concepts with counterfactual pairs: R² {_f(rec.get('r2_reward'))}, "
        f"Spearman {_f(rec.get('spearman_reward'))} (original); R² {_f(rec.get('r2_reward_curated'))}, Spearman "
        f"{_f(rec.get('spearman_reward_curated'))} (curated)"
    )
    ceiling = (rec.get("noise_ceiling_reward") or {}).get("original") or {}
    if ceiling.get("pairwise_r"):
        text += f"; the seeds' rewards agree with r {ceiling['pairwise_r']} (noise ceiling {_f(ceiling.get('r2_pooled'))} pooled)"
    return text + ". "


def card_section(learning_dir: Path, images: dict[str, str] | None = None) -> str:
    """Markdown for the card: how the check was run, the per-concept table and the prediction quality."""
    table, rec = read_learning(learning_dir)
    images = images or {}
    lines = [
        f"Two LoRA DPO policies were trained from `{rec.get('model')}` with the same seed, steps "
        f"({rec.get('steps')}) and hyper-parameters ({rec.get('loss', 'sigmoid DPO')}): one on the original pairs, "
        f"one on this curated data as training would use it. {rec.get('eval_prompts')} prompts were held out; the shift "
        "is the concept's score in the policy's generations minus the reference model's (95% bootstrap CI over "
        "prompts); the implicit reward is the share of counterfactual pairs where β·log(π/π_ref) prefers the "
        "variant that carries the concept." + _seeds_sentence(rec),
        "",
        "| concept | recipe | predicted (audit) | shift, original data [95% CI] | shift, curated data [95% CI] | "
        "implicit reward original / curated |",
        "|---|---|---:|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| `{r.concept}` | {r.action or '—'} | {r.predicted:+.3f} | "
            f"{_ci(r.observed_original, r.observed_original_low, r.observed_original_high)} | "
            f"{_ci(r.observed_curated, r.observed_curated_low, r.observed_curated_high)} | "
            f"{_f(r.reward_original)} / {_f(r.reward_curated)} |"
        )
    lines += [
        "",
        f"The audit's prediction against the observed shift over {rec.get('n_concepts_supported')} concepts: "
        f"R² {_f(rec.get('r2'))}, Spearman {_f(rec.get('spearman'))} (original-data policy); "
        f"R² {_f(rec.get('r2_curated'))}, Spearman {_f(rec.get('spearman_curated'))} (curated-data policy). "
        f"{_reward_sentence(rec)}The check took {rec.get('seconds')} s on {rec.get('device')}.",
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
            pooled = f", pooled over seeds {rec['seeds']}" if rec.get("seeds") else ""
            md = (
                f"**What a model learned from it.** LoRA DPO on `{rec.get('model')}`, {rec.get('steps')} steps per "
                f"policy{pooled}. R² of the audit's prediction vs the observed shift: {_f(rec.get('r2'))} (original data), "
                f"{_f(rec.get('r2_curated'))} (curated data); Spearman {_f(rec.get('spearman'))} / "
                f"{_f(rec.get('spearman_curated'))}."
                + (
                    f" Against the implicit reward ({rec['n_concepts_reward']} concepts): R² {_f(rec.get('r2_reward'))}."
                    if (rec.get("n_concepts_reward") or 0) >= 3
                    else ""
                )
            )
            scatter = cand / SCATTER_PNG
            return md, (str(scatter) if scatter.exists() else None), pd.DataFrame(table[CARD_COLUMNS]).round(3)
    return None
