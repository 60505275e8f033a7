"""Stage 1: one row per (name, sample) for a context -> ``results/prompts/{context}.parquet``.

Columns: context, scenario, variation, level, race, gender, first_name, surname, name,
name_source, sample, seed, prompt (the user message), answer_prefix.
``seed`` is derived from (config seed, context, name, sample), so adding names or
samples never changes the seeds of existing rows.
"""


import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

import pandas as pd

from workflow_scripts.contexts import Context
from workflow_scripts.errors import ConfigError
from workflow_scripts.seeds import derive_seed

COLUMNS = ["context", "scenario", "variation", "level", "race", "gender", "first_name", "surname", "name",
           "name_source", "sample", "seed", "prompt", "answer_prefix"]


def build_prompts(ctx: Context, names: pd.DataFrame, samples_per_name: int, seed: int) -> pd.DataFrame:
    """Every name x sample for one context; checks each prompt holds its name and no other."""
    rows = []
    all_first = list(names["first_name"])
    for rec in names.itertuples(index=False):
        prompt = ctx.render(rec.name)
        others = [f for f in all_first if f != rec.first_name and f in prompt]
        if prompt.count(rec.name) != 1 or others:
            raise ConfigError(
                f"context '{ctx.name}'",
                f"prompt for '{rec.name}' contains it {prompt.count(rec.name)} time(s) and other names {others}",
                "make sure the template and variation fields do not contain any listed name",
            )
        for s in range(samples_per_name):
            rows.append({
                "context": ctx.name, "scenario": ctx.scenario, "variation": ctx.variation, "level": ctx.level,
                "race": rec.race, "gender": rec.gender, "first_name": rec.first_name, "surname": rec.surname,
                "name": rec.name, "name_source": rec.source, "sample": s,
                "seed": derive_seed(seed, ctx.name, rec.name, s), "prompt": prompt,
                "answer_prefix": ctx.answer_prefix,
            })
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["sample"] = df["sample"].astype("int64")
    df["seed"] = df["seed"].astype("int64")
    return df


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    from workflow_scripts.files import write_parquet
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.names import load_names

    log = setup_logging(smk.log[0], "prunebias.make_prompts")
    ctx = Context(**{**smk.params.context, "range": tuple(smk.params.context["range"])})
    names = load_names(smk.input.names, use_surnames=smk.params.use_surnames)
    df = build_prompts(ctx, names, smk.params.samples_per_name, smk.params.seed)
    write_parquet(df, smk.output[0], metadata={"context": ctx.spec()})
    log.info("%s: %d prompts (%d names x %d samples)", ctx.name, len(df), len(names), smk.params.samples_per_name)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
