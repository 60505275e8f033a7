"""Which random control stays comparable to a Wanda set-difference mask? (issue 23, item 4)

On the masks, reference answers and real-mask answers of a finished default run, draws
matched controls of four kinds for every neuron mask, evaluates them on the same held-out
prompts and seeds as the reference (paired) and writes, per (model, source, target,
candidate): the real mask's paired change of |effect|, the controls' mean change, real minus
random with its name-bootstrap CI, and each one's perplexity and anomaly rate.

Candidates (each draw has the real mask's count in every weight matrix; ``prunebias.methods.controls``):

- ``band``: the source group's top p% minus the real mask (today's control; it is the
  intersection of both groups' top p%, the weights a set difference keeps out);
- ``reverse``: the reverse-direction set difference (White top p% minus Black top p%);
- ``null``: a set difference between two race-blind halves of the learning names (each
  half holds half of each race), a fresh split per draw;
- ``next``: the source group's top 2p% minus its top p%, without the other group's top p%.

The criterion, fixed before looking at real minus random: a control is comparable when it
damages the model as much as the real mask does (perplexity on the neutral text and anomaly
rate close to the real mask's), because real minus random should measure bias, not damage.

    python benchmarks/compare_controls.py RUN_DIR [--models planted-general planted-hiring] [--draws 3]

RUN_DIR is a project folder whose ``results/`` holds a finished run of that folder's config.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from common import OUT, REPO  # noqa: F401  (puts the repo on sys.path)

from prunebias.model.activations import group_sumsq, names_filter
from prunebias.audit.contexts import resolve_all
from prunebias.methods.controls import matched_neuron_control, next_band
from prunebias.methods.scoring import set_difference_mask, top_fraction, wanda_scores
from prunebias.model.evaluation import eval_prompts, evaluate
from prunebias.files import read_parquet
from prunebias.methods.masks import Mask, read_mask
from prunebias.model.modeling import load_model
from prunebias.methods.settings import NeuronSetting
from prunebias.model.architecture import MODULES, linear
from prunebias.model.sampling import Sampling
from prunebias.stats.transfer import transfer_row

CANDIDATES = ("band", "reverse", "null", "next")


def old_band(w, s_src, p_src, per_row):
    """The control band before issue 23: the source group's top p% (minus the real mask at the draw)."""
    return top_fraction(wanda_scores(w, s_src), p_src, per_row).cpu().numpy()


def reverse_band(w, s_src, s_oth, p_src, p_oth, per_row):
    """The reverse-direction set difference: the other group's top p% minus the source's."""
    return set_difference_mask(w, s_oth, s_src, p_oth, p_src, per_row).cpu().numpy()


def null_band(w, s_a, s_b, p_a, p_b, per_row):
    """A set difference between two race-blind halves of the learning names."""
    return set_difference_mask(w, s_a, s_b, p_a, p_b, per_row).cpu().numpy()


def halves(names: pd.DataFrame, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Two race-blind halves of the names: each half gets a random half of each race."""
    a, b = [], []
    for _, g in names.groupby("race"):
        picked = rng.permutation(g["name"].to_numpy())
        a += list(picked[: len(picked) // 2])
        b += list(picked[len(picked) // 2:])
    return a, b


def total(sums: dict[str, dict]) -> dict:
    return {k: sums["white"][k] + sums["black"][k] for k in sums["white"]}


def control_masks(model, real: Mask, setting: NeuronSetting, sums: dict, cache: str, names: pd.DataFrame,
                  candidate: str, draws: int, seed: int) -> tuple[list[Mask], float]:
    """``draws`` controls of one candidate, and the share of their weights that came from the
    fallback (outside the candidate's band, because the band was too small)."""
    src = setting.direction
    oth = "white" if src == "black" else "black"
    p_src = setting.p_black if src == "black" else setting.p_white
    p_oth = setting.p_white if src == "black" else setting.p_black
    per_row = setting.selection == "row"
    out, fallback, n_all = [], 0, 0
    bands: dict[str, np.ndarray] = {}  # a band is the same for every draw (but null's halves)
    for d in range(draws):
        rng = np.random.default_rng([seed, CANDIDATES.index(candidate), d])
        if candidate == "null":
            a, b = halves(names, rng)
            sa, sb = total(group_sumsq([cache], names_filter(a))), total(group_sumsq([cache], names_filter(b)))
        arrays = {}
        for key in sorted(k for k in real.arrays if k != "scores"):
            band = bands.get(key)
            if band is None:
                _, layer, module = key.split(".")
                site = (int(layer), MODULES[module][1])
                w = linear(model, int(layer), module).weight.detach().float()
                if candidate == "band":
                    band = old_band(w, sums[src][site], p_src, per_row)
                elif candidate == "reverse":
                    band = reverse_band(w, sums[src][site], sums[oth][site], p_src, p_oth, per_row)
                elif candidate == "null":
                    band = null_band(w, sa[site], sb[site], p_src, p_oth, per_row)
                else:
                    band = next_band(w, sums[src][site], sums[oth][site], p_src, p_oth, per_row)
                if candidate != "null":
                    bands[key] = band
            arrays[key] = matched_neuron_control(real.arrays[key], band, per_row, rng)
            fallback += int((arrays[key] & ~band).sum())
            n_all += int(arrays[key].sum())
        out.append(Mask({"kind": "neurons", "n_pruned": sum(int(a.sum()) for a in arrays.values())}, arrays))
    return out, fallback / max(n_all, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--models", nargs="+", default=["planted-general", "planted-hiring", "smollm2-135m-instruct"])
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    ap.add_argument("--out", type=Path, default=OUT / "compare_controls.csv")
    args = ap.parse_args()
    root = args.run_dir.resolve()
    res = root / "results"
    cfg = yaml.safe_load((root / "config/config.yaml").read_text())
    contexts = resolve_all(cfg, root / cfg["scenarios_file"], root / cfg["context_sets_file"])
    specs = {n: c.spec() for n, c in contexts.items()}
    ev = cfg["evaluation"]
    text = (root / ev["perplexity_text"]).read_text()
    rows = []
    for model_name in args.models:
        model, tok = load_model(res / "model" / model_name, "auto", "auto", 2)
        dtype = str(next(model.parameters()).dtype)
        targets, baselines = {}, {}
        for t in specs:
            ref = read_parquet(res / "eval" / model_name / "reference" / f"{t}.parquet")
            prompts = read_parquet(res / "prompts" / f"{t}.parquet")
            targets[t] = eval_prompts(prompts, ev["samples_per_name"], sorted(set(ref["name"])))
            baselines[t] = read_parquet(res / "baseline" / model_name / f"{t}.parquet")
        for mask_path in sorted((res / "masks" / model_name / "neurons").glob("*/*.npz")):
            setting_name, source = mask_path.parent.name, mask_path.stem
            if source not in specs:
                continue  # pools: not in this comparison
            real = read_mask(mask_path)
            m = real.meta["method"]
            setting = NeuronSetting(m["direction"], m["p_black"], m["p_white"], m["selection"])
            cache = str(res / "activations" / model_name / f"{source}.parquet")
            learn = real.meta["learn_names"]
            sums = group_sumsq([cache], names_filter(learn))
            names = read_parquet(res / "prompts" / f"{source}.parquet")[["name", "race"]].drop_duplicates()
            names = names[names["name"].isin(learn)]
            for cand in args.candidates:
                t0 = time.perf_counter()
                masks, fb = control_masks(model, real, setting, sums, cache, names, cand, args.draws, 20231)
                answers, infos = evaluate(model, tok, masks, ev["head_ablation"], targets, specs,
                                          Sampling(**cfg["sampling"]), text, ev["perplexity_max_tokens"])
                for t in specs:
                    base = res / "eval" / model_name
                    ref = read_parquet(base / "reference" / f"{t}.parquet")
                    real_ans = read_parquet(base / "neurons" / setting_name / source / f"{t}.parquet")
                    info = {"reference": json.loads((base / "reference" / f"{t}.json").read_text())["draws"],
                            "real": json.loads((base / "neurons" / setting_name / source / f"{t}.json").read_text())["draws"],
                            "control": infos}
                    ctrls = [g for _, g in answers[t].groupby("draw", sort=True)]
                    row, crs = transfer_row("neurons", setting_name, source, t, baselines[t], ref, real_ans, ctrls,
                                            info, "same_context", cfg["analysis"]["winsorize"], cfg["analysis"]["effect"],
                                            cfg["analysis"]["n_boot"], cfg["seed"], tuple(ev["inlier_percentiles"]))
                    rows.append({
                        "model": model_name, "dtype": dtype, "setting": setting_name, "source": source, "target": t,
                        "candidate": cand, "draws": len(crs), "broken": row["controls_broken"],
                        "fallback_share": round(fb, 4),
                        "real_delta_abs": row["delta_abs"], "real_delta_abs_ci": (row["delta_abs_ci_low"],
                                                                                  row["delta_abs_ci_high"]),
                        "control_delta_abs": np.mean([c["delta_abs"] for c in crs]),
                        "real_minus_random": row["delta_vs_random"],
                        "real_minus_random_ci": (row["delta_vs_random_ci_low"], row["delta_vs_random_ci_high"]),
                        "perplexity_ref": row["perplexity_ref"], "perplexity_real": row["perplexity_pruned"],
                        "perplexity_control": np.mean([c["perplexity"] for c in crs]),
                        "anomaly_ref": row["anomaly_rate_ref"], "anomaly_real": row["anomaly_rate_pruned"],
                        "anomaly_control": np.mean([c["anomaly_rate"] for c in crs]),
                    })
                    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
                print(f"  {model_name} {source} {cand}: {time.perf_counter() - t0:.0f} s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
