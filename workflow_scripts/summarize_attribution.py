"""Rule summarize_attribution: the gradient attribution's summaries of every source ->
``results/tables/{model}/attribution_objective.csv`` (B per source and context with its
name-bootstrap CI, and how well the grid expectation follows the sampled answers),
``attribution_faithfulness.csv`` (Spearman's rho of predicted against measured change of
B per unit kind, with its CI), ``attribution_faithfulness_units.csv`` (every removed unit)
and the figure ``results/plots/{model}/attribution_faithfulness.png``.
"""

import json
from pathlib import Path

from prunebias.methods.attribution_summary import faithfulness_tables, objective_table
from prunebias.files import write_csv
from prunebias.workflow.logs import setup_logging
from prunebias.report.plots import faithfulness_plot


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.summarize_attribution")
    summaries = [json.loads(Path(f).read_text()) for f in smk.input.summaries]
    objective = objective_table(summaries)
    units, faith = faithfulness_tables(summaries)
    write_csv(objective, smk.output.objective)
    write_csv(faith, smk.output.faithfulness)
    write_csv(units, smk.output.units)
    faithfulness_plot(units, faith, smk.output.plot)
    log.info("objective:\n%s\nfaithfulness:\n%s", objective.to_string(index=False), faith.to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
