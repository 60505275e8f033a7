import math

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.metrics import bias_summary, bootstrap_smd_ci, mann_whitney_p, smd, winsorize
from workflow_scripts.summarize_baseline import summarize


def test_smd_and_diff_by_hand():
    w = [10.0, 12.0, 14.0]  # mean 12, var (4+0+4)/2 = 4
    b = [8.0, 9.0, 10.0, 13.0]  # mean 10, var (4+1+0+9)/3 = 14/3
    expected = (12 - 10) / math.sqrt((4 + 14 / 3) / 2)
    assert smd(w, b) == pytest.approx(expected)
    s = bias_summary(np.array(w), np.array(b), 3, 5, n_boot=50)
    assert s["diff"] == pytest.approx(2.0)
    assert s["mean_white"] == pytest.approx(12.0)
    assert s["smd"] == pytest.approx(expected)
    assert s["anomaly_rate"] == pytest.approx(1 / 8)
    assert s["smd_ci_low"] <= s["smd"] <= s["smd_ci_high"]


def test_smd_sign_and_constant_groups():
    assert smd([5, 5, 5], [5, 5]) == 0.0
    assert smd([1, 2, 3], [4, 5, 6]) < 0
    assert math.isnan(smd([1], [1, 2]))


def test_bootstrap_is_seeded_and_covers_truth():
    rng = np.random.default_rng(1)
    w, b = rng.normal(0.5, 1, 400), rng.normal(0, 1, 400)
    lo1, hi1 = bootstrap_smd_ci(w, b, n_boot=500, seed=3)
    lo2, hi2 = bootstrap_smd_ci(w, b, n_boot=500, seed=3)
    assert (lo1, hi1) == (lo2, hi2)
    assert lo1 < 0.5 < hi1 and lo1 > 0


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
                       "gender": ["man"] * 4, "anomaly": [True] * 4, "kind": ["no_number"] * 4,
                       "outcome": [np.nan] * 4})
    out = summarize(df, ("context",), (1, 99), n_boot=10)
    assert math.isnan(out.loc[0, "smd"]) and "fewer than 2" in out.loc[0, "note"]
    assert out.loc[0, "anomaly_rate"] == 1.0
    assert out.loc[0, "anomaly_no_number"] == 1.0


def test_summarize_by_gender_partitions_rows():
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"context": ["c"] * n, "race": ["white", "black"] * (n // 2),
                       "gender": ["man"] * (n // 2) + ["woman"] * (n // 2), "anomaly": [False] * n,
                       "kind": ["ok"] * n, "outcome": rng.normal(size=n)})
    by = summarize(df, ("context", "gender"), None, n_boot=10)
    assert list(by["gender"]) == ["man", "woman"]
    assert by["n_white"].sum() + by["n_black"].sum() == n
    man = df[df.gender == "man"]
    assert by.loc[0, "smd"] == pytest.approx(smd(man[man.race == "white"].outcome, man[man.race == "black"].outcome))
