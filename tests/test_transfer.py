import math

import numpy as np
import pandas as pd
import pytest

from prunebias.stats.transfer import bias_reduction, inlier_ratio, name_data

def test_bias_reduction():
    assert bias_reduction(0.5, 0.1) == pytest.approx(0.8)
    assert bias_reduction(-0.5, 0.5) == pytest.approx(0.0)
    assert bias_reduction(0.2, 0.4) == pytest.approx(-1.0)
    assert math.isnan(bias_reduction(0.0, 0.1))


def test_inlier_ratio():
    base = np.arange(1, 101, dtype=float)  # 5th pct 5.95, 95th 95.05
    vals = np.array([1.0, 50.0, 60.0, 99.0, np.nan])
    anomalies = np.array([False, False, True, False, True])
    assert inlier_ratio(base, vals, anomalies) == pytest.approx(1 / 5)


def test_name_data_clips_drops_anomalies_and_keeps_order():
    df = pd.DataFrame({"name": ["b", "a", "a", "b"], "race": ["black", "white", "white", "black"],
                       "gender": ["man"] * 4, "anomaly": [False, False, True, False],
                       "outcome": [1000.0, 5.0, 7.0, -3.0]})
    d = name_data(df, (0.0, 100.0), ["a", "b", "c"])
    assert list(d.names) == ["a", "b", "c"] and list(d.white) == [True, False, False]
    assert list(d.values[0]) == [5.0] and list(d.values[1]) == [100.0, 0.0] and d.values[2].size == 0


def gap_and_removal(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference answers with a White - Black gap of about 10 (10 names per race x 3), and a
    pruned model's answers that remove it exactly."""
    names = [f"w{i}" for i in range(10)] + [f"b{i}" for i in range(10)]
    rows = [{"name": n, "race": "white" if n[0] == "w" else "black", "gender": "man", "anomaly": False,
             "outcome": float(rng.normal(20 if n[0] == "w" else 10, 2)), "ablation": "zero"}
            for n in names for _ in range(3)]
    ref = pd.DataFrame(rows)
    real = ref.assign(outcome=np.where(ref.race == "white", ref.outcome - 10, ref.outcome))
    return ref, real


def test_transfer_row_is_paired_against_the_reference():
    """A mask that removes a planted gap: delta by hand, and controls that leave it."""
    from prunebias.stats.transfer import transfer_row

    rng = np.random.default_rng(0)
    ref, real = gap_and_removal(rng)
    controls = [ref.assign(outcome=ref.outcome + rng.normal(0, 0.01, len(ref))) for _ in range(3)]
    infos = {"reference": [{"perplexity": 10.0}], "real": [{"perplexity": 11.0, "n_pruned": 5, "n_total": 100}],
             "control": [{"perplexity": 12.0}] * 3}
    row, ctrl = transfer_row("neurons", "black_b15_w15_global", "purchase-car", "purchase-car", ref, ref, real,
                             controls, infos, "same_context", None, "diff", 300, 0, (5, 95))
    gap = ref[ref.race == "white"].outcome.mean() - ref[ref.race == "black"].outcome.mean()
    assert row["effect_ref"] == pytest.approx(gap)
    assert row["delta"] == pytest.approx(-10.0) and row["delta_ci_low"] == pytest.approx(-10.0)
    assert row["ref_significant"] and row["bias_reduction"] == pytest.approx(1 - abs(gap - 10) / abs(gap))
    assert row["delta_vs_random_ci_high"] < 0 and len(ctrl) == 3 and row["control_draws"] == 3
    assert row["level"] == "same_context" and row["pruned_fraction"] == pytest.approx(0.05)
    assert row["inlier_ratio_ref"] == pytest.approx(inlier_ratio(ref.outcome.to_numpy(), ref.outcome.to_numpy(),
                                                                 ref.anomaly.to_numpy()))
    assert (row["perplexity_ref"], row["perplexity_pruned"], row["perplexity_control"]) == (10.0, 11.0, 12.0)


def test_a_control_that_breaks_the_model_is_flagged_and_left_out_of_real_minus_random():
    """One draw with 10x the perplexity and most answers lost: flagged, not averaged in."""
    from prunebias.stats.transfer import breaks_model, transfer_row

    assert breaks_model(21.0, 0.1, 10.0, 0.1) and breaks_model(11.0, 0.6, 10.0, 0.1)
    assert not breaks_model(19.0, 0.5, 10.0, 0.1)
    rng = np.random.default_rng(1)
    ref, real = gap_and_removal(rng)
    good = [ref.assign(outcome=ref.outcome + rng.normal(0, 0.01, len(ref))) for _ in range(2)]
    broken = ref.assign(anomaly=np.arange(len(ref)) % 5 != 0, outcome=0.0)  # 80% anomalies
    infos = {"reference": [{"perplexity": 10.0}], "real": [{"perplexity": 11.0, "n_pruned": 5, "n_total": 100}],
             "control": [{"perplexity": 12.0}, {"perplexity": 100.0}, {"perplexity": 12.0}]}
    row, ctrl = transfer_row("neurons", "black_b15_w15_global", "c", "c", ref, ref, real, [good[0], broken, good[1]],
                             infos, "same_context", None, "diff", 300, 0, (5, 95))
    assert [r["breaks_model"] for r in ctrl] == [False, True, False]
    assert row["control_draws"] == 3 and row["controls_broken"] == 1
    assert row["perplexity_control"] == pytest.approx(12.0) and row["anomaly_rate_control"] == 0.0
    only_good, _ = transfer_row("neurons", "black_b15_w15_global", "c", "c", ref, ref, real, good,
                                {**infos, "control": [{"perplexity": 12.0}] * 2}, "same_context", None, "diff",
                                300, 0, (5, 95))
    assert row["delta_vs_random"] == pytest.approx(only_good["delta_vs_random"])


def test_setting_columns_no_row_uses_are_left_out():
    """A neuron-only table has no head parameters to show: score, k, k_white go; a column
    some row uses stays, and so does every estimate column, however empty."""
    import numpy as np
    import pandas as pd

    from prunebias.stats.transfer import COLUMNS, without_unused_settings

    table = pd.DataFrame({c: [np.nan, np.nan] for c in COLUMNS})
    table["scoring"], table["p_black"], table["kind"] = "wanda", [15, 40], "neurons"
    out = without_unused_settings(table)
    assert {"score", "k", "k_white", "direction"}.isdisjoint(out.columns)
    assert {"scoring", "p_black", "delta_toward_zero", "bias_reduction"} <= set(out.columns)
    assert list(out.columns) == [c for c in COLUMNS if c in out.columns]


def test_containment_counts_a_move_against_the_edit_only_beyond_its_random_controls():
    """Where there is no bias, any edit of the mask's size moves answers: a move is the
    mask's own only where its effect differs from its controls' (signed, two-sided)."""
    from prunebias.stats.transfer import (MOVED_AS_CONTROLS, MOVED_BEYOND_CONTROLS, MOVED_NO_CONTROL, NOT_ESTIMABLE,
                                          UNCHANGED, containment)

    row = {"delta_ci_low": -0.2, "delta_ci_high": 0.3, "delta_vs_random_ci_low": 0.1, "delta_vs_random_ci_high": 0.5}
    assert containment(row) == UNCHANGED  # the change covers 0: the controls are not asked
    moved = {**row, "delta_ci_low": 0.07, "delta_ci_high": 0.71}
    assert containment(moved) == MOVED_BEYOND_CONTROLS
    assert containment({**moved, "delta_vs_random_ci_low": -0.29, "delta_vs_random_ci_high": 0.52}) == MOVED_AS_CONTROLS
    # two-sided: an effect pushed the other way than its controls pushed it is the edit's own too
    assert containment({**moved, "delta_vs_random_ci_low": -0.6, "delta_vs_random_ci_high": -0.1}) == \
        MOVED_BEYOND_CONTROLS
    assert containment({**moved, "delta_vs_random_ci_low": math.nan, "delta_vs_random_ci_high": math.nan}) == \
        MOVED_NO_CONTROL
    assert containment({k: v for k, v in moved.items() if not k.startswith("delta_vs")}) == MOVED_NO_CONTROL
    assert containment({**moved, "delta_vs_random_ci_low": None}) == MOVED_NO_CONTROL
    assert containment({**row, "delta_ci_low": math.nan}) == NOT_ESTIMABLE


def test_real_minus_random_is_signed_where_there_is_no_bias_to_remove():
    """With no established bias (direction 0), real - random compares the signed effects:
    a real mask that flips the gap while its control keeps it differs from its control, by
    the difference of the two gaps (|effect| would call them equal)."""
    from prunebias.stats.transfer import transfer_row

    rng = np.random.default_rng(2)
    ref, removed = gap_and_removal(rng)
    flipped = ref.assign(outcome=np.where(ref.race == "white", ref.outcome - 20, ref.outcome))  # gap -> -gap
    infos = {"reference": [{"perplexity": 10.0}], "real": [{"perplexity": 10.0, "n_pruned": 5, "n_total": 100}],
             "control": [{"perplexity": 10.0}]}
    row, _ = transfer_row("neurons", "s", "c", "c", ref, ref, flipped, [ref], infos, "same_context", None, "diff",
                          300, 0, (5, 95), direction=0)
    assert row["effect_pruned"] == pytest.approx(row["effect_ref"] - 20)
    assert row["delta_vs_random"] == pytest.approx(-20.0) and row["delta_vs_random_ci_high"] < 0
    assert not row["bias_to_remove"]
