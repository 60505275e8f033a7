"""Activation caching: throughput, and peak memory at two prompt counts.

Each size runs in a fresh subprocess (``--child N``) so its peak RSS is its own. The
cache streams one batch at a time to Parquet, so peak memory must not grow with the
number of prompts. Also times a plain reference: one prompt per forward pass.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, peak_rss, prepared_model_dir, prompts, save


def child(n_prompts: int, batch_size: int, threads: int, one_at_a_time: bool) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from prunebias.model.activations import ACT_SCHEMA, HEAD_SCHEMA, cache_batches
    from prunebias.model.modeling import load_model

    model, tok = load_model(prepared_model_dir(), "auto", "auto", threads, attn_implementation="eager")
    spn = max(1, -(-n_prompts // 40))
    _, df = prompts(samples_per_name=spn)
    df = df.iloc[:n_prompts].reset_index(drop=True)
    df["response"] = "450. It is a fair price"
    df["row"] = np.arange(len(df))
    with tempfile.TemporaryDirectory() as d, peak_rss() as mem:
        t = time.perf_counter()
        with pq.ParquetWriter(Path(d) / "a.parquet", ACT_SCHEMA) as wa, \
                pq.ParquetWriter(Path(d) / "h.parquet", HEAD_SCHEMA) as wh:
            for act, head, _ in cache_batches(model, tok, df, 1 if one_at_a_time else batch_size):
                wa.write_table(act)
                wh.write_table(head)
        sec = time.perf_counter() - t
        size = (Path(d) / "a.parquet").stat().st_size
    return {"n_prompts": n_prompts, "seconds": sec, "prompts_per_s": n_prompts / sec,
            "rss_before_caching_mb": mem["base_mb"], "peak_rss_mb": mem["peak_mb"],
            "growth_while_caching_mb": mem["peak_mb"] - mem["base_mb"],
            "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cache_mb": size / 1e6, "batch_size": 1 if one_at_a_time else batch_size}


def run_child(n: int, bs: int, threads: int, one: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--batch-size", str(bs), "--threads", str(threads)]
    if one:
        cmd.append("--one-at-a-time")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", type=int)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one-at-a-time", action="store_true")
    ap.add_argument("--sizes", type=int, nargs=2, default=[80, 400])
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.batch_size, args.threads, args.one_at_a_time)))
        sys.exit(0)
    small, large = (run_child(n, args.batch_size, args.threads) for n in args.sizes)
    ref = run_child(args.sizes[0], 1, args.threads, one=True)
    return {"machine": machine(), "small": small, "large": large, "reference_one_at_a_time": ref,
            "peak_ratio_large_vs_small": large["peak_rss_mb"] / small["peak_rss_mb"],
            "speedup_vs_one_at_a_time": small["prompts_per_s"] / ref["prompts_per_s"]}


if __name__ == "__main__":
    save("cache", main())
