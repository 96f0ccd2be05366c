"""SAE annotation against its physical limit, the unshared path and a naive pipeline, on two kinds of data.

The physical limit of SAE annotation is one forward pass of every *needed* token, stopped at the hooked
layer. Four pipelines run on the same responses, window by window (a window is one ``datasets.map`` batch,
``--window`` rows), the order of the four rotating from window to window so that load from other processes
hits them alike; one torch thread by default (a shared 2-core machine gives stable ratios that way). Wall
clock is what the ratios use; this process's CPU time is printed too (under heavy load from other processes
it is the steadier of the two):

* **curate**: ``SAEConcepts(share_prompt=True)`` called as ``datasets.map`` calls it, end to end (render,
  tokenize, length-bucketed micro-batches of ``batch_tokens``, each prompt once where it pays, forward
  stopped at the layer, SAE encode, max-pool, top-k);
* **unshared**: the same annotator with ``share_prompt=False`` (each response with its own prompt copy,
  length-bucketed);
* **bare forward**: the model alone, stopped at the layer, on pre-built inputs (no tokenization, no mask
  building, no SAE): every response's prompt + response (up to its last token), sorted by length, in
  micro-batches of ``batch_tokens`` tokens, each cut to its shortest row so no token is padding and no mask is
  needed. Its tokens per second is the *bare-forward throughput*, the best the model does on these lengths;
* **naive**: no prompt sharing, no bucketing, fixed row batches — each response with its own prompt, in
  dataset order, ``--naive-rows`` rows per batch padded to the longest, the whole input (trailing template
  tokens included), the full model with ``output_hidden_states=True`` (every layer and the logits, as a
  first script reads a layer), the SAE on the response tokens of ``hidden_states[layer]``, pooled the same way.

Definitions:

* **needed tokens**: each distinct prompt of a window (the chat-template rendering up to the assistant turn;
  pairs of a window that ask the same prompt count it once), plus for each response the tokens after the
  prompt up to and including the response's last token; nothing else (no padding, no trailing template
  tokens, no second copy of a prompt).
* ``ratio_vs_limit`` = (needed tokens ÷ bare-forward throughput) ÷ curate's time.
* ``ratio_vs_unshared`` = the unshared path's time ÷ curate's time (same responses, same outputs).
* ``ratio_vs_naive`` = the naive pipeline's time ÷ curate's time.
* ``padding_waste`` = 1 − real tokens ÷ padded tokens in curate's micro-batches.

Generated data (``curate.generate``): single-turn pairs (``make_preference_pairs``) and multi-turn HH-style
pairs (``add_history(turns=2)``). One line per kind; the last line is the worst case over the two kinds of
each number (the smallest ratio, the largest waste). The pooled features of curate are compared with the
unshared path and with naive. A projection for 260k pairs uses curate's measured seconds per needed token.

    python benchmarks/bench_sae_annotation.py                       # the committed configuration
    python benchmarks/bench_sae_annotation.py --out benchmarks/results/sae_annotation.json
    python benchmarks/bench_sae_annotation.py --device cuda --dtype bfloat16   # the same code path on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

PAIRS_260K, TOKENS_PER_PAIR = 260_000, 1_000  # the Dolci-scale audit of the issue


def build_sae(d_in: int, layer: int, device: str, d_sae: int = 2048, k: int = 32):
    from sae_lens import TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    cfg = TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, device=device)
    cfg.metadata.hook_name = f"blocks.{layer - 1}.hook_resid_post"
    sae = TopKSAE(cfg)
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.05)
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def make_data(kind: str, n_pairs: int):
    import curate
    from curate.generate import add_history

    if kind == "single-turn":
        return curate.make_preference_pairs(n_pairs, seed=0).dataset
    return add_history(curate.make_preference_pairs(n_pairs, seed=1).dataset, turns=2, seed=1)


class Timer:
    """Wall and process CPU seconds summed over calls (CUDA synchronized)."""

    def __init__(self, device: str):
        self.sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self.sync()
        self.t, self.c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.sync()
        self.wall += time.perf_counter() - self.t
        self.cpu += time.process_time() - self.c


def needed_tokens(ann, batch) -> tuple[int, list]:
    """Needed tokens of a window (see the module docstring) and its unshared inputs cut after the response."""
    from curate.concepts._shared_prefix import _prefix_text

    targets = ann._targets(batch)
    items = ann._tokenize([(m, r) for _, _, m, r in targets])
    has_template = bool(getattr(ann.tokenizer_, "chat_template", None))
    total, seen = 0, set()
    for (_, _, messages, _), it in zip(targets, items):
        text = _prefix_text(ann, messages)
        prefix = list(ann.tokenizer_(text, add_special_tokens=not has_template)["input_ids"]) if text else []
        P = len(prefix) if it.ids[: len(prefix)] == prefix else 0  # else a merge across the boundary
        key = json.dumps(messages, sort_keys=True)
        total += it.end - P + (P if key not in seen else 0)
        seen.add(key)
    return total, [it.ids[: it.end] for it in items]


def bare_batches(inputs: list[list[int]], batch_tokens: int, max_rows: int) -> list[torch.Tensor]:
    """Length-sorted micro-batches, each cut to its shortest row: every token real, no mask."""
    order = sorted(range(len(inputs)), key=lambda j: len(inputs[j]))
    out, cur = [], []
    for j in order:
        if cur and ((len(cur) + 1) * len(inputs[j]) > batch_tokens or len(cur) >= max_rows):
            out.append(cur)
            cur = []
        cur.append(j)
    if cur:
        out.append(cur)
    return [torch.tensor([inputs[j][: min(len(inputs[k]) for k in b)] for j in b]) for b in out]


def run_kind(kind: str, n_pairs: int, args, model, sae) -> dict:
    from curate import _columns as C
    from curate.concepts.sae import SAEConcepts
    from curate.models import decoder_layers

    ds = make_data(kind, n_pairs)
    common = dict(layer=args.layer, source="b", device=args.device, dtype=args.dtype)
    curate_ann = SAEConcepts(sae, share_prompt=True, **common)
    plain_ann = SAEConcepts(sae, share_prompt=False, **common)
    for a in (curate_ann, plain_ann):
        a(ds[:2])  # warm-up: lazy setup, first-call allocations
        a.stats_ = {k: 0 for k in a.stats_}
    tok, dev, L = curate_ann.tokenizer_, args.device, args.layer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    class Stop(Exception):
        pass

    def stop(module, a, o):
        raise Stop

    def bare(batches):
        handle = decoder_layers(model)[L - 1].register_forward_hook(stop)
        try:
            with torch.inference_mode():
                for x in batches:
                    try:
                        model(input_ids=x.to(dev), use_cache=False)
                    except Stop:
                        pass
        finally:
            handle.remove()

    def naive(batch) -> dict:
        targets = curate_ann._targets(batch)
        items = curate_ann._tokenize([(m, r) for _, _, m, r in targets])
        out = {}
        with torch.inference_mode():
            for s in range(0, len(items), args.naive_rows):
                part = items[s : s + args.naive_rows]
                T = max(len(it.ids) for it in part)
                x = torch.full((len(part), T), pad, dtype=torch.long)
                mask = torch.zeros_like(x)
                for b, it in enumerate(part):
                    x[b, : len(it.ids)], mask[b, : len(it.ids)] = torch.tensor(it.ids), 1
                hs = model(input_ids=x.to(dev), attention_mask=mask.to(dev), output_hidden_states=True).hidden_states[L]
                for b, it in enumerate(part):
                    f = sae.encode(hs[b, it.start : it.end].to(sae.W_enc.dtype)).float()
                    out[targets[s + b][:2]] = f.max(0).values.cpu()
        return out

    t = {name: Timer(dev) for name in ("curate", "unshared", "bare", "naive")}
    needed = bare_tokens = 0
    outs: dict[str, dict] = {"curate": {}, "unshared": {}}
    naive_pooled: dict = {}
    for w, start in enumerate(range(0, len(ds), args.window)):
        batch = ds[start : start + args.window]
        n_needed, inputs = needed_tokens(curate_ann, batch)
        needed += n_needed
        batches = bare_batches(inputs, curate_ann.batch_tokens, curate_ann.max_batch_rows)
        bare_tokens += sum(x.numel() for x in batches)
        steps = {
            "curate": lambda: outs["curate"].update({start: curate_ann(batch)}),
            "unshared": lambda: outs["unshared"].update({start: plain_ann(batch)}),
            "bare": lambda: bare(batches),
            "naive": lambda: naive_pooled.update({(start, k): v for k, v in naive(batch).items()}),
        }
        names = list(steps)
        for name in names[w % 4 :] + names[: w % 4]:
            with t[name]:
                steps[name]()

    # the same pooled features, row for row: curate vs the unshared path, curate vs naive (top-k values)
    diff_unshared = diff_naive = 0.0
    for start, out in outs["curate"].items():
        ref = outs["unshared"][start]
        for side in C.SIDES:
            idx_c, val_c = C.sae_index_column(side, "b"), C.sae_value_column(side, "b")
            for i, (ia, va, ib, vb) in enumerate(zip(out[idx_c], out[val_c], ref[idx_c], ref[val_c])):
                a, b = dict(zip(ia, va)), dict(zip(ib, vb))
                common_f = set(a) & set(b)
                diff_unshared = max([diff_unshared, *(abs(a[f] - b[f]) for f in common_f)])
                dense = naive_pooled.get((start, (side, i)))
                if dense is not None and ia:
                    diff_naive = max(diff_naive, float(np.abs(dense.numpy()[ia] - np.asarray(va)).max()))
    st = curate_ann.stats_
    bare_tps = bare_tokens / t["bare"].wall
    limit_s = needed / bare_tps
    res = {
        "kind": kind,
        "pairs": len(ds),
        "responses": st["responses"],
        "needed_tokens": needed,
        "curate_tokens": st["tokens"],
        "curate_padded_tokens": st["padded_tokens"],
        "unshared_tokens": plain_ann.stats_["tokens"],
        "shared_prompts": st.get("shared_prompts", 0),
        "plain_responses": st.get("unshared_responses", 0),
        "bare_forward_tok_per_s": round(bare_tps, 1),
        "seconds": {k: round(v.wall, 2) for k, v in t.items()},
        "cpu_seconds": {k: round(v.cpu, 2) for k, v in t.items()},
        "limit_seconds": round(limit_s, 2),
        "ratio_vs_limit": round(limit_s / t["curate"].wall, 3),
        "ratio_vs_unshared": round(t["unshared"].wall / t["curate"].wall, 3),
        "ratio_vs_naive": round(t["naive"].wall / t["curate"].wall, 2),
        "padding_waste": round(1 - st["tokens"] / max(st["padded_tokens"], 1), 4),
        "cpu_ratio_vs_limit": round((needed / (bare_tokens / t["bare"].cpu)) / t["curate"].cpu, 3),
        "cpu_ratio_vs_unshared": round(t["unshared"].cpu / t["curate"].cpu, 3),
        "cpu_ratio_vs_naive": round(t["naive"].cpu / t["curate"].cpu, 2),
        "max_abs_diff_vs_unshared": diff_unshared,
        "max_abs_diff_vs_naive": diff_naive,
        "curate_s_per_needed_token": t["curate"].wall / needed,
    }
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--single-pairs", type=int, default=96, help="single-turn pairs")
    ap.add_argument("--multi-pairs", type=int, default=64, help="two-turn HH-style pairs")
    ap.add_argument("--window", type=int, default=32, help="rows per annotator call (a datasets.map batch)")
    ap.add_argument("--naive-rows", type=int, default=8, help="rows per batch of the naive pipeline")
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="model dtype (bfloat16 on CUDA); float32 by default")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from curate.concepts.activations import _torch_dtype
    from curate.models import load_model

    load0 = os.getloadavg()
    model, _, model_id = load_model(device=args.device, dtype=_torch_dtype(args.dtype))
    sae = build_sae(model.config.hidden_size, args.layer, args.device)
    kinds = []
    for kind, n in (("single-turn", args.single_pairs), ("multi-turn", args.multi_pairs)):
        r = run_kind(kind, n, args, model, sae)
        kinds.append(r)
        s = r["seconds"]
        print(
            f"[{kind}] {r['pairs']} pairs, {r['responses']} responses: needed {r['needed_tokens']:,} tokens; curate "
            f"forwarded {r['curate_tokens']:,} ({r['shared_prompts']} prompts shared, {r['plain_responses']} "
            f"responses plain), unshared {r['unshared_tokens']:,}; seconds curate {s['curate']} unshared "
            f"{s['unshared']} bare {s['bare']} naive {s['naive']}; bare forward {r['bare_forward_tok_per_s']:,.0f} "
            f"tok/s -> limit {r['limit_seconds']} s; by CPU time: ratio_vs_limit={r['cpu_ratio_vs_limit']} "
            f"ratio_vs_unshared={r['cpu_ratio_vs_unshared']} ratio_vs_naive={r['cpu_ratio_vs_naive']}; "
            f"max |diff| pooled vs unshared "
            f"{r['max_abs_diff_vs_unshared']:.1e}, vs naive {r['max_abs_diff_vs_naive']:.1e}",
            flush=True,
        )
        print(
            f"[{kind}] ratio_vs_limit={r['ratio_vs_limit']} ratio_vs_unshared={r['ratio_vs_unshared']} "
            f"ratio_vs_naive={r['ratio_vs_naive']} padding_waste={100 * r['padding_waste']:.1f}%",
            flush=True,
        )
    load1 = os.getloadavg()
    multi = kinds[-1]
    per_tok = multi["curate_s_per_needed_token"]
    hours = PAIRS_260K * TOKENS_PER_PAIR * per_tok / 3600
    print(
        f"projection: {PAIRS_260K:,} pairs x ~{TOKENS_PER_PAIR:,} needed tokens at curate's measured "
        f"{1e3 * per_tok:.3f} ms/token (multi-turn, {args.device}, {args.threads} torch thread(s)) = {hours:,.0f} h "
        f"on this machine; GPU: not measured here (run with --device cuda --dtype bfloat16)"
    )
    print(f"model={model_id} layer={args.layer} loadavg start={load0[0]:.2f} end={load1[0]:.2f}")
    summary = {
        "ratio_vs_limit": min(k["ratio_vs_limit"] for k in kinds),
        "ratio_vs_unshared": min(k["ratio_vs_unshared"] for k in kinds),
        "ratio_vs_naive": min(k["ratio_vs_naive"] for k in kinds),
        "padding_waste": max(k["padding_waste"] for k in kinds),
    }
    if args.out:
        config = {k: v for k, v in vars(args).items() if k != "out"}
        record = {"config": config, "model": model_id, "loadavg": [load0[0], load1[0]], "kinds": kinds}
        record["projection_260k_hours"] = {args.device: round(hours, 1)}
        with open(args.out, "w") as f:
            json.dump({**record, "worst_case": summary}, f, indent=1)
    print("worst case over single-turn and multi-turn:")
    print(
        f"ratio_vs_limit={summary['ratio_vs_limit']} ratio_vs_unshared={summary['ratio_vs_unshared']} "
        f"ratio_vs_naive={summary['ratio_vs_naive']} padding_waste={100 * summary['padding_waste']:.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
