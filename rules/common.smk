# Shared setup: the validated config resolved once into a plan (prunebias.plan), and the
# path helpers. Everything here runs when the DAG is built, so bad input fails before
# any job starts. Jobs receive parsed settings and sources as params; no script parses
# a path.

import re
from pathlib import Path

# The Snakefile puts the workflow folder on sys.path and PYTHONPATH (the library is
# importable also where it is not installed).
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from prunebias.contexts import expand_context_names, load_yaml, resolve_all
from prunebias.prompt_table import check_every_name, read_prompt_table, table_contexts, table_names
from prunebias.errors import ConfigError
from prunebias.files import check_text_file
from prunebias.masks import combine_mem_mb
from prunebias import resources, side_effects
from prunebias.model_size import check_plant_layer, source_layers, source_size
from prunebias.code_version import code_versions
from prunebias.design import power_warnings, small_design_warning
from prunebias.modeling import check_hub_cached, check_prepared, resolve_source
from prunebias.paths import control_path, mask_path
from prunebias.names import check_cross_fit, check_name_split, load_names, name_folds, split_names
from prunebias.plan import Method, Plan, Source, resolve_mask_items
from prunebias.plant_spec import containment_warning, resolve_plant


def data_path(p):
    """A data file named in config: relative to the working directory if it is there,
    else relative to the workflow (so the shipped data works from any directory).
    Each file is resolved on its own."""
    path = Path(p)
    if path.is_absolute() or path.exists():
        return str(path)
    return str(Path(workflow.basedir) / path)


def _preflight():
    try:
        scenarios_file, sets_file = data_path(config["scenarios_file"]), data_path(config["context_sets_file"])
        if config["prompt_table"]:  # prompts verbatim: contexts and names from the table
            table_file = data_path(config["prompt_table"])
            rows = read_prompt_table(table_file)
            selected = expand_context_names(list(config["contexts"]), list(config["context_sets"]),
                                            load_yaml(sets_file) or {}, sets_file, allow_empty=True)
            contexts = table_contexts(rows, selected, config["prompt_level"], config["context_overrides"],
                                      load_yaml(scenarios_file) or {}, table_file)
            names = table_names(rows[rows["context"].isin(list(contexts))], f"config: prompt_table ({table_file})")
            check_every_name(contexts, names, table_file)
        else:
            contexts = resolve_all(config, scenarios_file, sets_file)
            names = load_names(data_path(config["names_file"]), config["use_surnames"])
        names_where = table_file if config["prompt_table"] else data_path(config["names_file"])
        if config["localization"]["name_split"]:
            check_name_split(names, names_where)
        check_cross_fit(config["localization"])
        check_text_file(data_path(config["evaluation"]["perplexity_text"]), "evaluation.perplexity_text",
                        "the perplexity text")
        win = config["analysis"]["winsorize"]
        if win is not None and not win[0] < win[1]:
            raise ConfigError("config: analysis.winsorize", f"{win} is not [lower, upper] with lower < upper",
                              "write e.g. [1, 99], or null to switch winsorizing off")
        plan = Plan.from_config(config, {n: c.scenario for n, c in contexts.items()}, load_yaml(sets_file) or {})
        # keys that name masks and contexts: every stale one in one message (dropping a
        # context from contexts leaves it named in several places)
        found = []
        config["export"] = resolve_mask_items(config["export"], list(contexts))  # KIND/SETTING follows contexts
        config["side_effects"]["masks"] = resolve_mask_items(config["side_effects"]["masks"], list(contexts))
        _gather(found, _check_mask_items, plan, config["export"], "config: export")
        _gather(found, _check_mask_items, plan, config["side_effects"]["masks"], "config: side_effects.masks")
        models = _gather(found, _models, config, list(contexts))
        if found:
            raise found[0] if len(found) == 1 else ConfigError(
                "config", f"{len(found)} keys name what this config does not have: "
                + "; ".join(f"({i}) {e.where}: {e.problem}" for i, e in enumerate(found, 1)),
                "; ".join(f"({i}) {e.fix}" for i, e in enumerate(found, 1)))
        task_files = _side_effect_tasks(config["side_effects"]["tasks"])
        sources = {name: resolve_source(m["source"]) for name, m in models.items() if m.get("source")}
        for name, m in models.items():  # a plant's layer, from its source's config or GGUF header
            if "plant" in m:
                src = sources[m["plant"]["from"]]
                check_plant_layer(m["plant"]["layer"], source_layers(src.kind, src.location, src.gguf_file),
                                  m["plant"]["from"], f"config: models ({name}).plant.layer")
        for name in models:
            check_prepared(MODEL_DIR.format(model=name), name)  # relative to the working directory, like every output
    except ConfigError as exc:
        raise WorkflowError(f"Invalid input: {exc}") from None
    contained = [containment_warning(m["plant"], list(contexts), f"config: models ({name}).plant")
                 for name, m in models.items() if "plant" in m]
    for warning in [*contained, *power_warnings(config, names, names_where), small_design_warning(config, models)]:
        if warning:
            logger.warning(f"Warning: {warning}")
    for name, src in sources.items():
        try:  # dry-runs and lint go on without the weights; prepare_model stops a real run
            check_hub_cached(src, models[name]["allow_download"])
        except ConfigError as exc:
            logger.warning(f"Warning: {exc} (a dry-run or --lint goes on; prepare_model will stop a real run here)")
    return contexts, plan, names, scenarios_file, models, sources, task_files


def _models(cfg, contexts):
    """{name: model entry}: the entries of ``models`` (several side by side), else ``model``;
    a planted entry's plant resolved (``prunebias.planting.resolve_plant``)."""
    entries = cfg["models"] or [cfg["model"]]
    where = "config: models" if cfg["models"] else "config: model"
    out = {}
    for m in entries:
        if m["name"] in out:
            raise ConfigError(where, f"the name '{m['name']}' is given twice",
                              "give each model its own name (it names its output folders)")
        out[m["name"]] = dict(m)
    for name, m in out.items():
        if ("source" in m) == ("plant" in m):
            raise ConfigError(f"{where} ({name})", "gives both source and plant" if "source" in m else
                              "gives neither source nor plant", "give a source (the model to load) or a plant "
                              "(a bias planted into another model of models), not both")
        if "plant" in m:
            m["plant"] = resolve_plant(m["plant"], {n: "source" in e for n, e in out.items()}, contexts,
                                       f"{where} ({name}).plant")
    return out


def _gather(found, check, *args):
    """``check(*args)``, its ConfigError appended to ``found`` instead of raised."""
    try:
        return check(*args)
    except ConfigError as exc:
        found.append(exc)
        return None


def _check_mask_items(plan, items, where):
    """Each KIND/SETTING/SOURCE (the schema checked the form) is a mask this config learns."""
    sources = [s.name for s in plan.sources()]
    for item in items:
        kind, setting, source = item.split("/")
        settings = [s.name for s in plan.settings(kind)]
        if setting not in settings or source not in sources:
            raise ConfigError(where, f"'{item}' is not a mask this config learns",
                              f"write {kind}/SETTING/SOURCE with a setting of {settings} and a source of {sources}")


def _side_effect_tasks(specs):
    """The lm-eval tasks of side_effects: local task files (checked here, resolved like any
    data file) and registered task names (checked by the job, offline). Returns
    {spec as the job gets it: the files it reads}."""
    out, names = {}, []
    for spec in specs:
        if not side_effects.is_task_file(spec):
            out[spec] = []
            names.append((spec, spec))
            continue
        path = data_path(spec)
        cfg = side_effects.check_task_file(path, "config: side_effects.tasks")
        out[path] = [path] + side_effects.data_files(path, cfg)
        names.append((path, str(cfg["task"])))
    side_effects.check_task_names(names, "config: side_effects.tasks")
    return out


# Every model-dependent output lies in a folder named after its model (the {model}
# wildcard): results/<stage>/<model>/..., so several models run side by side.
MODEL_DIR = "results/model/{model}"
CONTEXTS, PLAN, NAMES, SCENARIOS_FILE, MODELS, _SOURCES, SIDE_TASK_SPECS = _preflight()
SIDE_TASKS = list(SIDE_TASK_SPECS)
SIDE_TASK_FILES = [f for files in SIDE_TASK_SPECS.values() for f in files]
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
EVAL = config["evaluation"]
DRAWS = list(range(EVAL["random_draws"]))
# Name hold-out: masks learn on one seeded, race x gender balanced half of the names and
# are evaluated on the other half; with cross-fitting also the mirror fold, so that every
# name is evaluated once (prunebias.names.name_folds). Fold 0 is the mask that is exported,
# plotted and scored against a plant.
NAME_SPLIT = split_names(NAMES, config["seed"])
FOLDS = name_folds(NAMES, config["seed"], LOC["name_split"], LOC["cross_fit"])
LEARN_NAMES = FOLDS[0].learn


def names_input():
    """The names file as an input, unless the names come from a prompt table (then params)."""
    return {} if config["prompt_table"] else {"names": data_path(config["names_file"])}


# the table's names as records for the jobs that need them (None: they read names_file)
NAME_RECORDS = NAMES.to_dict("records") if config["prompt_table"] else None


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
    """Resources of every job that runs the model (``prunebias.resources``); ``role``
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


def setting_names(settings):
    return [s.name for s in settings]


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
        for kind in ("neurons", "heads")
        for setting in PLAN.settings(kind)
        for source in PLAN.sources()
    ]


def stability_mask_index():
    """((kind, setting, context), path pattern) of the single-context masks whose two folds
    measure_mask_stability compares (none without cross-fitting: it learns both halves)."""
    if len(FOLDS) < 2:
        return []
    heads = {s.name for s in PLAN.one_shot_head_settings()}
    return [(key, path) for key, path in mask_index()
            if key[2] in CONTEXTS and (key[0] == "neurons" and key[1] in {s.name for s in PLAN.neuron_settings}
                                       or key[0] == "heads" and key[1] in heads)]


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
    return [f"results/attribution/{{model}}/{s.name}.json" for s in PLAN.scored_sources()] if PLAN.grad_settings() else []


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
    neurons = {s.p_black for s in PLAN.settings("neurons") if hasattr(s, "p_black")}
    heads = {s.k for s in PLAN.settings("heads") if hasattr(s, "k")}
    return len(neurons) >= 2 or len(heads) >= 2


def dose_output():
    """aggregate_transfer's dose-response figure, only where there are doses to compare."""
    if not has_doses():
        return {}
    return {"dose": report("results/plots/{model}/dose_response.png", caption="../report/dose.rst", category="Transfer")}


def transfer_svgs():
    """The SVG twins of aggregate_transfer's figures (prunebias.plots writes each figure twice)."""
    pngs = [f"results/plots/{{model}}/transfer_{kind}__{setting.name}.png" for kind in ("neurons", "heads")
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
