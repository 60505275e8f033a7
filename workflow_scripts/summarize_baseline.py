"""Rule summarize_baseline: bias per context (and per context x gender) -> ``results/tables/{model}/baseline_bias*.csv``
and the forest plot ``results/plots/{model}/baseline_forest.png``.

The table is ``prunebias.stats.metrics.summarize``: winsorized within each context, inference
at the level of names (cluster-bootstrap CIs, permutation p-values, power).
"""

import pandas as pd

from prunebias.files import read_parquet, write_csv
from prunebias.workflow.logs import setup_logging
from prunebias.stats.metrics import summarize
from prunebias.report.plots import baseline_forest


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.summarize_baseline")
    need = ["context", "race", "gender", "name", "anomaly", "answer_kind", "outcome", "n_tokens"]
    answers = pd.concat([read_parquet(p, need) for p in smk.input.answers], ignore_index=True)
    winsor = tuple(smk.params.winsorize) if smk.params.winsorize else None
    opts = {"n_boot": smk.params.n_boot, "seed": smk.params.seed, "effect": smk.params.effect,
            "n_perm": smk.params.n_perm, "max_new_tokens": smk.params.max_new_tokens}
    by_ctx = summarize(answers, ("context",), winsor, **opts)
    by_gender = summarize(answers, ("context", "gender"), winsor, **opts)
    for _, r in by_ctx[by_ctx["note"].str.contains("cut off", na=False)].iterrows():
        log.warning("%s: %s", r["context"], r["note"])
    write_csv(by_ctx, smk.output.by_context)
    write_csv(by_gender, smk.output.by_gender)
    baseline_forest(by_ctx, by_gender, smk.params.effect, smk.output.forest)
    log.info("bias (%s) for %d contexts:\n%s", smk.params.effect, len(by_ctx),
             by_ctx[["context", smk.params.effect, f"{smk.params.effect}_ci_low", f"{smk.params.effect}_ci_high",
                     "p_perm", "mde"]].to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
