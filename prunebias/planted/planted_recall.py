"""How much of a plant a neuron mask holds: the recall columns of ``planted_recall.csv``
(rule score_planted_recall), from the mask and the planted layer's weights."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from prunebias.planted.planting import PlantedBias


RECALL_COLUMNS = ["recall_planted", "recall_gate_proj", "recall_up_proj", "recall_down_proj", "recall_down_mass",
                  "recall_neurons"]


def recall_columns(planted: PlantedBias, arrays: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]
                   ) -> dict[str, float]:
    """Share of the planted weights a neuron mask selects.

    ``recall_down_mass``: the selected share of the planted down_proj entries' squared
    magnitude (the large entries carry the write); ``recall_neurons``: planted neurons
    with at least half of their down_proj column selected.
    """
    r = planted.recall(arrays, weights)
    pre = f"layers.{planted.layer}"
    return {"recall_planted": r["all"], "recall_gate_proj": r[f"{pre}.gate_proj"],
            "recall_up_proj": r[f"{pre}.up_proj"], "recall_down_proj": r[f"{pre}.down_proj"],
            "recall_down_mass": r[f"{pre}.down_proj.mass"], "recall_neurons": r[f"{pre}.down_proj.units"]}


def direction_recall(planted: PlantedBias, direction: np.ndarray, weights: Mapping[str, np.ndarray]
                     ) -> dict[str, float]:
    """How much of the planted write a race direction removes: the share of the planted
    down_proj columns' squared magnitude along the unit direction (what projecting it out
    takes from the write; ``recall_down_mass`` of a neuron mask is the same share for the
    entries it zeroes). The weight-count columns do not apply to a direction (NaN)."""
    u = np.asarray(direction, dtype=np.float64)
    u = u / np.linalg.norm(u)
    cols = np.asarray(weights[f"layers.{planted.layer}.down_proj"], dtype=np.float64)[:, planted.neurons]
    out = {c: float("nan") for c in RECALL_COLUMNS}
    out["recall_down_mass"] = float(((u @ cols) ** 2).sum() / (cols ** 2).sum())
    return out
