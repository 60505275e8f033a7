import math

import numpy as np
import pandas as pd
import pytest

from prunebias.stats.metrics import bias_summary, mann_whitney_p, smd, winsorize
from prunebias.stats.metrics import summarize


def answers_frame(white: list[float], black: list[float], per_name: int = 1) -> pd.DataFrame:
    """One answer row per value; consecutive values share a name (``per_name`` answers each)."""
    rows = []
    for race, vals in (("white", white), ("black", black)):
        for i, v in enumerate(vals):
            rows.append({"name": f"{race}{i // per_name}", "race": race, "gender": "man" if i % 2 else "woman",
                         "anomaly": not np.isfinite(v), "outcome": v})
    return pd.DataFrame(rows)


def test_smd_and_diff_by_hand():
    w = [10.0, 12.0, 14.0]  # mean 12, var (4+0+4)/2 = 4
    b = [8.0, 9.0, 10.0, 13.0]  # mean 10, var (4+1+0+9)/3 = 14/3
    expected = (12 - 10) / math.sqrt((4 + 14 / 3) / 2)
    assert smd(w, b) == pytest.approx(expected)
    s = bias_summary(answers_frame(w, b + [np.nan]), "smd", n_boot=50, n_perm=50)
    assert s["diff"] == pytest.approx(2.0)
    assert s["mean_white"] == pytest.approx(12.0)
    assert s["smd"] == pytest.approx(expected)
    assert s["log_smd"] == pytest.approx(smd(np.log1p(w), np.log1p(b)))
    assert s["cliffs_delta"] == pytest.approx(np.mean([np.sign(x - y) for x in w for y in b]))
    assert s["anomaly_rate"] == pytest.approx(1 / 8)
    assert s["anomaly_rate_white"] == 0 and s["anomaly_rate_black"] == pytest.approx(1 / 5)
    assert s["smd_ci_low"] <= s["smd"] <= s["smd_ci_high"]
    assert s["names_white"] == 3 and s["names_black"] == 4 and s["n_black"] == 4


def test_power_columns():
    rng = np.random.default_rng(2)
    w, b = list(rng.normal(0, 1, 200)), list(rng.normal(0, 1, 200))
    few = bias_summary(answers_frame(w, b, per_name=20), "smd", n_boot=200, n_perm=400)  # 10 names per race
    many = bias_summary(answers_frame(w, b, per_name=2), "smd", n_boot=200, n_perm=400)  # 100 names per race
    assert few["names_white"] == 10 and many["names_white"] == 100
    # same answers, same n: the MDE is about 2.8 x sqrt(2 / n) when names do not cluster
    assert many["mde"] == pytest.approx(2.8 * math.sqrt(2 / 200), rel=0.2)
    assert not many["underpowered"] and 0 <= many["p_perm"] <= 1


def test_smd_sign_and_constant_groups():
    assert smd([5, 5, 5], [5, 5]) == 0.0
    assert smd([1, 2, 3], [4, 5, 6]) < 0
    assert math.isnan(smd([1], [1, 2]))


def test_mwu_matches_scipy_and_handles_ties():
    from scipy.stats import mannwhitneyu

    w, b = [1, 2, 3, 8], [4, 5, 6]
    assert mann_whitney_p(w, b) == pytest.approx(mannwhitneyu(w, b).pvalue)
    assert math.isnan(mann_whitney_p([1, 1], [1, 1]))


def test_winsorize_clips_extremes():
    x = np.arange(101, dtype=float)
    x[100] = 1e9
    y = winsorize(x, 1, 99)
    assert y.max() < 1e9 and y.min() == pytest.approx(1.0)
    assert not np.array_equal(x, y)  # the reference code's winsorizer returned its input
    assert np.isnan(winsorize(np.array([np.nan, 1.0]))[0])


def test_all_anomalies_give_nan_with_note():
    df = pd.DataFrame({"context": ["c"] * 4, "race": ["white", "white", "black", "black"],
                       "name": ["a", "b", "c", "d"], "gender": ["man"] * 4, "anomaly": [True] * 4,
                       "answer_kind": ["no_number"] * 4, "outcome": [np.nan] * 4})
    out = summarize(df, ("context",), (1, 99), n_boot=10, n_perm=10)
    assert math.isnan(out.loc[0, "smd"]) and "fewer than 2" in out.loc[0, "note"]
    assert out.loc[0, "anomaly_rate"] == 1.0
    assert out.loc[0, "anomaly_no_number"] == 1.0


def test_summarize_by_gender_partitions_rows():
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"context": ["c"] * n, "race": ["white", "black"] * (n // 2),
                       "name": [f"n{i}" for i in range(n)],
                       "gender": ["man"] * (n // 2) + ["woman"] * (n // 2), "anomaly": [False] * n,
                       "answer_kind": ["ok"] * n, "outcome": rng.normal(size=n)})
    by = summarize(df, ("context", "gender"), None, n_boot=10, n_perm=10)
    assert list(by["gender"]) == ["man", "woman"]
    assert by["n_white"].sum() + by["n_black"].sum() == n
    man = df[df.gender == "man"]
    assert by.loc[0, "smd"] == pytest.approx(smd(man[man.race == "white"].outcome, man[man.race == "black"].outcome))


def test_answers_cut_off_at_the_token_limit_get_a_note():
    """Anomalies that used every allowed token were cut off, not refused: above 10% of a
    context's answers the table says so and names the key to raise."""
    from prunebias.stats.metrics import cutoff_note, summarize

    rng = np.random.default_rng(0)
    rows = [{"context": "c", "race": r, "gender": "man", "name": f"{r}{i}", "anomaly": i < 3, "answer_kind":
             "out_of_range" if i < 3 else "number", "outcome": float(rng.normal(10, 1)), "n_tokens": 3 if i < 3 else 2}
            for r in ("white", "black") for i in range(10)]
    df = pd.DataFrame(rows)
    assert cutoff_note(df, 3).startswith("30% of answers were cut off at sampling.max_new_tokens = 3")
    assert cutoff_note(df, 12) == "" and cutoff_note(df, None) == ""
    table = summarize(df, ("context",), None, n_boot=50, n_perm=50, effect="diff", max_new_tokens=3)
    assert "raise it" in table["note"].iloc[0]
