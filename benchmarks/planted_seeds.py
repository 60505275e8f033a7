"""Is the ground truth robust over seeds? (issue 23, item 7)

Runs the real workflow (Snakemake, the shipped Snakefile and rules) on the default design
once per seed, each in its own folder, and reports how often

(a) each plant is detected: the baseline's log_smd CI excludes 0 in the plant's contexts;
(b) each plant's Wanda mask removes it at home: the paired change of the effect toward 0
    (along the baseline bias, ``delta_toward_zero``) on the context the mask was learned
    on has a CI below 0;
(c) the Wanda mask beats its matched random controls there: real minus random below 0
    (the CI's upper end; the point estimate's rate beside it);
(d) the general plant's mask transfers: the change toward 0 on the other context has a
    CI below 0;
(e) the context plant's mask shows no effect where there is no bias: outside its contexts
    the baseline shows no bias (CI covers 0) and the paired change of the effect covers 0.

A seed is the config's ``seed``: it draws the name split (which names learn the masks and
which are held out) and every sampling seed (baseline, caches, evaluation, controls). The
plants themselves (their neurons and strength) keep their own seed, so each run plants the
same mechanism, calibrated on that seed's baseline.

Only the jobs the Wanda rows need are run (``--config`` drops the head and attribution
masks, the side effects and the report): each evaluation answers with its prompts' own
seeds, so a Wanda row is the same number it is in a full default run of that seed.
The prepared default model is hard-linked into each seed's folder (it does not depend on
the seed). Each seed's folder is kept; a rerun resumes where it stopped.

    .venv/bin/python benchmarks/planted_seeds.py [--seeds 10] [--first 20250211] [--reaggregate]

Writes benchmarks/out/planted_seeds/{rows.csv, rates.csv, rates.md}.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from common import OUT, REPO
from prunebias.export import _ci  # "value [low, high]" of a table row, as the model card writes it

WANDA = "black_b15_w15_global"
# the benchmark needs only the Wanda masks, their controls and the tables of both plants
ONLY_WANDA = {
    "localization": {"heads": {"k": [], "setdiff": [], "greedy": []},
                     "attribution": {"mlp_neurons": False, "neurons": False, "heads": [], "patch_heads": [],
                                     "faithfulness_heads": 0, "faithfulness_neurons": 0}},
    "side_effects": {"tasks": [], "masks": []},
    "export": [],
}


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def plants(cfg: dict) -> dict[str, dict]:
    return {m["name"]: m["plant"] for m in cfg["models"] if "plant" in m}


def run_seed(seed: int, folder: Path, cfg: dict, cores: int, reaggregate: bool = False) -> float:
    """Run the Wanda part of the default design with ``seed`` in ``folder``; seconds taken.

    ``reaggregate``: the seed's jobs ran before a change to the statistics only; rerun the
    two tables (baseline_bias, transfer) with the current code and keep every answer."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = merged(cfg, ONLY_WANDA)
    conf["seed"] = seed
    (folder / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
    base = next(m["name"] for m in cfg["models"] if "plant" not in m)
    prepared = REPO / "results" / "model" / base
    target = folder / "results" / "model" / base
    if prepared.exists() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(prepared, target, copy_function=lambda s, d: Path(d).hardlink_to(s))
    outputs = [f"results/tables/{m}/{t}.csv" for m in plants(cfg)
               for t in ("baseline_bias", "transfer", "planted_recall")]
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "--directory", str(folder),
           "--configfile", str(folder / "config.yaml"), "--cores", str(cores), "--rerun-incomplete", *outputs]
    if reaggregate:
        cmd += ["--rerun-triggers", "mtime", "--forcerun", "summarize_baseline", "aggregate_transfer"]
    t0 = time.perf_counter()
    with open(folder / "snakemake.log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0


def verdicts(seed: int, folder: Path, cfg: dict) -> list[dict]:
    """One row per (plant, check) of one seed's tables."""
    rows = []
    contexts = cfg["contexts"]
    for name, plant in plants(cfg).items():
        homes = contexts if plant["scope"] == "general" else plant["contexts"]
        bias = pd.read_csv(folder / "results" / "tables" / name / "baseline_bias.csv").set_index("context")
        tr = pd.read_csv(folder / "results" / "tables" / name / "transfer.csv")
        tr = tr[(tr["kind"] == "neurons") & (tr["setting"] == WANDA)].set_index(["source", "target"])

        def add(check: str, where: str, ok: bool, value: str) -> None:
            rows.append({"seed": seed, "plant": name, "scope": plant["scope"], "check": check, "where": where,
                         "ok": bool(ok), "value": value})

        for c in contexts:
            lo, hi, est = (bias.loc[c, f"log_smd{s}"] for s in ("_ci_low", "_ci_high", ""))
            shown = lo > 0 or hi < 0
            if c in homes:
                add("a detected", c, shown, f"{est:.2f} [{lo:.2f}, {hi:.2f}]")
        recall = pd.read_csv(folder / "results" / "tables" / name / "planted_recall.csv")
        recall = recall[recall["setting"] == WANDA].set_index("source")
        for h in homes:
            r = tr.loc[(h, h)]
            add("b removed at home", f"{h}->{h}", r["delta_toward_zero_ci_high"] < 0,
                f"{_ci(r, 'delta_toward_zero')}; pruned {_ci(r, 'effect_pruned')}; the mask holds "
                f"{recall.loc[h, 'recall_down_mass']:.2f} of the planted down_proj mass")
            add("c real beats random (CI)", f"{h}->{h}", r["delta_vs_random_ci_high"] < 0,
                f"{_ci(r, 'delta_vs_random')}, {int(r['controls_broken'])} of {int(r['control_draws'])} draws broken")
            add("c' real beats random (estimate)", f"{h}->{h}", r["delta_vs_random"] < 0, f"{r['delta_vs_random']:.2f}")
        for s in contexts:
            for t in contexts:
                if s == t:
                    continue
                r = tr.loc[(s, t)]
                if plant["scope"] == "general":
                    add("d transfers", f"{s}->{t}", r["delta_toward_zero_ci_high"] < 0,
                        f"{_ci(r, 'delta_toward_zero')}; pruned {_ci(r, 'effect_pruned')}")
                elif s in homes and t not in homes:
                    lo, hi = bias.loc[t, "log_smd_ci_low"], bias.loc[t, "log_smd_ci_high"]
                    no_bias = lo <= 0 <= hi
                    no_effect = r["delta_ci_low"] <= 0 <= r["delta_ci_high"]
                    add("e contained", f"{s}->{t}", no_bias and no_effect,
                        f"baseline {bias.loc[t, 'log_smd']:.2f} [{lo:.2f}, {hi:.2f}]; change {r['delta']:.2f} "
                        f"[{r['delta_ci_low']:.2f}, {r['delta_ci_high']:.2f}]")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first", type=int, default=20250211, help="seeds first, first+1, ... (the default's seed first)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT / "planted_seeds")
    ap.add_argument("--reaggregate", action="store_true",
                    help="seeds already run: recompute only their tables with the current statistics code")
    args = ap.parse_args()
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    rows = []
    for seed in range(args.first, args.first + args.seeds):
        folder = args.out / f"seed{seed}"
        took = run_seed(seed, folder, cfg, args.cores, args.reaggregate)
        rows += verdicts(seed, folder, cfg)
        print(f"seed {seed}: {took:.0f} s", flush=True)
        table = pd.DataFrame(rows)
        table.to_csv(args.out / "rows.csv", index=False)
        rates = (table.groupby(["plant", "check", "where"], sort=False)["ok"]
                 .agg(passed="sum", seeds="count").reset_index())
        rates.to_csv(args.out / "rates.csv", index=False)
        (args.out / "rates.md").write_text(
            "| plant | check | where | seeds passed |\n|---|---|---|---|\n"
            + "".join(f"| {r.plant} | {r.check} | {r.where} | {r.passed} of {r.seeds} |\n" for r in rates.itertuples()))
    print((args.out / "rates.md").read_text())


if __name__ == "__main__":
    main()
