"""prunebias: find where a language model stores racial bias, prune it, measure transfer.

The library behind the Snakemake workflow, usable from a notebook::

    import prunebias
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained("results/model/smollm2-135m-instruct")
    mask = prunebias.read_mask("results/masks/smollm2-135m-instruct/neurons/black_b15_w15_global/hiring-lawyer.npz")
    with prunebias.pruned(model, mask):   # weights zeroed inside, restored exactly after
        ...
    cache = prunebias.read_cache("results/activations/smollm2-135m-instruct/hiring-lawyer.parquet")
    table = prunebias.bias_table(answers)  # a data frame of answers -> the baseline bias table

Modules: ``plan`` (settings, sources, pools, levels), ``contexts``, ``names``, ``prompts``,
``parsing``, ``sampling``, ``answers``, ``modeling``, ``architecture``, ``activations``
(hooks and caches), ``scoring`` (pure scores), ``neurons``, ``heads``, ``masks``,
``controls``, ``pruning``, ``objective`` and ``attribution`` (gradient scores of the grid bias
objective), ``evaluation``, ``perplexity``, ``inference`` and ``metrics``
(statistics), ``transfer``, ``planting`` (positive control), ``plots``, ``files``.
The names below load their module on first use, so ``import prunebias`` stays light.
"""

from importlib import import_module
from typing import Any

__all__ = ["Mask", "read_mask", "write_mask", "pruned", "read_cache", "bias_table", "load_model",
           "NeuronSetting", "HeadSetting", "Source", "Method", "Plan"]

_EXPORTS = {
    "Mask": ("prunebias.masks", "Mask"),
    "read_mask": ("prunebias.masks", "read_mask"),
    "write_mask": ("prunebias.masks", "write_mask"),
    "pruned": ("prunebias.pruning", "pruned"),
    "read_cache": ("prunebias.activations", "read_cache"),
    "bias_table": ("prunebias.metrics", "summarize"),
    "load_model": ("prunebias.modeling", "load_model"),
    "NeuronSetting": ("prunebias.settings", "NeuronSetting"),
    "HeadSetting": ("prunebias.settings", "HeadSetting"),
    "Source": ("prunebias.plan", "Source"),
    "Method": ("prunebias.plan", "Method"),
    "Plan": ("prunebias.plan", "Plan"),
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'prunebias' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
