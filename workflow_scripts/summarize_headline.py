"""Rule summarize_headline: the numbers a reader looks for first, each with its CI ->
``results/tables/{model}/headline.csv`` (``prunebias.report.headline``: taken from the baseline,
transfer and side-effect tables, a planted model's ground truth, and the provenance; no new inference),
its HTML page, and ``results/{model}/results.json`` (the same numbers, the config and the
provenance, for machines)."""

import datetime
import json
from pathlib import Path

import pandas as pd

from prunebias.workflow.code_version import git_commit
from prunebias.files import atomic_path, write_csv, write_json
from prunebias.report.headline import headline, headline_html, results_record
from prunebias.workflow.logs import setup_logging
from prunebias.planted.plant_spec import read_planted_record


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.summarize_headline")
    inp = smk.input
    has = set(inp.keys())
    side = pd.read_csv(inp.side_effects, keep_default_na=False, na_values=[""]) if "side_effects" in has else None
    truth = ((pd.read_csv(inp.recall), read_planted_record(inp.model)) if "recall" in has else None)
    # the commit of the workflow that wrote this headline (scriptdir: the workflow's own
    # workflow_scripts/, not Snakemake's copy), and when
    record = {**json.loads(Path(inp.provenance).read_text()), "commit": git_commit(Path(smk.scriptdir).parent),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    table = headline(pd.read_csv(inp.baseline), pd.read_csv(inp.transfer), smk.params.effect, side, truth, record)
    write_csv(table, smk.output.table)
    with atomic_path(smk.output.html) as tmp:
        tmp.write_text(headline_html(table))
    write_json(results_record(smk.wildcards.model, table, record, smk.params.config), smk.output.results)
    log.info("headline: %d rows\n%s", len(table), table[["section", "item", "estimate", "ci_low", "ci_high"]]
             .to_string(index=False))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
