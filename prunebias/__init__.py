"""prunebias: find where a language model stores racial bias, prune it, measure transfer.

The library behind the Snakemake workflow, usable from a notebook::

    import prunebias
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained("results/model/smollm2-135m-instruct")
    mask = prunebias.read_mask("results/masks/smollm2-135m-instruct/neurons/black_b10_w10_global/hiring-lawyer.npz")
    with prunebias.pruned(model, mask):   # weights zeroed inside, restored exactly after
        ...
    cache = prunebias.read_cache("results/activations/smollm2-135m-instruct/hiring-lawyer.parquet")
    table = prunebias.bias_table(answers)  # a data frame of answers -> the baseline bias table

Subpackages, by concern: ``workflow`` (the plan, the preflight, paths, provenance),
``audit`` (contexts, names, prompts, parsing, answers), ``model`` (loading, hooks, caches,
sampling, evaluation, pruning, export), ``methods`` (the method registry and each family's
scores, masks and controls), ``planted`` (ground truth), ``stats`` (metrics, inference,
transfer, power) and ``report`` (headline, plots, side effects); ``errors``, ``files`` and
``seeds`` are used by all.
The names below load their module on first use, so ``import prunebias`` stays light.
"""

from importlib import import_module
from typing import Any

__all__ = ["Mask", "read_mask", "write_mask", "pruned", "read_cache", "bias_table", "load_model",
           "NeuronSetting", "HeadSetting", "Source", "Method", "Plan"]

_EXPORTS = {
    "Mask": ("prunebias.methods.masks", "Mask"),
    "read_mask": ("prunebias.methods.masks", "read_mask"),
    "write_mask": ("prunebias.methods.masks", "write_mask"),
    "pruned": ("prunebias.model.pruning", "pruned"),
    "read_cache": ("prunebias.model.activations", "read_cache"),
    "bias_table": ("prunebias.stats.metrics", "summarize"),
    "load_model": ("prunebias.model.modeling", "load_model"),
    "NeuronSetting": ("prunebias.methods.settings", "NeuronSetting"),
    "HeadSetting": ("prunebias.methods.settings", "HeadSetting"),
    "Source": ("prunebias.workflow.plan", "Source"),
    "Method": ("prunebias.workflow.plan", "Method"),
    "Plan": ("prunebias.workflow.plan", "Plan"),
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'prunebias' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
