"""Does attribution predict what removal does? Each top unit (head or MLP neuron) is removed
alone and the bias objective B recomputed on the same prompts, beside its predicted
change (``faithfulness``); ``context_summary`` writes one context's attribution record
(B with its name-bootstrap CI, the grid's agreement with the sampled answers, and the
faithfulness of heads, neurons and a plant's neurons).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from prunebias.model.architecture import check_architecture, linear
from prunebias.stats.inference import NameData, name_bootstrap
from prunebias.methods.masks import Mask
from prunebias.methods.objective import bias_objective, grid_agreement
from prunebias.model.pruning import pruned


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
