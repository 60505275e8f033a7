"""Transfer metrics (pure): bias reduction, answers grouped by name for paired inference,
inlier ratio, and the rows of the transfer tables. The generalization levels are
``plan.LEVELS`` (``plan.transfer_level``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from prunebias.stats.inference import Interval, NameData, paired_bootstrap, toward_zero, versus_controls
from prunebias.workflow.plan import LEVELS
from prunebias.seeds import derive_seed

SETTING_COLUMNS = ["family", "scoring", "dose", "direction", "p_black", "p_white", "selection", "score", "k", "k_white"]

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


def _ci(prefix: str, iv: Interval) -> dict[str, float]:
    return {prefix: iv.estimate, f"{prefix}_ci_low": iv.ci_low, f"{prefix}_ci_high": iv.ci_high}


COLUMNS = (["method", "kind", "setting"] + SETTING_COLUMNS
           + ["ablation", "source", "target", "level", "level_number", "effect", "names_eval", "folds", "fold_jaccard", "n_ref",
              "n_pruned"]
           + [c for p in ("effect_ref", "effect_pruned", "delta", "delta_abs", "delta_toward_zero")
              for c in (p, f"{p}_ci_low", f"{p}_ci_high")]
           + ["ref_significant", "bias_to_remove", "estimand", "mde_delta", "underpowered", "bias_reduction", "bias_reduction_ci_low",
              "bias_reduction_ci_high", "smd_ref", "smd_pruned"]
           + [c for p in ("delta_smd", "delta_abs_smd") for c in (p, f"{p}_ci_low", f"{p}_ci_high")]
           + ["control_abs_effect", "delta_vs_random", "delta_vs_random_ci_low", "delta_vs_random_ci_high",
              "control_draws", "controls_broken", "anomaly_rate_ref", "anomaly_rate_pruned", "anomaly_rate_control",
              "inlier_ratio_ref", "inlier_ratio_pruned", "inlier_ratio_control", "perplexity_ref",
              "perplexity_pruned", "perplexity_control", "pruned_fraction"])
CONTROL_COLUMNS = (["kind", "setting", "source", "target", "draw", "effect"]
                   + [c for p in ("effect_pruned", "delta_abs") for c in (p, f"{p}_ci_low", f"{p}_ci_high")]
                   + ["anomaly_rate", "inlier_ratio", "perplexity", "breaks_model"])

# A control draw that breaks the model measures damage, not bias: flagged, and left out of
# real - random and the controls' means (issue 23: band controls drove perplexity from 35
# to 35,000 and made 76-100% of the answers anomalies). Broken: perplexity above twice the
# unpruned model's on the same text, or anomalies up by half of all answers or more.
BROKEN_PERPLEXITY_RATIO = 2.0
BROKEN_ANOMALY_RISE = 0.5


def breaks_model(perplexity: float, anomaly_rate: float, perplexity_ref: float, anomaly_rate_ref: float) -> bool:
    """Does a pruned model (a control draw, or the real mask) break the model (``BROKEN_*``)?"""
    return bool(perplexity > BROKEN_PERPLEXITY_RATIO * perplexity_ref
                or anomaly_rate - anomaly_rate_ref >= BROKEN_ANOMALY_RISE)


NO_BIAS = "no bias to remove"

# What an edit did to a target without a bias to remove (``containment``)
UNCHANGED = "no change"
MOVED_AS_CONTROLS = "the effect moved, as under its random control"
MOVED_BEYOND_CONTROLS = "the effect moved, beyond its random control"
MOVED_NO_CONTROL = "the effect moved; no usable random control to compare"
NOT_ESTIMABLE = "not estimable (too few usable answers)"


def containment(row: Mapping[str, Any]) -> str:
    """Did an edit move the effect of a target where there is no bias to remove, and was
    that its own doing? The paired change (``delta``) says whether the effect moved; any
    edit of the edit's size moves answers, so a move is the edit's own only where it differs
    from its matched random controls' (``delta_vs_random``: on such a target the signed
    pruned effect minus the controls', two-sided). Contained: ``UNCHANGED`` or
    ``MOVED_AS_CONTROLS`` (docs/design.md, "Containment is judged against the random control")."""
    lo, hi = _finite(row.get("delta_ci_low")), _finite(row.get("delta_ci_high"))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return NOT_ESTIMABLE
    if lo <= 0 <= hi:
        return UNCHANGED
    vs_lo, vs_hi = _finite(row.get("delta_vs_random_ci_low")), _finite(row.get("delta_vs_random_ci_high"))
    if not (math.isfinite(vs_lo) and math.isfinite(vs_hi)):
        return MOVED_NO_CONTROL  # none drawn, or every one broke the model
    return MOVED_AS_CONTROLS if vs_lo <= 0 <= vs_hi else MOVED_BEYOND_CONTROLS


def _finite(x: Any) -> float:
    """``x`` as a float; NaN for a missing value (None, NA, text)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def bias_direction(baseline_table: pd.DataFrame, effect: str) -> dict[str, int]:
    """Per context of a baseline table (``summarize_baseline``): the sign of its established
    bias (+1 / -1: the primary effect's name-bootstrap CI lies above / below 0), 0 where
    the bias is not established."""
    lo, hi = baseline_table[f"{effect}_ci_low"].astype(float), baseline_table[f"{effect}_ci_high"].astype(float)
    return dict(zip(baseline_table["context"], np.where(lo > 0, 1, np.where(hi < 0, -1, 0)).tolist()))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _inliers(base_ok: np.ndarray, df: pd.DataFrame, pct: tuple[float, float]) -> float:
    return inlier_ratio(base_ok, df["outcome"].to_numpy(float), df["anomaly"].to_numpy(), pct)


def transfer_row(kind: str, setting: str, source: str, target: str, baseline: pd.DataFrame, ref: pd.DataFrame,
                 real: pd.DataFrame, controls: Sequence[pd.DataFrame], infos: Mapping[str, Any],
                 level: str, winsor: Any, effect: str, n_boot: int, seed: int,
                 inlier_pct: tuple[float, float], params: Mapping[str, Any] | None = None,
                 direction: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The transfer row of one real mask on one target, and one row per control draw.

    ``level`` is the generalization level of (source, target) (``plan.transfer_level``);
    ``params`` are the setting's parameters (direction, p_black, ... or score, k) for the
    table; ``infos`` holds per-mask info dicts under "reference", "real" and "control", and
    optionally the real mask's cross-fitting "folds" and "fold_jaccard".
    ``direction``: the sign of the target's established baseline bias (0: none): the
    removal estimands (``delta_toward_zero``, ``delta_vs_random``) are taken along it;
    None: the held-out reference's sign.
    """
    base_ok = baseline.loc[~baseline["anomaly"], "outcome"].to_numpy(float)
    clip = tuple(np.percentile(base_ok, winsor)) if winsor is not None and base_ok.size else None
    order = list(dict.fromkeys(ref["name"]))
    d_ref, d_real = name_data(ref, clip, order), name_data(real, clip, order)
    d_ctrl = [name_data(c, clip, order) for c in controls]
    seed_t = derive_seed(seed, "transfer", target)
    main = paired_bootstrap(d_ref, d_real, effect, n_boot=n_boot, seed=seed_t)
    raw = main if effect == "smd" else paired_bootstrap(d_ref, d_real, "smd", n_boot=n_boot, seed=seed_t)
    if direction is None:
        direction = int(np.sign(main.ref.estimate)) if math.isfinite(main.ref.estimate) else 0
    ppl_ref, anom_ref = infos["reference"][0]["perplexity"], float(ref["anomaly"].mean())
    ctrl_rows = []
    for draw, (c, d) in enumerate(zip(controls, d_ctrl)):
        res = paired_bootstrap(d_ref, d, effect, n_boot=n_boot, seed=seed_t)
        ppl = infos["control"][draw]["perplexity"] if infos.get("control") else math.nan
        anom = float(c["anomaly"].mean())
        ctrl_rows.append({"kind": kind, "setting": setting, "source": source, "target": target, "draw": draw,
                          "effect": effect, **_ci("effect_pruned", res.pruned), **_ci("delta_abs", res.delta_abs),
                          "anomaly_rate": anom, "inlier_ratio": _inliers(base_ok, c, inlier_pct), "perplexity": ppl,
                          "breaks_model": breaks_model(ppl, anom, ppl_ref, anom_ref)})
    ok = [i for i, r in enumerate(ctrl_rows) if not r["breaks_model"]]  # the controls that stay comparable
    vs = versus_controls(d_ref, d_real, [d_ctrl[i] for i in ok], effect, n_boot=n_boot, seed=seed_t,
                        sign=direction or 1)  # no bias to remove: the signed effects, two-sided (containment)
    kept = [ctrl_rows[i] for i in ok]
    real_info = infos["real"][0]
    n_total = real_info.get("n_total") or 0
    nw, nb = d_ref.n_names
    row = {
        "method": kind, "kind": kind, "setting": setting, **(params or {}),
        "ablation": real["ablation"].iloc[0], "source": source, "target": target, "level": level,
        "level_number": LEVELS[level], "effect": effect, "names_eval": len(order),
        "folds": int(infos.get("folds", 1)), "fold_jaccard": float(infos.get("fold_jaccard", math.nan)),
        "n_ref": sum(d_ref.n_answers), "n_pruned": sum(d_real.n_answers),
        **_ci("effect_ref", main.ref), **_ci("effect_pruned", main.pruned), **_ci("delta", main.delta),
        **_ci("delta_abs", main.delta_abs), **_ci("delta_toward_zero", toward_zero(main.delta, direction)),
        "ref_significant": main.ref_significant, "bias_to_remove": direction != 0,
        "estimand": "change toward 0" if direction != 0 else NO_BIAS, "mde_delta": main.delta.mde,
        "underpowered": bool(not math.isfinite(main.delta.mde) or main.delta.mde > abs(main.ref.estimate)),
        **_ci("bias_reduction", main.reduction), "smd_ref": raw.ref.estimate, "smd_pruned": raw.pruned.estimate,
        **_ci("delta_smd", raw.delta), **_ci("delta_abs_smd", raw.delta_abs),
        # the controls' means are over the draws that do not break the model (NaN if none)
        "control_abs_effect": _mean([abs(r["effect_pruned"]) for r in kept]),
        **_ci("delta_vs_random", vs), "control_draws": len(ctrl_rows),
        "controls_broken": len(ctrl_rows) - len(kept),
        "anomaly_rate_ref": anom_ref, "anomaly_rate_pruned": float(real["anomaly"].mean()),
        "anomaly_rate_control": _mean([r["anomaly_rate"] for r in kept]),
        "inlier_ratio_ref": _inliers(base_ok, ref, inlier_pct), "inlier_ratio_pruned": _inliers(base_ok, real, inlier_pct),
        "inlier_ratio_control": _mean([r["inlier_ratio"] for r in kept]),
        "perplexity_ref": ppl_ref, "perplexity_pruned": real_info["perplexity"],
        "perplexity_control": _mean([r["perplexity"] for r in kept]),
        # the real edit judged like a control draw: a change of the bias that comes with a
        # broken model measures damage (a race direction at a wrong depth does this)
        "breaks_model": breaks_model(real_info["perplexity"], float(real["anomaly"].mean()), ppl_ref, anom_ref),
        "pruned_fraction": (real_info.get("n_pruned", 0) / n_total) if n_total else math.nan,
    }
    return row, ctrl_rows


def without_unused_settings(table: pd.DataFrame) -> pd.DataFrame:
    """The table without the setting-parameter columns no row uses (a config without head
    masks has no ``score``, ``k``, ``k_white``): a column empty throughout explains nothing."""
    unused = [c for c in SETTING_COLUMNS if c not in ("family", "scoring") and c in table and table[c].isna().all()]
    return table.drop(columns=unused)


def build_tables(masks: Sequence[tuple[str, str, str, Mapping[str, Any]]], read_eval: Callable[..., pd.DataFrame],
                 read_info: Callable[..., dict[str, Any]], baselines: Mapping[str, pd.DataFrame],
                 targets: Sequence[str], level_of: Callable[[str, str], str], winsor: Any, effect: str, n_boot: int,
                 seed: int, inlier_pct: tuple[float, float], directions: Mapping[str, int] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transfer table and the control table.

    ``masks`` lists (kind, setting, source, setting params) of every real mask;
    ``read_eval(method, setting, source, target)`` and ``read_info(method, setting, source, target)``
    give an evaluation's answers and info ("reference" with setting = source = None): each
    target is its own evaluation job, so its info (perplexity, pruned counts) sits beside it;
    ``level_of(source, target)`` the generalization level; ``directions``: per target, the
    sign of its established baseline bias (``bias_direction``; 0: not established). Where
    there is none, no change is an estimand of removal (|noisy estimate| is pulled away
    from 0, so any perturbation looks like a reduction): ``estimand`` says "no bias to
    remove" there. Where there is one, removal is the change toward 0 along it
    (``inference.toward_zero``). None: every target's direction is its held-out
    reference's sign (tests; the workflow passes the baseline's).
    """
    rows, ctrl_rows = [], []
    for kind, setting, source, params in masks:
        for target in targets:
            real_info = read_info(kind, setting, source, target)
            infos = {"reference": read_info("reference", None, None, target)["draws"], "real": real_info["draws"],
                     "folds": real_info.get("folds", 1), "fold_jaccard": real_info.get("fold_jaccard", math.nan)}
            ref = read_eval("reference", None, None, target)
            real = read_eval(kind, setting, source, target)
            controls = []
            try:
                infos["control"] = read_info(f"random_{kind}", setting, source, target)["draws"]
            except FileNotFoundError:  # evaluation.random_controls: false
                pass
            else:
                both = read_eval(f"random_{kind}", setting, source, target)
                controls = [g for _, g in both.groupby("draw", sort=True)]
            row, crs = transfer_row(kind, setting, source, target, baselines[target], ref, real, controls, infos,
                                    level_of(source, target), winsor, effect, n_boot, seed, inlier_pct, params,
                                    None if directions is None else int(directions.get(target, 0)))
            rows.append(row)
            ctrl_rows.extend(crs)
    table = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in table.columns:
            table[c] = np.nan
    # a registered family's own setting parameters (prunebias.methods.registry) follow the known ones
    extra = [c for c in table.columns if c not in COLUMNS]
    at = COLUMNS.index(SETTING_COLUMNS[-1]) + 1
    return table[COLUMNS[:at] + extra + COLUMNS[at:]], pd.DataFrame(ctrl_rows, columns=CONTROL_COLUMNS)
