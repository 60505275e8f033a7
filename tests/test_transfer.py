import math

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.aggregate_transfer import add_random_differences
from workflow_scripts.transfer import bias_reduction, bias_reduction_ci, inlier_ratio, transfer_level

POOLS = {
    "train": {"members": ["purchase-bicycle", "purchase-car"], "origin": "configured"},
    "loo_purchase-house": {"members": ["purchase-bicycle", "purchase-car"], "origin": "leave_one_out"},
    "others_hiring": {"members": ["purchase-bicycle", "purchase-car", "purchase-house"], "origin": "other_scenarios"},
    "mixed": {"members": ["purchase-car", "hiring-lawyer"], "origin": "configured"},
}


@pytest.mark.parametrize("source,target,level", [
    ("purchase-car", "purchase-car", "same_context"),
    ("purchase-car", "purchase-house", "same_scenario"),
    ("purchase-car", "hiring-lawyer", "other_scenario"),
    ("common@train", "purchase-car", "pool_member"),
    ("pooled@train", "purchase-house", "pool_heldout"),
    ("common@loo_purchase-house", "purchase-house", "pool_heldout"),
    ("common@others_hiring", "hiring-lawyer", "other_scenario_pool"),
    ("common@train", "hiring-lawyer", "other_scenario_pool"),
    ("common@mixed", "purchase-bicycle", "mixed_pool_heldout"),
    ("common@mixed", "hiring-lawyer", "pool_member"),
])
def test_levels(source, target, level):
    assert transfer_level(source, target, POOLS) == level


def test_default_config_levels_by_hand():
    """The automatic pools of the default contexts, written out by hand."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import default_config

    contexts = default_config()["contexts"]
    assert contexts == ["purchase-bicycle", "purchase-car", "purchase-house", "hiring-lawyer"]
    pools = {"loo_purchase-bicycle": {"members": ["purchase-car", "purchase-house"]},
             "others_hiring": {"members": ["purchase-bicycle", "purchase-car", "purchase-house"]}}
    assert transfer_level("common@loo_purchase-bicycle", "purchase-bicycle", pools) == "pool_heldout"
    assert transfer_level("common@loo_purchase-bicycle", "purchase-car", pools) == "pool_member"
    assert transfer_level("common@loo_purchase-bicycle", "hiring-lawyer", pools) == "other_scenario_pool"
    assert transfer_level("common@others_hiring", "hiring-lawyer", pools) == "other_scenario_pool"


def test_bias_reduction():
    assert bias_reduction(0.5, 0.1) == pytest.approx(0.8)
    assert bias_reduction(-0.5, 0.5) == pytest.approx(0.0)
    assert bias_reduction(0.2, 0.4) == pytest.approx(-1.0)
    assert math.isnan(bias_reduction(0.0, 0.1))
    rng = np.random.default_rng(0)
    bw, bb = rng.normal(1, 1, 300), rng.normal(0, 1, 300)
    pw, pb = rng.normal(0.1, 1, 300), rng.normal(0, 1, 300)
    lo, hi = bias_reduction_ci(bw, bb, pw, pb, n_boot=400, seed=1)
    assert lo < 0.9 < hi or lo < bias_reduction(1.0, 0.1) < hi
    assert (lo, hi) == bias_reduction_ci(bw, bb, pw, pb, n_boot=400, seed=1)


def test_inlier_ratio():
    base = np.arange(1, 101, dtype=float)  # 5th pct 5.95, 95th 95.05
    vals = np.array([1.0, 50.0, 60.0, 99.0, np.nan])
    anomalies = np.array([False, False, True, False, True])
    assert inlier_ratio(base, vals, anomalies) == pytest.approx(1 / 5)


def test_random_differences():
    t = pd.DataFrame({"method": ["neurons", "random_neurons"], "variant": ["v", "v"], "source": ["a", "a"],
                      "target": ["b", "b"], "bias_reduction": [0.7, 0.2]})
    out = add_random_differences(t)
    assert out.loc[0, "reduction_minus_random"] == pytest.approx(0.5)
    assert math.isnan(out.loc[1, "reduction_minus_random"])
