"""Scale: prompt sharing in the SAE forward, Ray vs the local engine, and the streaming audit at 1M pairs.

Three measurements from one run; the last line is

    prompt_share_ratio=… ray_vs_local=… audit_1m_s=… audit_1m_rss_mb=…

* ``prompt_share_ratio``: SAE annotation throughput (tokens of prompt + response per response, per second —
  the same numerator both ways; wall clock, best of interleaved repeats, 1 torch thread by default; CPU-time
  ratio printed too) with each prompt forwarded once vs forwarded per response, SmolLM2-135M
  layer 15 on HH-style multi-turn pairs from the generator (``add_history``), interleaved repeats, best of
  each; the SAE is a random TopK SAE of the default size (encoding cost is what matters here).
* ``ray_vs_local``: named-concept annotation pairs/s on Ray Data (2 CPU actors, local cluster, cluster
  start excluded, actor start included) divided by the local engine (``Dataset.map``, one process).
* ``audit_1m_s`` / ``audit_1m_rss_mb``: :class:`~curate.stream_audit.StreamingAudit` over 1,000,000 pairs of
  synthetic sparse top-32 annotations of a 16,384-latent SAE (+ named length columns) in 10 parquet
  shards, run in a fresh process; peak RSS of that process (``ru_maxrss``).

Usage: python benchmarks/bench_scale.py [--pairs-share 32] [--pairs-ray 20000] [--pairs-audit 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def bench_share(n_pairs: int, turns: int, repeats: int, threads: int = 1) -> dict:
    import torch
    from sae_lens import TopKSAE, TopKSAEConfig

    import curate
    from curate.concepts.sae import SAEConcepts
    from curate.generate import add_history

    torch.set_num_threads(threads)  # on a shared 2-core machine, 1 thread gives stable timings (no spin-waits)
    ds = add_history(curate.make_preference_pairs(n_pairs, seed=11).dataset, turns=turns, seed=11)
    batch = ds[:]
    torch.manual_seed(0)
    sae = TopKSAE(TopKSAEConfig(d_in=576, d_sae=2048, k=32)).eval()
    anns = {share: SAEConcepts(sae, layer=15, source="b", share_prompt=share) for share in (True, False)}
    t = time.perf_counter()
    anns[True]._setup()
    anns[False]._setup()
    load_s = time.perf_counter() - t
    plain_tokens = None
    best = {True: float("inf"), False: float("inf")}
    best_cpu = {True: float("inf"), False: float("inf")}
    outs = {}
    for _ in range(repeats):
        for share in (False, True):  # interleaved
            ann = anns[share]
            before = dict(ann.stats_)
            t, c = time.perf_counter(), time.process_time()
            outs[share] = ann(batch)
            best[share] = min(best[share], time.perf_counter() - t)
            best_cpu[share] = min(best_cpu[share], time.process_time() - c)
            forwarded = ann.stats_["tokens"] - before["tokens"]
            if not share:
                plain_tokens = forwarded
            else:
                shared_tokens = forwarded
    # the outputs agree (the test checks 1e-4; here a sanity check)
    col = "chosen__sae:b__val"
    diff = max(abs(a - b) for x, y in zip(outs[True][col], outs[False][col]) for a, b in zip(x, y))
    return {
        "pairs": n_pairs,
        "turns": turns,
        "model_load_s": round(load_s, 1),
        "tokens_plain_path": plain_tokens,
        "tokens_forwarded_shared": shared_tokens,
        "seconds_plain": round(best[False], 2),
        "seconds_shared": round(best[True], 2),
        "tok_per_s_plain": round(plain_tokens / best[False], 1),
        "tok_per_s_shared": round(plain_tokens / best[True], 1),
        "forward_tok_per_s_shared": round(shared_tokens / best[True], 1),
        "cpu_s_plain": round(best_cpu[False], 2),
        "cpu_s_shared": round(best_cpu[True], 2),
        "cpu_ratio": round(best_cpu[False] / best_cpu[True], 3),
        "torch_threads": threads,
        "max_abs_diff_chosen_val": float(diff),
        "ratio": round(best[False] / best[True], 3),
    }


def bench_ray(n_pairs: int, workers: int) -> dict:
    os.environ.setdefault("RAY_TMPDIR", "/tmp/ray-curate-bench")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.makedirs(os.environ["RAY_TMPDIR"], exist_ok=True)
    import ray

    import curate

    ds = curate.make_preference_pairs(n_pairs, seed=12).dataset
    t = time.perf_counter()
    local = curate.annotate(ds, desc="local")
    local_s = time.perf_counter() - t
    t = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=500 * 2**20, log_to_driver=False)
    init_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        out = curate.annotate(
            ds, engine="ray", engine_options={"out": tmp, "workers": workers, "rows_per_shard": max(1, n_pairs // 8)}
        )
        ray_s = time.perf_counter() - t
    ray.shutdown()
    same = out.to_dict() == local.to_dict()
    return {
        "pairs": n_pairs,
        "workers": workers,
        "local_s": round(local_s, 2),
        "ray_s": round(ray_s, 2),
        "ray_init_s": round(init_s, 2),
        "same_output": same,
        "local_pairs_per_s": round(n_pairs / local_s),
        "ray_pairs_per_s": round(n_pairs / ray_s),
        "ratio": round(local_s / ray_s, 3),
    }


def write_audit_shards(folder: Path, n_pairs: int, d_sae: int = 16_384, k: int = 32, shards: int = 10, seed: int = 0):
    """Synthetic annotations: top-``k`` sparse SAE columns (features 0..4 planted in chosen) + length columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate import _columns as C

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-n_pairs // shards)
    stride = 511  # k distinct features per response: start + j*stride (mod d_sae), 32*511 < 16384
    assert stride * k < d_sae
    for s in range(shards):
        n = min(per, n_pairs - s * per)
        if n <= 0:
            break
        cols = {
            C.ID: pa.array(np.arange(s * per, s * per + n)),
            C.PROMPT: pa.array([f"prompt {i % 250_000}" for i in range(s * per, s * per + n)]),
            C.REASON: pa.array([""] * n),
        }
        for side, planted in ((C.CHOSEN, 0.3), (C.REJECTED, 0.1)):
            idx = (rng.integers(0, d_sae, size=(n, 1)) + stride * np.arange(k)[None, :]) % d_sae
            hit = rng.random(n) < planted
            idx[hit, 0] = rng.integers(0, 5, size=hit.sum())
            val = rng.exponential(1.0, size=(n, k)).astype(np.float32)
            offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
            cols[C.sae_index_column(side, "bench")] = pa.ListArray.from_arrays(
                offsets, pa.array(idx.ravel().astype(np.int32))
            )
            cols[C.sae_value_column(side, "bench")] = pa.ListArray.from_arrays(offsets, pa.array(val.ravel()))
            words = rng.integers(5, 400, size=n)
            cols[C.score_column(side, "length")] = pa.array(words.astype(np.float32))
            cols[C.score_column(side, "log_length")] = pa.array(np.log1p(words).astype(np.float32))
        pq.write_table(pa.table(cols), folder / f"part-{s:05d}.parquet")


_AUDIT_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
from curate.stream_audit import StreamingAudit
audit = StreamingAudit().fit(sys.argv[1])
s = time.perf_counter() - t
planted = set(f"sae:bench:{f}" for f in range(5))
found = set(audit.results_.loc[audit.results_["confirmed"], "concept"])
print(json.dumps({"seconds": round(s, 2), "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "n_pairs": audit.n_pairs_, "n_concepts": len(audit.results_), "n_sample": audit.n_sample_,
                  "planted_confirmed": len(planted & found), "n_findings": int(audit.results_["finding"].sum())}))
"""


def bench_audit(n_pairs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_audit_shards(Path(tmp) / "shards", n_pairs)
        write_s = time.perf_counter() - t
        size_mb = sum(f.stat().st_size for f in (Path(tmp) / "shards").iterdir()) / 2**20
        proc = subprocess.run(
            [sys.executable, "-c", _AUDIT_CHILD, str(Path(tmp) / "shards")],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
        )
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**res, "write_s": round(write_s, 1), "parquet_mb": round(size_mb)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs-share", type=int, default=32)
    p.add_argument("--turns", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pairs-ray", type=int, default=20_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pairs-audit", type=int, default=1_000_000)
    args = p.parse_args()
    t0 = time.perf_counter()
    load = os.getloadavg()
    print(f"cpus={os.cpu_count()} loadavg_at_start={load[0]:.2f},{load[1]:.2f},{load[2]:.2f}", flush=True)
    audit = bench_audit(args.pairs_audit)
    print("audit", json.dumps(audit), flush=True)
    ray_res = bench_ray(args.pairs_ray, args.workers)
    print("ray", json.dumps(ray_res), flush=True)
    share = bench_share(args.pairs_share, args.turns, args.repeats, args.threads)
    print("share", json.dumps(share), flush=True)
    load = os.getloadavg()
    print(
        f"loadavg_at_end={load[0]:.2f},{load[1]:.2f},{load[2]:.2f} total_s={time.perf_counter() - t0:.0f}", flush=True
    )
    print(
        f"prompt_share_ratio={share['ratio']} ray_vs_local={ray_res['ratio']} audit_1m_s={audit['seconds']} "
        f"audit_1m_rss_mb={audit['rss_mb']}"
    )


if __name__ == "__main__":
    main()
