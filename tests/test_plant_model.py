"""Planted models are models (rule plant_model): a models entry with ``plant:`` is its
``from`` model with a known bias planted, and the unchanged DAG runs on it.

On the tiny model (random weights, no sense of magnitude: whether the plant moves the
answers is the default run's and benchmarks/planted_seeds.py's question), checked here:
the planted directory is a prepared model with its ground truth beside the weights; only
the planted layer's three matrices change; a context plant's neurons are silent outside
its context (by activations) while a general plant's act in every context; every neuron
mask is scored against the plant; the headline judges each mask against the truth; and
bad plant entries stop the dry-run with the key and the fix.
"""

import json

import pandas as pd
import pytest
import torch

from conftest import run_snakemake, small_config
from prunebias.model.modeling import load_model

pytestmark = pytest.mark.slow

CONTEXTS = ["purchase-bicycle", "purchase-car"]


def plant_config(tiny_model_dir):
    cfg = small_config(tiny_model_dir)
    cfg["contexts"] = CONTEXTS
    # a random model reads no race from first names (within-race spread 3x the race gap);
    # the audit's surnames (one token per race) give it a race signal to plant on
    cfg["use_surnames"] = True
    cfg["context_overrides"] = {c: {"range": [0, 1e15]} for c in CONTEXTS}
    cfg["evaluation"] = {"samples_per_name": 1, "random_draws": 1}
    plant = {"from": "tiny", "layer": 1, "n_neurons": 2, "strength": 2.0, "seed": 3}
    same = {"dtype": "float32", "device": "cpu"}  # as the tiny model: the provenance must say float32
    cfg["models"] = [cfg.pop("model"), {"name": "tiny-general", "plant": {**plant, "scope": "general"}, **same},
                     {"name": "tiny-bicycle", "plant": {**plant, "scope": "context", "contexts": ["purchase-bicycle"]},
                      **same}]
    return cfg


@pytest.fixture(scope="module")
def planted_run(tiny_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("plant_model")
    targets = [f"results/tables/{m}/{t}.csv" for m in ("tiny-general", "tiny-bicycle")
               for t in ("planted_recall", "headline")]
    run_snakemake(work, plant_config(tiny_model_dir), *targets)
    return work


def test_the_planted_model_is_a_prepared_model_with_its_ground_truth(planted_run, tiny_model_dir):
    for name, scope in (("tiny-general", "general"), ("tiny-bicycle", "context")):
        d = planted_run / "results/model" / name
        ident = json.loads((d / "prunebias_model.json").read_text())
        assert ident["name"] == name and ident["source"] == "plant:tiny" and ident["plant"]["scope"] == scope
        rec = json.loads((d / "planted_bias.json").read_text())
        assert rec["scope"] == scope and rec["layer"] == 1 and len(rec["neurons"]) == 2 and rec["from"] == "tiny"
        assert set(rec["edited"]) == {"layers.1.gate_proj", "layers.1.up_proj", "layers.1.down_proj"}
        assert rec["intended"]["effect_sign"] == -1  # sign +1: Black names' answers larger, White - Black < 0
        assert {r["context"] for r in rec["scope_check"]} == set(CONTEXTS)
        src, _ = load_model(tiny_model_dir, dtype="float32", device="cpu", threads=1)
        new, _ = load_model(d, dtype="float32", device="cpu", threads=1)
        s, n = src.state_dict(), new.state_dict()
        assert {k for k in s if not torch.equal(s[k], n[k])} == {
            f"model.layers.1.mlp.{m}.weight" for m in ("gate_proj", "up_proj", "down_proj")}


def test_the_scope_check_covers_every_context(planted_run):
    """The record's activation table per context and race. Whether a context plant is
    silent elsewhere depends on the model reading race at the answer positions, which the
    random tiny model hardly does (tests/test_planting.py checks the AND gate where race and
    context are readable; the default run records it on SmolLM2)."""
    general = json.loads((planted_run / "results/model/tiny-general/planted_bias.json").read_text())
    local = json.loads((planted_run / "results/model/tiny-bicycle/planted_bias.json").read_text())
    gen = pd.DataFrame(general["scope_check"]).set_index("context")
    loc = pd.DataFrame(local["scope_check"]).set_index("context")
    assert gen["in_scope"].all() and list(loc["in_scope"]) == [True, False]
    assert (gen["act_gap"] > 0).all()  # Black names open the general plant's neurons in every context
    assert local["stats"]["cue_mean_in_context"] == pytest.approx(1, abs=0.05)
    assert local["stats"]["cue_mean_elsewhere"] == pytest.approx(0, abs=0.05)
    assert local["silence_ratio"] >= 0 and general["silence_ratio"] != general["silence_ratio"]  # NaN: nothing outside


def test_every_neuron_mask_is_scored_and_judged_against_the_truth(planted_run):
    for name in ("tiny-general", "tiny-bicycle"):
        recall = pd.read_csv(planted_run / f"results/tables/{name}/planted_recall.csv")
        assert set(recall.source) == set(CONTEXTS) and set(recall.kind) == {"neurons"}
        assert recall.recall_planted.between(0, 1).all() and recall.pruned_fraction.between(0, 1).all()
        head = pd.read_csv(planted_run / f"results/tables/{name}/headline.csv")
        truth = head[head.section == "ground truth"]
        assert len(truth) == 2 * 2 * 2  # (neuron + head mask) x 2 sources x 2 targets
        acts = truth.measure.str.startswith("planted bias")
        if name == "tiny-general":
            assert acts.all()
        else:  # the car holds nothing planted: containment is judged there, not a removal
            assert (acts == truth["item"].str.endswith("-> purchase-bicycle")).all()
            assert truth[~acts].note.str.contains(
                "^(?:contained|not contained|the effect moved; no usable|not estimable|nothing planted here)").all()
        assert truth[acts].note.str.contains("removed|increased|not detected").all()
        prov = head[head.section == "provenance"].set_index("item")["note"]
        assert prov["dtype"] == "float32" and prov["model"] == name and prov["model_source"] == "plant:tiny"
        assert {"model_weights_sha256", "torch", "commit", "date", "cpu_amx"} <= set(prov.index)
    assert recall.set_index("source").in_scope.to_dict() == {"purchase-bicycle": True, "purchase-car": False}


@pytest.mark.parametrize("plant, words", [
    ({"from": "nosuch"}, ["(p).plant.from", "'nosuch' is not a model", "['tiny']"]),
    ({"from": "tiny", "scope": "context", "contexts": CONTEXTS}, ["(p).plant.contexts", "every selected context"]),
    ({"from": "tiny", "scope": "context", "contexts": ["hiring-lawyer"]}, ["(p).plant.contexts", "selected"]),
    ({"from": "tiny", "contexts": ["purchase-car"]}, ["(p).plant.contexts", "every context"]),
    ({"from": "tiny", "scope": "context", "contexts": ["purchase-car"], "threshold": 1.2}, ["threshold", "below 1"]),
    # issue 26: layer 99 failed in plant_model after 258 s of upstream work
    ({"from": "tiny", "layer": 99}, ["(p).plant.layer", "layer 99 is not a layer of 'tiny'", "from 0 to 1"]),
])
def test_a_bad_plant_stops_the_dry_run_with_key_and_fix(tiny_model_dir, tmp_path, plant, words):
    cfg = plant_config(tiny_model_dir)
    cfg["models"] = [cfg["models"][0], {"name": "p", "plant": plant}]
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Invalid input" in out, out[-2000:]
    for w in words:
        assert w in out, (w, out[-2000:])


def test_a_context_plant_follows_the_contexts_or_is_left_out_with_a_warning(tiny_model_dir, tmp_path):
    """issue 24: a context plant without contexts acts in the last selected context, so the
    shipped default follows `contexts`; where that leaves no selected context outside it
    (nothing to calibrate its cue against), the model is left out with a warning, not
    planted to fail in plant_model."""
    from prunebias.planted.plant_spec import covers_every_context, resolve_plant

    plant = resolve_plant({"from": "tiny", "scope": "context"}, {"tiny": True}, CONTEXTS, "p")
    assert plant["contexts"] == ["purchase-car"] and not covers_every_context(plant, CONTEXTS)
    cfg = plant_config(tiny_model_dir)
    cfg["contexts"] = ["purchase-car"]
    cfg["context_overrides"] = {"purchase-car": cfg["context_overrides"]["purchase-car"]}
    cfg["models"] = [cfg["models"][0], {"name": "p", "plant": {"from": "tiny", "scope": "context", "layer": 1}}]
    out = run_snakemake(tmp_path, cfg, "-n").stdout
    assert "Warning: config: models (p).plant: the context plant follows `contexts` to purchase-car" in out
    assert "p is left out of this run" in out and "model=p" not in out and "plant_model" not in out


def test_the_removed_controls_key_names_its_replacement(tiny_model_dir, tmp_path):
    cfg = plant_config(tiny_model_dir)
    cfg["controls"] = {"planted_bias": {"enabled": True}}
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "controls.planted_bias is gone" in out and "plant:" in out
