"""Rule aggregate_transfer: the transfer tables and their plots.

``results/tables/{model}/transfer.csv``: one row per real mask (kind, setting, source) and target.
Everything is paired against the *reference*: the unpruned model answering exactly the
same prompts with the same seeds (``results/eval/{model}/reference``). With ``effect`` the
primary effect (``analysis.effect``):

- ``effect_ref`` / ``effect_pruned`` and their name-bootstrap CIs; ``ref_significant``
  says whether the reference's CI excludes 0;
- ``delta`` = pruned - ref and ``delta_abs`` = |pruned| - |ref| (negative: bias shrank),
  paired CIs (one set of name draws for both sides); ``mde_delta``: the smallest delta
  the design detects with 80% power; ``underpowered``: mde_delta > |effect_ref|, i.e.
  even removing the whole reference bias could go unseen;
- ``bias_reduction`` = 1 - |pruned| / |ref| with CI, only where ``ref_significant``;
- ``bias_to_remove``: the target's baseline bias (``baseline_bias.csv``, all names) has a
  CI excluding 0; where it does not, ``estimand`` says "no bias to remove" and the change
  of |effect| is not a removal (the heatmaps leave such cells blank and say so);
- ``smd_ref``, ``smd_pruned``, ``delta_smd``, ``delta_abs_smd``: the same for the raw SMD;
- ``delta_vs_random``: pruned - mean control over the matched random draws along the
  target's bias (negative: the real mask removes more bias than its controls; where there
  is no bias, signed and two-sided), CI over names and draws;
- anomaly rates, inlier ratios (share of answers inside the baseline's 5th-95th
  percentile of that context) and perplexities of reference, pruned and controls.

``results/tables/{model}/transfer_controls.csv``: one row per control draw and target.
Answers are winsorized at the baseline's percentiles of the target context; all rows of
a target share one seed, so their name draws are the same. Which mask an evaluation
applied is read from the ``{target}.json`` written beside its answers, never from its path.
"""

import json
from pathlib import Path

import pandas as pd

from prunebias.files import read_parquet, write_csv
from prunebias.workflow.logs import setup_logging
from prunebias.methods.registry import parsed
from prunebias.workflow.plan import Method, Pool, Source, transfer_level
from prunebias.report.plots import make_plots
from prunebias.stats.transfer import bias_direction, build_tables, without_unused_settings

NEED = ["name", "race", "gender", "anomaly", "outcome", "draw", "ablation"]


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.aggregate_transfer")
    p = smk.params
    baselines = {Path(f).stem: read_parquet(f, ["race", "anomaly", "outcome"]) for f in smk.input.baseline}
    root = Path(smk.input.reference[0]).parent.parent  # results/eval
    pools = {name: Pool(name, tuple(info["members"])) for name, info in p.pools.items()}

    def folder(method: str, setting: str | None, source: str | None) -> Path:
        return root / "reference" if method == "reference" else root / method / setting / source

    def read_eval(method, setting, source, target):
        return read_parquet(folder(method, setting, source) / f"{target}.parquet", NEED)

    def read_info(method, setting, source, target):
        return json.loads((folder(method, setting, source) / f"{target}.json").read_text())

    masks = []
    for f in smk.input.info:  # one per (mask, target): each mask once
        info = json.loads(Path(f).read_text())
        method = Method.parse(info["method"])
        if not method.control and info["target"] == p.contexts[0]:
            family, setting = parsed(method.kind, info["setting"])
            dose = family.dose(setting) if family.dose else None
            masks.append((method.kind, setting.name, info["source"],
                          {"family": family.name, "scoring": setting.scoring, "dose": dose, **setting.params()}))
    directions = bias_direction(pd.read_csv(smk.input.bias), p.effect)
    table, controls = build_tables(
        masks, read_eval, read_info, baselines, list(p.contexts),
        lambda source, target: transfer_level(Source.parse(source), target, p.scenarios, pools),
        p.winsorize, p.effect, p.n_boot, p.seed, tuple(p.inlier_percentiles), directions)
    write_csv(without_unused_settings(table), smk.output.table)
    write_csv(controls, smk.output.controls)
    heatmaps = [(kind, setting, path) for (kind, setting), path in zip(p.heatmaps, smk.output.heatmaps)]
    make_plots(table, list(p.contexts), heatmaps, smk.output.levels, getattr(smk.output, "dose", None))
    means = table.groupby(["kind", "scoring", "level"])[["delta_toward_zero", "delta_vs_random"]].mean()
    log.info("transfer table: %d rows; mean change of %s toward 0 (pruned - reference) and real - random by "
             "level:\n%s", len(table), p.effect, means.to_string())


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
