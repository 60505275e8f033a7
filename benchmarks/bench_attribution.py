"""Gradient attribution on the default model: time and peak memory of one source's scores,
and the memory it would take for Llama-3-8B.

One context's learning prompts (20 names per race, 1 sample), the grid objective with K
candidates, one forward + backward pass per batch, scores -W * dB/dW for every decoder
linear weight and the head deltas. Peak RSS is sampled every 5 ms.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
from common import machine, peak_rss, prepared_model_dir, prompts, save

from prunebias.methods.attribution import weight_attribution
from prunebias.model.modeling import load_model
from prunebias.methods.objective import answer_grid

LLAMA3_8B_LINEAR = 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336)
LLAMA3_8B_ALL = 8.03e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--per-race", type=int, default=20)
    args = ap.parse_args()
    model, tok = load_model(prepared_model_dir(), "float32", "cpu", torch.get_num_threads())
    ctx, df = prompts("purchase-bicycle")
    rows = pd.concat([df[df.race == r].head(args.per_race) for r in ("white", "black")], ignore_index=True)
    values = answer_grid(*ctx.range, args.grid)
    n_linear = sum(p.numel() for n, p in model.named_parameters() if n.endswith("proj.weight"))
    with peak_rss() as mem:
        t0 = time.perf_counter()
        b, scores, heads, _ = weight_attribution(model, tok, rows, values, args.batch, log_value=True)
        seconds = time.perf_counter() - t0
    gib = 2**30
    save("attribution", {
        "machine": machine(), "model": "SmolLM2-135M-Instruct (float32, CPU)", "prompts": len(rows),
        "grid": len(values), "batch": args.batch, "B": b, "seconds": round(seconds, 1),
        "seconds_per_prompt": round(seconds / len(rows), 2), "peak_rss_mb": round(mem["peak_mb"]),
        "rss_before_mb": round(mem["base_mb"]), "linear_weights": n_linear,
        "llama3_8b_gpu_gib_bf16": {  # weights + one gradient copy of the linear weights (bf16)
            "weights": round(LLAMA3_8B_ALL * 2 / gib, 1), "linear_grads": round(LLAMA3_8B_LINEAR * 2 / gib, 1)},
        "llama3_8b_host_gib_scores_fp32": round(LLAMA3_8B_LINEAR * 4 / gib, 1),
    })


if __name__ == "__main__":
    main()
