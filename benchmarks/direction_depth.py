"""Which depth should the default run's race direction come from? (issue 25, item 3)

On a finished default run (its prepared and planted models, residual caches and fold 0's
name split), for each model, source context and depth: the race direction at the answer
position learned on fold 0's learning names, projected out of the model, judged by

- the noise-free bias objective B (``prunebias.methods.objective``: the expected log answer over a
  12-point grid of the context's range, White - Black) on fold 0's held-out names, one
  prompt each, in both contexts, with a 95% CI resampling names within race, beside the
  unedited model's B: does the edit remove a plant where it acts and leave B alone where
  nothing was planted;
- perplexity on the workflow's neutral text (1024 tokens), beside the unedited model's:
  what the edit costs (the workflow flags a model whose perplexity doubles as broken).

A screen on one seed's held-out names, not a rate: the default's choice is then tested
over seeds by benchmarks/method_seeds.py through the real DAG.

    .venv/bin/python benchmarks/direction_depth.py --results results [--depths 80 90 95 100]

Writes benchmarks/out/direction_depth.csv and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from common import OUT, REPO
from prunebias.model.activations import name_residuals
from prunebias.audit.contexts import resolve_context
from prunebias.methods.directions import orthogonalized, race_direction
from prunebias.methods.masks import read_meta
from prunebias.model.modeling import load_model
from prunebias.methods.objective import answer_grid, bias_objective
from prunebias.model.perplexity import perplexity


def name_bootstrap(e: np.ndarray, races: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile CI of B = mean E (White) - mean E (Black), resampling names (one prompt
    each here) within race."""
    rng = np.random.default_rng(seed)
    w, b = e[races == "white"], e[races == "black"]
    reps = [rng.choice(w, w.size).mean() - rng.choice(b, b.size).mean() for _ in range(n_boot)]
    return float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=REPO / "results", help="a finished default run's results/")
    ap.add_argument("--depths", type=int, nargs="+", default=[80, 90, 95, 100])
    ap.add_argument("--grid", type=int, default=12)
    args = ap.parse_args()
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    scenarios = yaml.safe_load((REPO / cfg["scenarios_file"]).read_text())
    contexts = cfg["contexts"]
    ranges = {c: resolve_context(c, scenarios, cfg["prompt_level"], (cfg["context_overrides"] or {}).get(c)).range
              for c in contexts}
    text = (REPO / cfg["evaluation"]["perplexity_text"]).read_text()
    rows = []
    for model_name in [m["name"] for m in cfg["models"]]:
        res = args.results
        model, tok = load_model(res / "model" / model_name, cfg["models"][0].get("dtype", "auto"), "cpu", 2)
        wanda = res / "masks" / model_name / "neurons" / "black_b15_w15_global" / f"{contexts[0]}.npz"
        fold = read_meta(wanda)["folds"][0]
        prompts = {c: pd.read_parquet(res / "prompts" / f"{c}.parquet").query("sample == 0") for c in contexts}
        prompts = {c: p[p["name"].isin(set(fold["eval_names"]))].reset_index(drop=True) for c, p in prompts.items()}
        grids = {c: answer_grid(*ranges[c], args.grid) for c in contexts}

        def measure() -> dict[str, float]:
            out: dict[str, float] = {}
            for c in contexts:
                b, per_prompt = bias_objective(model, tok, prompts[c], grids[c], batch_size=16, log_value=True)
                lo, hi = name_bootstrap(per_prompt, prompts[c]["race"].to_numpy())
                out.update({f"B {c}": b, f"B {c} ci_low": lo, f"B {c} ci_high": hi})
            return {**out, "perplexity": perplexity(model, tok, text, max_tokens=1024)}

        rows.append({"model": model_name, "source": "-", "depth": None, "layer": None, **measure()})
        n_layers = model.config.num_hidden_layers
        for source in contexts:
            means = name_residuals([res / "residuals" / model_name / f"{source}.parquet"], fold["learn_names"])
            means = means[means["position"] == "answer"]
            for depth in args.depths:
                layer = min(n_layers - 1, depth * n_layers // 100)
                v = race_direction(np.stack([m[layer] for m in means["mean"]]), means["name"].to_numpy(),
                                   means["race"].to_numpy())
                with orthogonalized(model, v):
                    rows.append({"model": model_name, "source": source, "depth": depth, "layer": layer, **measure()})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "direction_depth.csv", index=False)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
