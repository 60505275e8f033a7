"""bf16 against fp32 on the CPU: speed, and whether the bias metrics agree within their CIs.

Generates the same prompts (same seeds) in both precisions for a few contexts and
compares the SMD with its bootstrap CI.
"""

from __future__ import annotations

import argparse
import time

from common import machine, prepared_model_dir, prompts, save

from prunebias.audit.answers import generate_answers
from prunebias.stats.metrics import bias_summary
from prunebias.model.modeling import load_model
from prunebias.model.sampling import Sampling


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples-per-name", type=int, default=5)
    ap.add_argument("--contexts", nargs="+", default=["purchase-bicycle", "purchase-laptop"])
    args = ap.parse_args()
    res: dict = {"machine": machine(), "contexts": {}}
    for dtype in ("float32", "bfloat16"):
        model, tok = load_model(prepared_model_dir(), dtype, "cpu", 2)
        for c in args.contexts:
            ctx, df = prompts(c, samples_per_name=args.samples_per_name)
            t = time.perf_counter()
            out = generate_answers(model, tok, df, Sampling(batch_size=50), "baseline", ctx.spec())
            sec = time.perf_counter() - t
            ok = out[~out.anomaly]
            s = bias_summary(ok[ok.race == "white"].outcome.to_numpy(), ok[ok.race == "black"].outcome.to_numpy(),
                             int((out.race == "white").sum()), int((out.race == "black").sum()), n_boot=1000)
            res["contexts"].setdefault(c, {})[dtype] = {
                "seconds": sec, "answers_per_s": len(out) / sec, "smd": s["smd"],
                "smd_ci": [s["smd_ci_low"], s["smd_ci_high"]], "anomaly_rate": s["anomaly_rate"]}
    for d in res["contexts"].values():
        f, b = d["float32"], d["bfloat16"]
        d["bf16_smd_inside_fp32_ci"] = f["smd_ci"][0] <= b["smd"] <= f["smd_ci"][1]
        d["fp32_smd_inside_bf16_ci"] = b["smd_ci"][0] <= f["smd"] <= b["smd_ci"][1]
        d["bf16_speedup"] = f["seconds"] / b["seconds"]
    return res


if __name__ == "__main__":
    save("precision", main())
