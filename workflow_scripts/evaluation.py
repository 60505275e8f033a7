"""Answers of a model under a list of masks (none = the unpruned reference), one model load.

Every mask answers exactly the same prompts with the same seeds (the first
``evaluation.samples_per_name`` samples of each name, seeds salted by "eval"), so each
pruned answer has an unpruned twin in the reference: common random numbers, and a
paired comparison.
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import pandas as pd

from workflow_scripts.answers import generate_for_contexts
from workflow_scripts.masks import Mask
from workflow_scripts.perplexity import perplexity
from workflow_scripts.pruning import pruned
from workflow_scripts.sampling import Sampling


def eval_prompts(prompts: pd.DataFrame, samples_per_name: int, names: Sequence[str] | None = None) -> pd.DataFrame:
    """The evaluation subset of a context's prompts (optionally only the held-out ``names``)."""
    keep = prompts["sample"] < samples_per_name
    if names is not None:
        keep &= prompts["name"].isin(list(names))
    return prompts[keep].reset_index(drop=True)


def evaluate(model: Any, tok: Any, masks: Sequence[Mask | None], ablation: str, targets: dict[str, pd.DataFrame],
             contexts: dict[str, dict], settings: Sampling, text: str, max_tokens: int
             ) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """Answers per target (a ``draw`` column numbers the masks) and one info dict per mask.

    Each mask is applied once, answers every target and is undone exactly before the next.
    """
    frames: dict[str, list[pd.DataFrame]] = {t: [] for t in targets}
    infos = []
    for draw, mask in enumerate(masks):
        # no mask: the reference answers with the model as loaded (nothing zeroed)
        with (contextlib.nullcontext(0) if mask is None else pruned(model, mask, ablation)) as n_zeroed:
            ppl = perplexity(model, tok, text, max_tokens=max_tokens)
            got = generate_for_contexts(model, tok, targets, settings, "eval", contexts)
            for target in targets:
                frames[target].append(got[target].assign(draw=draw))
        meta = mask.meta if mask is not None else {}
        infos.append({"draw": draw, "perplexity": ppl, "n_zeroed": int(n_zeroed),
                      "n_pruned": int(meta.get("n_pruned", 0)), "n_total": int(meta.get("n_total", 0))})
    return {t: pd.concat(f, ignore_index=True) for t, f in frames.items()}, infos

