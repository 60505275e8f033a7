"""Rule compare_models: several models side by side -> ``results/tables/models.csv`` (every
model's headline rows, led by its name and source) and ``results/plots/models.png`` (each
model's baseline bias per context with its CI). Only where the config lists several models."""

import pandas as pd

from prunebias.files import write_csv
from prunebias.report.headline import compare_models
from prunebias.workflow.logs import setup_logging
from prunebias.report.plots import models_forest


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.compare_models")
    p = smk.params
    headlines = {m: pd.read_csv(f, keep_default_na=False, na_values=[""]) for m, f in zip(p.models, smk.input.headline)}
    baselines = {m: pd.read_csv(f) for m, f in zip(p.models, smk.input.baseline)}
    table = compare_models(headlines, p.sources)
    write_csv(table, smk.output.table)
    models_forest(baselines, p.effect, smk.output.plot)
    log.info("models compared: %s; %d rows", ", ".join(p.models), len(table))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
