"""Does race-direction editing remove the planted biases as the Wanda mask does, over seeds?
(issue 25, item 4: the comparison as a rate, not one run)

Runs the default design of config/config.yaml (both plants, two contexts, cross-fitted,
4 answers per held-out name, the default's control draws) through the real workflow once
per seed, with the default run's two methods: the Wanda mask (``black_b15_w15_global``)
and the race direction (``resid_d95_answer``, random directions as controls). Head and
attribution masks, side effects and exports are left out, as in planted_seeds.py: they do
not change these rows. Each method's rows are judged by planted_seeds.py's checks:
(a) detected, (b) removed at home, (c) real beats random, (d) the general plant's mask
transfers, (e) the context plant's mask shows no effect where there is no bias.

    .venv/bin/python benchmarks/method_seeds.py [--seeds 10] [--first 20250211] [--no-run]

Writes benchmarks/out/method_seeds/{rows.csv, rates.md, means.csv, means.md}: the seeds
passed per check and method, and per method and row the mean over seeds of the change
toward 0 (signed change where there is no bias), of real - random and of the perplexity
of the edited model and of its controls.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml

from common import OUT, REPO
from planted_seeds import ONLY_WANDA, WANDA, plants, run_seed, verdicts

METHODS = {"Wanda": ("neurons", WANDA), "direction": ("directions", "resid_d95_answer")}
# the default run's methods only: planted_seeds.py's exclusions without its "no directions"
DEFAULT_METHODS = {**ONLY_WANDA, "localization": {k: v for k, v in ONLY_WANDA["localization"].items()
                                                 if k != "directions"}}


def means(folder: Path, seed: int, cfg: dict) -> list[dict]:
    """Per plant, method and (source, target): the row's estimates (for means over seeds)."""
    out = []
    for plant in plants(cfg):
        t = pd.read_csv(folder / "results" / "tables" / plant / "transfer.csv")
        for label, (kind, setting) in METHODS.items():
            for r in t[(t["kind"] == kind) & (t["setting"] == setting)].itertuples():
                out.append({"seed": seed, "plant": plant, "method": label, "where": f"{r.source}->{r.target}",
                            "change": r.delta_toward_zero if r.bias_to_remove else r.delta,
                            "estimand": "toward 0" if r.bias_to_remove else "signed",
                            "real_minus_random": r.delta_vs_random, "perplexity_ref": r.perplexity_ref,
                            "perplexity_edited": r.perplexity_pruned, "perplexity_control": r.perplexity_control,
                            "anomaly_edited": r.anomaly_rate_pruned, "anomaly_ref": r.anomaly_rate_ref})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first", type=int, default=20250211)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT / "method_seeds")
    ap.add_argument("--no-run", action="store_true", help="judge the seeds' folders as they are")
    args = ap.parse_args()
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    draws = cfg["evaluation"]["random_draws"]
    rows, est = [], []
    for seed in range(args.first, args.first + args.seeds):
        folder = args.out / f"seed{seed}"
        if args.no_run and not all((folder / "results/tables" / m / "transfer.csv").exists() for m in plants(cfg)):
            break
        took = 0.0 if args.no_run else run_seed(seed, folder, cfg, args.cores, overrides=DEFAULT_METHODS,
                                                draws=draws)
        print(f"seed {seed}: {took:.0f} s", flush=True)
        for label, mask in METHODS.items():
            rows += [{**r, "method": label} for r in verdicts(seed, folder, cfg, mask=mask)]
        est += means(folder, seed, cfg)
        table = pd.DataFrame(rows)
        table.to_csv(args.out / "rows.csv", index=False)
        rates = table.pivot_table(index=["plant", "check", "where"], columns="method", values="ok",
                                  aggfunc="sum", sort=False)[list(METHODS)]
        n = table["seed"].nunique()
        (args.out / "rates.md").write_text(
            "| plant | check | where | " + " | ".join(METHODS) + " |\n|---|---|---|" + "---|" * len(METHODS) + "\n"
            + "".join(f"| {p} | {c} | {w} | " + " | ".join(f"{int(v)} of {n}" for v in r) + " |\n"
                      for (p, c, w), r in rates.iterrows()))
        e = pd.DataFrame(est)
        e.to_csv(args.out / "rows_estimates.csv", index=False)
        m = (e.groupby(["plant", "where", "method", "estimand"], sort=False)
             .agg(seeds=("seed", "count"), change=("change", "mean"), change_sd=("change", "std"),
                  real_minus_random=("real_minus_random", "mean"), perplexity_ref=("perplexity_ref", "mean"),
                  perplexity_edited=("perplexity_edited", "mean"), perplexity_control=("perplexity_control", "mean"),
                  anomaly_ref=("anomaly_ref", "mean"), anomaly_edited=("anomaly_edited", "mean"))
             .reset_index())
        m.to_csv(args.out / "means.csv", index=False)
        (args.out / "means.md").write_text(
            "| plant | row | method | change (mean, SD over seeds) | real - random (mean) | "
            "perplexity: unpruned / edited / random | anomalies: unpruned / edited |\n|---|---|---|---|---|---|---|\n"
            + "".join(f"| {r.plant} | {r.where} | {r.method} | {r.estimand}: {r.change:+.2f} ({r.change_sd:.2f}) | "
                      f"{r.real_minus_random:+.2f} | {r.perplexity_ref:.1f} / {r.perplexity_edited:.1f} / "
                      f"{r.perplexity_control:.1f} | {r.anomaly_ref:.2f} / {r.anomaly_edited:.2f} |\n"
                      for r in m.itertuples()))
    print((args.out / "rates.md").read_text())
    print((args.out / "means.md").read_text())


if __name__ == "__main__":
    main()
