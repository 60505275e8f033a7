"""Masks from attribution scores (``prunebias.methods.attribution``): the entries, whole MLP neurons
or heads whose removal moves the bias objective B toward 0 the most, at a Wanda mask's
budget, optionally sparing what ordinary text needs (``protect``, the SNIP set
difference). Selection keeps only entries that move B toward 0 (first order).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from prunebias.methods.attribution import MLP, SourceScores, neuron_deltas


def protect(toward: dict[str, torch.Tensor], importance: dict[str, torch.Tensor], percent: float
            ) -> dict[str, torch.Tensor]:
    """The SNIP set difference (Wei et al. 2024): oriented scores with the top ``percent``%
    of each matrix by text importance set to 0, so that selection (negative entries only)
    never removes what ordinary text needs. ``percent`` 0 returns the scores unchanged."""
    if percent <= 0:
        return toward
    out = {}
    for k, s in toward.items():
        imp = importance[k].flatten()
        n = int(round(imp.numel() * percent / 100))
        keep = s.clone().flatten()
        if n > 0:
            keep[torch.topk(imp, n).indices] = 0.0
        out[k] = keep.view(s.shape)
    return out


def protect_units(toward: torch.Tensor, importance: torch.Tensor, percent: float) -> torch.Tensor:
    """The set difference for whole units (layers x units): per layer, the top ``percent``% of
    units by text importance (``neuron_deltas`` of the importance) get score 0."""
    if percent <= 0:
        return toward
    out = toward.clone()
    n = int(round(toward.shape[1] * percent / 100))
    if n > 0:
        rows = torch.arange(toward.shape[0])[:, None]
        out[rows, torch.topk(importance, n, dim=1).indices] = 0.0
    return out


def protect_scores(scores: SourceScores, importance: dict[str, torch.Tensor], percent: float) -> SourceScores:
    """``scores`` with the SNIP set difference applied to weights (per matrix) and to MLP
    neurons (per layer); heads are kept whole, as the paper's head masks are."""
    if percent <= 0:
        return scores
    return replace(scores, weights=protect(scores.weights, importance, percent),
                   neurons=protect_units(scores.neurons, neuron_deltas(importance, scores.neurons.shape[0]), percent))


def select_weights(scores: torch.Tensor, b: float, count: int) -> torch.Tensor:
    """The ``count`` entries whose removal moves B toward 0 the most (only entries that do)."""
    toward = scores * float(np.sign(b))  # negative: removal shrinks |B| (first order)
    flat = toward.flatten()
    count = min(int(count), int((flat < 0).sum()))
    out = torch.zeros(flat.numel(), dtype=torch.bool)
    if count > 0:
        out[torch.topk(-flat, count).indices] = True
    return out.view(scores.shape)


def select_by_counts(toward: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Per matrix, the ``counts[key]`` most negative entries of the oriented scores (equal budget)."""
    return {k: select_weights(s, 1.0, int(counts.get(k, 0))).numpy() for k, s in toward.items()}


def select_neurons(toward: torch.Tensor, budget: int, shapes: Mapping[str, tuple[int, ...]]
                   ) -> dict[str, np.ndarray]:
    """Whole MLP neurons (``toward``: layers x intermediate, oriented) whose removal moves B
    toward 0 the most, as many as fit in ``budget`` weights: each takes its gate and up rows
    and its down column. Other matrices of ``shapes`` get empty masks (equal budget)."""
    arrays = {k: np.zeros(tuple(shape), dtype=bool) for k, shape in shapes.items()}
    gate, up, down = (shapes[f"layers.0.{m}"] for m in MLP)
    per = int(gate[1] + up[1] + down[0])  # the weights of one neuron
    flat = toward.flatten()
    n = min(int(budget) // per, int((flat < 0).sum()))
    for i in torch.topk(-flat, n).indices.tolist() if n > 0 else []:
        layer, j = divmod(i, toward.shape[1])
        arrays[f"layers.{layer}.{MLP[0]}"][j] = True
        arrays[f"layers.{layer}.{MLP[1]}"][j] = True
        arrays[f"layers.{layer}.{MLP[2]}"][:, j] = True
    return arrays


def mlp_count(counts: Mapping[str, int]) -> int:
    """The number of MLP weights in a mask's per-matrix counts."""
    return sum(int(v) for k, v in counts.items() if k.rsplit(".", 1)[-1] in MLP)


def weight_masks(scores: SourceScores, budgets: Mapping[str, Mapping[str, int]], settings: Sequence[Any]
                 ) -> list[dict[str, np.ndarray]]:
    """``grad_`` masks: single weights by S, the count per matrix of each setting's Wanda
    budget (``budgets[its name]``: that mask's per-matrix counts)."""
    return [select_by_counts(scores.weights, budgets[s.budget.name]) for s in settings]


def mlp_neuron_masks(scores: SourceScores, budgets: Mapping[str, Mapping[str, int]], settings: Sequence[Any]
                     ) -> list[dict[str, np.ndarray]]:
    """``gradmlp_`` masks: whole MLP neurons by their summed S, as many as fit in the MLP
    weight count of each setting's Wanda budget."""
    shapes = {k: tuple(s.shape) for k, s in scores.weights.items()}
    return [select_neurons(scores.neurons, mlp_count(budgets[s.budget.name]), shapes) for s in settings]


def _top_heads(heads: torch.Tensor | None, settings: Sequence[Any], what: str) -> list[dict[str, np.ndarray]]:
    if heads is None:
        raise ValueError(f"{what} head masks need scores that were not computed (source_attribution(patching=True))")
    return [{"heads": select_weights(heads, 1.0, s.k).numpy(), "scores": (-heads).numpy().astype(np.float32)}
            for s in settings]


def gate_head_masks(scores: SourceScores, budgets: Mapping[str, Mapping[str, int]], settings: Sequence[Any]
                    ) -> list[dict[str, np.ndarray]]:
    """``grad_k`` masks: the top k heads by gate attribution (saved negated: larger = more bias removed)."""
    return _top_heads(scores.heads, settings, "gate-attribution")


def patch_head_masks(scores: SourceScores, budgets: Mapping[str, Mapping[str, int]], settings: Sequence[Any]
                     ) -> list[dict[str, np.ndarray]]:
    """``patch_k`` masks: the top k heads by attribution patching between White and Black prompts."""
    return _top_heads(scores.patch, settings, "attribution-patching")
