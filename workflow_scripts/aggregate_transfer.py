"""Stage 6: the transfer tables and their plots.

``results/tables/transfer.csv``: one row per real mask (kind, setting, source) and target.
Everything is paired against the *reference*: the unpruned model answering exactly the
same prompts with the same seeds (``results/eval/reference``). With ``effect`` the
primary effect (``analysis.effect``):

- ``effect_ref`` / ``effect_pruned`` and their name-bootstrap CIs; ``ref_significant``
  says whether the reference's CI excludes 0;
- ``delta`` = pruned - ref and ``delta_abs`` = |pruned| - |ref| (negative: bias shrank),
  paired CIs (one set of name draws for both sides); ``mde_delta``: the smallest delta
  the design detects with 80% power; ``underpowered``: mde_delta > |effect_ref|, i.e.
  even removing the whole reference bias could go unseen;
- ``bias_reduction`` = 1 - |pruned| / |ref| with CI, only where ``ref_significant``;
- ``smd_ref``, ``smd_pruned``, ``delta_smd``, ``delta_abs_smd``: the same for the raw SMD;
- ``delta_vs_random``: |pruned| - mean |control| over the matched random draws, CI over
  names and draws (negative: the real mask removes more bias than its controls);
- anomaly rates, inlier ratios (share of answers inside the baseline's 5th-95th
  percentile of that context) and perplexities of reference, pruned and controls.

``results/tables/transfer_controls.csv``: one row per control draw and target.
Answers are winsorized at the baseline's percentiles of the target context; all rows of
a target share one seed, so their name draws are the same.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from workflow_scripts.inference import Interval, NameData, paired_bootstrap, versus_controls
from workflow_scripts.score_heads import parse_variant as parse_head_variant
from workflow_scripts.score_neurons import parse_variant as parse_neuron_variant
from workflow_scripts.seeds import derive_seed
from workflow_scripts.transfer import LEVELS, inlier_ratio, name_data, transfer_level

SETTING_COLUMNS = ["direction", "p_black", "p_white", "selection", "score", "k", "k_white"]


def _ci(prefix: str, iv: Interval) -> dict[str, float]:
    return {prefix: iv.estimate, f"{prefix}_ci_low": iv.ci_low, f"{prefix}_ci_high": iv.ci_high}


COLUMNS = (["method", "kind", "variant"] + SETTING_COLUMNS
           + ["ablation", "source", "target", "level", "level_number", "effect", "names_eval", "n_ref", "n_pruned"]
           + [c for p in ("effect_ref", "effect_pruned", "delta", "delta_abs") for c in (p, f"{p}_ci_low", f"{p}_ci_high")]
           + ["ref_significant", "mde_delta", "underpowered", "bias_reduction", "bias_reduction_ci_low",
              "bias_reduction_ci_high", "smd_ref", "smd_pruned"]
           + [c for p in ("delta_smd", "delta_abs_smd") for c in (p, f"{p}_ci_low", f"{p}_ci_high")]
           + ["control_abs_effect", "delta_vs_random", "delta_vs_random_ci_low", "delta_vs_random_ci_high",
              "control_draws", "anomaly_rate_ref", "anomaly_rate_pruned", "anomaly_rate_control",
              "inlier_ratio_ref", "inlier_ratio_pruned", "inlier_ratio_control", "perplexity_ref",
              "perplexity_pruned", "perplexity_control", "pruned_fraction"])
CONTROL_COLUMNS = (["kind", "variant", "source", "target", "draw", "effect"]
                   + [c for p in ("effect_pruned", "delta_abs") for c in (p, f"{p}_ci_low", f"{p}_ci_high")]
                   + ["anomaly_rate", "inlier_ratio", "perplexity"])


def setting_params(kind: str, setting: str) -> dict[str, Any]:
    return parse_neuron_variant(setting) if kind == "neurons" else parse_head_variant(setting)


def _inliers(base_ok: np.ndarray, df: pd.DataFrame, pct: tuple[float, float]) -> float:
    return inlier_ratio(base_ok, df["outcome"].to_numpy(float), df["anomaly"].to_numpy(), pct)


def transfer_row(kind: str, setting: str, source: str, target: str, baseline: pd.DataFrame, ref: pd.DataFrame,
                 real: pd.DataFrame, controls: Sequence[pd.DataFrame], infos: Mapping[str, Any],
                 pools: Mapping[str, Any], winsor: Any, effect: str, n_boot: int, seed: int,
                 inlier_pct: tuple[float, float]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The transfer row of one real mask on one target, and one row per control draw."""
    base_ok = baseline.loc[~baseline["anomaly"], "outcome"].to_numpy(float)
    clip = tuple(np.percentile(base_ok, winsor)) if winsor is not None and base_ok.size else None
    order = list(dict.fromkeys(ref["name"]))
    d_ref, d_real = name_data(ref, clip, order), name_data(real, clip, order)
    d_ctrl = [name_data(c, clip, order) for c in controls]
    seed_t = derive_seed(seed, "transfer", target)
    main = paired_bootstrap(d_ref, d_real, effect, n_boot=n_boot, seed=seed_t)
    raw = main if effect == "smd" else paired_bootstrap(d_ref, d_real, "smd", n_boot=n_boot, seed=seed_t)
    vs = versus_controls(d_ref, d_real, d_ctrl, effect, n_boot=n_boot, seed=seed_t)
    ctrl_rows = []
    for draw, (c, d) in enumerate(zip(controls, d_ctrl)):
        res = paired_bootstrap(d_ref, d, effect, n_boot=n_boot, seed=seed_t)
        ctrl_rows.append({"kind": kind, "variant": setting, "source": source, "target": target, "draw": draw,
                          "effect": effect, **_ci("effect_pruned", res.pruned), **_ci("delta_abs", res.delta_abs),
                          "anomaly_rate": float(c["anomaly"].mean()), "inlier_ratio": _inliers(base_ok, c, inlier_pct),
                          "perplexity": infos["control"][draw]["perplexity"] if infos.get("control") else math.nan})
    level = transfer_level(source, target, pools)
    real_info = infos["real"][0]
    n_total = real_info.get("n_total") or 0
    nw, nb = d_ref.n_names
    row = {
        "method": kind, "kind": kind, "variant": setting, **setting_params(kind, setting),
        "ablation": real["ablation"].iloc[0], "source": source, "target": target, "level": level,
        "level_number": LEVELS[level], "effect": effect, "names_eval": len(order),
        "n_ref": sum(d_ref.n_answers), "n_pruned": sum(d_real.n_answers),
        **_ci("effect_ref", main.ref), **_ci("effect_pruned", main.pruned), **_ci("delta", main.delta),
        **_ci("delta_abs", main.delta_abs), "ref_significant": main.ref_significant, "mde_delta": main.delta.mde,
        "underpowered": bool(not math.isfinite(main.delta.mde) or main.delta.mde > abs(main.ref.estimate)),
        **_ci("bias_reduction", main.reduction), "smd_ref": raw.ref.estimate, "smd_pruned": raw.pruned.estimate,
        **_ci("delta_smd", raw.delta), **_ci("delta_abs_smd", raw.delta_abs),
        "control_abs_effect": float(np.mean([abs(r["effect_pruned"]) for r in ctrl_rows])) if ctrl_rows else math.nan,
        **_ci("delta_vs_random", vs), "control_draws": len(ctrl_rows),
        "anomaly_rate_ref": float(ref["anomaly"].mean()), "anomaly_rate_pruned": float(real["anomaly"].mean()),
        "anomaly_rate_control": float(np.mean([c["anomaly"].mean() for c in controls])) if controls else math.nan,
        "inlier_ratio_ref": _inliers(base_ok, ref, inlier_pct), "inlier_ratio_pruned": _inliers(base_ok, real, inlier_pct),
        "inlier_ratio_control": float(np.mean([r["inlier_ratio"] for r in ctrl_rows])) if ctrl_rows else math.nan,
        "perplexity_ref": infos["reference"][0]["perplexity"], "perplexity_pruned": real_info["perplexity"],
        "perplexity_control": (float(np.mean([i["perplexity"] for i in infos["control"]]))
                               if infos.get("control") else math.nan),
        "pruned_fraction": (real_info.get("n_pruned", 0) / n_total) if n_total else math.nan,
    }
    return row, ctrl_rows


def build_tables(masks: list[tuple[str, str, str]], read_eval: Any, read_info: Any, baselines: dict[str, pd.DataFrame],
                 targets: list[str], pools: Mapping[str, Any], winsor: Any, effect: str, n_boot: int, seed: int,
                 inlier_pct: tuple[float, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables; ``read_eval(method, setting, source, target)`` and ``read_info(method, setting, source)``
    give a job's answers and info ("reference" answers with setting = source = None)."""
    rows, ctrl_rows = [], []
    ref_info = read_info("reference", None, None)
    for kind, setting, source in masks:
        infos = {"reference": ref_info["draws"], "real": read_info(kind, setting, source)["draws"]}
        try:
            infos["control"] = read_info(f"random_{kind}", setting, source)["draws"]
            has_controls = True
        except FileNotFoundError:
            has_controls = False
        for target in targets:
            ref = read_eval("reference", None, None, target)
            real = read_eval(kind, setting, source, target)
            controls = []
            if has_controls:
                both = read_eval(f"random_{kind}", setting, source, target)
                controls = [g for _, g in both.groupby("draw", sort=True)]
            row, crs = transfer_row(kind, setting, source, target, baselines[target], ref, real, controls, infos,
                                    pools, winsor, effect, n_boot, seed, inlier_pct)
            rows.append(row)
            ctrl_rows.extend(crs)
    table = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in table.columns:
            table[c] = np.nan
    return table[COLUMNS], pd.DataFrame(ctrl_rows, columns=CONTROL_COLUMNS)


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import json

    from workflow_scripts.files import read_parquet, write_csv
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.plots import make_plots

    log = setup_logging(smk.log[0], "prunebias.aggregate_transfer")
    need = ["name", "race", "gender", "anomaly", "outcome"]
    baselines = {Path(p).stem: read_parquet(p, ["race", "anomaly", "outcome"]) for p in smk.input.baseline}
    root = Path(smk.input.reference).parent.parent  # results/eval

    def folder(method: str, setting: str | None, source: str | None) -> Path:
        return root / "reference" if method == "reference" else root / method / setting / source

    def read_eval(method, setting, source, target):
        return read_parquet(folder(method, setting, source) / f"{target}.parquet", need + ["draw", "ablation"])

    def read_info(method, setting, source):
        return json.loads((folder(method, setting, source) / "info.json").read_text())

    masks = []
    for p in smk.input.info:
        parts = Path(p).parts
        method, setting, source = parts[-4], parts[-3], parts[-2]
        if not method.startswith("random_"):
            masks.append((method, setting, source))
    table, controls = build_tables(masks, read_eval, read_info, baselines, list(smk.params.contexts),
                                   smk.params.pools, smk.params.winsorize, smk.params.effect, smk.params.n_boot,
                                   smk.params.seed, tuple(smk.params.inlier_percentiles))
    write_csv(table, smk.output.table)
    write_csv(controls, smk.output.controls)
    make_plots(table, list(smk.params.contexts), smk.output.heatmaps, smk.output.levels, smk.output.dose)
    log.info("transfer table: %d rows; mean delta |%s| (pruned - reference) by level:\n%s", len(table),
             smk.params.effect, table.groupby(["kind", "level"])[["delta_abs", "delta_vs_random"]].mean().to_string())


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
