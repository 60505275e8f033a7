"""Stage 6: the transfer table and its plots.

``results/tables/transfer.csv``: one row per (method, variant, source, target) with the
variant's parameters (direction, p_black, p_white, selection; or score, k), ablation,
level, smd_base, smd_pruned, bias_reduction (+ bootstrap CI), anomaly rates, inlier ratio,
perplexity before/after, pruned fraction, and for real masks ``reduction_minus_random``
(the real mask's reduction minus its same-size random control's).

Base values are the baseline answers; pruned answers are winsorized at the baseline's
percentiles of that context, so both sides share one scale.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

import json
import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from workflow_scripts.metrics import smd
from workflow_scripts.score_heads import parse_variant as parse_head_variant
from workflow_scripts.score_neurons import parse_variant as parse_neuron_variant
from workflow_scripts.seeds import derive_seed
from workflow_scripts.transfer import LEVELS, bias_reduction, bias_reduction_ci, inlier_ratio, transfer_level

COLUMNS = ["method", "kind", "variant", "direction", "p_black", "p_white", "selection", "score", "k", "k_white", "ablation",
           "source", "target", "level", "level_number", "n_base", "n_pruned", "smd_base", "smd_pruned",
           "bias_reduction", "bias_reduction_ci_low", "bias_reduction_ci_high", "anomaly_rate_base",
           "anomaly_rate_pruned", "inlier_ratio", "perplexity_base", "perplexity_pruned", "pruned_fraction",
           "reduction_minus_random"]


def _groups(df: pd.DataFrame, clip: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    ok = df[~df["anomaly"]]
    vals = ok["outcome"].to_numpy(float)
    if clip is not None:
        vals = np.clip(vals, clip[0], clip[1])
    race = ok["race"].to_numpy()
    return vals[race == "white"], vals[race == "black"]


def transfer_row(method: str, variant: str, source: str, target: str, base: pd.DataFrame, pruned: pd.DataFrame,
                 info: Mapping[str, Any], base_ppl: float, pools: Mapping[str, Any], winsor: Any, n_boot: int,
                 seed: int, inlier_pct: tuple[float, float]) -> dict[str, Any]:
    """All columns of one (method, variant, source, target) row."""
    kind = method.removeprefix("random_")
    base_ok = base.loc[~base["anomaly"], "outcome"].to_numpy(float)
    clip = tuple(np.percentile(base_ok, winsor)) if winsor is not None and base_ok.size else None
    bw, bb = _groups(base, clip)
    pw, pb = _groups(pruned, clip)
    s_base, s_pruned = smd(bw, bb), smd(pw, pb)
    lo, hi = bias_reduction_ci(bw, bb, pw, pb, n_boot=n_boot, seed=derive_seed(seed, method, variant, source, target))
    params = parse_neuron_variant(variant) if kind == "neurons" else parse_head_variant(variant)
    level = transfer_level(source, target, pools)
    n_total = info.get("n_total") or 0
    return {
        "method": method, "kind": kind, "variant": variant, **params, "ablation": pruned["ablation"].iloc[0],
        "source": source, "target": target, "level": level, "level_number": LEVELS[level],
        "n_base": int(bw.size + bb.size), "n_pruned": int(pw.size + pb.size), "smd_base": s_base,
        "smd_pruned": s_pruned, "bias_reduction": bias_reduction(s_base, s_pruned), "bias_reduction_ci_low": lo,
        "bias_reduction_ci_high": hi, "anomaly_rate_base": float(base["anomaly"].mean()),
        "anomaly_rate_pruned": float(pruned["anomaly"].mean()),
        "inlier_ratio": inlier_ratio(base_ok, pruned["outcome"].to_numpy(float), pruned["anomaly"].to_numpy(),
                                     inlier_pct),
        "perplexity_base": base_ppl, "perplexity_pruned": info.get("perplexity", math.nan),
        "pruned_fraction": (info.get("n_pruned", 0) / n_total) if n_total else math.nan,
    }


def add_random_differences(table: pd.DataFrame) -> pd.DataFrame:
    """reduction_minus_random for real rows: minus the matching random control's reduction."""
    rand = table[table["method"].str.startswith("random_")].copy()
    rand["method"] = rand["method"].str.removeprefix("random_")
    key = ["method", "variant", "source", "target"]
    merged = table.merge(rand[key + ["bias_reduction"]].rename(columns={"bias_reduction": "_rand"}), on=key,
                         how="left")
    merged["reduction_minus_random"] = merged["bias_reduction"] - merged["_rand"]
    return merged.drop(columns="_rand")


def build_table(evals: list[tuple[str, str, str, str, Path]], infos: dict[tuple[str, str, str], dict],
                baselines: dict[str, pd.DataFrame], base_ppl: float, pools: Mapping[str, Any], winsor: Any,
                n_boot: int, seed: int, inlier_pct: tuple[float, float]) -> pd.DataFrame:
    from workflow_scripts.files import read_parquet

    rows = []
    for method, variant, source, target, path in evals:
        pruned = read_parquet(path, ["race", "anomaly", "outcome", "ablation"])
        rows.append(transfer_row(method, variant, source, target, baselines[target], pruned,
                                 infos[(method, variant, source)], base_ppl, pools, winsor, n_boot, seed, inlier_pct))
    table = add_random_differences(pd.DataFrame(rows))
    for c in COLUMNS:
        if c not in table.columns:
            table[c] = np.nan
    return table[COLUMNS]


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    from workflow_scripts.files import read_parquet, write_csv
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.plots import make_plots

    log = setup_logging(smk.log[0], "prunebias.aggregate_transfer")
    baselines = {Path(p).stem: read_parquet(p, ["race", "anomaly", "outcome"]) for p in smk.input.baseline}
    evals, infos = [], {}
    for p in smk.input.info:
        parts = Path(p).parts
        method, variant, source = parts[-4], parts[-3], parts[-2]
        infos[(method, variant, source)] = json.loads(Path(p).read_text())
        for target in smk.params.contexts:
            evals.append((method, variant, source, target, Path(p).parent / f"{target}.parquet"))
    base_ppl = json.loads(Path(smk.input.base_perplexity).read_text())["perplexity"]
    winsor = smk.params.winsorize
    table = build_table(evals, infos, baselines, base_ppl, smk.params.pools, winsor, smk.params.n_boot,
                        smk.params.seed, tuple(smk.params.inlier_percentiles))
    write_csv(table, smk.output.table)
    make_plots(table, smk.output.heatmaps, smk.output.levels, smk.output.dose)
    real = table[~table["method"].str.startswith("random_")]
    log.info("transfer table: %d rows; mean bias reduction by level:\n%s", len(table),
             real.groupby(["kind", "level"])["bias_reduction"].mean().to_string())


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
