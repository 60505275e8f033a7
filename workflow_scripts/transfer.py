"""Transfer metrics (pure): generalization level of a (source, target) pair, bias
reduction, answers grouped by name for paired inference, inlier ratio.

Levels, from near to far (the paper's 1-3):

| level | number | meaning |
|---|---|---|
| same_context | 1 | mask learned on the target context itself |
| pool_member | 1 | pooled/common mask whose pool contains the target |
| same_scenario | 2 | mask from another variation of the target's scenario |
| pool_heldout | 2 | pool of the target's scenario without the target (incl. leave-one-out) |
| mixed_pool_heldout | 2 | pool of several scenarios incl. the target's, without the target |
| other_scenario | 3 | mask from a context of another scenario |
| other_scenario_pool | 3 | pool made only of other scenarios' contexts |
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from workflow_scripts.inference import NameData

LEVELS = {"same_context": 1, "pool_member": 1, "same_scenario": 2, "pool_heldout": 2, "mixed_pool_heldout": 2,
          "other_scenario": 3, "other_scenario_pool": 3}


def scenario_of(context: str) -> str:
    return context.split("-", 1)[0]


def transfer_level(source: str, target: str, pools: Mapping[str, Mapping[str, Any]]) -> str:
    """The generalization level of evaluating a mask from ``source`` on ``target``."""
    if "@" not in source:
        if source == target:
            return "same_context"
        return "same_scenario" if scenario_of(source) == scenario_of(target) else "other_scenario"
    members = list(pools[source.split("@", 1)[1]]["members"])
    if target in members:
        return "pool_member"
    scenarios = {scenario_of(m) for m in members}
    if scenarios == {scenario_of(target)}:
        return "pool_heldout"
    if scenario_of(target) not in scenarios:
        return "other_scenario_pool"
    return "mixed_pool_heldout"


def bias_reduction(effect_ref: float, effect_pruned: float) -> float:
    """1 - |pruned| / |ref|: 1 = bias gone, 0 = unchanged, < 0 = worse (NaN if ref is 0)."""
    if not (math.isfinite(effect_ref) and math.isfinite(effect_pruned)) or effect_ref == 0:
        return math.nan
    return 1.0 - abs(effect_pruned) / abs(effect_ref)


def name_data(df: pd.DataFrame, clip: tuple[float, float] | None, order: Sequence[str]) -> NameData:
    """Answers of one evaluation grouped by name (anomalies dropped, values clipped), in ``order``."""
    vals = df["outcome"].to_numpy(float)
    if clip is not None:
        vals = np.clip(vals, clip[0], clip[1])
    vals = np.where(df["anomaly"].to_numpy(bool), np.nan, vals)
    return NameData.from_answers(df["name"].to_numpy(), df["race"].to_numpy(), vals, df["gender"].to_numpy(), order)


def inlier_ratio(base_values: np.ndarray, pruned_values: np.ndarray, anomalies: np.ndarray,
                 percentiles: tuple[float, float] = (5, 95)) -> float:
    """Share of the pruned model's answers inside the unpruned model's percentile range.

    Every pruned answer counts in the denominator; anomalies are never inliers.
    """
    base = np.asarray(base_values, float)
    base = base[np.isfinite(base)]
    vals = np.asarray(pruned_values, float)
    if base.size == 0 or vals.size == 0:
        return math.nan
    lo, hi = np.percentile(base, percentiles)
    ok = ~np.asarray(anomalies, bool) & np.isfinite(vals) & (vals >= lo) & (vals <= hi)
    return float(ok.mean())

