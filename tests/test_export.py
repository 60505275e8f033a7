"""The exported model's card (prunebias/model/export.py) and the Wilson interval it uses."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prunebias.model.export import mask_rows, model_card
from prunebias.stats.inference import wilson_interval
from prunebias.methods.masks import Mask


@pytest.mark.parametrize("k,n", [(0, 32), (3, 32), (16, 32), (32, 32), (7, 11)])
def test_wilson_interval_matches_scipy(k, n):
    want = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert np.allclose(wilson_interval(k / n, n), (want.low, want.high), atol=1e-12)
    assert all(np.isnan(wilson_interval(0.5, 0)))


def _row(target, **kw):
    base = {"kind": "neurons", "setting": "black_b15_w15_global", "source": "a-x", "target": target,
            "level": "same_context", "scoring": "wanda", "effect": "log_smd", "names_eval": 32,
            "effect_ref": 0.5, "effect_ref_ci_low": -0.1, "effect_ref_ci_high": 1.2, "effect_pruned": 0.1,
            "effect_pruned_ci_low": -0.5, "effect_pruned_ci_high": 0.7, "delta_abs": -0.4, "delta_abs_ci_low": -0.9,
            "delta_abs_ci_high": 0.05, "delta_toward_zero": -0.4, "delta_toward_zero_ci_low": -0.9,
            "delta_toward_zero_ci_high": 0.05, "bias_to_remove": True,
            "delta_vs_random": np.nan, "delta_vs_random_ci_low": np.nan,
            "delta_vs_random_ci_high": np.nan, "anomaly_rate_ref": 0.25, "anomaly_rate_pruned": 0.0,
            "perplexity_ref": 35.1, "perplexity_pruned": 37.72}
    return {**base, **kw}


def test_card_lists_every_target_with_its_cis_and_only_this_masks_rows():
    transfer = pd.DataFrame([_row("a-x"), _row("b-y", level="other_scenario"), _row("a-x", source="b-y")])
    rows = mask_rows(transfer, "neurons", "black_b15_w15_global", "a-x")
    assert list(rows.target) == ["a-x", "b-y"]
    mask = Mask({"kind": "neurons", "n_pruned": 1000, "n_total": 400000}, {})
    card = model_card({"name": "m", "source": "org/model", "source_kind": "hub", "architecture": "Llama",
                       "n_params": 10**6}, "neurons/black_b15_w15_global/a-x", mask, rows, "q_rows", 32)
    assert card.startswith("---\nbase_model: org/model\n")
    assert "| a-x | same_context | 0.50 [-0.10, 1.20] | 0.10 [-0.50, 0.70] | -0.40 [-0.90, 0.05] | - |" in card
    assert "25% [13, 42] / 0% [0, 11]" in card and "35.1 / 37.7" in card  # Wilson over 32 names
    assert "1,000 of 400,000 decoder linear weights (0.25%)" in card and "`log_smd`" in card
    local = model_card({"name": "m", "source": "/x/m.gguf", "source_kind": "gguf"}, "neurons/s/a-x", mask,
                       rows.iloc[:0], "q_rows", None)
    assert "base_model" not in local and "no evaluation rows" in local and "every name" in local
