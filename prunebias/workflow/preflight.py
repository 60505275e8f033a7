"""Everything the DAG is built from, checked before any job: the preflight.

``preflight(config, workflow_dir)`` resolves a schema-validated config into a
``Preflight`` (contexts, plan, names, models, side-effect tasks, warnings) or raises one
``ConfigError`` naming the file or key and the fix. ``rules/common.smk`` calls it once and
only turns the error into Snakemake's and logs the warnings; here it is a plain function
that tests call without Snakemake.

Import-light (no torch): it runs whenever the Snakefile is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from prunebias.report import side_effects
from prunebias.audit.contexts import Context, expand_context_names, load_yaml, resolve_all
from prunebias.stats.design import power_warnings, small_design_warning
from prunebias.errors import ConfigError
from prunebias.files import check_text_file
from prunebias.model.model_size import check_plant_layer, source_layers
from prunebias.model.modeling import ModelSource, check_hub_cached, check_prepared, resolve_source
from prunebias.audit.names import check_cross_fit, check_name_split, load_names
from prunebias.workflow.plan import Plan, resolve_mask_items
from prunebias.planted.plant_spec import covers_every_context, resolve_plant
from prunebias.audit.prompt_table import check_every_name, read_prompt_table, table_contexts, table_names

MODEL_DIR = "results/model/{model}"  # relative to the working directory, like every output


def data_file(path: str, workflow_dir: str | Path) -> str:
    """A data file named in config: relative to the working directory if it is there,
    else relative to the workflow (so the shipped data works from any directory)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(p)
    return str(Path(workflow_dir) / p)


@dataclass(frozen=True)
class Preflight:
    """The resolved config. ``export`` and ``side_effect_masks`` are the config's items as
    KIND/SETTING/SOURCE (a KIND/SETTING item takes the last selected context);
    ``task_files`` maps each side-effect task spec, as the job gets it, to the files it
    reads; ``warnings`` are logged, never refused."""

    contexts: dict[str, Context]
    plan: Plan
    names: pd.DataFrame
    names_file: str
    scenarios_file: str
    models: dict[str, dict[str, Any]]
    sources: dict[str, ModelSource]
    task_files: dict[str, list[str]]
    export: list[str]
    side_effect_masks: list[str]
    warnings: list[str] = field(default_factory=list)


def preflight(config: Mapping[str, Any], workflow_dir: str | Path) -> Preflight:
    """Check and resolve ``config`` (validated against config/schema.yaml, defaults filled)."""
    def data(p: str) -> str:
        return data_file(p, workflow_dir)

    scenarios_file, sets_file = data(config["scenarios_file"]), data(config["context_sets_file"])
    if config["prompt_table"]:  # prompts verbatim: contexts and names from the table
        names_file = data(config["prompt_table"])
        rows = read_prompt_table(names_file)
        selected = expand_context_names(list(config["contexts"]), list(config["context_sets"]),
                                        load_yaml(sets_file) or {}, sets_file, allow_empty=True)
        contexts = table_contexts(rows, selected, config["prompt_level"], config["context_overrides"],
                                  load_yaml(scenarios_file) or {}, names_file)
        names = table_names(rows[rows["context"].isin(list(contexts))], f"config: prompt_table ({names_file})")
        check_every_name(contexts, names, names_file)
    else:
        contexts = resolve_all(config, scenarios_file, sets_file)
        names_file = data(config["names_file"])
        names = load_names(names_file, config["use_surnames"])
    if config["localization"]["name_split"]:
        check_name_split(names, names_file)
    check_cross_fit(config["localization"])
    check_text_file(data(config["evaluation"]["perplexity_text"]), "evaluation.perplexity_text", "the perplexity text")
    win = config["analysis"]["winsorize"]
    if win is not None and not win[0] < win[1]:
        raise ConfigError("config: analysis.winsorize", f"{win} is not [lower, upper] with lower < upper",
                          "write e.g. [1, 99], or null to switch winsorizing off")
    plan = Plan.from_config(config, {n: c.scenario for n, c in contexts.items()}, load_yaml(sets_file) or {})
    export = resolve_mask_items(config["export"], list(contexts))  # KIND/SETTING follows contexts
    side_masks = resolve_mask_items(config["side_effects"]["masks"], list(contexts))
    # keys that name masks and contexts: every stale one in one message (dropping a
    # context from contexts leaves it named in several places)
    found: list[ConfigError] = []
    _gather(found, check_mask_items, plan, export, "config: export")
    _gather(found, check_mask_items, plan, side_masks, "config: side_effects.masks")
    models = _gather(found, resolve_models, config, list(contexts))
    if found:
        raise found[0] if len(found) == 1 else ConfigError(
            "config", f"{len(found)} keys name what this config does not have: "
            + "; ".join(f"({i}) {e.where}: {e.problem}" for i, e in enumerate(found, 1)),
            "; ".join(f"({i}) {e.fix}" for i, e in enumerate(found, 1)))
    # a context plant that follows `contexts` (none listed) to a single selected context
    # has nothing outside to calibrate against: a default that cannot follow is left out
    # with a warning (a listed one that covers every context was refused above)
    left_out = [name for name, m in models.items() if "plant" in m and covers_every_context(m["plant"], list(contexts))]
    warnings = [f"config: models ({name}).plant: the context plant follows `contexts` to {', '.join(contexts)}, "
                f"and no selected context is left outside it to calibrate against or to show that it stays in its "
                f"contexts: {name} is left out of this run. Select another context to run it" for name in left_out]
    models = {name: m for name, m in models.items() if name not in left_out}
    task_files = side_effect_tasks(config["side_effects"]["tasks"], data)
    sources = {name: resolve_source(m["source"]) for name, m in models.items() if m.get("source")}
    for name, m in models.items():  # a plant's layer, from its source's config or GGUF header
        if "plant" in m:
            src = sources[m["plant"]["from"]]
            check_plant_layer(m["plant"]["layer"], source_layers(src.kind, src.location, src.gguf_file),
                              m["plant"]["from"], f"config: models ({name}).plant.layer")
    for name in models:
        check_prepared(MODEL_DIR.format(model=name), name)
    warnings += [*power_warnings(config, names, names_file), small_design_warning(config, models)]
    for name, src in sources.items():
        try:  # dry-runs and lint go on without the weights; prepare_model stops a real run
            check_hub_cached(src, models[name]["allow_download"])
        except ConfigError as exc:
            warnings.append(f"{exc} (a dry-run or --lint goes on; prepare_model will stop a real run here)")
    return Preflight(contexts, plan, names, names_file, scenarios_file, models, sources, task_files, export,
                     side_masks, [w for w in warnings if w])


def resolve_models(cfg: Mapping[str, Any], contexts: list[str]) -> dict[str, dict[str, Any]]:
    """{name: model entry}: the entries of ``models`` (several side by side), else ``model``;
    a planted entry's plant resolved (``prunebias.planted.plant_spec.resolve_plant``)."""
    entries = cfg["models"] or [cfg["model"]]
    where = "config: models" if cfg["models"] else "config: model"
    out: dict[str, dict[str, Any]] = {}
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


def check_mask_items(plan: Plan, items: list[str], where: str) -> None:
    """Each KIND/SETTING/SOURCE (the schema checked the form) is a mask this config learns."""
    sources = [s.name for s in plan.sources()]
    for item in items:
        kind, setting, source = item.split("/")
        settings = [s.name for s in plan.settings(kind)]
        if setting not in settings or source not in sources:
            raise ConfigError(where, f"'{item}' is not a mask this config learns",
                              f"write {kind}/SETTING/SOURCE with a setting of {settings} and a source of {sources}")


def side_effect_tasks(specs: list[str], data: Callable[[str], str]) -> dict[str, list[str]]:
    """The lm-eval tasks of side_effects: local task files (checked here, resolved like any
    data file by ``data``) and registered task names (checked by the job, offline).
    Returns {spec as the job gets it: the files it reads}."""
    out: dict[str, list[str]] = {}
    names = []
    for spec in specs:
        if not side_effects.is_task_file(spec):
            out[spec] = []
            names.append((spec, spec))
            continue
        path = data(spec)
        cfg = side_effects.check_task_file(path, "config: side_effects.tasks")
        out[path] = [path] + side_effects.data_files(path, cfg)
        names.append((path, str(cfg["task"])))
    side_effects.check_task_names(names, "config: side_effects.tasks")
    return out


def _gather(found: list[ConfigError], check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)``, its ConfigError appended to ``found`` instead of raised."""
    try:
        return check(*args)
    except ConfigError as exc:
        found.append(exc)
        return None
