"""Rule plot_side_effects: ``results/tables/{model}/side_effects.csv`` beside the audit's bias
reduction (``transfer.csv``) -> ``results/plots/{model}/side_effects.png`` (``prunebias.report.plots``)."""

import pandas as pd

from prunebias.workflow.logs import setup_logging
from prunebias.report.plots import side_effects_plot


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.plot_side_effects")
    table = pd.read_csv(smk.input.table, keep_default_na=False, na_values=[""])
    table["control_of"] = table["control_of"].fillna("")
    side_effects_plot(table, pd.read_csv(smk.input.transfer), smk.output[0])
    log.info("plotted %d side-effect rows", len(table))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
