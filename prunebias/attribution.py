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
weights every answer needs. ``protect`` (the SNIP set difference) spares the entries
ordinary text needs most (|W * dL/dW| on a neutral text).

Only the decoder's linear weights require gradients (embeddings, norms and the LM head
do not). B is linear in the per-prompt expectations, so each batch's -W * dB/dW adds into
a float32 score on the host as soon as that weight's gradient is ready, and the gradient
is freed (``scored_gradients``): no copy of every weight's gradient is kept. Selection
(``select_weights``, for weights and for heads alike) keeps the entries whose removal moves B toward 0
the most.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from prunebias.architecture import MODULES, check_architecture, linear
from prunebias.hooks import hooked
from prunebias.inference import NameData, name_bootstrap
from prunebias.masks import Mask
from prunebias.objective import bias_objective, grid_agreement, name_baseline
from prunebias.patching import head_patching
from prunebias.perplexity import text_nll
from prunebias.plan import GradNeuronSetting
from prunebias.pruning import pruned

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


@dataclass
class SourceScores:
    """A mask source's attribution, oriented (negative: removal moves the objectives toward 0).

    ``weights``: S per decoder linear weight; ``heads``: per head, the sum of S over the
    entries the head ablation zeroes (gate attribution); ``neurons``: per MLP neuron
    (layers x intermediate), the sum of S over its gate and up rows and down column;
    ``patch``: per head, attribution patching (``prunebias.patching``), when computed."""

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


def _neuron_mask(model: Any, units: Sequence[tuple[int, int]]) -> Mask:
    """The three weight slices of every (layer, neuron) in ``units`` (a whole-neuron ablation)."""
    arrays: dict[str, np.ndarray] = {}
    for layer, neuron in units:
        for module in ("gate_proj", "up_proj", "down_proj"):
            key = f"layers.{layer}.{module}"
            if key not in arrays:
                arrays[key] = np.zeros(tuple(linear(model, layer, module).weight.shape), dtype=bool)
            if module == "down_proj":
                arrays[key][:, neuron] = True
            else:
                arrays[key][neuron, :] = True
    return Mask({"kind": "neurons"}, arrays)


FAITHFULNESS_COLUMNS = ["unit", "layer", "index", "predicted", "measured"]


def faithfulness(model: Any, tok: Any, rows: pd.DataFrame, values: Sequence[float], deltas: torch.Tensor,
                 b: float, unit: str, top: int = 20, ablation: str = "q_rows", batch_size: int = 8,
                 log_value: bool = False, units: Sequence[tuple[int, int]] | None = None
                 ) -> tuple[pd.DataFrame, float]:
    """Predicted against measured change of B for the ``top`` units by |predicted change|
    (or for the given ``units``, (layer, index) pairs, e.g. the planted neurons).

    ``unit`` "head" (``deltas`` from ``head_deltas``, removed by ``ablation``) or "neuron"
    (``neuron_deltas``, its three weight slices zeroed). Each unit is removed alone
    (``pruning.pruned``, undone exactly) and B recomputed on the same prompts. Returns one
    row per unit (``FAITHFULNESS_COLUMNS``) and the Spearman correlation of predicted and
    measured (NaN below 3 units).
    """
    if unit not in ("head", "neuron"):
        raise ValueError(f"unit must be 'head' or 'neuron', not {unit!r}")
    flat = deltas.flatten()
    if units is None:
        order = torch.argsort(flat.abs(), descending=True)[:top]
    else:
        order = torch.tensor([layer * deltas.shape[1] + index for layer, index in units], dtype=torch.long)
    out = []
    for idx in order.tolist():
        layer, index = divmod(idx, deltas.shape[1])
        mask = _head_mask(model, layer, index) if unit == "head" else _neuron_mask(model, [(layer, index)])
        with pruned(model, mask, ablation):
            after, _ = bias_objective(model, tok, rows, values, batch_size, log_value)
        out.append({"unit": unit, "layer": layer, "index": index, "predicted": float(flat[idx]),
                    "measured": after - b})
    table = pd.DataFrame(out, columns=FAITHFULNESS_COLUMNS)
    rho = float(stats.spearmanr(table["predicted"], table["measured"])[0]) if len(table) >= 3 else float("nan")
    return table, rho


def context_summary(model: Any, tok: Any, rows: pd.DataFrame, values: Sequence[float], info: dict[str, Any],
                    cfg: Mapping[str, Any], ablation: str, n_boot: int, seed: int,
                    log: Callable[[str], None] | None = None,
                    planted: Sequence[tuple[int, int]] = ()) -> dict[str, Any]:
    """The JSON-ready record of one context of ``source_attribution`` (``info``: its entry).

    B with a name-bootstrap CI (names resampled within race), the grid, how well the grid
    expectation follows the sampled answers (``value`` of ``rows``, on the log scale with
    ``log_value``), and the faithfulness of the top ``cfg["faithfulness_heads"]`` heads and
    ``cfg["faithfulness_neurons"]`` neurons (``faithfulness``); ``planted``: (layer, neuron)
    pairs removed together, one row of unit kind "planted_neurons" (index -1; the positive
    control's plant).
    """
    expected = info["expected"]
    deltas = {"head": info["head_deltas"], "neuron": info["neuron_deltas"]}
    faith = {}
    for unit in ("head", "neuron"):  # predicted against measured change of B, one unit at a time
        top = cfg[f"faithfulness_{unit}s"]
        if top:
            table, rho = faithfulness(model, tok, rows, values, deltas[unit], info["B"], unit, top, ablation,
                                      cfg["batch_size"], cfg["log_value"])
            faith[unit] = {"spearman": rho, "units": table.to_dict(orient="records")}
            if log is not None:
                log(f"faithfulness, {len(table)} {unit}s: Spearman {rho:.2f}")
    if planted:  # removed together: one B, and the interaction of the planted copies is in it
        with pruned(model, _neuron_mask(model, planted), ablation):
            after, _ = bias_objective(model, tok, rows, values, cfg["batch_size"], cfg["log_value"])
        predicted = float(sum(deltas["neuron"][layer, index] for layer, index in planted))
        table = pd.DataFrame([{"unit": "planted_neurons", "layer": planted[0][0], "index": -1,
                               "predicted": predicted, "measured": after - info["B"]}], columns=FAITHFULNESS_COLUMNS)
        faith["planted_neurons"] = {"spearman": float("nan"), "units": table.to_dict(orient="records")}
        if log is not None:
            log(f"planted neurons {[n for _, n in planted]} removed together: predicted change of B "
                f"{predicted:+.3f}, measured {after - info['B']:+.3f}")
    sampled = rows.assign(sampled=np.log(rows["value"].where(rows["value"] > 0)) if cfg["log_value"]
                          else rows["value"])
    ci = name_bootstrap(NameData.from_answers(rows["name"].to_numpy(), rows["race"].to_numpy(), expected),
                        "diff", n_boot=n_boot, seed=seed)
    return {"B": info["B"], "B_ci_low": ci.ci_low, "B_ci_high": ci.ci_high, "grid": [float(v) for v in values],
            "prompts": len(rows), "agreement": grid_agreement(sampled, expected, value="sampled"),
            "faithfulness": faith}


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


def needs_patching(settings: Sequence[Any]) -> bool:
    """Whether any setting ranks heads by attribution patching (``source_attribution(patching=True)``)."""
    return any(getattr(s, "score", None) == "patch" for s in settings)


def grad_masks(settings: Sequence[Any], scores: SourceScores, budgets: Mapping[str, Mapping[str, int]]
               ) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(kind, arrays) of each gradient-attribution setting. A ``GradNeuronSetting`` has the
    size of ``budgets[its budget's name]`` (per-matrix counts of that Wanda mask): single
    weights, the same count per matrix; or whole MLP neurons, as many as fit in its MLP
    count. A ``GradHeadSetting`` takes the top k heads by its score (saved with the mask,
    negated: larger = more bias removed)."""
    shapes = {k: tuple(s.shape) for k, s in scores.weights.items()}
    out = []
    for setting in settings:
        if isinstance(setting, GradNeuronSetting):
            counts = budgets[setting.budget.name]
            if setting.whole:
                out.append(("neurons", select_neurons(scores.neurons, mlp_count(counts), shapes)))
            else:
                out.append(("neurons", select_by_counts(scores.weights, counts)))
        else:
            heads = scores.heads if setting.score == "gate" else scores.patch
            if heads is None:
                raise ValueError(f"{setting.name} needs the patching scores (source_attribution(patching=True))")
            out.append(("heads", {"heads": select_weights(heads, 1.0, setting.k).numpy(),
                                  "scores": (-heads).numpy().astype(np.float32)}))
    return out
