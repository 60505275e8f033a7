"""Is a noise-free outcome (each prompt's expected log answer on a grid of amounts) a sound
measure of a mask's effect? (issue 23, item 3: tried and rejected)

For finished seeds of ``planted_seeds.py`` (their planted models, Wanda masks, controls
and reference answers), scores every held-out name's prompt on a grid of amounts with
and without each mask (teacher-forced candidates, ``prunebias.methods.objective.grid_log_probs``)
and reports, per (plant, source, target): the White - Black gap of the expected log
answer with its name-bootstrap CI, the paired change of |gap|, real minus random on it,
the probability the grid holds, and the sampled answers' change from the seed's
transfer table beside it. Two kinds of grid:

- ``loguniform``: K amounts log-uniform over the context's range (the attribution grid);
- ``frequent``: the K most frequent usable answers of the model's own baseline.

    .venv/bin/python benchmarks/grid_outcome.py SEED_DIR [--grid loguniform|frequent] [--k 12]

Writes benchmarks/out/grid_outcome/{seed}_{grid}_{k}.csv.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from common import OUT, REPO
from prunebias.audit.contexts import resolve_all
from prunebias.stats.inference import NameData, paired_bootstrap, versus_controls
from prunebias.methods.masks import read_mask
from prunebias.model.modeling import load_model
from prunebias.methods.objective import answer_grid, continues_number, format_answer, grid_log_probs, prompt_texts
from prunebias.model.pruning import pruned

WANDA = "black_b15_w15_global"


@torch.no_grad()
def expected_log(model, tok, rows: pd.DataFrame, grid: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Per row: E[log answer] over the grid (normalized over it) and the probability it holds."""
    texts, cands, ext = prompt_texts(rows, tok), [format_answer(v) for v in grid], continues_number(tok)
    e, mass = [], []
    for i in range(0, len(texts), batch):
        lp = grid_log_probs(model, tok, texts[i:i + batch], cands, ext).double().cpu()
        e.append((torch.softmax(lp, -1) * torch.log(torch.as_tensor(grid))).sum(-1).numpy())
        mass.append(torch.logsumexp(lp, -1).exp().numpy())
    return np.concatenate(e), np.concatenate(mass)


def make_grid(kind: str, k: int, value_range: tuple[float, float], baseline: pd.DataFrame) -> np.ndarray:
    if kind == "loguniform":
        return answer_grid(*value_range, k)
    usable = baseline[~baseline["anomaly"].astype(bool)]
    return np.sort(usable["value"].round(2).value_counts().index[:k].to_numpy(float))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("seed_dir", type=Path)
    ap.add_argument("--grid", choices=["loguniform", "frequent"], default="loguniform")
    ap.add_argument("--k", type=int, default=12)
    args = ap.parse_args()
    root = args.seed_dir
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    ctxs = resolve_all(cfg, REPO / "data/scenarios.yaml", REPO / "data/context_sets.yaml")
    out = []
    for m in cfg["models"]:
        if "plant" not in m:
            continue
        name = m["name"]
        model, tok = load_model(str(root / f"results/model/{name}"), "auto", "cpu", 2)
        table = pd.read_csv(root / f"results/tables/{name}/transfer.csv")
        table = table[table["setting"] == WANDA].set_index(["source", "target"])
        for target in cfg["contexts"]:
            rows = pd.read_parquet(root / f"results/eval/{name}/reference/{target}.parquet").drop_duplicates("name")
            rows = rows.reset_index(drop=True)
            grid = make_grid(args.grid, args.k, ctxs[target].range,
                             pd.read_parquet(root / f"results/baseline/{name}/{target}.parquet"))

            def data(e: np.ndarray) -> NameData:
                return NameData.from_answers(rows["name"].to_numpy(), rows["race"].to_numpy(), e,
                                             rows["gender"].to_numpy())

            t0 = time.perf_counter()
            e_ref, mass = expected_log(model, tok, rows, grid)
            seconds = time.perf_counter() - t0
            for source in cfg["contexts"]:
                with pruned(model, read_mask(str(root / f"results/masks/{name}/neurons/{WANDA}/{source}.npz")), "zero"):
                    e_real, _ = expected_log(model, tok, rows, grid)
                ctrl = []
                for path in sorted((root / f"results/masks/{name}/random_neurons/{WANDA}/{source}").glob("draw*.npz")):
                    with pruned(model, read_mask(str(path)), "zero"):
                        ctrl.append(data(expected_log(model, tok, rows, grid)[0]))
                res = paired_bootstrap(data(e_ref), data(e_real), "diff", n_boot=2000, seed=1)
                vs = versus_controls(data(e_ref), data(e_real), ctrl, "diff", n_boot=2000, seed=1)
                t = table.loc[(source, target)]
                row = {"seed": cfg["seed"], "model": name, "source": source, "target": target, "grid": args.grid,
                       "k": len(grid), "grid_mass_median": float(np.median(mass)), "seconds_per_pass": seconds,
                       "gap_ref": res.ref.estimate, "gap_ref_ci_low": res.ref.ci_low, "gap_ref_ci_high": res.ref.ci_high,
                       "delta_abs": res.delta_abs.estimate, "delta_abs_ci_low": res.delta_abs.ci_low,
                       "delta_abs_ci_high": res.delta_abs.ci_high, "vs_random": vs.estimate,
                       "vs_random_ci_low": vs.ci_low, "vs_random_ci_high": vs.ci_high,
                       "sampled_delta_abs": t["delta_abs"], "sampled_delta_abs_ci_low": t["delta_abs_ci_low"],
                       "sampled_delta_abs_ci_high": t["delta_abs_ci_high"]}
                out.append(row)
                print(f"{name} {source}->{target} grid {args.grid} k={len(grid)}: gap {row['gap_ref']:+.2f} "
                      f"[{row['gap_ref_ci_low']:+.2f}, {row['gap_ref_ci_high']:+.2f}], change of |gap| "
                      f"{row['delta_abs']:+.2f} [{row['delta_abs_ci_low']:+.2f}, {row['delta_abs_ci_high']:+.2f}]; "
                      f"sampled {row['sampled_delta_abs']:+.2f} [{row['sampled_delta_abs_ci_low']:+.2f}, "
                      f"{row['sampled_delta_abs_ci_high']:+.2f}]; grid mass {row['grid_mass_median']:.3f}", flush=True)
    dest = OUT / "grid_outcome"
    dest.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(out).to_csv(dest / f"{cfg['seed']}_{args.grid}_{args.k}.csv", index=False)


if __name__ == "__main__":
    main()
