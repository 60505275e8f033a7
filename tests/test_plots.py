"""Figures are reproducible: the same table draws the same bytes (reruns stay byte-identical)."""

import numpy as np
import pandas as pd

from prunebias.plots import reduction_by_level


def test_level_plot_is_byte_identical_on_a_rerun(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"kind": k, "scoring": "wanda" if k == "neurons" else "attention", "level": lv, "target": f"t{i}",
             "delta_abs": rng.normal(), "delta_vs_random": rng.normal()}
            for k in ("neurons", "heads") for lv in ("same_context", "other_scenario") for i in range(4)]
    table = pd.DataFrame(rows)
    np.random.seed(1)
    reduction_by_level(table, tmp_path / "a.png")
    np.random.seed(2)  # a different global state must not change the jitter
    reduction_by_level(table, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
