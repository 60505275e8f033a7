"""Sample the model's answers to prompts and turn them into analysable outcomes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from prunebias.model.modeling import chat_text, eos_token_ids
from prunebias.audit.parsing import number_complete, parse_answer
from prunebias.model.sampling import Sampling, sample_all
from prunebias.seeds import derive_seed


def outcome_of(value: float, outcome: str) -> float:
    """The analysed quantity: the value, or 101 - rank for ``reverse_rank`` (bigger = better)."""
    if not math.isfinite(value):
        return math.nan
    return 101.0 - value if outcome == "reverse_rank" else value


def parse_responses(responses: pd.Series, low: float, high: float, percent: str, outcome: str) -> pd.DataFrame:
    """Columns value, answer_kind, anomaly, outcome (NaN for anomalies) for each response."""
    parsed = [parse_answer(r, low, high, percent) for r in responses]
    kinds = [p.answer_kind for p in parsed]
    values = np.array([p.value for p in parsed], dtype=float)
    anomaly = np.array([k != "ok" for k in kinds])
    outcomes = np.array([outcome_of(v, outcome) if not a else math.nan for v, a in zip(values, anomaly)])
    return pd.DataFrame({"value": values, "answer_kind": kinds, "anomaly": anomaly, "outcome": outcomes},
                        index=responses.index)


PROMPT_COLUMNS = ["context", "race", "gender", "name", "sample", "seed", "prompt", "answer_prefix"]


def generate_answers(model: Any, tok: Any, prompts: pd.DataFrame, settings: Sampling, purpose: str,
                     context: dict[str, Any]) -> pd.DataFrame:
    """Sample one answer per prompt row and parse it; ``purpose`` salts the seeds."""
    return generate_for_contexts(model, tok, {context["name"]: prompts}, settings, purpose,
                                 {context["name"]: context})[context["name"]]


def generate_for_contexts(model: Any, tok: Any, prompts: dict[str, pd.DataFrame], settings: Sampling, purpose: str,
                          contexts: dict[str, dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Answers for several contexts' prompts in one sampling pass (fuller batches).

    Every answer depends on its own seed only, so pooling contexts into one pass gives
    the same answers as one pass per context; each context's answers are parsed with its
    own range and outcome.
    """
    keys = list(prompts)
    texts, seeds = [], []
    for k in keys:
        df = prompts[k]
        texts += [chat_text(tok, p, a) for p, a in zip(df["prompt"], df["answer_prefix"])]
        seeds += [derive_seed(s, purpose) for s in df["seed"]]
    got = sample_all(model, tok, texts, seeds, settings, eos_token_ids(model, tok),
                     number_complete if settings.stop_after_number else None, desc=",".join(keys))
    out, start = {}, 0
    for k in keys:
        df = prompts[k].copy()
        part = got[start:start + len(df)]
        start += len(df)
        df["response"] = [r for r, _ in part]
        df["n_tokens"] = pd.array([n for _, n in part], dtype="int64")
        ctx = contexts[k]
        lo, hi = ctx["range"]
        parsed = parse_responses(df["response"], lo, hi, ctx["percent"], ctx["outcome"])
        out[k] = pd.concat([df, parsed], axis=1)
    return out
