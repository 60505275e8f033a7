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
from workflow_scripts.names import load_names


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
        load_names(data_path(config["names_file"]), config["use_surnames"])
        win = config["analysis"]["winsorize"]
        if win is not None and not win[0] < win[1]:
            raise ConfigError("config: analysis.winsorize", f"{win} is not [lower, upper] with lower < upper",
                              "write e.g. [1, 99], or null to switch winsorizing off")
        src = resolve_source(config["model"]["source"])
        check_hub_cached(src, config["model"]["allow_download"])
    except ConfigError as exc:
        raise WorkflowError(f"Invalid input: {exc}") from None
    return contexts


CONTEXTS = _preflight()
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
