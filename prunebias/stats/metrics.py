"""Bias metrics for two groups of numeric answers. Pure numpy/pandas/scipy, no I/O.

Conventions: diff = mean_white - mean_black; standardized mean difference
SMD = diff / sqrt((s_w^2 + s_b^2) / 2) with sample variances (ddof=1), 0 when both
groups are constant; positive = White names get more. Uncertainty is computed at the
level of names by ``inference`` (cluster bootstrap CIs, permutation p-values).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from prunebias.stats.inference import EFFECTS, MDE_FACTOR, NameData, name_bootstrap, permutation_p, permutation_test
from prunebias.audit.parsing import ANOMALY_KINDS
from prunebias.stats.power import MEDIUM_EFFECT
from prunebias.seeds import derive_seed


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


def mann_whitney_p(white: np.ndarray, black: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value; NaN when undefined (empty or all values equal)."""
    w, b = np.asarray(white, float), np.asarray(black, float)
    if w.size == 0 or b.size == 0 or np.unique(np.concatenate([w, b])).size < 2:
        return math.nan
    return float(stats.mannwhitneyu(w, b, alternative="two-sided").pvalue)


def bias_summary(answers: pd.DataFrame, effect: str = "log_smd", n_boot: int = 1000, n_perm: int = 2000,
                 seed: int = 0, value: str = "outcome") -> dict[str, Any]:
    """All bias columns for one context (or context x gender), inferred at the name level.

    ``answers`` has one row per answer: name, race, gender, anomaly and ``value`` (NaN for
    anomalies). Every effect gets a name-bootstrap CI; the primary ``effect`` also gets a
    name-permutation p-value (within gender), its minimum detectable size at 80% power
    and an ``underpowered`` flag. The anomaly rate is compared between races the same
    way. ``mwu_p`` (answer-level Mann-Whitney) is kept as a secondary column: it treats
    answers as independent and is too liberal when names differ.
    """
    df = answers
    vals = df[value].to_numpy(float)
    vals = np.where(df["anomaly"].to_numpy(bool), np.nan, vals)
    strata = df["gender"].to_numpy() if "gender" in df else None
    data = NameData.from_answers(df["name"].to_numpy(), df["race"].to_numpy(), vals, strata)
    (nw, nb), (kw, kb) = data.n_answers, data.n_names
    w = np.concatenate([v for v, white in zip(data.values, data.white) if white] or [np.empty(0)])
    b = np.concatenate([v for v, white in zip(data.values, data.white) if not white] or [np.empty(0)])
    note = ""
    if kw < 2 or kb < 2:
        note = f"fewer than 2 names with a usable answer in a group (white {kw}, black {kb})"
    row: dict[str, Any] = {"effect": effect, "n_white": nw, "n_black": nb, "names_white": kw, "names_black": kb,
                           "mean_white": float(w.mean()) if w.size else math.nan,
                           "mean_black": float(b.mean()) if b.size else math.nan}
    for e in EFFECTS:
        iv = name_bootstrap(data, e, n_boot=n_boot, seed=seed)
        row[e], row[f"{e}_ci_low"], row[f"{e}_ci_high"] = iv.estimate, iv.ci_low, iv.ci_high
    p_value, null_se = permutation_test(data, effect, n_perm=n_perm, seed=seed)
    row["p_perm"] = p_value
    row["mde"] = MDE_FACTOR * null_se
    row["underpowered"] = bool(not math.isfinite(row["mde"]) or row["mde"] > MEDIUM_EFFECT[effect])
    row["mwu_p"] = mann_whitney_p(w, b)
    anomaly = NameData.from_answers(df["name"].to_numpy(), df["race"].to_numpy(),
                                    df["anomaly"].to_numpy(float), strata)
    white = df["race"].to_numpy() == "white"
    is_anom = df["anomaly"].to_numpy(bool)
    row["anomaly_rate"] = float(is_anom.mean()) if len(df) else math.nan
    row["anomaly_rate_white"] = float(is_anom[white].mean()) if white.any() else math.nan
    row["anomaly_rate_black"] = float(is_anom[~white].mean()) if (~white).any() else math.nan
    row["anomaly_p_perm"] = permutation_p(anomaly, "diff", n_perm=n_perm, seed=seed) if len(df) else math.nan
    row["note"] = note
    return row


BIAS_COLUMNS = (["effect", "n_white", "n_black", "names_white", "names_black", "mean_white", "mean_black"]
                + [c for e in ("diff", "smd", "log_smd", "cliffs_delta") for c in (e, f"{e}_ci_low", f"{e}_ci_high")]
                + ["p_perm", "mde", "underpowered", "mwu_p", "anomaly_rate", "anomaly_rate_white",
                   "anomaly_rate_black", "anomaly_p_perm", "note"])


# Anomalies that used every allowed token were cut off, not refused: above this share of a
# context's answers the table says so (sampling.max_new_tokens is too small for the answers).
CUTOFF_SHARE = 0.10


def cutoff_share(answers: pd.DataFrame, max_new_tokens: int) -> float:
    """Share of answers that are anomalies and used all ``max_new_tokens`` tokens."""
    if not len(answers) or "n_tokens" not in answers:
        return 0.0
    cut = answers["anomaly"].to_numpy(bool) & (answers["n_tokens"].to_numpy() >= max_new_tokens)
    return float(cut.mean())


def cutoff_note(answers: pd.DataFrame, max_new_tokens: int | None) -> str:
    """A note where too many answers were cut off at the token limit (else "")."""
    if max_new_tokens is None:
        return ""
    share = cutoff_share(answers, max_new_tokens)
    if share <= CUTOFF_SHARE:
        return ""
    return (f"{share:.0%} of answers were cut off at sampling.max_new_tokens = {max_new_tokens} "
            "(anomalies that used every token): raise it")


def summarize(answers: pd.DataFrame, by: Sequence[str] = ("context",), winsor: tuple[float, float] | None = (1, 99),
              n_boot: int = 1000, seed: int = 0, effect: str = "log_smd", n_perm: int = 2000,
              max_new_tokens: int | None = None) -> pd.DataFrame:
    """The bias table of a data frame of answers: one row per group in ``by``.

    ``answers`` has the baseline columns (context, race, gender, name, anomaly, answer_kind,
    outcome; ``n_tokens`` for the cut-off note where ``max_new_tokens`` is given). Usable outcomes are winsorized within each context (pooled over both
    groups) before the name-level metrics of ``bias_summary``; anomalies count towards
    the anomaly rate and, by answer kind, towards ``anomaly_<kind>`` columns.
    """
    df = answers.copy()
    df["outcome_w"] = df["outcome"].astype(float)
    if winsor is not None:
        for _, idx in df.groupby("context", sort=False).groups.items():
            vals = df.loc[idx, "outcome_w"].to_numpy()
            df.loc[idx, "outcome_w"] = winsorize(vals, winsor[0], winsor[1])
    rows = []
    for key, g in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row.update(bias_summary(g, effect, n_boot=n_boot, n_perm=n_perm, seed=derive_seed(seed, "bootstrap", *key),
                                value="outcome_w"))
        for k in ANOMALY_KINDS:
            row[f"anomaly_{k}"] = float((g["answer_kind"] == k).mean()) if len(g) else np.nan
        cut = cutoff_note(g, max_new_tokens)
        if cut:
            row["note"] = f"{row['note']}; {cut}" if row["note"] else cut
        rows.append(row)
    cols = list(by) + BIAS_COLUMNS + [f"anomaly_{k}" for k in ANOMALY_KINDS]
    return pd.DataFrame(rows, columns=cols)
