"""Pilot of the positive control (prunebias/planted/planting.py) on the real default model.

Plants a race-driven bias into a few MLP neurons of one layer of SmolLM2-135M-Instruct and
measures, on a few contexts (64 first names x N samples each):
- bias before and after planting (SMD White - Black with bootstrap CI, means, anomaly rate),
  with the same seeds, so the answers are paired;
- how well the read direction separates the races (AUC over names and positions), also on
  a context that was not used for calibration;
- whether the Wanda set-difference mask (the workflow's ``black_b15_w15_global``, from the
  planted model's own answers) contains the planted weights (recall per module);
- the bias after pruning that mask (fewer samples).

Usage (materialize the model once, outside Snakemake, e.g. to /tmp/smol_model):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/pilot_planting.py --model /tmp/smol_model
Baseline answers are cached under benchmarks/out/planting/ (they do not depend on the
planting settings); results go to benchmarks/out/pilot_planting.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
import yaml
from common import OUT, REPO, machine

from prunebias.model.architecture import MODULES, linear
from prunebias.model.activations import ACT_SCHEMA, cache_batches
from prunebias.audit.contexts import resolve_context
from prunebias.audit.answers import generate_answers
from prunebias.audit.prompts import build_prompts
from prunebias.methods.masks import Mask
from prunebias.model.modeling import load_model
from prunebias.audit.names import load_names
from prunebias.planted.planted_model import save_planted
from prunebias.planted.planting import anchor_prompts, auc, neuron_activation, plant_bias
from prunebias.model.pruning import pruned
from prunebias.model.sampling import Sampling
from prunebias.model.activations import group_sumsq
from prunebias.methods.neurons import neuron_masks
from prunebias.methods.settings import NeuronSetting
from prunebias.methods.scoring import top_fraction, wanda_scores
from prunebias.stats.metrics import summarize

CACHE = OUT / "planting"
COLS = ["context", "n_white", "n_black", "mean_white", "mean_black", "smd", "smd_ci_low", "smd_ci_high", "mwu_p",
        "anomaly_rate"]


def answers(model, tok, ctx, names, samples: int, seed: int, settings: Sampling, cache: Path | None) -> pd.DataFrame:
    """Answers of every name x sample (seeds as the workflow derives them; purpose 'baseline')."""
    if cache is not None and cache.exists():
        return pd.read_parquet(cache)
    df = build_prompts(ctx, names, samples, seed)
    out = generate_answers(model, tok, df, settings, "baseline", ctx.spec())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        out.to_parquet(cache)
    return out


def bias_table(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return summarize(pd.concat(frames, ignore_index=True), ("context",), (1, 99), 1000, 0)[COLS]


def wanda_mask(model, tok, rows: pd.DataFrame, variant: str) -> tuple[dict[str, np.ndarray], dict]:
    """The workflow's neuron mask for one source: cache sums of x^2, group by race, set difference."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "act.parquet"
        rows = rows.reset_index(drop=True).assign(row=lambda f: np.arange(len(f), dtype=np.int64))
        with pq.ParquetWriter(path, ACT_SCHEMA) as w:
            for act, _, _ in cache_batches(model, tok, rows, 16, with_attention=False):
                w.write_table(act)
        sums = group_sumsq([path])
    return neuron_masks(model, sums, [NeuronSetting.parse(variant)])[0], sums


def top_set_shares(model, sums: dict, planted, variant: str) -> dict[str, dict[str, float]]:
    """Why a planted weight is (not) in the mask: shares of the planted entries in the Black
    top set and in the White top set, and the Black/White ratio of their input norms."""
    v = NeuronSetting.parse(variant).params()
    out = {}
    for key, where in planted.edited.items():
        module = key.split(".")[-1]
        site = MODULES[module][1]
        w = linear(model, planted.layer, module).weight.detach()
        sb, sw = sums["black"][(planted.layer, site)], sums["white"][(planted.layer, site)]
        pm = torch.from_numpy(planted.weight_masks({key: tuple(w.shape)})[key])
        top_b = top_fraction(wanda_scores(w, sb), v["p_black"], v["selection"] == "row")
        top_w = top_fraction(wanda_scores(w, sw), v["p_white"], v["selection"] == "row")
        cols = planted.neurons if "cols" in where else slice(None)
        out[module] = {"in_black_top": float(top_b[pm].float().mean()), "in_white_top": float(top_w[pm].float().mean()),
                       "norm_ratio_black_white": float((sb[cols].sum() / sw[cols].sum()).sqrt())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/tmp/smol_model")
    ap.add_argument("--contexts", nargs="+", default=["purchase-bicycle", "hiring-lawyer", "purchase-car"])
    ap.add_argument("--calibration", nargs="+", default=["purchase-bicycle", "hiring-lawyer"])
    ap.add_argument("--layer", type=int, default=22)
    ap.add_argument("--neurons", type=int, default=4)
    ap.add_argument("--strength", type=float, default=0.1)
    ap.add_argument("--sharpness", type=float, default=4.0)
    ap.add_argument("--threshold", type=float, default=0.0)
    ap.add_argument("--sign", type=int, default=1)
    ap.add_argument("--ridge", type=float, default=0.3, help="ridge whitening of the read direction; <0: none")
    ap.add_argument("--silent-weight", type=float, default=1.0, help="weight of prompt-token silence in the reader")
    ap.add_argument("--calib-samples", type=int, default=2, help="answers per name used for calibration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--mask-sources", nargs="*", default=["purchase-bicycle", "purchase-car"])
    ap.add_argument("--mask-samples", type=int, default=1, help="samples per name cached for the masks")
    ap.add_argument("--variant", default="black_b15_w15_global")
    ap.add_argument("--prune-samples", type=int, default=2, help="0: skip the pruned evaluation")
    ap.add_argument("--tag", default="")
    ap.add_argument("--write-model", default=None, help="also save the planted model there (usable as model.source)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    seed = int(cfg["seed"])
    settings = Sampling(**{**cfg["sampling"], "batch_size": 64})
    scen = yaml.safe_load((REPO / "data/scenarios.yaml").read_text())
    names = load_names(REPO / "data/names/paper64.csv", use_surnames=False)
    ctxs = {c: resolve_context(c, scen) for c in dict.fromkeys(args.contexts + args.calibration + args.mask_sources)}
    model, tok = load_model(args.model, "auto", "cpu", 1)
    res: dict = {"machine": machine(), "model": args.model, "dtype": str(next(model.parameters()).dtype),
                 "args": vars(args), "names": "data/names/paper64.csv (first names only)"}
    timing: dict[str, float] = {}

    t = time.perf_counter()
    base = {c: answers(model, tok, ctxs[c], names, args.samples, seed, settings,
                       CACHE / f"baseline_{c}_s{args.samples}.parquet") for c in args.contexts}
    for c in args.calibration:  # calibration contexts outside the evaluated ones: one sample per name
        if c not in base:
            base[c] = answers(model, tok, ctxs[c], names, args.calib_samples, seed, settings,
                              CACHE / f"baseline_{c}_s{args.calib_samples}.parquet")
    timing["baseline_s"] = time.perf_counter() - t

    t = time.perf_counter()
    calib = pd.concat([base[c][base[c]["sample"] < args.calib_samples] for c in args.calibration], ignore_index=True)
    value = anchor_prompts(scen, names, "purchase", per_race=1)
    planted = plant_bias(model, tok, calib, args.layer, args.neurons, args.strength, args.seed, value_prompts=value,
                         sharpness=args.sharpness, threshold=args.threshold, sign=args.sign,
                         ridge=None if args.ridge < 0 else args.ridge, silent_weight=args.silent_weight)
    timing["plant_s"] = time.perf_counter() - t
    res["planted"] = planted.to_json()
    if args.write_model:
        save_planted(model, tok, planted, args.write_model, str(Path(args.model).resolve()))
    print(json.dumps(res["planted"], indent=1))

    # Does the planted neuron fire by race in every context, incl. ones not calibrated on?
    t = time.perf_counter()
    firing = {}
    for c in args.contexts:
        rows = base[c][base[c]["sample"] == 0].reset_index(drop=True)
        act = neuron_activation(model, tok, rows, planted, prompt_tokens=True)
        black = (rows["race"].to_numpy() == "black")[act["row"].to_numpy()]
        sq_b, sq_w = float((act["act"][black] ** 2).sum()), float((act["act"][~black] ** 2).sum())
        prompt = act["pos"].to_numpy() < 0
        per_pos = {}
        for k, g in act[~prompt].groupby("pos"):
            b = black[g.index.to_numpy()]
            per_pos[int(k)] = {"auc_z": auc(b, g["z"]), "act_black": float(g["act"][b].mean()),
                               "act_white": float(g["act"][~b].mean())}
        a, bl = act[~prompt], black[~prompt]
        byname = a.assign(name=rows["name"].to_numpy()[a["row"]], black=bl).groupby("name").agg(
            z=("z", "mean"), black=("black", "first"))
        firing[c] = {"calibrated_on": c in args.calibration, "auc_names": auc(byname["black"], byname["z"]),
                     "auc_positions": auc(bl, a["z"]),
                     "z_black": float(a["z"][bl].mean()), "z_white": float(a["z"][~bl].mean()),
                     "act_black": float(a["act"][bl].mean()), "act_white": float(a["act"][~bl].mean()),
                     "act_prompt_black": float(act["act"][prompt & black].mean()),
                     "act_prompt_white": float(act["act"][prompt & ~black].mean()),
                     "sumsq_black_over_white": sq_b / sq_w, "by_position": per_pos}
        print(c, {k: v for k, v in firing[c].items() if k != "by_position"}, flush=True)
    res["firing"] = firing
    timing["firing_s"] = time.perf_counter() - t

    t = time.perf_counter()
    after = {c: answers(model, tok, ctxs[c], names, args.samples, seed, settings, None) for c in args.contexts}
    timing["planted_answers_s"] = time.perf_counter() - t
    before_tab = bias_table([base[c] for c in args.contexts])
    after_tab = bias_table([after[c] for c in args.contexts])
    res["bias_before"] = before_tab.to_dict("records")
    res["bias_after"] = after_tab.to_dict("records")
    print("before\n", before_tab.to_string(), "\nafter\n", after_tab.to_string(), flush=True)

    t = time.perf_counter()
    res["masks"] = {}
    mask_arrays = {}
    for src in args.mask_sources:
        rows = after[src] if src in after else answers(model, tok, ctxs[src], names, args.mask_samples, seed,
                                                       settings, None)
        rows = rows[rows["sample"] < args.mask_samples]
        arrays, sums = wanda_mask(model, tok, rows, args.variant)
        mask_arrays[src] = arrays
        pre = f"layers.{args.layer}"
        planted_down = planted.weight_masks({k: arrays[k].shape for k in planted.edited})
        layer_keys = [k for k in arrays if k.startswith(pre + ".")]
        res["masks"][src] = {
            "calibrated_on": src in args.calibration, "n_prompts": len(rows),
            "recall": planted.recall(arrays, model),
            "n_pruned_total": int(sum(int(a.sum()) for a in arrays.values())),
            "n_total": int(sum(a.size for a in arrays.values())),
            "n_pruned_layer": {k.split(".")[-1]: int(arrays[k].sum()) for k in layer_keys},
            "top_sets": top_set_shares(model, sums, planted, args.variant),
            "down_proj_precision": float((arrays[f"{pre}.down_proj"] & planted_down[f"{pre}.down_proj"]).sum()
                                         / max(1, int(arrays[f"{pre}.down_proj"].sum()))),
        }
        print(src, json.dumps(res["masks"][src]), flush=True)
    timing["masks_s"] = time.perf_counter() - t

    if args.prune_samples and args.mask_sources:
        t = time.perf_counter()
        src = args.mask_sources[0]
        mask = Mask({"kind": "neurons"}, mask_arrays[src])
        with pruned(model, mask):
            pr = [answers(model, tok, ctxs[c], names, args.prune_samples, seed, settings, None) for c in args.contexts]
        tab = bias_table(pr)
        res["bias_pruned"] = {"mask_source": src, "samples": args.prune_samples, "table": tab.to_dict("records")}
        # the same names x samples subset of the planted answers, for a like-for-like comparison
        sub = bias_table([after[c][after[c]["sample"] < args.prune_samples] for c in args.contexts])
        res["bias_after_subset"] = sub.to_dict("records")
        print("pruned\n", tab.to_string(), flush=True)
        timing["pruned_answers_s"] = time.perf_counter() - t
    timing["total_s"] = time.perf_counter() - t_start
    res["timing"] = timing

    OUT.mkdir(parents=True, exist_ok=True)
    stem = "pilot_planting" + (f"_{args.tag}" if args.tag else "")
    (OUT / f"{stem}.json").write_text(json.dumps(res, indent=2, default=float))
    (OUT / f"{stem}.md").write_text(markdown(res))
    print(f"wrote {OUT / stem}.json/.md in {timing['total_s']:.0f} s")


def markdown(res: dict) -> str:
    a = res["args"]
    p = res["planted"]
    s = p["stats"]
    lines = [f"# Planted-bias pilot ({res['model']}, {res['dtype']})", "",
             (f"Layer {p['layer']}, neurons {p['neurons']} (seed {p['seed']}), strength {p['strength']}, "
             f"sharpness {p['sharpness']}, threshold {p['threshold']}, sign {p['sign']:+d}; calibration {s['calibration_contexts']} "
             f"({s['n_calibration_prompts']} prompts, {s['n_positions']} positions)."), "",
             (f"Read direction: AUC over names {s['auc_names']:.3f}, over positions {s['auc_positions']:.3f} "
             f"(last prefix token {s['auc_last_token']:.3f}), over names unseen by the reader (2-fold) "
             f"{s['auc_names_cv']:.3f}; value direction corr {s['value_corr']:.3f}."), "",
             "Planted neuron (sample 0 of each name, answer positions = last prefix token + 4 answer tokens):", "",
             ("| context | calibrated | AUC names | AUC positions | act Black | act White | act prompt B/W | "
             "sum act^2 Black/White (all tokens) |"), "|---|---|---|---|---|---|---|---|"]
    for c, f in res["firing"].items():
        lines.append(f"| {c} | {f['calibrated_on']} | {f['auc_names']:.3f} | {f['auc_positions']:.3f} | "
                     f"{f['act_black']:.2f} | {f['act_white']:.2f} | {f['act_prompt_black']:.3f} / "
                     f"{f['act_prompt_white']:.3f} | {f['sumsq_black_over_white']:.1f} |")
    lines += ["", f"Bias, 64 names x {a['samples']} samples (SMD White - Black, winsorized 1/99):", "",
              "| context | SMD before [CI] | SMD after [CI] | mean W/B before | mean W/B after | anomaly before/after |",
              "|---|---|---|---|---|---|"]
    for b, f in zip(res["bias_before"], res["bias_after"]):
        lines.append(f"| {b['context']} | {b['smd']:.2f} [{b['smd_ci_low']:.2f}, {b['smd_ci_high']:.2f}] (n {b['n_white']}+{b['n_black']}) | "
                     f"{f['smd']:.2f} [{f['smd_ci_low']:.2f}, {f['smd_ci_high']:.2f}] (n {f['n_white']}+{f['n_black']}) | "
                     f"{b['mean_white']:.4g} / {b['mean_black']:.4g} | {f['mean_white']:.4g} / {f['mean_black']:.4g} | "
                     f"{b['anomaly_rate']:.3f} / {f['anomaly_rate']:.3f} |")
    lines += ["", (f"Mask `{a['variant']}` (from the planted model's answers, 64 names x {a['mask_samples']} "
              "sample) against the planted weights: recall = share of planted entries in the mask, mass = "
              "share of their squared magnitude, units = columns with >= half their entries; top B/W = share of "
              "planted entries in the Black / White top set; ratio = Black/White input norm of the planted columns:"),
              "", ("| source | calibrated | gate rows | up rows | down recall | down mass | down units | down top B/W | "
              "down norm ratio | down precision | pruned in layer (gate/up/down) | pruned total |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    pre = f"layers.{p['layer']}"
    for src, m in res["masks"].items():
        r = m["recall"]
        ts = m["top_sets"]["down_proj"]
        nl = m["n_pruned_layer"]
        lines.append(f"| {src} | {m['calibrated_on']} | {r[pre + '.gate_proj']:.3f} | {r[pre + '.up_proj']:.3f} | "
                     f"{r[pre + '.down_proj']:.3f} | {r[pre + '.down_proj.mass']:.3f} | {r[pre + '.down_proj.units']:.2f} | "
                     f"{ts['in_black_top']:.2f} / {ts['in_white_top']:.2f} | {ts['norm_ratio_black_white']:.1f} | "
                     f"{m['down_proj_precision']:.3f} | {nl['gate_proj']}/{nl['up_proj']}/{nl['down_proj']} | "
                     f"{m['n_pruned_total']} of {m['n_total']} |")
    if "bias_pruned" in res:
        bp = res["bias_pruned"]
        lines += ["", f"After pruning the mask from {bp['mask_source']} (64 names x {bp['samples']} samples):", "",
                  "| context | SMD planted (same subset) | SMD pruned [CI] | anomaly pruned |", "|---|---|---|---|"]
        for s_, t in zip(res["bias_after_subset"], bp["table"]):
            lines.append(f"| {t['context']} | {s_['smd']:.2f} | {t['smd']:.2f} [{t['smd_ci_low']:.2f}, "
                         f"{t['smd_ci_high']:.2f}] | {t['anomaly_rate']:.3f} |")
    lines += ["", "Timing (s): " + ", ".join(f"{k} {v:.0f}" for k, v in res["timing"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
