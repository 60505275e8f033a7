"""Generation: our batched, seeded sampler against one prompt per `generate` call.

Same model, same prompts (40 names x N samples of one context), same temperature and
max_new_tokens, same dtype. Prints answers/s, tokens/s, peak RSS and the speed-up;
then checks determinism (two runs, same seeds) and batch-size independence (batch 1 vs
the configured batch: identical answers) and a distribution check across seeds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import machine, peak_rss, prepared_model_dir, prompts, save

from prunebias.audit.answers import generate_answers
from prunebias.model.modeling import chat_text, load_model
from prunebias.model.sampling import Sampling


def reference_loop(model, tok, df, max_new_tokens: int, temperature: float) -> tuple[list[str], int]:
    """The authors' pattern: one prompt per generate call, no batching, no early stop."""
    answers, n_tokens = [], 0
    torch.manual_seed(0)
    for p, a in zip(df["prompt"], df["answer_prefix"]):
        enc = tok(chat_text(tok, p, a), return_tensors="pt", add_special_tokens=False)
        out = model.generate(**enc, do_sample=True, temperature=temperature, max_new_tokens=max_new_tokens,
                             pad_token_id=tok.pad_token_id)
        new = out[0, enc.input_ids.shape[1]:]
        n_tokens += int(new.numel())
        answers.append(tok.decode(new, skip_special_tokens=True))
    return answers, n_tokens


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples-per-name", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model, tok = load_model(prepared_model_dir(), args.dtype, "auto", args.threads)
    ctx, df = prompts(samples_per_name=args.samples_per_name)
    spec = ctx.spec()
    res: dict = {"machine": machine(), "n_prompts": len(df), "dtype": str(next(model.parameters()).dtype),
                 "max_new_tokens": args.max_new_tokens}

    with peak_rss() as mem:
        t = time.perf_counter()
        _, ref_tokens = reference_loop(model, tok, df, args.max_new_tokens, 0.6)
        ref_s = time.perf_counter() - t
    res["reference"] = {"seconds": ref_s, "answers_per_s": len(df) / ref_s, "tokens_per_s": ref_tokens / ref_s,
                        "peak_rss_mb": mem["peak_mb"]}
    for early in (False, True):
        s = Sampling(temperature=0.6, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                     stop_after_number=early)
        with peak_rss() as mem:
            t = time.perf_counter()
            out = generate_answers(model, tok, df, s, "bench", spec)
            sec = time.perf_counter() - t
        key = "ours_early_stop" if early else "ours_full_length"
        res[key] = {"seconds": sec, "answers_per_s": len(df) / sec, "tokens_per_s": int(out.n_tokens.sum()) / sec,
                    "peak_rss_mb": mem["peak_mb"], "speedup_vs_reference": ref_s / sec}
    s = Sampling(temperature=0.6, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    a = generate_answers(model, tok, df, s, "bench", spec)
    b = generate_answers(model, tok, df, s, "bench", spec)
    one = generate_answers(model, tok, df, Sampling(temperature=0.6, max_new_tokens=args.max_new_tokens,
                                                    batch_size=1), "bench", spec)
    other_seeds = generate_answers(model, tok, df, s, "bench-other-seeds", spec)
    res["determinism_identical_fraction"] = float((a.response == b.response).mean())
    res["batch1_vs_batchN_identical_fraction"] = float((a.response == one.response).mean())
    from scipy.stats import mannwhitneyu

    va, vo = a.value.dropna().to_numpy(), other_seeds.value.dropna().to_numpy()
    res["batch1_vs_batchN_mwu_p"] = float(mannwhitneyu(a.value.dropna(), one.value.dropna()).pvalue)
    res["seed_sets_mwu_p"] = float(mannwhitneyu(va, vo).pvalue)
    res["median_value"] = float(np.median(va)) if va.size else float("nan")
    return res


if __name__ == "__main__":
    save("generation", main())
