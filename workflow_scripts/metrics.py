"""Bias metrics for two groups of numeric answers. Pure numpy/scipy, no I/O.

Conventions (see ../shared/science.md): diff = mean_white - mean_black; standardized
mean difference SMD = diff / sqrt((s_w^2 + s_b^2) / 2) with sample variances (ddof=1),
0 when both groups are constant; positive = White names get more. CIs are percentile
bootstrap CIs, resampling each group separately with a seeded generator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats


def winsorize(x: np.ndarray, lower_pct: float = 1.0, upper_pct: float = 99.0) -> np.ndarray:
    """Clip to the given percentiles of ``x`` (NaNs ignored and kept)."""
    x = np.asarray(x, dtype=float)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return x.copy()
    lo, hi = np.percentile(finite, [lower_pct, upper_pct])
    return np.where(np.isfinite(x), np.clip(x, lo, hi), x)


def smd(white: np.ndarray, black: np.ndarray) -> float:
    """Standardized mean difference (White - Black) with the pooled-SD denominator."""
    w, b = np.asarray(white, float), np.asarray(black, float)
    if w.size < 2 or b.size < 2:
        return math.nan
    diff = w.mean() - b.mean()
    pooled = math.sqrt((w.var(ddof=1) + b.var(ddof=1)) / 2.0)
    if pooled == 0.0:
        return 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    return float(diff / pooled)


def _smd_rows(w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectorised SMD over rows of resampled groups (shape n_boot x n)."""
    diff = w.mean(axis=1) - b.mean(axis=1)
    pooled = np.sqrt((w.var(axis=1, ddof=1) + b.var(axis=1, ddof=1)) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(pooled > 0, diff / pooled, np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    return out


def bootstrap_smd_ci(white: np.ndarray, black: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the SMD; NaN when a group has fewer than 2 values."""
    w, b = np.asarray(white, float), np.asarray(black, float)
    if w.size < 2 or b.size < 2 or n_boot < 1:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    ws = w[rng.integers(0, w.size, size=(n_boot, w.size))]
    bs = b[rng.integers(0, b.size, size=(n_boot, b.size))]
    vals = _smd_rows(ws, bs)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(vals, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def mann_whitney_p(white: np.ndarray, black: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value; NaN when undefined (empty or all values equal)."""
    w, b = np.asarray(white, float), np.asarray(black, float)
    if w.size == 0 or b.size == 0 or np.unique(np.concatenate([w, b])).size < 2:
        return math.nan
    return float(stats.mannwhitneyu(w, b, alternative="two-sided").pvalue)


def bias_summary(white: np.ndarray, black: np.ndarray, n_total_white: int, n_total_black: int,
                 n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """All bias columns for one context (or context x gender).

    ``white``/``black`` hold the usable outcomes; the totals include anomalies, so the
    anomaly rate is over every answer. Metrics that are undefined come back NaN and
    ``note`` says why, instead of raising.
    """
    w, b = np.asarray(white, float), np.asarray(black, float)
    n_total = n_total_white + n_total_black
    note = ""
    if w.size < 2 or b.size < 2:
        note = f"fewer than 2 usable answers in a group (white {w.size}, black {b.size})"
    lo, hi = bootstrap_smd_ci(w, b, n_boot=n_boot, seed=seed)
    return {
        "n_white": int(w.size),
        "n_black": int(b.size),
        "mean_white": float(w.mean()) if w.size else math.nan,
        "mean_black": float(b.mean()) if b.size else math.nan,
        "diff": float(w.mean() - b.mean()) if w.size and b.size else math.nan,
        "smd": smd(w, b),
        "smd_ci_low": lo,
        "smd_ci_high": hi,
        "mwu_p": mann_whitney_p(w, b),
        "anomaly_rate": 1.0 - (w.size + b.size) / n_total if n_total else math.nan,
        "note": note,
    }
