# prunebias: find where a language model stores racial bias, prune it, and measure
# whether the pruning transfers across decision contexts. See README.md.

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

# The library is importable from the workflow folder also where it is not installed
# (a conda env of --sdm conda, a cluster node): for this file and for every job script.
sys.path.insert(0, workflow.basedir)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p))

from prunebias.workflow.config_values import coerce_strings
from prunebias.audit.contexts import load_yaml


report: "report/workflow.rst"


configfile: "config/config.yaml"


if "controls" in config:  # the key of the removed private positive-control job
    raise WorkflowError("Invalid input: config: controls.planted_bias is gone: a planted model is a models entry "
                        "with plant: {from: <model name>, scope: general | context, ...} (config/config.yaml shows "
                        "two). Fix: delete controls and list planted models under models")
# nested --config overrides arrive as strings ("model={allow_download: true}"): typed first
coerce_strings(config, load_yaml(os.path.join(workflow.basedir, "config/schema.yaml")))
validate(config, "config/schema.yaml", set_default=True)


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/prompts.smk"
include: "rules/baseline.smk"
include: "rules/localize.smk"
include: "rules/evaluate.smk"
include: "rules/ground_truth.smk"
include: "rules/export.smk"
include: "rules/side_effects.smk"
include: "rules/report.smk"


# every model's outputs (each under its own folder), and the comparison when there are several
PER_MODEL = [
    "results/tables/{model}/baseline_bias.csv",
    "results/tables/{model}/baseline_bias_by_gender.csv",
    *all_masks(),
    "results/tables/{model}/pruned_by_layer.csv",
    "results/tables/{model}/transfer.csv",
    "results/tables/{model}/headline.csv",
    "results/{model}/results.json",  # the headline, the config and the provenance, for machines
    *attribution_outputs(),
    *export_outputs(),
]


rule all:
    default_target: True
    input:
        expand(PER_MODEL, model=MODELS),
        [path for model in MODELS for path in planted_outputs(model) + loaded_outputs(model) + side_effect_outputs(model)],
        compare_outputs(),
