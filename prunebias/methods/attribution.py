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
answer while it is still growing. steps = 1 is the plain gradient; on the positive
control 4 steps did not beat it (docs/localization.md, "Gradient attribution").

Removing many weights at once is not first order: the most negative S include large
weights every answer needs. ``attribution_select.protect`` (the SNIP set difference)
spares the entries ordinary text needs most (``text_importance``: |W * dL/dW| on a
neutral text).

Only the decoder's linear weights require gradients (embeddings, norms and the LM head
do not). B is linear in the per-prompt expectations, so each batch's -W * dB/dW adds into
a float32 score on the host as soon as that weight's gradient is ready, and the gradient
is freed (``scored_gradients``): no copy of every weight's gradient is kept. Masks from
the scores: ``prunebias.methods.attribution_select``; whether they predict removal:
``prunebias.methods.faithfulness``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from prunebias.model.architecture import MODULES, check_architecture, linear
from prunebias.model.hooks import hooked
from prunebias.methods.objective import bias_objective, name_baseline
from prunebias.methods.patching import head_patching
from prunebias.model.perplexity import text_nll

MLP = ("gate_proj", "up_proj", "down_proj")  # a neuron: its gate and up rows, its down column


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


@contextlib.contextmanager
def scored_gradients(model: Any, sign: float = -1.0, absolute: bool = False
                     ) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, every backward pass adds ``sign * W * dL/dW`` (or its absolute value)
    of each decoder linear weight into a host tensor (float32 after the block), yielded as a dict, as soon as
    that weight's gradient is ready; the gradient is then freed. Only these weights require
    gradients, and no gradient outlives its layer's backward step: on a GPU the peak is the
    weights, one batch's activations and a layer's gradients, not a copy of every weight.
    On exit every parameter's ``requires_grad`` is restored and no ``.grad`` is left.
    """
    weights = linear_weights(model)
    saved = {p: p.requires_grad for p in model.parameters()}
    # summed in float32, or in the model's precision above that; float32 on exit
    out = {k: torch.zeros(tuple(w.shape), dtype=torch.promote_types(w.dtype, torch.float32))
           for k, w in weights.items()}

    def add(key: str):
        def hook(w: torch.Tensor) -> None:
            term = w.detach() * w.grad
            out[key] += (term.abs() if absolute else sign * term).to(out[key].dtype).cpu()
            w.grad = None
        return hook

    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    for w in weights.values():
        w.requires_grad_(True)
    try:
        with hooked((w, "grad", add(k)) for k, w in weights.items()), torch.enable_grad():
            yield out
        for k in out:
            out[k] = out[k].float()
    finally:
        for p, req in saved.items():
            p.requires_grad_(req)
            p.grad = None


def weight_attribution(model: Any, tok: Any, rows: pd.DataFrame, values: Sequence[float], batch_size: int = 16,
                       log_value: bool = False, head_ablation: str = "q_rows", steps: int = 1
                       ) -> tuple[float, dict[str, torch.Tensor], torch.Tensor, np.ndarray]:
    """(B, S per linear weight, head deltas layers x heads, E per prompt): changes of B on removal,
    first order (``steps`` 1) or with the gradient integrated along the name path."""
    geo = check_architecture(model)
    alphas = name_path(steps)
    base = name_baseline(model, tok, rows) if len(alphas) > 1 else None
    with scored_gradients(model) as scores:  # S = -W * dB/dW, summed over batches and path points
        for alpha in alphas:  # B and E are those at alpha = 1 (the last)
            b, expected = bias_objective(model, tok, rows, values, batch_size, log_value, backward=True,
                                         name_alpha=alpha, baseline=base)
    if len(alphas) > 1:
        scores = {k: s / len(alphas) for k, s in scores.items()}
    return b, scores, head_deltas(scores, geo.n_layers, geo.n_heads, geo.head_dim, head_ablation), expected


def text_importance(model: Any, tok: Any, text: str, max_tokens: int = 1024) -> dict[str, torch.Tensor]:
    """SNIP importance for ordinary text, |W * dL/dW| per decoder linear weight, with L the
    mean next-token loss on ``text`` (the perplexity text): what the model needs to write it."""
    with scored_gradients(model, absolute=True) as importance:
        loss = text_nll(model, tok, text, max_tokens=max_tokens)
        if loss is None:
            raise ValueError("the text for the SNIP importance has fewer than two tokens")
        loss.backward()
    return importance


@dataclass
class SourceScores:
    """A mask source's attribution, oriented (negative: removal moves the objectives toward 0).

    ``weights``: S per decoder linear weight; ``heads``: per head, the sum of S over the
    entries the head ablation zeroes (gate attribution); ``neurons``: per MLP neuron
    (layers x intermediate), the sum of S over its gate and up rows and down column;
    ``patch``: per head, attribution patching (``prunebias.methods.patching``), when computed."""

    weights: dict[str, torch.Tensor]
    heads: torch.Tensor
    neurons: torch.Tensor
    patch: torch.Tensor | None = None


def source_attribution(model: Any, tok: Any, contexts: dict[str, tuple[pd.DataFrame, Sequence[float]]],
                       batch_size: int = 8, log_value: bool = True, head_ablation: str = "q_rows", steps: int = 1,
                       patching: bool = False) -> tuple[SourceScores, dict[str, dict[str, Any]]]:
    """Attribution for a mask source: ``contexts`` maps each context to (rows, grid values).

    Each context's objective B_c is attributed on its own and oriented by its sign, so the
    summed scores rank what shrinks sum_c |B_c| (contexts with opposite signs do not
    cancel). ``patching``: also attribution patching of heads (``steps`` as its
    integration steps). Returns the summed scores and, per context, B, E per prompt, the
    head and the neuron deltas (and the patching deltas).
    """
    total: dict[str, torch.Tensor] = {}
    heads_total: torch.Tensor | None = None
    patch_total: torch.Tensor | None = None
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
        if patching:
            patch, _ = head_patching(model, tok, rows, values, batch_size, log_value, steps)
            patch_total = sign * patch if patch_total is None else patch_total + sign * patch
            info[name]["patch_deltas"] = patch
    assert heads_total is not None
    return SourceScores(total, heads_total, neuron_deltas(total, heads_total.shape[0]), patch_total), info


def neuron_deltas(scores: dict[str, torch.Tensor], n_layers: int) -> torch.Tensor:
    """Predicted change of B per MLP neuron (layers x intermediate): the sum of S over its
    gate_proj and up_proj rows and its down_proj column (removing the whole neuron)."""
    return torch.stack([scores[f"layers.{L}.gate_proj"].sum(1) + scores[f"layers.{L}.up_proj"].sum(1)
                        + scores[f"layers.{L}.down_proj"].sum(0) for L in range(n_layers)])


