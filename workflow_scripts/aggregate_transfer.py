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

from typing import Any, Mapping

import numpy as np
import pandas as pd

from workflow_scripts.score_heads import parse_variant as parse_head_variant
from workflow_scripts.score_neurons import parse_variant as parse_neuron_variant
from workflow_scripts.transfer import COLUMNS, CONTROL_COLUMNS, transfer_row


def setting_params(kind: str, setting: str) -> dict[str, Any]:
    return parse_neuron_variant(setting) if kind == "neurons" else parse_head_variant(setting)


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
                                    pools, winsor, effect, n_boot, seed, inlier_pct, setting_params(kind, setting))
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
