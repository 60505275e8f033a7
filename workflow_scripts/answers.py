"""Turn raw answers into analysable outcomes for a context (pure, no I/O)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workflow_scripts.parsing import parse_answer


def outcome_of(value: float, outcome: str) -> float:
    """The analysed quantity: the value, or 101 - rank for ``reverse_rank`` (bigger = better)."""
    if not math.isfinite(value):
        return math.nan
    return 101.0 - value if outcome == "reverse_rank" else value


def parse_responses(responses: pd.Series, low: float, high: float, percent: str, outcome: str) -> pd.DataFrame:
    """Columns value, kind, anomaly, outcome (NaN for anomalies) for each response."""
    parsed = [parse_answer(r, low, high, percent) for r in responses]
    kinds = [p.kind for p in parsed]
    values = np.array([p.value for p in parsed], dtype=float)
    anomaly = np.array([k != "ok" for k in kinds])
    outcomes = np.array([outcome_of(v, outcome) if not a else math.nan for v, a in zip(values, anomaly)])
    return pd.DataFrame({"value": values, "kind": kinds, "anomaly": anomaly, "outcome": outcomes},
                        index=responses.index)
