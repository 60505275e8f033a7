"""Transfer metrics (pure): generalization level of a (source, target) pair, bias
reduction with a bootstrap CI, inlier ratio.

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
from typing import Any, Mapping

import numpy as np

from workflow_scripts.metrics import _smd_rows

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


def bias_reduction(smd_base: float, smd_pruned: float) -> float:
    """1 - |SMD_pruned| / |SMD_base|: 1 = bias gone, 0 = unchanged, < 0 = worse."""
    if not (math.isfinite(smd_base) and math.isfinite(smd_pruned)) or smd_base == 0:
        return math.nan
    return 1.0 - abs(smd_pruned) / abs(smd_base)


def bias_reduction_ci(base_w: np.ndarray, base_b: np.ndarray, pr_w: np.ndarray, pr_b: np.ndarray,
                      n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI, resampling each of the four groups independently."""
    arrays = [np.asarray(a, float) for a in (base_w, base_b, pr_w, pr_b)]
    if any(a.size < 2 for a in arrays) or n_boot < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    bw, bb, pw, pb = (a[rng.integers(0, a.size, size=(n_boot, a.size))] for a in arrays)
    sb, sp = _smd_rows(bw, bb), _smd_rows(pw, pb)
    with np.errstate(divide="ignore", invalid="ignore"):
        red = 1.0 - np.abs(sp) / np.abs(sb)
    red = red[np.isfinite(red)]
    if red.size < max(10, n_boot // 10):
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(red, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


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

