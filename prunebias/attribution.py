"""Gradient attribution of the bias objective to weights and heads.

With B the grid bias objective (``objective``) and G = dB/dW its gradient, zeroing one
weight changes B by about S_ij = -W_ij * G_ij (first order). A head's output passes
through its slice of o_proj's input columns; a multiplicative gate g on it has
dB/dg = sum over that slice of W * G at g = 1, so removing the head changes B by about
the sum of S over the slice (Michel et al. 2019's head importance, signed); zeroing its rows of
q_proj (the paper's ablation, ``q_rows``) by about the sum of S over those rows.

Saturation and integrated gradients: where the race pathway already pins the answer's
probabilities, dB/dW is ~0 at the very weights that carry the bias. ``steps`` > 1
averages the gradient along the name path of ``objective`` (the names' input embeddings
moved from a race-neutral mean to themselves, alpha = 1/steps ... 1, right Riemann sum),
as EAP-IG does along its input interpolation (Hanna et al. 2024), and scores
S = -W * mean_alpha dB_alpha/dW: the weights through which the race signal moves the
answer while it is still growing. steps = 1 is the plain gradient.

Only the decoder's linear weights require gradients (embeddings, norms and the LM head
do not), the gradient of each batch adds into ``.grad`` (B is linear in the per-prompt
expectations), and the scores are computed matrix by matrix and kept on the CPU in
float32. Selection (``select_weights``, ``select_heads``) keeps the entries whose
removal moves B toward 0 the most.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from prunebias.architecture import MODULES, check_architecture, linear
from prunebias.masks import Mask
from prunebias.objective import bias_objective, name_baseline
from prunebias.pruning import pruned


def linear_weights(model: Any) -> dict[str, torch.nn.Parameter]:
    """``layers.L.module`` -> the weight of every scored linear module."""
    geo = check_architecture(model)
    return {f"layers.{layer}.{m}": linear(model, layer, m).weight for layer in range(geo.n_layers) for m in MODULES}


def head_deltas(scores: dict[str, torch.Tensor], n_layers: int, n_heads: int, head_dim: int,
                ablation: str = "q_rows") -> torch.Tensor:
    """First-order change of B per head (layers x heads) for the evaluation's head ablation:
    ``q_rows`` zeroes the head's rows of q_proj, ``o_cols`` its input columns of o_proj (the
    gate attribution); either way the sum of S over the zeroed entries."""
    out = torch.zeros(n_layers, n_heads)
    for layer in range(n_layers):
        if ablation == "q_rows":
            s = scores[f"layers.{layer}.q_proj"]
            out[layer] = s.view(n_heads, head_dim, s.shape[1]).sum(dim=(1, 2))
        elif ablation == "o_cols":
            s = scores[f"layers.{layer}.o_proj"]
            out[layer] = s.view(s.shape[0], n_heads, head_dim).sum(dim=(0, 2))
        else:
            raise ValueError(f"unknown head ablation {ablation!r} (q_rows or o_cols)")
    return out


def name_path(steps: int) -> list[float]:
    """The alphas of the name path's right Riemann sum: 1/steps, ..., 1 (just 1 for the plain gradient)."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps}")
    return [k / steps for k in range(1, int(steps) + 1)]


def weight_attribution(model: Any, tok: Any, rows: pd.DataFrame, values: Sequence[float], batch_size: int = 16,
                       log_value: bool = False, head_ablation: str = "q_rows", steps: int = 1
                       ) -> tuple[float, dict[str, torch.Tensor], torch.Tensor, np.ndarray]:
    """(B, S per linear weight, head deltas layers x heads, E per prompt): changes of B on removal,
    first order (``steps`` 1) or with the gradient integrated along the name path."""
    geo = check_architecture(model)
    alphas = name_path(steps)
    weights = linear_weights(model)
    saved = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    for w in weights.values():
        w.requires_grad_(True)
    try:
        base = name_baseline(model, tok, rows) if len(alphas) > 1 else None
        for alpha in alphas:  # gradients add up in .grad; B and E are those at alpha = 1 (the last)
            b, expected = bias_objective(model, tok, rows, values, batch_size, log_value, backward=True,
                                         name_alpha=alpha, baseline=base)
        scores = {k: (-(w.detach() * w.grad) / len(alphas)).float().cpu() for k, w in weights.items()}
    finally:
        for p, req in saved.items():
            p.requires_grad_(req)
            p.grad = None
    return b, scores, head_deltas(scores, geo.n_layers, geo.n_heads, geo.head_dim, head_ablation), expected


def select_weights(scores: torch.Tensor, b: float, count: int) -> torch.Tensor:
    """The ``count`` entries whose removal moves B toward 0 the most (only entries that do)."""
    toward = scores * float(np.sign(b))  # negative: removal shrinks |B| (first order)
    flat = toward.flatten()
    count = min(int(count), int((flat < 0).sum()))
    out = torch.zeros(flat.numel(), dtype=torch.bool)
    if count > 0:
        out[torch.topk(-flat, count).indices] = True
    return out.view(scores.shape)


def select_heads(head_deltas: torch.Tensor, b: float, k: int) -> torch.Tensor:
    """The k heads whose removal moves B toward 0 the most (layers x heads bool)."""
    return select_weights(head_deltas, b, k)


def source_attribution(model: Any, tok: Any, contexts: dict[str, tuple[pd.DataFrame, Sequence[float]]],
                       batch_size: int = 8, log_value: bool = True, head_ablation: str = "q_rows", steps: int = 1
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, dict[str, Any]]]:
    """Attribution for a mask source: ``contexts`` maps each context to (rows, grid values).

    Each context's objective B_c is attributed on its own and oriented by its sign, so the
    summed scores rank what shrinks sum_c |B_c| (contexts with opposite signs do not
    cancel); negative = removal moves the objectives toward 0. Returns (weight scores,
    head scores, per context: B, E per prompt, the head and the neuron deltas).
    """
    total: dict[str, torch.Tensor] = {}
    heads_total: torch.Tensor | None = None
    info: dict[str, dict[str, Any]] = {}
    for name, (rows, values) in contexts.items():
        b, scores, heads, expected = weight_attribution(model, tok, rows, values, batch_size, log_value,
                                                        head_ablation, steps)
        sign = float(np.sign(b)) or 1.0
        for k, s in scores.items():
            total[k] = total[k] + sign * s if k in total else sign * s
        heads_total = sign * heads if heads_total is None else heads_total + sign * heads
        info[name] = {"B": b, "expected": expected, "head_deltas": heads,
                      "neuron_deltas": neuron_deltas(scores, heads.shape[0])}
    assert heads_total is not None
    return total, heads_total, info


def select_by_counts(toward: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, np.ndarray]:
    """Per matrix, the ``counts[key]`` most negative entries of the oriented scores (equal budget)."""
    return {k: select_weights(s, 1.0, int(counts.get(k, 0))).numpy() for k, s in toward.items()}


def neuron_deltas(scores: dict[str, torch.Tensor], n_layers: int) -> torch.Tensor:
    """Predicted change of B per MLP neuron (layers x intermediate): the sum of S over its
    gate_proj and up_proj rows and its down_proj column (removing the whole neuron)."""
    return torch.stack([scores[f"layers.{L}.gate_proj"].sum(1) + scores[f"layers.{L}.up_proj"].sum(1)
                        + scores[f"layers.{L}.down_proj"].sum(0) for L in range(n_layers)])


def _head_mask(model: Any, layer: int, head: int) -> Mask:
    geo = check_architecture(model)
    one = np.zeros((geo.n_layers, geo.n_heads), dtype=bool)
    one[layer, head] = True
    return Mask({"kind": "heads"}, {"heads": one})


def _neuron_mask(model: Any, layer: int, neuron: int) -> Mask:
    arrays = {}
    for module in ("gate_proj", "up_proj", "down_proj"):
        m = np.zeros(tuple(linear(model, layer, module).weight.shape), dtype=bool)
        if module == "down_proj":
            m[:, neuron] = True
        else:
            m[neuron, :] = True
        arrays[f"layers.{layer}.{module}"] = m
    return Mask({"kind": "neurons"}, arrays)


FAITHFULNESS_COLUMNS = ["unit", "layer", "index", "predicted", "measured"]


def faithfulness(model: Any, tok: Any, rows: pd.DataFrame, values: Sequence[float], deltas: torch.Tensor,
                 b: float, unit: str, top: int = 20, ablation: str = "q_rows", batch_size: int = 8,
                 log_value: bool = False) -> tuple[pd.DataFrame, float]:
    """Predicted against measured change of B for the ``top`` units by |predicted change|.

    ``unit`` "head" (``deltas`` from ``head_deltas``, removed by ``ablation``) or "neuron"
    (``neuron_deltas``, its three weight slices zeroed). Each unit is removed alone
    (``pruning.pruned``, undone exactly) and B recomputed on the same prompts. Returns one
    row per unit (``FAITHFULNESS_COLUMNS``) and the Spearman correlation of predicted and
    measured (NaN below 3 units).
    """
    from scipy import stats

    if unit not in ("head", "neuron"):
        raise ValueError(f"unit must be 'head' or 'neuron', not {unit!r}")
    flat = deltas.flatten()
    order = torch.argsort(flat.abs(), descending=True)[:top]
    out = []
    for idx in order.tolist():
        layer, index = divmod(idx, deltas.shape[1])
        mask = _head_mask(model, layer, index) if unit == "head" else _neuron_mask(model, layer, index)
        with pruned(model, mask, ablation):
            after, _ = bias_objective(model, tok, rows, values, batch_size, log_value)
        out.append({"unit": unit, "layer": layer, "index": index, "predicted": float(flat[idx]),
                    "measured": after - b})
    table = pd.DataFrame(out, columns=FAITHFULNESS_COLUMNS)
    rho = float(stats.spearmanr(table["predicted"], table["measured"])[0]) if len(table) >= 3 else float("nan")
    return table, rho
