"""The positive control of the pipeline (controls.planted_bias) runs on the tiny model.

The tiny random model has no sense of magnitude, so the planted bias itself is not
expected to show here (the default run shows it on SmolLM2; tests/test_planted_bias.py
shows a hand-planted bias found and removed through the whole workflow). This test
checks the job: what was planted is recorded, every mask gets its recall and paired
statistics, the planted model's baseline is summarized, and nothing else runs.
"""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake, small_config

pytestmark = pytest.mark.slow


def test_planted_control_job(tiny_model_dir, tmp_path):
    cfg = small_config(tiny_model_dir)
    cfg["contexts"] = ["purchase-bicycle", "purchase-car"]
    cfg["context_overrides"] = {c: {"range": [0, 1e15]} for c in cfg["contexts"]}
    cfg["controls"] = {"planted_bias": {"enabled": True, "contexts": ["purchase-bicycle", "purchase-car"],
                                        "layer": 1, "n_neurons": 2, "strength": 2.0, "seed": 3}}
    cfg["evaluation"] = {"samples_per_name": 1, "random_draws": 2}
    # gradient attribution in the positive control only (the default run's choice)
    cfg["localization"]["attribution"] = {"neurons": True, "mlp_neurons": True, "heads": [2], "patch_heads": [2],
                                          "transfer": False, "grid_size": 6, "faithfulness_heads": 2,
                                          "faithfulness_neurons": 2}
    proc = run_snakemake(tmp_path, cfg, "-p", "results/tables/tiny/planted_control.csv",
                         "results/tables/tiny/attribution_faithfulness.csv")
    log = proc.stdout + proc.stderr
    assert "evaluate_pruned" not in log and "score_attribution" not in log  # its own job, no other evaluation
    record = json.loads((tmp_path / "results/controls/tiny/planted_bias.json").read_text())
    assert record["layer"] == 1 and len(record["neurons"]) == 2 and record["seed"] == 3
    assert set(record["edited"]) == {"layers.1.gate_proj", "layers.1.up_proj", "layers.1.down_proj"}
    # the record names the halves: masks learn on one, evaluation uses the other
    prompts = pd.read_parquet(tmp_path / "results/prompts/purchase-bicycle.parquet")
    assert 0 < len(record["learn_names"]) < prompts["name"].nunique()
    table = pd.read_csv(tmp_path / "results/tables/tiny/planted_control.csv")
    # (1 neuron setting + 1 head setting) x (Wanda / attention, grad, grad_mlp / patching) x 2 sources x 2 targets
    assert len(table) == 24 and set(table.kind) == {"neurons", "heads"}
    assert table.groupby(["kind", "scoring"]).size().to_dict() == {
        ("heads", "attention"): 4, ("heads", "grad"): 4, ("heads", "patching"): 4,
        ("neurons", "grad"): 4, ("neurons", "grad_mlp"): 4, ("neurons", "wanda"): 4}
    whole = table[table.scoring == "grad_mlp"].set_index(["source", "target"])
    grad_n = table[(table.scoring == "grad") & (table.kind == "neurons")].set_index(["source", "target"])
    wanda_n = table[table.scoring == "wanda"].set_index(["source", "target"])
    assert (grad_n.pruned_fraction == wanda_n.pruned_fraction).all()  # equal budget
    assert (whole.pruned_fraction <= wanda_n.pruned_fraction).all()  # whole neurons within Wanda's MLP count
    summary = json.loads((tmp_path / "results/controls/tiny/planted_attribution.json").read_text())
    assert summary["source"] == "planted" and set(summary["contexts"]) == {"purchase-bicycle", "purchase-car"}
    assert summary["protect_text_percent"] == 50
    faith = pd.read_csv(tmp_path / "results/tables/tiny/attribution_faithfulness.csv")
    assert len(faith) == 6 and set(faith.source) == {"planted"}
    assert set(faith.unit) == {"head", "neuron", "planted_neurons"}
    units = pd.read_csv(tmp_path / "results/tables/tiny/attribution_faithfulness_units.csv")
    planted_units = units[units.unit == "planted_neurons"]  # the plant's own neurons, removed together
    assert len(planted_units) == 2 and (planted_units.layer == 1).all() and (planted_units["index"] == -1).all()
    assert set(planted_units.context) == {"purchase-bicycle", "purchase-car"}
    assert np.isfinite(planted_units[["predicted", "measured"]].to_numpy()).all()
    neurons = table[table.kind == "neurons"]
    assert neurons.recall_planted.between(0, 1).all() and table[table.kind == "heads"].recall_planted.isna().all()
    assert (table.names_eval == prompts["name"].nunique() - len(record["learn_names"])).all()
    assert table.control_draws.eq(2).all() and np.isfinite(table.effect_ref).all()
    assert set(table.level) == {"same_context", "same_scenario"}
    base = pd.read_csv(tmp_path / "results/tables/tiny/planted_baseline.csv")
    assert list(base.context) == ["purchase-bicycle", "purchase-car"] and (base.n_white > 0).all()
    assert (tmp_path / "results/plots/tiny/planted_control.png").stat().st_size > 5000
