# prunebias: find where a language model stores racial bias, prune it, and measure
# whether the pruning transfers across decision contexts. See README.md.

from snakemake.utils import min_version, validate

min_version("9.0")


report: "report/workflow.rst"


configfile: "config/config.yaml"


validate(config, "config/schema.yaml", set_default=True)


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/prompts.smk"
include: "rules/baseline.smk"
include: "rules/localize.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        "results/tables/baseline_bias.csv",
        "results/tables/baseline_bias_by_gender.csv",
        all_masks(),
        "results/tables/transfer.csv",
        "results/tables/mask_stability.csv",
        attribution_outputs(),
        planted_outputs(),
