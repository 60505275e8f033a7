"""Rule make_prompts: one row per (name, sample) of a context -> ``results/prompts/{context}.parquet``.

Columns: see ``prunebias.audit.prompts``. ``seed`` is derived from (config seed, context, name,
sample), so adding names or samples never changes the seeds of existing rows.
"""

import pandas as pd

from prunebias.audit.contexts import Context
from prunebias.files import write_parquet
from prunebias.workflow.logs import setup_logging
from prunebias.audit.names import load_names
from prunebias.audit.prompts import build_prompts


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.make_prompts")
    ctx = Context(**{**smk.params.context, "range": tuple(smk.params.context["range"])})
    names = (pd.DataFrame(smk.params.names) if smk.params.names is not None  # a prompt table's names
             else load_names(smk.input.names, use_surnames=smk.params.use_surnames))
    df = build_prompts(ctx, names, smk.params.samples_per_name, smk.params.seed)
    write_parquet(df, smk.output[0], metadata={"context": ctx.spec()})
    log.info("%s: %d prompts (%d names x %d samples)", ctx.name, len(df), len(names), smk.params.samples_per_name)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
