"""What a model learns: train LoRA DPO on generated pairs and on their curation, and compare per concept the
audit's predicted shift with the shift observed in the policies' generations.

    python benchmarks/bench_learning.py            # default: 1,200 pairs, 48 steps of 8 (1,512 s, fresh cache,
                                                   # on a 2-core machine on 2026-12-05; 4,336 s on a slower one)
    python benchmarks/bench_learning.py --adjust-for none --no-amplify  # block by plain rebalancing
    python benchmarks/bench_learning.py --quick    # a few minutes: checks the code path, numbers are noisy
    python benchmarks/bench_learning.py --alpaca   # also AlpacaEval-2 with length blocked (../shared/data)
    python benchmarks/bench_learning.py --seed 1   # another training seed (same data, held-out prompts)
    python benchmarks/bench_learning.py --seeds 0,1,2   # three seeds, pooled (pool_learning); ~90 min fresh here
    python benchmarks/bench_learning.py --block-with filter --filter-mode differ  # block by dropping discordant pairs
    python benchmarks/bench_learning.py --sft 1.0  # the same with an SFT term on chosen (what it does to the comparison)
    python benchmarks/bench_learning.py --protocol benchmarks/learning_protocol.yaml  # the frozen protocol (issue 29)
    python benchmarks/bench_learning.py --protocol benchmarks/learning_protocol.yaml --summarize  # re-pool only

A protocol (``--protocol FILE``, see ``benchmarks/learning_protocol.yaml``) fixes every setting before a run. Each
seed is an independent run: a fresh generator draw, fresh held-out topics and fresh counterfactual pairs; three
policies (original, curated, sham) train per seed. Results go to ``benchmarks/results/<first 12 hex of the sha256
of the protocol file's bytes>/seed<N>/`` (an edited protocol is a new folder), a seed folder that exists is kept
(a killed run resumes), and the pooled ``learning.json``, ``learning.parquet`` and ``summary.txt`` (one line
``r=… r_low=… r_high=… perm95=… blocked_original=… blocked_curated=… blocked_sham=…``) go beside them.

Cases (one reference model, SmolLM2-135M-Instruct offline; same seed, steps and hyper-parameters everywhere):
1. block flattery and agreement (rebalance adjusted for every named concept, ``--adjust-for``), allow the
   rest; the curated arm re-applies the recipe to the pairs it trains on: the original-data policy should raise both,
   the curated one at most a quarter as much; an allowed planted concept (markdown, length) rises in both;
   R² of predicted vs observed over the supported concepts;
2. amplify hedging (planted with equal rates, so the data does not reward it) with upweight: the curated
   policy's shift in hedging should exceed the original policy's. The original arm is the cached adapter.
The last line prints ``r2=… spearman=… flattery_original=… flattery_curated=… agreement_original=…
agreement_curated=…`` (observed generation shifts, raw units: matches per response).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def fmt(m, lo, hi):
    return f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def show(res, title):
    t = res.table
    print(f"\n== {title} ==")
    print(
        f"{'concept':<12}{'action':<8}{'pred':>7}{'pred_cur':>9}  {'observed original [95% CI]':<28}"
        f"{'observed curated [95% CI]':<28}{'reward o/c':>11}"
    )
    for r in t.itertuples():
        rw = "" if r.reward_original != r.reward_original else f"{r.reward_original:.2f}/{r.reward_curated:.2f}"
        print(
            f"{r.concept:<12}{(r.action or '-'):<8}{r.predicted:>+7.3f}{r.predicted_curated:>+9.3f}  "
            f"{fmt(r.observed_original, r.observed_original_low, r.observed_original_high):<28}"
            f"{fmt(r.observed_curated, r.observed_curated_low, r.observed_curated_high):<28}{rw:>11}"
        )
    rec = res.record
    if "r" in rec:  # signed r with its CI and the shuffled-prediction baseline (curate.learning.stats)
        print(f"generation: {signed_r(rec)}; implicit reward: {signed_r(rec, '_reward')}")
    print(
        f"R² {rec['r2']}, Spearman {rec['spearman']} (original, {rec['n_concepts_supported']} concepts); "
        f"curated R² {rec['r2_curated']}, Spearman {rec['spearman_curated']}"
    )
    for est, q in rec["estimators"].items():
        print(
            f"  estimator {est:<18} R² {q.get('r2', float('nan')):.3f}  Spearman {q.get('spearman', float('nan')):.3f}"
        )
    if rec.get("n_concepts_reward"):
        print(
            f"against the implicit reward ({rec['n_concepts_reward']} concepts with counterfactual pairs): "
            f"R² {rec['r2_reward']}, Spearman {rec['spearman_reward']} (original); curated R² "
            f"{rec['r2_reward_curated']}, Spearman {rec['spearman_reward_curated']}"
        )
        for est, q in rec["estimators_reward"].items():
            print(
                f"  estimator {est:<18} R² {q.get('r2', float('nan')):.3f}  "
                f"Spearman {q.get('spearman', float('nan')):.3f}"
            )
    if rec.get("openings"):
        print(
            "  openings (most common first 3 words, share; distinct share): "
            + "; ".join(
                f"{k} {v['top']!r} {v['top_share']:.2f}; {v['distinct_share']:.2f}" for k, v in rec["openings"].items()
            )
        )
    if "arms" in rec:
        print(
            f"  timing {rec['timing']}  total {rec['seconds']} s; arms "
            + "; ".join(
                f"{a}: {i.get('seconds_train', 'cached')} s train, reward acc {i.get('reward_accuracy_last')}"
                for a, i in rec["arms"].items()
            )
        )


def signed_r(rec: dict, tail: str = "") -> str:
    """``r +0.61 [+0.20, +0.80] (shuffled 95th pct +0.31)`` from a record's ``r{tail}``, ``r_low{tail}``, … keys."""
    g = [rec.get(f"{k}{tail}") for k in ("r", "r_low", "r_high", "perm95")]
    if any(v is None for v in g):
        return "r n/a"
    return f"r {g[0]:+.2f} [{g[1]:+.2f}, {g[2]:+.2f}] (shuffled-prediction 95th percentile {g[3]:+.2f})"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", default=None, help="a frozen protocol YAML (benchmarks/learning_protocol.yaml)")
    p.add_argument("--summarize", action="store_true", help="with --protocol: re-pool the seed folders, no training")
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n-pairs", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta", type=float, default=0.1, help="DPO β (larger keeps the policy closer to the reference)")
    p.add_argument("--max-length", type=int, default=96)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0, help="training seed (data order, LoRA init, decoding)")
    p.add_argument("--sft", type=float, default=0.0, help="weight of an SFT term on chosen (0 = pure DPO)")
    p.add_argument(
        "--warmup", type=int, default=None, help="SFT warm-up steps of the reference on both responses (0 = none)"
    )
    p.add_argument("--eval-prompts", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--counterfactual-pairs", type=int, default=None)
    p.add_argument(
        "--adjust-for",
        default="all",
        help="the block rule's adjust_for: 'all' (every named concept), 'none' (plain rebalancing) or ids a,b",
    )
    p.add_argument(
        "--block-with",
        default="rebalance",
        help="the block rule's interventions, comma-separated (rebalance, resample, filter, ...)",
    )
    p.add_argument(
        "--filter-mode", default=None, choices=["balance", "differ"], help="with --block-with filter: the Filter mode"
    )
    p.add_argument(
        "--seeds",
        default=None,
        help="several training seeds, e.g. 0,1,2: one check per seed, then pooled (curate.learning.pool_learning)",
    )
    p.add_argument("--no-amplify", action="store_true")
    p.add_argument("--alpaca", action="store_true")
    p.add_argument("--alpaca-only", action="store_true", help="only the AlpacaEval-2 run (its own sizes via the flags)")
    p.add_argument(
        "--alpaca-model",
        default="gpt-3.5-turbo-1106_concise",
        help="results/<model> folder: the concise outputs lose to the reference, so short responses end inside the window",
    )
    p.add_argument(
        "--alpaca-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca-eval-2")
    )
    p.add_argument("--out", default="outputs/bench_learning")
    a = p.parse_args()
    if a.protocol:
        return run_protocol(a.protocol, a.results, summarize_only=a.summarize)
    q = a.quick
    n_pairs = a.n_pairs or (1000 if q else 1200)
    steps = a.steps or (4 if q else 48)
    eval_prompts = a.eval_prompts or (8 if q else 40)
    samples = a.samples or (2 if q else 4)
    max_new = a.max_new_tokens or (24 if q else 48)
    cf = a.counterfactual_pairs or (8 if q else 32)
    warmup = a.warmup if a.warmup is not None else (2 if q else 24)

    from curate import make_preference_pairs
    from curate.learning import LearnConfig
    from curate.pipeline import run_apply
    from curate.recipe import Recipe

    t0 = time.perf_counter()
    out = Path(a.out)
    kw_alpaca = dict(eval_prompts=eval_prompts, samples=samples, max_new_tokens=max_new, temperature=a.temperature)
    if a.alpaca_only:
        config = LearnConfig(
            steps=steps, batch_size=a.batch_size or 8, learning_rate=a.lr, max_length=a.max_length, warmup_steps=warmup
        )
        run_alpaca(a, config, {**kw_alpaca, "config": config, "progress": False}, out)
        print(f"\nbenchmark time {time.perf_counter() - t0:.0f} s")
        return 0
    gen = make_preference_pairs(n_pairs, seed=0)
    data = gen.dataset
    config = LearnConfig(
        steps=steps,
        batch_size=a.batch_size or (4 if q else 8),
        learning_rate=a.lr,
        beta=a.beta,
        max_length=a.max_length,
        sft_weight=a.sft,
        warmup_steps=warmup,
        seed=a.seed,
    )
    kw = dict(
        config=config,
        eval_prompts=eval_prompts,
        samples=samples,
        max_new_tokens=max_new,
        temperature=a.temperature,
        counterfactual_pairs=cf,
        progress=False,
    )
    print(
        f"{n_pairs} generated pairs; {steps} steps of {config.batch_size} (lr {config.learning_rate}, β {config.beta}, max length "
        f"{config.max_length}, SFT weight {config.sft_weight}, SFT warm-up {config.warmup_steps} steps); {eval_prompts} held-out prompts x {samples} samples "
        f"of {max_new} tokens at temperature {a.temperature}; {cf} counterfactual pairs per concept"
    )

    adjust = None if a.adjust_for == "none" else a.adjust_for if a.adjust_for == "all" else a.adjust_for.split(",")
    block_with = a.block_with.split(",")
    rule = {"concepts": ["flattery", "agreement"], "action": "block", "interventions": block_with}
    if adjust is not None and {"rebalance", "resample"} & set(block_with):
        rule["adjust_for"] = adjust
    if a.filter_mode:
        rule["filter_mode"] = a.filter_mode
    block = Recipe.from_dict({"name": "block-sycophancy", "concepts": [{"kind": "named"}], "rules": [rule]})
    out.mkdir(parents=True, exist_ok=True)
    block.save(out / "block_sycophancy.yaml")
    run_apply(data, recipe=str(out / "block_sycophancy.yaml"), out=out / "curated_block")
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else [a.seed]
    res = check_seeds(data, out / "curated_block", out / "learning_block", seeds, kw)
    how = f"{block_with}" + (f", filter mode {a.filter_mode}" if a.filter_mode else "")
    how += f", adjusted for {a.adjust_for}" if "adjust_for" in rule else ""
    show(res, f"block flattery + agreement ({how})" + (f", pooled over seeds {seeds}" if len(seeds) > 1 else ""))
    if len(seeds) > 1:
        by_seed = res.record["observed_by_seed"]
        for c in ("flattery", "agreement", "length", "markdown"):
            if c in by_seed:
                print(f"  {c:<10} per seed: original {by_seed[c]['original']}, curated {by_seed[c]['curated']}")
        print("  R² per seed: " + ", ".join(f"{s}: {v['r2']:.3f}" for s, v in res.record["by_seed"].items()))
        ceil = res.record["noise_ceiling"]["original"]
        print(
            f"  seed-to-seed Pearson r of the observed shifts {ceil['pairwise_r']}: noise ceiling R² "
            f"{ceil['r2_one_seed']} for one seed, {ceil['r2_pooled']} pooled (what an exact prediction could expect)"
        )
        ceil = res.record["noise_ceiling_reward"]["original"]
        print(
            f"  seed-to-seed Pearson r of the implicit-reward shares {ceil['pairwise_r']}: noise ceiling R² "
            f"{ceil['r2_one_seed']} for one seed, {ceil['r2_pooled']} pooled"
        )
        print(
            "  reward R² per seed: " + ", ".join(f"{s}: {v['r2_reward']:.3f}" for s, v in res.record["by_seed"].items())
        )
    t = res.table.set_index("concept")
    targets(t, res.record)

    amp = None
    if not a.no_amplify:
        rec = Recipe.from_dict(
            {
                "name": "amplify-hedging",
                "concepts": [{"kind": "named"}],
                "rules": [
                    {"concepts": ["hedging"], "action": "amplify", "strength": 4.0, "interventions": ["upweight"]}
                ],
            }
        )
        rec.save(out / "amplify_hedging.yaml")
        run_apply(data, recipe=str(out / "amplify_hedging.yaml"), out=out / "curated_amplify")
        amp = check_seeds(data, out / "curated_amplify", out / "learning_amplify", seeds, kw)
        show(amp, "amplify hedging (upweight x5)" + (f", pooled over seeds {seeds}" if len(seeds) > 1 else ""))
        h = amp.table.set_index("concept").loc["hedging"]
        sep = h.observed_curated_low > h.observed_original_high
        print(f"target amplify: curated hedging CI above the original's: {'PASS' if sep else 'FAIL'}")
        print(
            f"amplify: hedging original {fmt(h.observed_original, h.observed_original_low, h.observed_original_high)}"
            f" curated {fmt(h.observed_curated, h.observed_curated_low, h.observed_curated_high)}; CIs separated: {sep}; "
            f"implicit reward original {h.reward_original:.2f} curated {h.reward_curated:.2f}"
        )

    if a.alpaca:
        run_alpaca(a, config, kw, out)

    summary = {
        "seconds": round(time.perf_counter() - t0, 1),
        "block": res.record,
        "amplify": amp.record if amp is not None else None,
    }
    (out / "bench_learning.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nbenchmark time {summary['seconds']:.0f} s")
    print(
        f"r2={res.record['r2']:.3f} spearman={res.record['spearman']:.3f} "
        f"flattery_original={t.loc['flattery', 'observed_original']:.3f} "
        f"flattery_curated={t.loc['flattery', 'observed_curated']:.3f} "
        f"agreement_original={t.loc['agreement', 'observed_original']:.3f} "
        f"agreement_curated={t.loc['agreement', 'observed_curated']:.3f}"
    )
    return 0


def check_seeds(data, curated, folder: Path, seeds: list[int], kw: dict):
    """One learning check per seed; with several seeds, each in ``<folder>_seed<N>`` and pooled into ``folder``."""
    from curate.pipeline import run_learn

    return run_learn(
        data, curated, out=folder, seeds=seeds, on_seed=lambda s, r: show(r, f"{folder.name}, seed {s}"), **kw
    )


def targets(t, record) -> None:
    """The issue's targets on the block case, each with its measured numbers and PASS/FAIL (nothing is tuned to
    pass: a FAIL is reported as measured)."""
    for c in ("flattery", "agreement"):
        r = t.loc[c]
        raised = r.observed_original_low > 0
        quarter = abs(r.observed_curated) <= 0.25 * abs(r.observed_original) if raised else False
        print(
            f"target block {c}: original shift {r.observed_original:+.3f} CI excludes 0: {'PASS' if raised else 'FAIL'}; "
            f"curated {r.observed_curated:+.3f} <= a quarter of it: {'PASS' if quarter else 'FAIL'}"
        )
    for c in ("markdown", "length"):
        if c in t.index:
            r = t.loc[c]
            both = r.observed_original_low > 0 and r.observed_curated_low > 0
            print(
                f"target allow {c}: rises in both (CI low > 0): original {r.observed_original:+.3f} "
                f"[{r.observed_original_low:+.3f}], curated {r.observed_curated:+.3f} [{r.observed_curated_low:+.3f}]: "
                f"{'PASS' if both else 'FAIL'}"
            )
    # signed: an anti-correlated prediction fails (R², a squared correlation, would pass it)
    r, low, perm, n = record.get("r"), record.get("r_low"), record.get("perm95"), record["n_concepts_supported"]
    ok = None not in (r, low, perm) and r > perm and low > 0
    print(
        f"target prediction: {signed_r(record)} over {n} concepts (r > perm95 and r_low > 0): {'PASS' if ok else 'FAIL'}"
    )


def protocol_targets(record: dict) -> None:
    """The issue's protocol targets on a pooled record: each blocked concept's curated shift CI below the sham arm's
    and below the original's; the prediction's r above its shuffled-prediction 95th percentile."""
    shifts = record.get("shifts", {})
    for c in record.get("blocked_concepts", []):
        o, cur, sh = (shifts.get(a, {}).get(c) for a in ("original", "curated", "sham"))
        if cur is None or o is None or sh is None:
            print(f"target block {c}: an arm is missing ({sorted(shifts)}): FAIL")
            continue
        ok = cur[2] < sh[1] and cur[2] < o[1]
        print(
            f"target block {c}: curated {cur[0]:+.3f} [{cur[1]:+.3f}, {cur[2]:+.3f}] below sham {sh[0]:+.3f} "
            f"[{sh[1]:+.3f}, {sh[2]:+.3f}] and original {o[0]:+.3f} [{o[1]:+.3f}, {o[2]:+.3f}]: {'PASS' if ok else 'FAIL'}"
        )
    for kind in ("generation", "reward"):
        g = record.get("prediction", {}).get(kind, {})
        ok = g.get("r") is not None and g.get("perm95") is not None and g["r"] > g["perm95"]
        print(f"target prediction ({kind}): {signed_r(g)}: r > perm95 {'PASS' if ok else 'FAIL'}")


def run_alpaca(a, config, kw, out: Path) -> None:
    """AlpacaEval-2 pairs with length blocked: mean generation length, original vs curated policy."""
    root = Path(a.alpaca_data)
    files = sorted(root.glob(f"results/{a.alpaca_model}/weighted_alpaca_eval_gpt4_turbo/annotations.json"))
    if not files:
        print(
            f"alpaca: skipped, no results/{a.alpaca_model}/weighted_alpaca_eval_gpt4_turbo/annotations.json under {root}"
        )
        return
    from curate import load_pairs
    from curate.learning import learning_check
    from curate.pipeline import run_apply
    from curate.recipe import load_recipe

    data = load_pairs(str(files[0]))
    recipe = load_recipe("length_debiasing")
    if a.adjust_for != "none":  # the shipped recipe's block rule, adjusted as --adjust-for says
        recipe.rules[0].adjust_for = "all" if a.adjust_for == "all" else a.adjust_for.split(",")
    out.mkdir(parents=True, exist_ok=True)
    recipe.save(out / "length_debiasing.yaml")
    run_apply(data, recipe=str(out / "length_debiasing.yaml"), out=out / "curated_alpaca")
    res = learning_check(
        data,
        out / "curated_alpaca",
        out=out / "learning_alpaca",
        **{**kw, "counterfactual_pairs": 0},
        concepts=["length", "markdown", "list", "bold"],
    )
    show(res, f"AlpacaEval-2 ({files[0].parts[-3]}), length blocked (adjusted for {a.adjust_for})")
    L = res.table.set_index("concept").loc["length"]
    print(
        f"alpaca: length shift original {fmt(L.observed_original, L.observed_original_low, L.observed_original_high)}"
        f" words, curated {fmt(L.observed_curated, L.observed_curated_low, L.observed_curated_high)} words"
    )


# -- the frozen protocol (issue 29) ------------------------------------------------------------------------------

PROTOCOL_KEYS = {
    "name",
    "model",
    "device",
    "dtype",
    "seeds",
    "data",
    "recipe",
    "concepts",
    "train",
    "generation",
    "counterfactuals",
}
#: the device/dtype pairs the learning code runs (curate.learning.train.load_reference: bf16 on CUDA, fp32 on CPU)
DEVICE_DTYPES = {"cpu": "float32", "cuda": "bfloat16"}


def protocol_hash(path) -> str:
    """The first 12 hex digits of the sha256 of the protocol file's bytes: its results folder's name."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def load_protocol(path) -> dict:
    """Read and check a protocol YAML (every key required, nothing unknown, a device/dtype the code runs)."""
    from curate._yaml import load_yaml
    from curate.errors import CurateError
    from curate.generate import KNOWN_CONCEPTS

    proto = load_yaml(Path(path).read_text())
    missing, unknown = PROTOCOL_KEYS - set(proto), set(proto) - PROTOCOL_KEYS
    if missing or unknown:
        raise CurateError(f"Protocol {path}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}.")
    if DEVICE_DTYPES.get(proto["device"]) != proto["dtype"]:
        raise CurateError(
            f"Protocol {path}: device {proto['device']!r} with dtype {proto['dtype']!r} is not a path the learning "
            f"code runs; use one of {DEVICE_DTYPES}."
        )
    bad = sorted(set(proto["data"]["rates"]) - set(KNOWN_CONCEPTS))
    if bad:
        raise CurateError(f"Protocol {path}: unknown planted concepts {bad}; known: {sorted(KNOWN_CONCEPTS)}.")
    return proto


def git_commit() -> str:
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "curate", "benchmarks/bench_learning.py"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("-dirty" if dirty else "")


def run_protocol(path, results, *, summarize_only: bool = False, work=None, model=None) -> int:
    """Run every seed of the protocol at ``path`` into ``results/<hash>/seed<N>/`` (a seed folder that exists is
    kept), then pool them. ``model`` overrides the protocol's model (tests pass a tiny ``(model, tokenizer)``)."""
    proto = load_protocol(path)
    h = protocol_hash(path)
    root = Path(results) / h
    print(f"protocol {path} ({proto['name']}), hash {h}: results in {root}", flush=True)
    if not summarize_only:
        root.mkdir(parents=True, exist_ok=True)
        (root / "protocol.yaml").write_bytes(Path(path).read_bytes())
        started = {"git_commit": git_commit(), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (root / f"run_{started['started_utc'].replace(':', '')}.json").write_text(json.dumps(started, indent=2))
        for seed in proto["seeds"]:
            folder = root / f"seed{seed}"
            if (folder / "learning.json").exists():
                print(f"seed {seed}: {folder} exists, kept", flush=True)
                continue
            t0 = time.perf_counter()
            res = run_protocol_seed(proto, seed, folder, h, Path(work or "outputs/learning_protocol") / h, model)
            show(res, f"protocol {h}, seed {seed} ({time.perf_counter() - t0:.0f} s)")
    return summarize_protocol(root)


def protocol_config(proto: dict, seed: int):
    from curate.learning import LearnConfig

    return LearnConfig(**{**proto["train"], "seed": int(seed)})


def run_protocol_seed(proto: dict, seed: int, folder: Path, h: str, work: Path, model=None):
    """One independent run: a fresh generator draw (seed ``data.seed_base + seed``), fresh held-out topics and
    counterfactual pairs, three policies (original, curated, sham)."""
    from curate.generate import DETECTED_AS, make_preference_pairs
    from curate.learning import learning_check
    from curate.learning.heldout import heldout_topics, register_markers
    from curate.pipeline import run_apply
    from curate.recipe import Recipe

    register_markers()
    d, g, cf = proto["data"], proto["generation"], proto["counterfactuals"]
    data_seed = int(d["seed_base"]) + int(seed)
    rates = {c: tuple(v) for c, v in d["rates"].items()}
    gen = make_preference_pairs(int(d["n_pairs"]), rates=rates, label_noise=float(d["label_noise"]), seed=data_seed)
    topics = heldout_topics(int(g["heldout_prompts"]), seed=int(g["topic_seed_base"]) + int(seed))
    messages = [[{"role": "user", "content": q}] for q, _, _ in topics]
    r = proto["recipe"]
    rule = {"concepts": list(r["block"]), "action": "block", "interventions": list(r["interventions"])}
    if r.get("adjust_for") is not None:
        rule["adjust_for"] = r["adjust_for"]
    recipe = Recipe.from_dict({"name": "protocol-block", "concepts": [{"kind": "named"}], "rules": [rule]})
    work.mkdir(parents=True, exist_ok=True)
    recipe.save(work / "recipe.yaml")
    curated = work / f"curated_seed{seed}"
    if curated.exists():
        import shutil

        shutil.rmtree(curated)
    run_apply(gen.dataset, recipe=str(work / "recipe.yaml"), out=curated)
    cf_seed = int(cf["seed_base"]) + int(seed)
    extra = {
        "protocol_hash": h,
        "protocol": proto,
        "git_commit": git_commit(),
        "independent_draws": True,
        "data_seed": data_seed,
        "counterfactual_seed": cf_seed,
        "heldout_topics": [q for q, _, _ in topics],
        "planted": {c: list(v) for c, v in gen.planted.items()},
        "named_of": {c: DETECTED_AS.get(c, c) for c in gen.planted},
    }
    return learning_check(
        gen.dataset,
        curated,
        out=folder,
        model=model if model is not None else proto["model"],
        device=proto["device"],
        config=protocol_config(proto, seed),
        samples=int(g["samples"]),
        max_new_tokens=int(g["max_new_tokens"]),
        temperature=float(g["temperature"]),
        eval_messages=messages,
        counterfactuals="heldout",
        counterfactual_pairs=int(cf["pairs"]),
        counterfactual_seed=cf_seed,
        reward_max_length=int(cf["max_length"]),
        concepts=list(proto["concepts"]),
        reward_concepts=[*proto["concepts"], *(["neutral"] if cf.get("neutral", True) else [])],
        sham=True,
        record_extra=extra,
        progress=False,
    )


def summarize_protocol(root: Path) -> int:
    """Pool the seed folders under ``root`` (no training) and write ``learning.json``, ``learning.parquet`` and
    ``summary.txt`` there; print the summary line last."""
    from curate.learning.folder import _json_default
    from curate.learning.heldout import register_markers
    from curate.learning.pool import pool_learning
    from curate.learning.stats import summary_line

    register_markers()
    folders = sorted(p for p in Path(root).glob("seed*") if (p / "learning.json").exists())
    print(f"pooling {len(folders)} seed folders under {root}", flush=True)
    pooled = pool_learning(folders)
    pooled.table.to_parquet(Path(root) / "learning.parquet", index=False)
    seeds = [json.loads((f / "learning.json").read_text()) for f in folders]
    record = {
        **pooled.record,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "protocol_hash": Path(root).name,
        "git_commits": sorted({r.get("git_commit", "unknown") for r in seeds}),
    }
    (Path(root) / "learning.json").write_text(json.dumps(record, indent=2, default=_json_default))
    protocol_targets(record)
    line = summary_line(pooled.record)
    (Path(root) / "summary.txt").write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
