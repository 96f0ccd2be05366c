"""``curate learn DATA --curated DIR --out DIR``: train DPO on the original and the curated pairs and
measure what each policy learned (see :func:`curate.learning_check`)."""

from __future__ import annotations

from pathlib import Path

import typer

from .._format import signed_r


def register(cli: typer.Typer) -> None:
    """Add the ``learn`` command to the ``curate`` CLI."""

    @cli.command()
    def learn(
        data: str = typer.Argument(..., help="The original pairs (what `curate apply` was run on)."),
        curated: Path = typer.Option(..., "--curated", help="The --out folder of `curate apply` on DATA."),
        out: Path = typer.Option(..., "--out", help="Learning folder: learning.parquet, learning.json, PNGs."),
        model: str | None = typer.Option(
            None, help="Reference causal LM id or folder (default: SmolLM2-135M-Instruct offline)."
        ),
        steps: int = typer.Option(48, "--steps", help="DPO steps per policy (same for both)."),
        batch_size: int = typer.Option(8, "--batch-size", help="Pairs per step."),
        learning_rate: float = typer.Option(1e-3, "--lr", help="LoRA learning rate."),
        beta: float = typer.Option(0.1, "--beta", help="DPO β."),
        max_length: int = typer.Option(96, "--max-length", help="Tokens per prompt + response."),
        eval_prompts: int = typer.Option(
            40, "--eval-prompts", help="Distinct prompts held out for the generation shift."
        ),
        samples: int = typer.Option(
            4, "--samples", help="Sampled generations per held-out prompt (0: implicit reward only)."
        ),
        max_new_tokens: int = typer.Option(48, "--max-new-tokens", help="Tokens per generation."),
        counterfactual_pairs: int = typer.Option(
            32, "--counterfactual-pairs", help="Pairs per concept for the implicit reward."
        ),
        sft_weight: float = typer.Option(
            0.0, "--sft-weight", help="Add an SFT term (biases the comparison; see the docs)."
        ),
        warmup_steps: int = typer.Option(
            24, "--warmup-steps", help="SFT warm-up of the reference on both responses before DPO (0: none)."
        ),
        recurate: bool = typer.Option(
            True,
            "--recurate/--folder-rows",
            help="Curated arm: re-apply the folder's recipe to exactly the trained pairs (default), or train on the "
            "folder's own rows (their balance holds over the whole data, not the sample).",
        ),
        seed: int = typer.Option(0, help="Seed for training and decoding."),
        seeds: str | None = typer.Option(
            None,
            "--seeds",
            help="Several seeds, e.g. 0,1,2: one check per seed into OUT_seed<N>, pooled into OUT (replaces --seed).",
        ),
        no_cache: bool = typer.Option(False, "--no-cache", help="Train even when a cached adapter exists."),
    ) -> None:
        """Train LoRA DPO on DATA and on the curated pairs (same seed, steps, settings) and measure per concept
        the generation shift and the implicit-reward preference against the audit's prediction."""
        from .. import CurateError
        from ..pipeline import run_learn
        from ._base import _console, _fail, lit

        console = _console()
        try:
            seed_list = [int(s) for s in seeds.split(",")] if seeds else [seed]
        except ValueError:
            _fail(f"--seeds takes comma-separated integers such as 0,1,2, got {seeds!r}.")
        if len(set(seed_list)) != len(seed_list) or (seeds and len(seed_list) < 2):
            _fail(f"--seeds needs two or more distinct seeds such as 0,1,2, got {seeds!r} (one seed: --seed N).")
        config = dict(  # a curate.learning.LearnConfig
            steps=steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            beta=beta,
            max_length=max_length,
            seed=seed,
            sft_weight=sft_weight,
            warmup_steps=warmup_steps,
        )
        kwargs = dict(
            model=model,
            config=config,
            eval_prompts=eval_prompts,
            samples=samples,
            max_new_tokens=max_new_tokens,
            counterfactual_pairs=counterfactual_pairs,
            cache_dir=None if no_cache else "default",
            recurate=recurate,
            log=lambda m: console.print(m, highlight=False, markup=False),
        )
        try:
            res = run_learn(
                data,
                curated,
                out=out,
                seeds=seed_list,
                on_seed=lambda s, r: console.print(f"seed {s}: wrote {lit(r.out)}", highlight=False),
                **kwargs,
            )
        except CurateError as err:
            _fail(str(err))
        print_learning(res, console)
        pooled = f", pooled over seeds {seed_list} from {len(seed_list)} folders" if len(seed_list) > 1 else ""
        console.print(
            f"Wrote {lit(out)} (learning.parquet, learning.json, PNGs{pooled}) in {res.record['seconds']:.0f} s",
            highlight=False,
        )

    @cli.command("learn-pool")
    def learn_pool(
        folders: list[Path] = typer.Argument(..., help="Learning folders of the same check run with different --seed."),
        out: Path = typer.Option(..., "--out", help="The pooled learning folder."),
    ) -> None:
        """Pool `curate learn` folders of several seeds: per held-out prompt the shifts averaged over seeds,
        CIs over seeds then prompts, signed r with CIs of the pooled table (see curate.learning.pool_learning)."""
        from .. import pool_learning
        from ._base import _console, lit

        console = _console()
        res = pool_learning(folders, out=out)
        print_learning(res, console)
        by_seed = ", ".join(f"seed {s}: {signed_r(v)}" for s, v in res.record["by_seed"].items())
        ceil = res.record["noise_ceiling"]["original"]
        ceiling = (
            f"; noise ceiling r {ceil.get('r_pooled', float('nan')):.2f} "
            f"[{ceil.get('r_pooled_low', float('nan')):.2f}, {ceil.get('r_pooled_high', float('nan')):.2f}] "
            f"(seed-to-seed r {ceil['pairwise_r']})"
            if ceil["pairwise_r"]
            else ""
        )
        console.print(
            f"Wrote {lit(out)} (pooled over seeds {res.record['seeds']}; {lit(by_seed)}{ceiling})", highlight=False
        )


def print_learning(res, console) -> None:
    """The learning table as a rich table."""
    from rich.table import Table

    from ._base import cell

    def ci(m, lo, hi):
        return "—" if m != m else f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    t = res.table
    arms = ["original", "curated"] + (
        ["sham"] if "observed_sham" in t.columns and t["observed_sham"].notna().any() else []
    )
    table = Table(title="What each policy learned (generation shift vs reference, 95% CI; implicit-reward preference)")
    for col in ("concept", "action", "predicted", *(f"{arm} data" for arm in arms), "reward orig", "reward cur"):
        table.add_column(col)
    for r in t.to_dict("records"):
        shifts = [ci(r[f"observed_{a}"], r[f"observed_{a}_low"], r[f"observed_{a}_high"]) for a in arms]
        rewards = ["—" if r[k] != r[k] else f"{r[k]:.2f}" for k in ("reward_original", "reward_curated")]
        table.add_row(*map(cell, (r["concept"], r["action"] or "—", f"{r['predicted']:+.3f}", *shifts, *rewards)))
    console.print(table)
    rec = res.record

    def fmt(v):
        return "—" if v is None or v != v else f"{v:.3f}"

    console.print(
        f"prediction vs observed shift over {rec['n_concepts_supported']} concepts (signed r, 95% CI; shuffled-"
        f"prediction 95th percentile beside it): original-data policy {signed_r(rec)}, Spearman "
        f"{fmt(rec.get('spearman'))}; curated-data policy {signed_r(rec, '_curated')}, Spearman "
        f"{fmt(rec.get('spearman_curated'))}",
        highlight=False,
    )
    if (rec.get("n_concepts_reward") or 0) >= 3:
        console.print(
            f"against the implicit reward over {rec['n_concepts_reward']} concepts (counterfactual pairs): "
            f"original-data policy {signed_r(rec, '_reward')}, Spearman {fmt(rec.get('spearman_reward'))}; "
            f"curated-data policy {signed_r(rec, '_reward_curated')}, Spearman "
            f"{fmt(rec.get('spearman_reward_curated'))}",
            highlight=False,
        )
    for arm, b in (rec.get("blocked") or {}).items():
        console.print(
            f"blocked concepts ({', '.join(rec.get('blocked_concepts') or [])}), {arm} arm: mean shift "
            f"{b['shift']:+.3f} sd [{b['low']:+.3f}, {b['high']:+.3f}]",
            highlight=False,
        )
