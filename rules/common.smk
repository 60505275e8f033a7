# Shared setup: validated config, resolved contexts and path helpers. Everything here
# runs when the DAG is built, so bad input fails before any job starts.

import re
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from snakemake.exceptions import WorkflowError

from workflow_scripts.contexts import resolve_all
from workflow_scripts.errors import ConfigError
from workflow_scripts.modeling import check_hub_cached, resolve_source
from workflow_scripts.names import load_names, split_names
from workflow_scripts.score_heads import head_variant
from workflow_scripts.score_neurons import neuron_variant


def data_path(p):
    """A data file named in config: relative to the working directory if it is there,
    else relative to the workflow (so the shipped data works from any directory)."""
    path = Path(p)
    if path.is_absolute() or path.exists():
        return str(path)
    return str(Path(workflow.basedir) / path)


def _preflight():
    try:
        base = Path(".") if Path(config["scenarios_file"]).exists() else Path(workflow.basedir)
        contexts = resolve_all(config, base)
        names = load_names(data_path(config["names_file"]), config["use_surnames"])
        win = config["analysis"]["winsorize"]
        if win is not None and not win[0] < win[1]:
            raise ConfigError("config: analysis.winsorize", f"{win} is not [lower, upper] with lower < upper",
                              "write e.g. [1, 99], or null to switch winsorizing off")
        pools = resolve_pools(contexts, base)
        planted = config["controls"]["planted_bias"]
        for c in planted["contexts"]:
            if c not in contexts:
                raise ConfigError("config: controls.planted_bias.contexts", f"'{c}' is not a selected context",
                                  "list contexts that are under contexts/context_sets, or leave it empty")
        src = resolve_source(config["model"]["source"])
        check_hub_cached(src, config["model"]["allow_download"])
    except ConfigError as exc:
        raise WorkflowError(f"Invalid input: {exc}") from None
    return contexts, pools, names


def auto_pools(contexts, kinds):
    """Automatic pools: leave-one-out within a scenario and all-other-scenarios.

    loo_{context}: the other selected variations of its scenario (needs >= 2 of them);
    others_{scenario}: every selected context of the other scenarios (needs >= 2).
    """
    by_scen = {}
    for c in contexts:
        by_scen.setdefault(c.split("-")[0], []).append(c)
    pools = {}
    if "leave_one_out" in kinds:
        for scen, members in by_scen.items():
            for c in members:
                rest = [m for m in members if m != c]
                if len(rest) >= 2:
                    pools[f"loo_{c}"] = {"members": rest, "origin": "leave_one_out", "heldout": c}
    if "other_scenarios" in kinds:
        for scen in by_scen:
            rest = [c for c in contexts if c.split("-")[0] != scen]
            if len(rest) >= 2:
                pools[f"others_{scen}"] = {"members": rest, "origin": "other_scenarios", "target_scenario": scen}
    return pools


def resolve_pools(contexts, base):
    """Pool name -> member contexts; every member must be a selected context."""
    from workflow_scripts.contexts import load_yaml

    sets = load_yaml(base / config["context_sets_file"]) or {}
    pools = {}
    for pool, entries in config["localization"]["pools"].items():
        members = []
        for e in entries:
            members.extend(sets[e] if e in sets else [e])
        for m in members:
            if m not in contexts:
                raise ConfigError(f"config: localization.pools.{pool}", f"'{m}' is not a selected context",
                                  "add it to contexts (or context_sets), or remove it from the pool")
        if len(set(members)) < 2:
            raise ConfigError(f"config: localization.pools.{pool}", "a pool needs at least two contexts",
                              "list two or more contexts")
        pools[pool] = list(dict.fromkeys(members))
    return pools


CONTEXTS, POOLS, NAMES = _preflight()
SCENARIOS_FILE = data_path(config["scenarios_file"])
PLANTED = {**config["controls"]["planted_bias"]}
PLANTED["contexts"] = PLANTED["contexts"] or list(CONTEXTS)[:1]
MODEL_DIR = f"results/model/{config['model']['name']}"
RES = config["resources"]


wildcard_constraints:
    context="|".join(re.escape(c) for c in CONTEXTS),


def prompt_spec(wildcards):
    """The parts of a context that shape its prompts (params: edits rerun only this context)."""
    return CONTEXTS[wildcards.context].spec()


def model_resources():
    """Resources of every job that runs the model; GPUs only when configured."""
    res = {"mem_mb": RES["model_mem_mb"], "runtime": RES["model_runtime"]}
    if RES["gpu"] > 0:
        res["gpu"] = RES["gpu"]
        if RES["gpu_model"]:
            res["gpu_model"] = RES["gpu_model"]
    return res


LOC = config["localization"]
NEURON_VARIANTS = [
    neuron_variant(d, pb, pw, LOC["neurons"]["selection"])
    for d in LOC["neurons"]["directions"]
    for pb, pw in LOC["neurons"]["p"]
]
ONE_SHOT_HEAD_VARIANTS = [head_variant(s, k) for s in LOC["heads"]["scores"] for k in LOC["heads"]["k"]] + [
    head_variant("setdiff", pair) for pair in LOC["heads"]["setdiff"]
]
GREEDY_HEAD_VARIANTS = [head_variant("greedy", k) for k in LOC["heads"]["greedy"]]
HEAD_VARIANTS = ONE_SHOT_HEAD_VARIANTS + GREEDY_HEAD_VARIANTS
CONFIGURED_POOLS = POOLS
AUTO_POOLS = auto_pools(list(CONTEXTS), LOC["auto_pools"])
POOLS = {**CONFIGURED_POOLS, **{k: v["members"] for k, v in AUTO_POOLS.items()}}
POOL_INFO = {
    **{k: {"members": v, "origin": "configured"} for k, v in CONFIGURED_POOLS.items()},
    **AUTO_POOLS,
}
# Mask sources: every context, pooled@POOL (scored on the pool's prompts; configured
# pools) and common@POOL (combined from the members' masks; configured pools and the
# automatic leave-one-out / other-scenario pools, as in the paper's levels 2 and 3).
SCORED_SOURCES = list(CONTEXTS) + [
    f"pooled@{p}" for p in CONFIGURED_POOLS if "pooled" in LOC["pool_masks"]
]
COMMON_SOURCES = [f"common@{p}" for p in CONFIGURED_POOLS if "common" in LOC["pool_masks"]] + [
    f"common@{p}" for p in AUTO_POOLS
]
ALL_SOURCES = SCORED_SOURCES + COMMON_SOURCES

EVAL = config["evaluation"]
KIND_VARIANTS = {"neurons": NEURON_VARIANTS, "heads": HEAD_VARIANTS}
METHODS = ["neurons", "heads"] + (["random_neurons", "random_heads"] if EVAL["random_controls"] else [])
DRAWS = list(range(EVAL["random_draws"]))
# Name hold-out: masks learn on one seeded, race x gender balanced half of the names and
# are evaluated on the other half (None = every name on both sides).
NAME_SPLIT = split_names(NAMES, config["seed"])
LEARN_NAMES = NAME_SPLIT["learn"] if LOC["name_split"] else None
EVAL_NAMES = NAME_SPLIT["holdout"] if LOC["name_split"] else None


def eval_masks(wc):
    """The mask files one evaluation job applies: the real mask, or its control draws."""
    kind = mask_kind(wc.method)
    if wc.method.startswith("random_"):
        return [f"results/masks/random_{kind}/{wc.variant}/{wc.source}/draw{d}.npz" for d in DRAWS]
    return [f"results/masks/{kind}/{wc.variant}/{wc.source}.npz"]


def mask_kind(method):
    """neurons / heads for a method name (random controls use the real mask's kind)."""
    return method.removeprefix("random_")


def source_contexts(source):
    """The contexts whose prompts a mask source is learned on."""
    if "@" in source:
        return POOLS[source.split("@", 1)[1]]
    return [source]


def all_masks():
    return [
        f"results/masks/{kind}/{variant}/{source}.npz"
        for kind, variants in KIND_VARIANTS.items()
        for variant in variants
        for source in ALL_SOURCES
    ]


def all_evaluations():
    return [
        f"results/eval/{method}/{variant}/{source}/info.json"
        for method in METHODS
        for variant in KIND_VARIANTS[mask_kind(method)]
        for source in ALL_SOURCES
    ]


def planted_outputs():
    """The positive control's tables, when it is switched on."""
    if not PLANTED["enabled"]:
        return []
    return ["results/tables/planted_control.csv", "results/tables/planted_baseline.csv"]
