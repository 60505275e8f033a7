"""Prompt tables: one row per (name, sample) of a context.

Columns: context, scenario, variation, detail_level, race, gender, first_name, surname, name,
name_source, sample, seed, prompt (the user message), answer_prefix.
``seed`` is derived from (config seed, context, name, sample), so adding names or
samples never changes the seeds of existing rows.
"""


import pandas as pd

from prunebias.audit.contexts import Context
from prunebias.errors import ConfigError
from prunebias.audit.names import name_occurrences
from prunebias.seeds import derive_seed

COLUMNS = ["context", "scenario", "variation", "detail_level", "race", "gender", "first_name", "surname", "name",
           "name_source", "sample", "seed", "prompt", "answer_prefix"]


def build_prompts(ctx: Context, names: pd.DataFrame, samples_per_name: int, seed: int) -> pd.DataFrame:
    """Every name x sample for one context; checks each prompt holds its name and no other."""
    rows = []
    all_first = list(names["first_name"])
    for rec in names.itertuples(index=False):
        prompt = ctx.render(rec.name)
        if ctx.prompts:  # a prompt table's verbatim prompt: its subject at least once; others may be named
            if not name_occurrences(prompt, rec.name):
                raise ConfigError(f"context '{ctx.name}'", f"the prompt for '{rec.name}' does not contain the name",
                                  "write the subject's name into its prompt")
        elif (others := [f for f in all_first if f != rec.first_name and f in prompt]) or prompt.count(rec.name) != 1:
            raise ConfigError(
                f"context '{ctx.name}'",
                f"prompt for '{rec.name}' contains it {prompt.count(rec.name)} time(s) and other names {others}",
                "make sure the template and variation fields do not contain any listed name",
            )
        for s in range(samples_per_name):
            rows.append({
                "context": ctx.name, "scenario": ctx.scenario, "variation": ctx.variation, "detail_level": ctx.detail_level,
                "race": rec.race, "gender": rec.gender, "first_name": rec.first_name, "surname": rec.surname,
                "name": rec.name, "name_source": rec.source, "sample": s,
                "seed": derive_seed(seed, ctx.name, rec.name, s), "prompt": prompt,
                "answer_prefix": ctx.answer_prefix,
            })
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["sample"] = df["sample"].astype("int64")
    df["seed"] = df["seed"].astype("int64")
    return df
