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
    the baseline shows no bias (CI covers 0), and the mask is contained there
    (``prunebias.stats.transfer.containment``): the paired change of the effect covers 0,
    or the effect moved as under the matched random controls (signed real - random, CI
    covering 0); (e') beside it, the stricter count: the paired change's CI covers 0
    (docs/design.md, "Containment is judged against the random control").

A seed is the config's ``seed``: it draws the name split (which names learn the masks and
which are held out) and every sampling seed (baseline, caches, evaluation, controls). The
plants themselves (their neurons and strength) keep their own seed, so each run plants the
same mechanism, calibrated on that seed's baseline.

Only the jobs the Wanda rows need are run (``--config`` drops the head and attribution
masks, the side effects and the report): each evaluation answers with its prompts' own
seeds, so a Wanda row is the same number it is in a full default run of that seed. The
benchmark runs 2 control draws whatever the default says, and judges the checks on the
default's number of draws (``design_transfer``: draw 0 is the draw of a 1-draw run).
The prepared default model is hard-linked into each seed's folder (it does not depend on
the seed). Each seed's folder is kept; a rerun resumes where it stopped.

    .venv/bin/python benchmarks/planted_seeds.py [--seeds 10] [--first 20250211] [--plants planted-hiring]
        [--reaggregate]

Writes benchmarks/out/planted_seeds/{rows.csv, rates.csv, rates.md}.

**Power per CPU-second** (issue 23, item 3): with cross-fitting (the default) one run per
seed also holds the smaller designs. Fold 0's answers alone are the design without
cross-fitting (the same masks, seeds and answers: 32 held-out names), and the first k
answers of every name are the design with k answers per name (each answer has its own
seed). So the checks are recomputed here for every (folds, answers) design from the same
run, and each design's cost is estimated from the run's job times (``design_seconds``).
Writes ``designs.csv`` (per seed, design and check) and ``designs.md`` (rates).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from common import OUT, REPO
from prunebias.model.export import _ci  # "value [low, high]" of a table row, as the model card writes it
from prunebias.files import read_parquet
from prunebias.methods.masks import read_meta
from prunebias.methods.registry import FAMILIES
from prunebias.planted.plant_spec import plant_contexts
from prunebias.stats.transfer import MOVED_AS_CONTROLS, UNCHANGED, bias_direction, build_tables, containment


def wanda_setting(cfg: dict) -> str:
    """The config's first Wanda mask setting (its first direction and [p_black, p_white])."""
    return FAMILIES["wanda"].planned(cfg)[0].name


# the default's Wanda mask (black_b10_w10_global); a benchmark of another p runs from a
# checkout whose config.yaml has it
WANDA = wanda_setting(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
# the benchmark needs only the Wanda masks, their controls and the tables of both plants
# (the default run's race direction is left out: its rates are not this benchmark's)
ONLY_WANDA = {
    "localization": {"heads": {"k": [], "setdiff": [], "greedy": []}, "directions": {"depths": []},
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


def run_seed(seed: int, folder: Path, cfg: dict, cores: int, reaggregate: bool = False,
             overrides: dict | None = None, draws: int | None = None) -> float:
    """Run the Wanda part of the default design with ``seed`` in ``folder``; seconds taken.

    ``reaggregate``: the seed's jobs ran before a change to the statistics only; rerun the
    two tables (baseline_bias, transfer) with the current code and keep every answer.
    ``overrides`` (default ``ONLY_WANDA``) and ``draws`` (default ``DRAWS``): what another
    benchmark of the same design runs instead (benchmarks/method_seeds.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = merged(cfg, ONLY_WANDA if overrides is None else overrides)
    conf["seed"] = seed
    conf["evaluation"] = {**conf["evaluation"], "random_draws": DRAWS if draws is None else draws}
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


# designs (folds, answers per held-out name, control draws) recomputed from each run
DESIGNS = [(f, k, d) for f in (1, 2) for k in (1, 2, 3, 4) for d in (1, 2)]
DRAWS = 2  # control draws the benchmark runs (draw 0 of a 2-draw run is the draw of a 1-draw run)
NEED = ["name", "race", "gender", "anomaly", "outcome", "draw", "ablation", "sample", "fold"]


def design_transfer(folder: Path, cfg: dict, model: str, folds: int, answers: int, draws: int) -> pd.DataFrame:
    """The Wanda rows of ``model``'s transfer.csv on a smaller design of the same run: the
    answers of the first ``folds`` folds (their names only, in the reference too), each
    name's first ``answers`` answers and the first ``draws`` control draws; the workflow's
    own ``build_tables`` and settings.

    A design with fewer draws is exactly a run with fewer draws (each draw is seeded and
    answers on its own), and so is one with fold 0 alone (the reference answers fold by
    fold: fold 0's rows with 4 answers equal the 1-fold benchmark's to the digit). One with
    fewer answers is the same design statistically but not to the digit: in bfloat16 an
    answer depends on which prompts share its batch."""
    res = folder / "results"
    contexts = cfg["contexts"]
    meta = read_meta(res / "masks" / model / "neurons" / WANDA / f"{contexts[0]}.npz")
    names = {n for f in meta.get("folds", [{"eval_names": None}])[:folds] for n in (f["eval_names"] or [])}

    def keep(df: pd.DataFrame) -> pd.DataFrame:
        df = df[(df["sample"] < answers) & (df["fold"] < folds) & (df["draw"] < draws)]
        return df[df["name"].isin(names)] if names else df

    def path(method, setting, source, target, ext):
        part = res / "eval" / model / ("reference" if method == "reference" else f"{method}/{setting}/{source}")
        return part / f"{target}.{ext}"

    def read_eval(method, setting, source, target):
        p = path(method, setting, source, target, "parquet")
        return keep(read_parquet(p, NEED))

    def read_info(method, setting, source, target):
        return json.loads(path(method, setting, source, target, "json").read_text())

    baselines = {c: read_parquet(res / "baseline" / model / f"{c}.parquet", ["race", "anomaly", "outcome"])
                 for c in contexts}
    effect = cfg["analysis"]["effect"]
    directions = bias_direction(pd.read_csv(res / "tables" / model / "baseline_bias.csv"), effect)
    masks = [("neurons", WANDA, c, {}) for c in contexts]
    table, _ = build_tables(masks, read_eval, read_info, baselines, contexts,
                            lambda s, t: "same_context" if s == t else "other_scenario",
                            cfg["analysis"]["winsorize"], effect, cfg["analysis"]["n_boot"],
                            yaml.safe_load((folder / "config.yaml").read_text())["seed"],
                            tuple(cfg["evaluation"]["inlier_percentiles"]), directions)
    return table


def design_seconds(folder: Path, folds: int, answers: int, draws: int, full: tuple[int, int, int]) -> float:
    """A design's job seconds, estimated from the run's benchmark files: the pruned
    evaluation scales with folds x answers x (1 + draws) masks, the reference with folds x
    answers, mask scoring and control draws with folds, the rest is shared."""
    total = {"eval": 0.0, "fold": 0.0, "rest": 0.0}
    root = folder / "results" / "benchmarks"
    for tsv in root.rglob("*.tsv"):  # {model}/{rule}/....tsv or {model}/{rule}.tsv
        parts = tsv.relative_to(root).parts
        rule = parts[1] if len(parts) > 2 else Path(parts[1]).stem
        sec = float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])
        key = ("pruned" if rule == "evaluate_pruned" else "eval" if rule.startswith("evaluate_")
               else "fold" if rule.startswith(("score_", "draw_")) else "rest")
        total[key] = total.get(key, 0.0) + sec
    scale = folds * answers / (full[0] * full[1])
    return (total["rest"] + total["fold"] * folds / full[0] + total["eval"] * scale
            + total.get("pruned", 0.0) * scale * (1 + draws) / (1 + full[2]))


def verdicts(seed: int, folder: Path, cfg: dict, transfer: dict[str, pd.DataFrame] | None = None,
             mask: tuple[str, str] = ("neurons", WANDA)) -> list[dict]:
    """One row per (plant, check) of one seed's tables (``transfer``: per plant, rows to
    judge instead of the run's transfer.csv, e.g. a ``design_transfer``), for the mask
    setting ``mask`` (kind, setting): the Wanda mask, or another method's."""
    rows = []
    contexts = cfg["contexts"]
    for name, plant in plants(cfg).items():
        homes = contexts if plant["scope"] == "general" else plant_contexts(plant, contexts)
        bias = pd.read_csv(folder / "results" / "tables" / name / "baseline_bias.csv").set_index("context")
        tr = (transfer[name] if transfer is not None
              else pd.read_csv(folder / "results" / "tables" / name / "transfer.csv"))
        tr = tr[(tr["kind"] == mask[0]) & (tr["setting"] == mask[1])].set_index(["source", "target"])

        def add(check: str, where: str, ok: bool, value: str) -> None:
            rows.append({"seed": seed, "plant": name, "scope": plant["scope"], "check": check, "where": where,
                         "ok": bool(ok), "value": value})

        for c in contexts:
            lo, hi, est = (bias.loc[c, f"log_smd{s}"] for s in ("_ci_low", "_ci_high", ""))
            shown = lo > 0 or hi < 0
            if c in homes:
                add("a detected", c, shown, f"{est:.2f} [{lo:.2f}, {hi:.2f}]")
        recall = pd.read_csv(folder / "results" / "tables" / name / "planted_recall.csv")
        recall = recall[recall["setting"] == mask[1]].set_index("source")
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
                    no_bias, state = lo <= 0 <= hi, containment(r)
                    value = (f"baseline {bias.loc[t, 'log_smd']:.2f} [{lo:.2f}, {hi:.2f}]; change {r['delta']:.2f} "
                             f"[{r['delta_ci_low']:.2f}, {r['delta_ci_high']:.2f}]; real - random "
                             f"{_ci(r, 'delta_vs_random')}")
                    add("e contained", f"{s}->{t}", no_bias and state in (UNCHANGED, MOVED_AS_CONTROLS), value)
                    add("e' no change at all", f"{s}->{t}", no_bias and state == UNCHANGED, value)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first", type=int, default=20250211, help="seeds first, first+1, ... (the default's seed first)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT / "planted_seeds")
    ap.add_argument("--reaggregate", action="store_true",
                    help="seeds already run: recompute only their tables with the current statistics code")
    ap.add_argument("--plants", nargs="+", metavar="MODEL",
                    help="only these planted models (the others are left out of each seed's config; a plant's "
                         "rows do not depend on the other plants, so they equal a full run's)")
    ap.add_argument("--no-run", action="store_true",
                    help="judge the seeds' folders as they are (no Snakemake: nothing reruns after a code edit)")
    args = ap.parse_args()
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if args.plants:
        unknown = sorted(set(args.plants) - set(plants(cfg)))
        if unknown:
            ap.error(f"--plants {unknown}: config/config.yaml's planted models are {sorted(plants(cfg))}")
        cfg["models"] = [m for m in cfg["models"] if "plant" not in m or m["name"] in args.plants]
    full = (2 if cfg["localization"]["cross_fit"] else 1, cfg["evaluation"]["samples_per_name"], DRAWS)
    default = (*full[:2], cfg["evaluation"]["random_draws"])
    rows, design_rows = [], []
    for seed in range(args.first, args.first + args.seeds):
        folder = args.out / f"seed{seed}"
        if args.no_run and not all((folder / "results" / "tables" / m / "transfer.csv").exists() for m in plants(cfg)):
            break  # not run (or still running)
        took = 0.0 if args.no_run else run_seed(seed, folder, cfg, args.cores, args.reaggregate)
        # the default design's rows (its draws: exactly what a run with them prints)
        rows += verdicts(seed, folder, cfg, {m: design_transfer(folder, cfg, m, *default) for m in plants(cfg)})
        print(f"seed {seed}: {took:.0f} s", flush=True)
        for folds, answers, draws in [d for d in DESIGNS if all(x <= y for x, y in zip(d, full))]:
            tables = {m: design_transfer(folder, cfg, m, folds, answers, draws) for m in plants(cfg)}
            cost = design_seconds(folder, folds, answers, draws, full)
            design_rows += [{**r, "folds": folds, "answers": answers, "draws": draws, "seconds": cost}
                            for r in verdicts(seed, folder, cfg, tables)]
        write_designs(pd.DataFrame(design_rows), args.out)
        table = pd.DataFrame(rows)
        table.to_csv(args.out / "rows.csv", index=False)
        rates = (table.groupby(["plant", "check", "where"], sort=False)["ok"]
                 .agg(passed="sum", seeds="count").reset_index())
        rates.to_csv(args.out / "rates.csv", index=False)
        (args.out / "rates.md").write_text(
            "| plant | check | where | seeds passed |\n|---|---|---|---|\n"
            + "".join(f"| {r.plant} | {r.check} | {r.where} | {r.passed} of {r.seeds} |\n" for r in rates.itertuples()))
    print((args.out / "rates.md").read_text())


def write_designs(table: pd.DataFrame, out: Path) -> None:
    """designs.csv (every row) and designs.md: per check, the seeds passed under each design
    (folds x answers per name x control draws), with its median estimated job seconds per seed."""
    table.to_csv(out / "designs.csv", index=False)
    table["design"] = [f"{f}x{k}x{d}" for f, k, d in zip(table["folds"], table["answers"], table["draws"])]
    order = list(dict.fromkeys(table.sort_values(["folds", "answers", "draws"])["design"]))
    rates = table.pivot_table(index=["plant", "check", "where"], columns="design", values="ok", aggfunc="sum",
                              sort=False)[order]
    seeds = table["seed"].nunique()
    cost = table.groupby("design")["seconds"].median()[order]
    lines = ["| plant | check | where | " + " | ".join(order) + " |", "|---|---|---|" + "---|" * len(order)]
    lines += [f"| {p} | {c} | {w} | " + " | ".join(f"{int(v)} of {seeds}" for v in r) + " |"
              for (p, c, w), r in rates.iterrows()]
    lines.append("| job seconds per seed (median, estimated) | | | " + " | ".join(f"{v:.0f}" for v in cost) + " |")
    (out / "designs.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
