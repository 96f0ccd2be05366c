"""SAE annotation throughput: curate vs a bare truncated forward vs a naive TransformerLens pipeline.

All three run on the same responses (generated pairs, or --data) with the same SAE (a TopK SAE with the
default fit's shape, d_sae 2048, k 32, at --layer):

* curate: ``SAEConcepts`` as called by ``datasets.map`` (length-bucketed micro-batches, forward stopped
  at the layer, SAE on response tokens, pooled, sparse top-k);
* forward: the same padded micro-batches through the model, stopped at the same layer, nothing else;
* naive: TransformerLens ``HookedSAETransformer.run_with_cache_with_saes`` on the full model, one
  example at a time, dense SAE activations kept and max-pooled over the response tokens (first
  --naive-n responses).

Throughput is real (non-pad) tokens per second. The pooled features of curate and naive are compared.
Prints padding waste and peak RSS of the curate stage (measured before the other pipelines load).
Last line: ``ratio_vs_forward=X ratio_vs_naive=Y``.

    python benchmarks/bench_sae_annotation.py --n 400
    python benchmarks/bench_sae_annotation.py --n 10000 --rss-only     # the 10k-response RSS figure (curate only)
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_sae(d_in: int, layer: int, d_sae: int = 2048, k: int = 32):
    from sae_lens import TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    cfg = TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k)
    cfg.metadata.hook_name = f"blocks.{layer - 1}.hook_resid_post"
    sae = TopKSAE(cfg)
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.05)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def hooked_smollm2(hf_model, tokenizer):
    """SmolLM2 in TransformerLens, which does not know it by name: convert its config from a local folder,
    then its weights from the loaded HF model (no LayerNorm folding, so activations match HF)."""
    import tempfile

    from sae_lens import HookedSAETransformer
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import convert_hf_model_config, get_pretrained_state_dict

    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "smol")
        config = hf_model.config.to_dict()
        config.pop("quantization_config", None)
        config["architectures"] = config.get("architectures") or ["LlamaForCausalLM"]
        os.makedirs(folder)
        with open(os.path.join(folder, "config.json"), "w") as f:
            import json

            json.dump(config, f)
        cfg_dict = convert_hf_model_config(folder)
        cfg_dict = {**cfg_dict, "dtype": torch.float32, "device": "cpu"}
        cfg = HookedTransformerConfig(
            **{k: v for k, v in cfg_dict.items() if k in HookedTransformerConfig.__dataclass_fields__}
        )
        state = get_pretrained_state_dict(folder, cfg, hf_model=hf_model)
    model = HookedSAETransformer(cfg, tokenizer=tokenizer)
    model.load_and_process_state_dict(
        state, fold_ln=False, center_writing_weights=False, center_unembed=False, fold_value_biases=False
    )
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400, help="responses to annotate (pairs = n / 2)")
    ap.add_argument("--naive-n", type=int, default=48, help="responses for the naive pipeline")
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=128, help="rows per annotator call (a datasets.map batch)")
    ap.add_argument("--data", default=None, help="preference data to use instead of generated pairs")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--rss-only",
        action="store_true",
        help="run the curate stage only (throughput, padding waste, peak RSS); no baselines, no ratios",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from curate import _columns as C
    from curate.concepts.sae import SAEConcepts
    from curate.generate import make_preference_pairs
    from curate.models import decoder_layers, load_model

    if args.data:
        from curate.ingest import load_pairs

        ds = load_pairs(args.data, limit=(args.n + 1) // 2)
    else:
        ds = make_preference_pairs((args.n + 1) // 2, seed=0).dataset
    model, tok, model_id = load_model()
    sae = build_sae(model.config.hidden_size, args.layer)
    ann = SAEConcepts(sae, layer=args.layer, source="bench")
    ann(ds[:2])  # warm-up (lazy setup, first-call allocations)
    ann.stats_ = {k: 0 for k in ann.stats_}

    # 1 + 2. curate, and the bare forward on the same micro-batches, interleaved batch by batch so that
    # load from other processes on the machine hits both alike
    class Stop(Exception):
        pass

    def hook(m, a, o):
        raise Stop

    def bare_forward(batch) -> tuple[float, int]:
        targets = ann._targets(batch)
        items = ann._tokenize([(m, r) for _, _, m, r in targets])
        padded = []
        for group in ann._micro_batches([len(it.ids) for it in items]):
            ids = [items[j].ids for j in group]
            x = torch.full((len(ids), max(map(len, ids))), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(x)
            for b, s in enumerate(ids):
                x[b, : len(s)] = torch.tensor(s)
                mask[b, : len(s)] = 1
            padded.append((x, mask))
        handle = decoder_layers(model)[args.layer - 1].register_forward_hook(hook)
        t = time.perf_counter()
        with torch.inference_mode():
            for x, mask in padded:
                try:
                    model(input_ids=x, attention_mask=mask, use_cache=False)
                except Stop:
                    pass
        dt = time.perf_counter() - t
        handle.remove()
        return dt, sum(int(m.sum()) for _, m in padded)

    # time each map batch with both pipelines back to back, alternating which goes first; wall-clock and
    # this process's CPU time (less sensitive to other processes on a shared machine) are both kept
    t_curate = t_fwd = c_curate = c_fwd = 0.0
    fwd_tokens = 0
    outputs = []
    rss_curate = rss_mb()
    for b, start in enumerate(range(0, len(ds), args.batch_size)):
        batch = ds[start : start + args.batch_size]
        for first in (True, False) if b % 2 == 0 else (False, True):
            if first:
                t0, c0 = time.perf_counter(), time.process_time()
                outputs.append(ann(batch))
                t_curate += time.perf_counter() - t0
                c_curate += time.process_time() - c0
                rss_curate = rss_mb()
            elif not args.rss_only:
                c0 = time.process_time()
                dt, n = bare_forward(batch)
                c_fwd += time.process_time() - c0
                t_fwd += dt
                fwd_tokens += n
    st = dict(ann.stats_)
    tps_curate = st["tokens"] / t_curate
    waste = 1 - st["tokens"] / max(st["padded_tokens"], 1)
    print(
        f"curate:  {st['responses']} responses, {st['tokens']} tokens ({st['response_tokens']} response tokens) "
        f"in {t_curate:.1f}s -> {tps_curate:,.0f} tok/s (CPU {c_curate:.1f}s); {st['micro_batches']} micro-batches; "
        f"padding waste {100 * waste:.1f}%; peak RSS {rss_curate:,.0f} MB (n={st['responses']})",
        flush=True,
    )
    if args.rss_only:
        print(f"padding_waste={100 * waste:.1f}% peak_rss_mb={rss_curate:.0f} (n={st['responses']}) model={model_id}")
        return
    tps_fwd = fwd_tokens / t_fwd
    print(
        f"forward: truncated at layer {args.layer}, same micro-batches, {fwd_tokens} tokens in {t_fwd:.1f}s -> "
        f"{tps_fwd:,.0f} tok/s (CPU {c_fwd:.1f}s)",
        flush=True,
    )

    # 3. naive: TransformerLens, full model, one example at a time, dense activations kept
    hooked = hooked_smollm2(model, tok)
    hook_name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    targets = ann._targets(ds[:])[: args.naive_n]
    items = ann._tokenize([(m, r) for _, _, m, r in targets])
    dense, n_tok = [], 0
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for it in items:
            _, cache = hooked.run_with_cache_with_saes(torch.tensor([it.ids]), saes=[sae])
            acts = cache[hook_name][0]  # [T, d_sae], dense
            dense.append(acts[it.start : it.end].max(0).values.clone())
            n_tok += len(it.ids)
    t_naive, c_naive = time.perf_counter() - t0, time.process_time() - c0
    tps_naive = n_tok / t_naive
    print(
        f"naive:   TransformerLens run_with_cache_with_saes, {len(items)} responses one at a time, {n_tok} tokens "
        f"in {t_naive:.1f}s -> {tps_naive:,.0f} tok/s (CPU {c_naive:.1f}s)",
        flush=True,
    )

    # identical pooled features?
    ours = {}
    for start_batch, out in zip(range(0, len(ds), args.batch_size), outputs):
        for side in C.SIDES:
            for i, (idx, val) in enumerate(
                zip(out[C.sae_index_column(side, "bench")], out[C.sae_value_column(side, "bench")])
            ):
                ours[(start_batch + i, side)] = (idx, val)
    worst = 0.0
    for (side, i, _, _), ref in zip(targets, dense):
        idx, val = ours[(i, side)]
        top = torch.topk(ref, len(idx)).values.numpy() if idx else np.zeros(0)
        worst = max(
            worst,
            float(np.abs(ref.numpy()[idx] - np.asarray(val)).max()) if idx else 0.0,
            float(np.abs(np.sort(top) - np.sort(val)).max()) if idx else 0.0,
        )
    print(f"pooled features, curate vs naive on {len(dense)} responses: max abs diff {worst:.2e}")
    print(f"padding_waste={100 * waste:.1f}% peak_rss_mb={rss_curate:.0f} (n={st['responses']}) model={model_id}")
    cpu_fwd = (st["tokens"] / c_curate) / (fwd_tokens / c_fwd)
    cpu_naive = (st["tokens"] / c_curate) / (n_tok / c_naive)
    print(f"by CPU time: ratio_vs_forward={cpu_fwd:.3f} ratio_vs_naive={cpu_naive:.2f}")
    print(f"ratio_vs_forward={tps_curate / tps_fwd:.3f} ratio_vs_naive={tps_curate / tps_naive:.2f}")


if __name__ == "__main__":
    sys.exit(main())
