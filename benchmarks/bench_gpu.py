"""Throughput of every model stage on one device, and what the paper's design costs at it.

Measures, with the workflow's own functions on real prompts: model loading; generation
(answers per second at the given batch); the activation and head cache (prompts per
second); Wanda scoring of the neuron masks; a pruned evaluation (answers per second with
a mask applied); gradient attribution (seconds per prompt). Then it reads the job
counts of a design from a dry-run of its config (``--design``, default
``config/paper.yaml``; no weights needed) and prints the device hours that design would
take at these rates: the figures the README's cost estimate needs.

Usage (``benchmarks/gpu_check.sh`` wraps it on a GPU node):
    .venv/bin/python benchmarks/bench_gpu.py --model results/model/NAME --device cuda
Small smoke run on a CPU: --device cpu --prompts 16 --batch 8 --attr-prompts 4
"""

from __future__ import annotations

import argparse
import math
import re
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml
from common import REPO, machine, peak_rss, prepared_model_dir, prompts, save

from prunebias.model.activations import add_sumsq, cache_batches
from prunebias.audit.answers import generate_answers
from prunebias.methods.attribution import weight_attribution
from prunebias.methods.masks import Mask
from prunebias.model.modeling import load_model
from prunebias.methods.neurons import neuron_masks
from prunebias.methods.objective import answer_grid
from prunebias.methods.settings import NeuronSetting
from prunebias.model.pruning import pruned
from prunebias.model.sampling import Sampling


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn):
    """(result, seconds) of ``fn()`` with the device's queue drained on both ends."""
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def design_counts(configfile: Path) -> dict[str, int]:
    """Job counts (Snakemake's dry-run job table) and answer counts of a design's config."""
    from prunebias.audit.contexts import resolve_all
    from prunebias.audit.names import load_names

    cfg = yaml.safe_load(configfile.read_text())
    default = yaml.safe_load((REPO / "config/config.yaml").read_text())
    merged = {**default, **cfg}
    contexts = resolve_all(merged, REPO / merged["scenarios_file"], REPO / merged["context_sets_file"])
    names = load_names(REPO / merged["names_file"], merged.get("use_surnames", False))
    snakemake = str(Path(sys.executable).parent / "snakemake")
    with tempfile.TemporaryDirectory() as work:  # plan only: nothing written into the checkout
        dry = subprocess.run([snakemake, "-s", str(REPO / "Snakefile"), "-n", "--configfile", str(configfile.resolve()),
                              "--directory", work], cwd=REPO, capture_output=True, text=True)
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", dry.stdout + dry.stderr, re.M)}
    # one evaluation job per (mask source, target): its outputs name the masks it applies
    outputs = re.search(r"rule evaluate_pruned:\n(?:    .*\n)*?    output: ([^\n]+)", dry.stdout + dry.stderr)
    if "evaluate_pruned" not in jobs or outputs is None:
        raise SystemExit(f"the dry-run of {configfile} planned no evaluation:\n{dry.stderr[-2000:]}")
    answers = [o for o in outputs.group(1).split(", ") if o.endswith(".parquet")]
    real_masks = sum("/random_" not in o for o in answers)
    ev = {**default["evaluation"], **cfg.get("evaluation", {})}
    loc = {**default["localization"], **cfg.get("localization", {})}
    # a name split evaluates the held-out half; cross-fitting (the default with it) every name
    eval_names = len(names) // 2 if loc.get("name_split", True) and not loc.get("cross_fit", True) else len(names)
    per_name = merged["samples_per_name"]
    cached = min(per_name, loc["max_samples_per_name"] or per_name)
    return {"contexts": len(contexts), "names": len(names), "baseline_answers": len(contexts) * len(names) * per_name,
            "cached_prompts": len(contexts) * len(names) * cached, "evaluate_jobs": jobs["evaluate_pruned"],
            "real_masks_per_eval_job": real_masks, "answers_per_mask_and_target": eval_names * ev["samples_per_name"],
            "draws": ev["random_draws"] if ev["random_controls"] else 0,
            "model_jobs": sum(n for rule, n in jobs.items() if rule in MODEL_RULES)}


MODEL_RULES = {"generate_baseline", "cache_activations", "score_neurons", "score_heads", "score_heads_greedy",
               "draw_controls", "evaluate_pruned", "evaluate_reference", "plant_model",
               "measure_mask_stability", "score_attribution"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="a materialized model dir (default: the default model)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--batch", type=int, default=512, help="generation batch")
    ap.add_argument("--prompts", type=int, default=1024, help="prompts generated, cached and evaluated")
    ap.add_argument("--cache-batch", type=int, default=32)
    ap.add_argument("--attr-prompts", type=int, default=16)
    ap.add_argument("--design", type=Path, default=REPO / "config/paper.yaml")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/out/gpu_check.json)")
    args = ap.parse_args()

    model_dir = args.model or prepared_model_dir()
    res: dict = {"machine": machine(), "model": str(model_dir), "batch": args.batch}
    with peak_rss() as host:
        (model, tok), load_s = timed("cpu", lambda: load_model(model_dir, args.dtype, args.device,
                                                               torch.get_num_threads()))
        device = str(next(model.parameters()).device)
        attn = model.config._attn_implementation
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        ctx, df = prompts("purchase-car", samples_per_name=max(1, math.ceil(args.prompts / 40)))
        half = math.ceil(args.prompts / 2)  # both races: the scores need each
        df = pd.concat([df[df.race == r].head(half) for r in ("white", "black")], ignore_index=True)
        settings = Sampling(batch_size=args.batch)
        answers, gen_s = timed(device, lambda: generate_answers(model, tok, df, settings, "baseline", ctx.spec()))
        rows = answers.assign(row=range(len(answers)))  # the cache's prompt index, as cache_activations numbers it

        def cache():  # the cache job loads the model with eager attention (attention weights for the heads)
            model.set_attn_implementation("eager")
            sums: dict = {"white": {}, "black": {}}
            for act, _head, _ in cache_batches(model, tok, rows, args.cache_batch):
                add_sumsq(sums, act.to_pandas())
            return sums
        sums, cache_s = timed(device, cache)
        model.set_attn_implementation(attn)  # evaluation and attribution as their jobs load it
        setting = NeuronSetting("black", 40, 35)
        arrays, score_s = timed(device, lambda: neuron_masks(model, sums, [setting])[0])
        mask = Mask({"kind": "neurons"}, arrays)

        def evaluate():
            with pruned(model, mask):
                return generate_answers(model, tok, df, settings, "eval", ctx.spec())
        _, eval_s = timed(device, evaluate)
        grid = answer_grid(*ctx.range, 12)
        attr_rows = pd.concat([df[df.race == r].head(max(1, args.attr_prompts // 2)) for r in ("white", "black")],
                              ignore_index=True)
        _, attr_s = timed(device, lambda: weight_attribution(model, tok, attr_rows, grid, 8, log_value=True))
    n = len(df)
    res.update({
        "device": device, "load_s": round(load_s, 1), "prompts": n,
        "generation_answers_per_s": round(n / gen_s, 1), "cache_prompts_per_s": round(n / cache_s, 1),
        "wanda_scoring_s": round(score_s, 1), "eval_answers_per_s": round(n / eval_s, 1),
        "attribution_s_per_prompt": round(attr_s / len(attr_rows), 2), "peak_host_mb": round(host["peak_mb"]),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else None,
    })
    d = design_counts(args.design)
    eval_answers = d["real_masks_per_eval_job"] * d["answers_per_mask_and_target"]
    hours = {
        "baseline": d["baseline_answers"] / res["generation_answers_per_s"] / 3600,
        "cache": d["cached_prompts"] / res["cache_prompts_per_s"] / 3600,
        # each (source, target) job answers with every real mask of its source and each of its control draws
        "evaluation": d["evaluate_jobs"] * eval_answers * (1 + d["draws"]) / res["eval_answers_per_s"] / 3600,
        "model_loading": d["model_jobs"] * load_s / 3600,
    }
    res["design"] = {"config": str(args.design), **d, "device_hours": {k: round(v, 3) for k, v in hours.items()},
                     "device_hours_total": round(sum(hours.values()), 3)}
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))
    else:
        save("gpu_check" if device.startswith("cuda") else "device_check_cpu", res)
    print(f"\n{args.design.name} on {device}: about {res['design']['device_hours_total']} device hours "
          f"({', '.join(f'{k} {v:.1f}' for k, v in hours.items())}), {d['model_jobs']} model jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
