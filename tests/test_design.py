"""Design warnings before the run (issue 24): a GPU study that keeps the CPU default's small
design, and a design whose planning MDE cannot detect a medium bias."""

import math

import numpy as np
import pandas as pd
import pytest

from conftest import default_config, run_snakemake
from prunebias.stats.design import ASSUMED_ICC, design_mde, evaluated_per_race, power_warnings, small_design_warning
from prunebias.audit.names import split_names


def test_the_warning_needs_a_gpu_and_the_small_design():
    cfg = default_config()
    cpu = {"m": {"device": "auto"}}
    assert small_design_warning(cfg, cpu) == ""  # the CPU default itself: no warning
    gpu = small_design_warning({**cfg, "resources": {**cfg["resources"], "gpu": 1}}, cpu)
    assert "evaluation.samples_per_name is 4" in gpu and "config/paper.yaml" in gpu
    assert small_design_warning(cfg, {"m": {"device": "cuda"}})  # a model on cuda is a GPU study too
    big = {**cfg, "resources": {**cfg["resources"], "gpu": 1}, "evaluation": {**cfg["evaluation"], "samples_per_name": 20}}
    assert small_design_warning(big, cpu) == ""


def test_the_planning_mde_is_the_se_of_a_simulated_clustered_design():
    """Independent check: simulate n names per race, m answers each, a name-level term with
    intraclass correlation rho and no bias; the SD of the standardized difference over
    replicates times 2.80 is the formula's MDE."""
    rng = np.random.default_rng(0)
    n, m, rho = 24, 5, ASSUMED_ICC
    name_sd, answer_sd = math.sqrt(rho), math.sqrt(1 - rho)
    d = []
    for _ in range(4000):
        w = (rng.normal(0, name_sd, (n, 1)) + rng.normal(0, answer_sd, (n, m))).ravel()
        b = (rng.normal(0, name_sd, (n, 1)) + rng.normal(0, answer_sd, (n, m))).ravel()
        d.append((w.mean() - b.mean()) / math.sqrt((w.var(ddof=1) + b.var(ddof=1)) / 2))
    assert design_mde(n, m) == pytest.approx(2.8016 * np.std(d), rel=0.05)
    assert design_mde(n, 1) == pytest.approx(2.8016 * math.sqrt(2 / n), rel=1e-4)  # one answer: names are all there is
    assert design_mde(0, 4) == math.inf


def _names(per_group: int) -> pd.DataFrame:
    return pd.DataFrame([{"name": f"{r}{g}{i}", "race": r, "gender": g}
                         for r in ("white", "black") for g in ("man", "woman") for i in range(per_group)])


def test_evaluated_names_follow_the_split_and_cross_fitting():
    names = _names(7)  # 14 per race; the split holds out the larger half of each race x gender group
    held = [n for n in split_names(names, 1)["holdout"] if n.startswith("black")]
    assert evaluated_per_race(names, {"name_split": True, "cross_fit": False}, 1) == len(held) == 8
    assert evaluated_per_race(names, {"name_split": True, "cross_fit": True}, 1) == 14
    assert evaluated_per_race(names, {"name_split": False}, 1) == 14


def test_the_default_is_powered_and_the_one_fold_design_is_not():
    cfg = default_config()
    names = _names(16)  # the default names file: 32 per race
    assert power_warnings(cfg, names, "names.csv") == []  # 0.44 at both stages
    one_fold = {**cfg, "localization": {**cfg["localization"], "cross_fit": False}}
    [ev] = power_warnings(one_fold, names, "names.csv")
    assert "evaluation can detect a standardized bias of 0.63" in ev
    assert "evaluation.samples_per_name" in ev and "localization.cross_fit: true" in ev and "names.csv" in ev
    [base] = power_warnings({**cfg, "samples_per_name": 1}, names, "names.csv")
    assert "baseline can detect a standardized bias of 0.70" in base and "samples_per_name" in base


def test_the_dry_run_says_it(tmp_path):
    cfg = default_config()
    cfg["resources"]["gpu"] = 1
    cfg["localization"]["cross_fit"] = False
    proc = run_snakemake(tmp_path, cfg, "-n")
    out = proc.stdout + proc.stderr
    assert "start from config/paper.yaml" in out
    assert "Warning: the pruned models' evaluation can detect a standardized bias of 0.63" in out


def test_the_default_plans_no_head_figure(tmp_path):
    """The default learns neuron masks only: plot_pruned draws pruned_neurons.png and no
    empty pruned_heads.png (issue 24's figure check)."""
    proc = run_snakemake(tmp_path, default_config(), "-n", "results/tables/smollm2-135m-instruct/pruned_by_layer.csv")
    assert "pruned_neurons.png" in proc.stdout and "pruned_heads" not in proc.stdout
