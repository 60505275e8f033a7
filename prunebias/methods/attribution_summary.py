"""Tables of the gradient attribution's summaries (``results/attribution/{model}/{source}.json``).

Pure pandas: the objective per (source, context) with the name-bootstrap CI of B and
how well the grid expectation follows the sampled answers, and the faithfulness check
(predicted against measured change of B, one head or neuron removed at a time) with the
Spearman correlation and its CI. The CI uses Fisher's z with the standard error
1.06 / sqrt(n - 3) of Fieller, Hartley and Pearson (1957) for Spearman's rho: the units
are the top ones by |predicted change|, a selection, so the CI describes these units,
not every head of the model.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

OBJECTIVE_COLUMNS = ["source", "context", "prompts", "B", "B_ci_low", "B_ci_high", "agreement_names",
                     "agreement_pearson", "agreement_spearman", "integrated_steps", "log_value"]
UNIT_COLUMNS = ["source", "context", "unit", "layer", "index", "predicted", "measured"]
FAITH_COLUMNS = ["source", "context", "unit", "units", "spearman", "spearman_ci_low", "spearman_ci_high",
                 "sign_agreement"]


def spearman_ci(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher-z CI of Spearman's rho over n units (NaN below 4 units or for NaN rho)."""
    if n < 4 or not math.isfinite(rho):
        return math.nan, math.nan
    z = math.atanh(max(min(rho, 0.999999), -0.999999))
    half = stats.norm.ppf(0.5 + level / 2) * 1.06 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def objective_table(summaries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (source, context): B with its CI and the grid's agreement with the sampled answers."""
    rows = []
    for s in summaries:
        for ctx, info in s["contexts"].items():
            agree = info.get("agreement", {})
            rows.append({"source": s["source"], "context": ctx, "prompts": info.get("prompts", math.nan),
                         "B": info["B"], "B_ci_low": info.get("B_ci_low", math.nan),
                         "B_ci_high": info.get("B_ci_high", math.nan),
                         "agreement_names": agree.get("names", math.nan),
                         "agreement_pearson": agree.get("pearson", math.nan),
                         "agreement_spearman": agree.get("spearman", math.nan),
                         "integrated_steps": s.get("integrated_steps", 1), "log_value": s.get("log_value")})
    return pd.DataFrame(rows, columns=OBJECTIVE_COLUMNS)


def faithfulness_tables(summaries: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per removed unit, one row per (source, context, unit kind) with Spearman's rho,
    its CI and the share of units whose predicted and measured changes have the same sign)."""
    units, summary = [], []
    for s in summaries:
        for ctx, info in s["contexts"].items():
            for unit, f in info.get("faithfulness", {}).items():
                got = pd.DataFrame(f["units"])
                for r in got.to_dict(orient="records"):
                    units.append({"source": s["source"], "context": ctx, **{k: r[k] for k in UNIT_COLUMNS[2:]}})
                lo, hi = spearman_ci(f["spearman"], len(got))
                same = float((np.sign(got["predicted"]) == np.sign(got["measured"])).mean()) if len(got) else math.nan
                summary.append({"source": s["source"], "context": ctx, "unit": unit, "units": len(got),
                                "spearman": f["spearman"], "spearman_ci_low": lo, "spearman_ci_high": hi,
                                "sign_agreement": same})
    return pd.DataFrame(units, columns=UNIT_COLUMNS), pd.DataFrame(summary, columns=FAITH_COLUMNS)
