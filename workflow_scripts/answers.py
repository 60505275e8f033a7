"""Sample the model's answers to prompts and turn them into analysable outcomes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from workflow_scripts.modeling import chat_text, eos_token_ids
from workflow_scripts.parsing import number_complete, parse_answer
from workflow_scripts.sampling import Sampling, sample_all
from workflow_scripts.seeds import derive_seed


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


PROMPT_COLUMNS = ["context", "race", "gender", "name", "sample", "seed", "prompt", "answer_prefix"]


def generate_answers(model: Any, tok: Any, prompts: pd.DataFrame, settings: Sampling, purpose: str,
                     context: dict[str, Any]) -> pd.DataFrame:
    """Sample one answer per prompt row and parse it; ``purpose`` salts the seeds."""
    texts = [chat_text(tok, p, a) for p, a in zip(prompts["prompt"], prompts["answer_prefix"])]
    seeds = [derive_seed(s, purpose) for s in prompts["seed"]]
    got = sample_all(model, tok, texts, seeds, settings, eos_token_ids(model, tok),
                     number_complete if settings.stop_after_number else None, desc=f"{context['name']}")
    out = prompts.copy()
    out["response"] = [r for r, _ in got]
    out["n_tokens"] = pd.array([n for _, n in got], dtype="int64")
    lo, hi = context["range"]
    parsed = parse_responses(out["response"], lo, hi, context["percent"], context["outcome"])
    return pd.concat([out, parsed], axis=1)
