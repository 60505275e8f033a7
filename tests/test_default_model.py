"""Integration: the real packaged SmolLM2-135M-Instruct, one context, a handful of samples."""

import json

import pandas as pd
import pytest

from prunebias.methods.masks import read_mask
from prunebias.methods.registry import FAMILIES

from conftest import default_config, run_snakemake

pytestmark = pytest.mark.slow


def test_default_model_end_to_end(tmp_path):
    cfg = default_config()
    cfg["contexts"] = ["purchase-bicycle"]
    cfg["samples_per_name"] = 1
    cfg["side_effects"]["masks"] = []  # the default's are of its own contexts
    cfg["model"], cfg["models"] = cfg["models"][0], []  # the loaded model only: the default run shows its plants
    cfg["localization"]["heads"]["k"] = [10]  # the default run has no head masks; the model's heads are read here
    # the model's own path through every stage that reads it, one mask of each kind (the
    # name-split stability table repeats the neuron scoring twice and is left to the tiny model)
    wanda = FAMILIES["wanda"].planned(cfg)[0].name  # the default's Wanda mask setting
    targets = ["results/tables/smollm2-135m-instruct/baseline_bias.csv",
               f"results/masks/smollm2-135m-instruct/neurons/{wanda}/purchase-bicycle.npz",
               "results/masks/smollm2-135m-instruct/heads/sum_k10/purchase-bicycle.npz"]
    run_snakemake(tmp_path, cfg, *targets)  # HF_HUB_OFFLINE=1: any hub access would fail
    ident = json.loads((tmp_path / "results/model/smollm2-135m-instruct/prunebias_model.json").read_text())
    assert ident["architecture"] == "LlamaForCausalLM"
    assert (ident["n_layers"], ident["hidden_size"], ident["n_heads"], ident["n_kv_heads"]) == (30, 576, 9, 3)
    answers = pd.read_parquet(tmp_path / "results/baseline/smollm2-135m-instruct/purchase-bicycle.parquet")
    assert len(answers) == 64 and answers["name"].str.contains(" ").sum() == 0  # first names only
    # the answer prefix makes the small model answer with a number nearly always
    assert answers["value"].notna().mean() > 0.8
    table = pd.read_csv(tmp_path / "results/tables/smollm2-135m-instruct/baseline_bias.csv")
    assert table.loc[0, "context"] == "purchase-bicycle"
    assert table.loc[0, "n_white"] + table.loc[0, "n_black"] > 20
    mask = read_mask(tmp_path / f"results/masks/smollm2-135m-instruct/neurons/{wanda}/purchase-bicycle.npz")
    assert mask.meta["model"]["n_layers"] == 30 and 0 < mask.meta["n_pruned"] < 0.05 * mask.meta["n_total"]
