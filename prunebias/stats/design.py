"""Warnings about a design that runs but cannot answer its question (pure; the dry-run
logs them, nothing is refused).

Before any answer exists, the power of a design is a planning figure: the minimum
detectable standardized bias (MDE, Cohen's d at 80% power, two-sided alpha 0.05) of n
names per race with m answers each, names the unit. Answers of one name share a
name-level term (intraclass correlation rho), so m answers count as m / (1 + (m-1) rho)
independent ones. The tables report each effect's MDE measured from its own answers
(``mde``, ``mde_delta``); this one only warns before the run.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from prunebias.audit.names import name_folds
from prunebias.stats.power import MDE_FACTOR, MEDIUM_EFFECT

# The within-name correlation assumed for planning: the upper end of what the planted
# models show (baseline answers, log scale, per race: -0.15 to 0.27, mean about 0.05 over
# 3 seeds; the between-name share of paired changes 0.16-0.23 over 10 seeds). An upper
# end because a higher rho makes more answers per name worth less.
ASSUMED_ICC = 0.2
MEDIUM_SMD = MEDIUM_EFFECT["smd"]  # the bar the tables' ``underpowered`` uses

# The 2-core CPU default's answers per held-out name: a GPU study can afford far more.
CPU_DEFAULT_ANSWERS = 4


def design_mde(names_per_race: int, answers: int, icc: float = ASSUMED_ICC) -> float:
    """The planning MDE (standardized) of a race difference: n names per race, m answers each."""
    if names_per_race < 1 or answers < 1:
        return math.inf
    return MDE_FACTOR * math.sqrt(2 / names_per_race * (1 + (answers - 1) * icc) / answers)


def evaluated_per_race(names: pd.DataFrame, localization: Mapping[str, Any], seed: int) -> int:
    """Names per race (the smaller race) that a pruned model is evaluated on: the names the
    design's folds (``names.name_folds``) evaluate, all of them without a split."""
    folds = name_folds(names, seed, localization["name_split"], bool(localization.get("cross_fit")))
    if any(f.evaluate is None for f in folds):
        return int(names.groupby("race")["name"].nunique().min())
    evaluated = {n for f in folds for n in f.evaluate}
    return int(names[names["name"].isin(evaluated)].groupby("race")["name"].nunique().min())


def power_warnings(config: Mapping[str, Any], names: pd.DataFrame, names_where: str) -> list[str]:
    """A warning per stage (baseline, pruned-model evaluation) whose design cannot detect a
    medium bias (planning MDE above 0.5), naming the keys that raise its power."""
    out = []
    per_race = int(names.groupby("race")["name"].nunique().min())
    base = design_mde(per_race, int(config["samples_per_name"]))
    if base > MEDIUM_SMD:
        out.append(f"the baseline can detect a standardized bias of {base:.2f} or more at 80% power (a medium one "
                   f"is {MEDIUM_SMD}): {per_race} names per race x {config['samples_per_name']} answers, assuming a "
                   f"within-name correlation of {ASSUMED_ICC}. Raise samples_per_name, or add names to {names_where}")
    loc, answers = config["localization"], int(config["evaluation"]["samples_per_name"])
    held = evaluated_per_race(names, loc, int(config["seed"]))
    ev = design_mde(held, answers)
    if ev > MEDIUM_SMD:
        keys = ["evaluation.samples_per_name"]
        if loc["name_split"] and not loc.get("cross_fit"):
            keys.append("localization.cross_fit: true (every name is evaluated)")
        out.append(f"the pruned models' evaluation can detect a standardized bias of {ev:.2f} or more at 80% power "
                   f"(a medium one is {MEDIUM_SMD}): {held} evaluated names per race x {answers} answers, assuming a "
                   f"within-name correlation of {ASSUMED_ICC}. Raise {', or set '.join(keys)}, or add names to "
                   f"{names_where}")
    return out


def small_design_warning(config: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]) -> str:
    """A warning when a GPU study keeps the CPU default's evaluation size ("" otherwise)."""
    on_gpu = int(config["resources"].get("gpu") or 0) > 0 or any(m.get("device") == "cuda" for m in models.values())
    answers = int(config["evaluation"]["samples_per_name"])
    if not on_gpu or answers > CPU_DEFAULT_ANSWERS:
        return ""
    return (f"evaluation.samples_per_name is {answers}, the size of the 2-core CPU default, sized to finish in "
            "about 20 minutes on 2 cores. A GPU study should start from config/paper.yaml (20 answers per "
            "held-out name, 100 baseline samples): every CI narrows with more answers")
