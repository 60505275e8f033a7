"""One decode step of the sampler at Llama-3's vocabulary (128,256) and batch 512, on the CPU:
the row-by-row noise of the earlier sampler (a uniform draw, a clamp and two logs per row,
then a stack) against the current one (the draws per row, the logs once over all live
rows, made where the logits are). Both give the same tokens for the same seeds (checked).
On a GPU the current sampler also avoids copying the (batch x vocabulary) logits to the host.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, save

from prunebias.model.sampling import _gumbel_rows


def row_by_row(gens: list[torch.Generator], vocab: int) -> torch.Tensor:
    rows = []
    for g in gens:
        u = torch.rand(vocab, generator=g).clamp_(1e-20, 1.0 - 1e-7)
        rows.append(-torch.log(-torch.log(u)))
    return torch.stack(rows)


def timed(fn, logits: torch.Tensor, seeds: list[int], steps: int) -> tuple[float, torch.Tensor]:
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    fn(gens, logits.shape[1])  # warm-up step
    t0 = time.perf_counter()
    for _ in range(steps):
        nxt = (logits / 0.6 + fn(gens, logits.shape[1])).argmax(-1)
    return (time.perf_counter() - t0) / steps, nxt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    logits = torch.randn(args.batch, args.vocab, generator=torch.Generator().manual_seed(0)) * 3
    seeds = list(range(args.batch))
    before, a = timed(row_by_row, logits, seeds, args.steps)
    after, b = timed(_gumbel_rows, logits, seeds, args.steps)
    save("sampler", {"machine": machine(), "threads": torch.get_num_threads(), "batch": args.batch,
                     "vocab": args.vocab, "seconds_per_step_row_by_row": round(before, 3),
                     "seconds_per_step_now": round(after, 3), "speed_up": round(before / after, 2),
                     "same_tokens": bool(torch.equal(a, b))})


if __name__ == "__main__":
    main()
