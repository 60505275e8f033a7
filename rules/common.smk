# Shared setup: the validated config resolved once (prunebias.workflow.preflight), and the path
# helpers. Everything here runs when the DAG is built, so bad input fails before
# any job starts. Jobs receive parsed settings and sources as params; no script parses
# a path.

import re
from pathlib import Path

# The Snakefile puts the workflow folder on sys.path and PYTHONPATH (the library is
# importable also where it is not installed).
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from prunebias.workflow.code_version import code_versions, reference_version
from prunebias.audit.contexts import load_yaml
from prunebias.errors import ConfigError
from prunebias.methods.masks import combine_mem_mb
from prunebias.report import side_effects
from prunebias.workflow import resources
from prunebias.model.model_size import source_size
from prunebias.audit.names import name_folds, split_names
from prunebias.workflow.paths import control_path, mask_path
from prunebias.methods.registry import KINDS
from prunebias.workflow.plan import Method, Source
from prunebias.workflow.preflight import MODEL_DIR, data_file, preflight

def data_path(p):
    """A data file named in config, resolved like the preflight does (``prunebias.workflow.preflight.data_file``)."""
    return data_file(p, workflow.basedir)


def _preflight():
    """The checked and resolved config (``prunebias.workflow.preflight``): an input problem stops
    here, before any job, with the file or key and the fix; warnings are logged."""
    try:
        pre = preflight(config, workflow.basedir)
    except ConfigError as exc:
        raise WorkflowError(f"Invalid input: {exc}") from None
    for warning in pre.warnings:
        logger.warning(f"Warning: {warning}")
    config["export"] = pre.export  # KIND/SETTING items resolved: the rules read them from config
    config["side_effects"]["masks"] = pre.side_effect_masks
    return pre


# Every model-dependent output lies in a folder named after its model (the {model}
# wildcard): results/<stage>/<model>/..., so several models run side by side.
PRE = _preflight()
CONTEXTS, PLAN, NAMES, SCENARIOS_FILE, MODELS, _SOURCES = (PRE.contexts, PRE.plan, PRE.names, PRE.scenarios_file,
                                                           PRE.models, PRE.sources)
SIDE_TASKS = list(PRE.task_files)
SIDE_TASK_FILES = [f for files in PRE.task_files.values() for f in files]
# planted models (ground truth: a known bias planted into another model, rule plant_model)
# and the models loaded from a source (rule prepare_model)
PLANTED = {name: m["plant"] for name, m in MODELS.items() if "plant" in m}
LOADED = [name for name in MODELS if name not in PLANTED]
# each model's size before prepare_model has run (a local directory or a cached hub model;
# None for a GGUF file or an uncached model): the memory of jobs planned in a dry-run
SOURCE_SIZES = {name: source_size(src.kind, src.location) for name, src in _SOURCES.items()}
SOURCE_SIZES.update({name: SOURCE_SIZES[p["from"]] for name, p in PLANTED.items()})  # a plant keeps the size
RES = config["resources"]
# per entry script: a hash of it and the prunebias modules it imports (params: edits rerun its jobs)
CODE_VERSIONS = code_versions(Path(workflow.basedir))
LOC = config["localization"]


def learner_code(learned):
    """Code versions of the learners of these (family, setting) pairs' families: a learner is
    imported only when a job calls it (prunebias.methods.registry), so the rule adds its version as a
    param and an edit of it reruns the jobs of its families, no others."""
    return {f.name: reference_version(f.learn, Path(workflow.basedir)) for f, _ in learned}


def control_code(wildcards):
    """The code version of one mask's control draw (see learner_code)."""
    return reference_version(PLAN.family(wildcards.kind, wildcards.setting).control.draw, Path(workflow.basedir))
EVAL = config["evaluation"]
DRAWS = list(range(EVAL["random_draws"]))
# Name hold-out: masks learn on one seeded, race x gender balanced half of the names and
# are evaluated on the other half; with cross-fitting also the mirror fold, so that every
# name is evaluated once (prunebias.audit.names.name_folds). Fold 0 is the mask that is exported,
# plotted and scored against a plant.
NAME_SPLIT = split_names(NAMES, config["seed"])
FOLDS = name_folds(NAMES, config["seed"], LOC["name_split"], LOC["cross_fit"])
LEARN_NAMES = FOLDS[0].learn


def names_input():
    """The names file as an input, unless the names come from a prompt table (then params)."""
    return {} if config["prompt_table"] else {"names": data_path(config["names_file"])}


# the table's names as records for the jobs that need them (None: they read names_file)
NAME_RECORDS = NAMES.to_dict("records") if config["prompt_table"] else None


# the kinds as a wildcard constraint (neurons|heads|directions)
ANY_KIND = "|".join(KINDS)


def one_of(names):
    """A wildcard constraint that matches exactly these names (nothing if there are none)."""
    return "|".join(re.escape(n) for n in names) or "^$"


wildcard_constraints:
    model=one_of(MODELS),
    context=one_of(CONTEXTS),
    target=one_of(CONTEXTS),


def prompt_spec(wildcards):
    """The parts of a context that shape its prompts (params: edits rerun only this context)."""
    return CONTEXTS[wildcards.context].spec()


def target_spec(wildcards):
    """The target's prompt spec only (params: editing another context leaves this job be)."""
    return {wildcards.target: CONTEXTS[wildcards.target].spec()}


def model_resources(role="infer", masks=0):
    """Resources of every job that runs the model (``prunebias.workflow.resources``); ``role``
    (infer, prepare or attribution) and ``masks`` (neuron masks held at once) size the
    memory derived from the model's size."""
    attr = LOC["attribution"]
    mems = {name: resources.model_mem(RES, role, None if role == "prepare" else MODEL_DIR.format(model=name),
                                      SOURCE_SIZES[name], m["dtype"], m["device"], attr["batch_size"],
                                      attr["grid_size"], masks)
            for name, m in MODELS.items()}

    def mem_mb(wildcards, attempt=1):
        return mems[wildcards.model](wildcards, attempt)

    return resources.model_resources(RES, mem_mb)


def model_config(wildcards):
    """The config as one model's run sees it: every key, with ``models`` reduced to this
    model's own entry (its results.json does not change when another model is added)."""
    own = [m for m in (config["models"] or [config["model"]]) if m["name"] == wildcards.model]
    return {**{k: v for k, v in config.items() if k not in ("model", "models")}, "models": own}


def model_setting(key):
    """A setting of the job's model (params): dtype, device, source, ..."""
    return lambda wc: MODELS[wc.model][key]


def source_of(wildcards):
    """The parsed mask source of a job."""
    return Source.parse(wildcards.source)


def source_contexts(source):
    """The contexts whose prompts a mask source (a name) is learned on."""
    return PLAN.source_contexts(Source.parse(source))


# the (method, setting) pairs every mask source is evaluated with: real masks and their controls
EVAL_MASKS = [(method.name, setting.name) for method in PLAN.methods() for setting in PLAN.settings(method.kind)]


def eval_masks(model, method, setting, source):
    """The mask files one evaluation applies: the real mask, or its control draws."""
    method = Method.parse(method)
    if method.control:
        return [control_path(model, method.kind, setting, source, d) for d in DRAWS]
    return [mask_path(model, method.kind, setting, source)]


def source_masks(wc):
    """Every mask file the evaluations of one mask source apply."""
    return [path for m, s in EVAL_MASKS for path in eval_masks(wc.model, m, s, wc.source)]


def all_masks():
    return [path for _, path in mask_index()]


def mask_index():
    """((kind, setting, source), path pattern with {model}) of every real mask this config learns."""
    return [
        ((kind, setting.name, source.name), mask_path(kind=kind, setting=setting.name, source=source.name))
        for kind in KINDS
        for setting in PLAN.settings(kind)
        for source in PLAN.sources()
    ]


def recall_mask_index():
    """The masks scored against a plant: neuron masks and race directions (the plant lies in MLP weights)."""
    return [(key, path) for key, path in mask_index() if key[0] in ("neurons", "directions")]


# the settings learned from the caches alone (activations, head attention): what mask
# stability can relearn on each name half (greedy and gradient masks re-run the model)
CACHE_LEARNED = PLAN.learned_from("activations") + PLAN.learned_from("attention")


def stability_mask_index():
    """((kind, setting, context), path pattern) of the single-context masks whose two folds
    measure_mask_stability compares (none without cross-fitting: it learns both halves)."""
    if len(FOLDS) < 2:
        return []
    cached = {(f.kind, s.name) for f, s in CACHE_LEARNED}
    return [(key, path) for key, path in mask_index() if key[2] in CONTEXTS and key[:2] in cached]


def stability_masks():
    return [path for _, path in stability_mask_index()]


def all_evaluations():
    """The info file of every (mask, target) evaluation."""
    return [
        f"results/eval/{{model}}/{method}/{setting}/{source.name}/{target}.json"
        for method, setting in EVAL_MASKS
        for source in PLAN.sources()
        for target in CONTEXTS
    ]


def attribution_summaries():
    """The gradient attribution's summary files: one per source of the transfer DAG."""
    return [f"results/attribution/{{model}}/{s.name}.json" for s in PLAN.scored_sources()] if PLAN.learned_from("gradients") else []


def attribution_outputs():
    """The attribution summary tables, when there is a summary to make them from."""
    if not attribution_summaries():
        return []
    return ["results/tables/{model}/attribution_objective.csv", "results/tables/{model}/attribution_faithfulness.csv"]


def export_outputs():
    """The pruned models listed under config ``export``."""
    return [f"results/export/{{model}}/{item}" for item in config["export"]]


def has_doses():
    """At least two doses of one kind (p_black of neuron masks, k of head masks): a dose-response to draw."""
    return len(PLAN.doses("neurons")) >= 2 or len(PLAN.doses("heads")) >= 2


def dose_output():
    """aggregate_transfer's dose-response figure, only where there are doses to compare."""
    if not has_doses():
        return {}
    return {"dose": report("results/plots/{model}/dose_response.png", caption="../report/dose.rst", category="Transfer")}


def transfer_svgs():
    """The SVG twins of aggregate_transfer's figures (prunebias.report.plots writes each figure twice)."""
    pngs = [f"results/plots/{{model}}/transfer_{kind}__{setting.name}.png" for kind in KINDS
            for setting in PLAN.settings(kind)]
    pngs += ["results/plots/{model}/reduction_by_level.png"] + (["results/plots/{model}/dose_response.png"] if has_doses() else [])
    return [p.removesuffix(".png") + ".svg" for p in pngs]


def side_effect_outputs(model):
    """The side-effect table and plot of a loaded model, when side_effects lists masks (a
    planted model exists to validate the pipeline: what its masks cost elsewhere is not asked)."""
    if not config["side_effects"]["masks"] or model in PLANTED:
        return []
    return [f"results/tables/{model}/side_effects.csv", f"results/plots/{model}/side_effects.png"]


def headline_inputs(wildcards):
    """The tables the headline draws on: side effects where configured; a planted model's
    ground truth (its record and the masks' recall)."""
    out = {"baseline": "baseline_bias.csv", "transfer": "transfer.csv", "provenance": "provenance.json"}
    if side_effect_outputs(wildcards.model):
        out["side_effects"] = "side_effects.csv"
    if wildcards.model in PLANTED:
        out["recall"] = "planted_recall.csv"
    paths = {key: f"results/tables/{wildcards.model}/{name}" for key, name in out.items()}
    if wildcards.model in PLANTED:
        paths["model"] = MODEL_DIR.format(model=wildcards.model)
    return paths


def loaded_outputs(model):
    """What only a loaded model gets: how stable its masks are across name halves. A planted
    model is judged against its ground truth (planted_recall.csv) instead; its stability
    job would add a minute to the default run for a question nobody asks of a plant."""
    return [] if model in PLANTED else [f"results/tables/{model}/mask_stability.csv"]


def planted_outputs(model):
    """A planted model's ground-truth table."""
    return [f"results/tables/{model}/planted_recall.csv"] if model in PLANTED else []


def compare_outputs():
    """The cross-model table and plot, when the config lists several models."""
    if len(MODELS) < 2:
        return []
    return ["results/tables/models.csv", "results/plots/models.png"]
