"""Pruned evaluation: apply a mask once and answer a target's prompts in batches, against
the reference pattern (reload the model, apply the mask, one prompt per generate call).

Uses a real neuron mask from results/masks (run the workflow first).
"""

from __future__ import annotations

import time

from common import REPO, machine, peak_rss, prepared_model_dir, prompts, save

from prunebias.audit.answers import generate_answers
from prunebias.methods.masks import read_mask
from bench_generation import reference_loop

from prunebias.model.modeling import load_model
from prunebias.model.pruning import pruned
from prunebias.model.sampling import Sampling


def main() -> dict:
    masks = sorted((REPO / "results/masks").glob("*/neurons/*/purchase-*.npz"))
    if not masks:
        raise SystemExit("no neuron masks: run `make run` (or snakemake) first")
    mask = read_mask(masks[0])
    ctx, df = prompts("purchase-car", samples_per_name=2)
    res: dict = {"machine": machine(), "mask": str(masks[0].relative_to(REPO)), "n_prompts": len(df)}
    with peak_rss() as mem:
        t = time.perf_counter()
        model, tok = load_model(prepared_model_dir(), "auto", "auto", 2)
        with pruned(model, mask):
            out = generate_answers(model, tok, df, Sampling(batch_size=50), "eval", ctx.spec())
        sec = time.perf_counter() - t
    res["ours"] = {"seconds": sec, "answers_per_s": len(df) / sec, "peak_rss_mb": mem["peak_mb"],
                   "anomaly_rate": float(out.anomaly.mean())}
    with peak_rss() as mem:
        t = time.perf_counter()
        model, tok = load_model(prepared_model_dir(), "auto", "auto", 2)
        with pruned(model, mask):
            reference_loop(model, tok, df, max_new_tokens=12, temperature=0.6)
        ref = time.perf_counter() - t
    res["reference"] = {"seconds": ref, "answers_per_s": len(df) / ref, "peak_rss_mb": mem["peak_mb"]}
    res["speedup"] = ref / sec
    return res


if __name__ == "__main__":
    save("eval", main())
