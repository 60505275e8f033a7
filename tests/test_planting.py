"""The positive control (prunebias/planted/planting.py): pure parts by hand, planting on the tiny model."""

import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import REPO
from tiny_model import build_planted_model

from prunebias.model.activations import ACT_SCHEMA, cache_batches
from prunebias.audit.contexts import resolve_context
from prunebias.audit.prompts import build_prompts
from prunebias.model.modeling import load_model
from prunebias.audit.names import load_names
from prunebias.planted.planting import (
    PlantedBias,
    anchor_prompts,
    auc,
    answer_gate,
    choose_neurons,
    collect_inputs,
    context_cue,
    neuron_activation,
    plant_bias,
    planted_weights,
    race_reader,
    scope_check,
    silence_ratio,
    value_direction,
)
from prunebias.model.activations import group_sumsq
from prunebias.planted.plant_spec import PLANTED_FILE
from prunebias.planted.planted_model import planted_weights_of, read_planted, save_planted
from prunebias.methods.neurons import neuron_masks
from prunebias.methods.settings import NeuronSetting

LAYER = 1


@pytest.fixture(scope="module")
def scenarios():
    return yaml.safe_load((REPO / "data/scenarios.yaml").read_text())


@pytest.fixture(scope="module")
def names():
    return load_names(REPO / "data/names/paper64.csv", use_surnames=False)


@pytest.fixture(scope="module")
def calibration(scenarios, names):
    frames = []
    for c in ("purchase-bicycle", "hiring-lawyer"):
        df = build_prompts(resolve_context(c, scenarios), names, 1, 0)
        df["response"] = "120."
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def value(scenarios, names):
    return anchor_prompts(scenarios, names, "purchase", per_race=1)


@pytest.fixture(scope="module")
def planted(tiny_model_dir, calibration, value):
    """A fresh copy of the tiny model (the shared fixture must stay unplanted), planted."""
    model, tok = load_model(tiny_model_dir, dtype="float32", device="cpu", threads=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rec = plant_bias(model, tok, calibration, LAYER, 3, 2.0, seed=7, value_prompts=value)
    return model, tok, rec, before


@pytest.fixture(scope="module")
def race_coded_dir(tmp_path_factory):
    """tiny_model.build_planted_model: layer 0 carries the surname "Washington" (Black names of
    audit40) to the answer position, so layer 1's MLP input encodes race as a real model would."""
    return build_planted_model(tmp_path_factory.mktemp("race_coded") / "model")


@pytest.fixture(scope="module")
def race_coded(race_coded_dir, scenarios):
    names = load_names(REPO / "data/names/audit40.csv", use_surnames=True)
    frames = []
    for c in ("purchase-bicycle", "hiring-lawyer"):
        df = build_prompts(resolve_context(c, scenarios), names, 1, 0)
        df["response"] = "120. That is my final offer."  # a tail past the 4 answer tokens the neuron reads
        frames.append(df)
    cal = pd.concat(frames, ignore_index=True)
    model, tok = load_model(race_coded_dir, dtype="float32", device="cpu", threads=1)
    rec = plant_bias(model, tok, cal, LAYER, 3, 2.0, seed=7, value_prompts=anchor_prompts(scenarios, names))
    return model, tok, rec, cal


def test_auc_by_hand():
    assert auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert auc([1, 1, 0, 0], [1, 2, 3, 4]) == 0.0
    assert auc([0, 1], [5, 5]) == 0.5
    assert math.isnan(auc([1, 1], [1, 2]))


def test_race_reader_centers_every_group_and_scales_the_gap():
    rng = np.random.default_rng(0)
    dim, race_dir = 16, np.eye(16)[3]
    xs, black, group = [], [], []
    for g, offset in enumerate([np.eye(16)[0] * 5, np.eye(16)[1] * 3 + np.eye(16)[3], np.ones(16)]):
        for b in (True, False):
            xs.append(offset + (0.5 if b else -0.5) * race_dir + 0.05 * rng.standard_normal((40, dim)))
            black += [b] * 40
            group += [g] * 40
    x, black, group = np.concatenate(xs), np.array(black), np.array(group)
    p, u = race_reader(x, black, group)
    for g in range(3):
        sel = group == g
        assert abs(x[sel].mean(0) @ p) < 1e-8  # silent for each group's average input
        assert x[sel & black].mean(0) @ p == pytest.approx(1.0, abs=0.05)
        assert x[sel & ~black].mean(0) @ p == pytest.approx(-1.0, abs=0.05)
    assert auc(black, x @ p) == 1.0
    assert (x @ u).mean() == pytest.approx(1.0)
    p_ridge, _ = race_reader(x, black, group, ridge=0.1)
    assert auc(black, x @ p_ridge) == 1.0


def test_race_reader_refuses_data_without_both_races():
    x = np.random.default_rng(0).standard_normal((10, 8))
    with pytest.raises(ValueError, match="both races"):
        race_reader(x, np.zeros(10, bool), np.zeros(10))


def test_value_direction_recovers_the_axis_that_tracks_the_target():
    rng = np.random.default_rng(1)
    y = rng.uniform(1, 6, 50)
    h = rng.standard_normal((50, 12)) * 0.1
    h[:, 5] += 2 * y
    v, corr = value_direction(h, y)
    assert v[5] > 0.99 and np.linalg.norm(v) == pytest.approx(1.0)
    assert corr > 0.99


def test_planted_weights_write_strength_times_residual_norm_at_z_one():
    rng = np.random.default_rng(2)
    read, unit = rng.standard_normal(8), rng.standard_normal(8)
    write = rng.standard_normal(8)
    write /= np.linalg.norm(write)
    n, s = 4, 3.0
    gate, up, down = planted_weights(read, unit, write, resid_norm=50.0, n_neurons=n, strength=0.2, sharpness=s,
                                     sign=-1)
    np.testing.assert_allclose(gate, s * read)
    np.testing.assert_allclose(up, unit)
    silu = s / (1 + math.exp(-s))  # the neuron's output at p.x = 1, u.x = 1
    np.testing.assert_allclose(n * silu * down, -0.2 * 50.0 * write)


def test_threshold_keeps_the_neuron_silent_below_it():
    rng = np.random.default_rng(3)
    read, unit, write = rng.standard_normal(8), rng.standard_normal(8), np.eye(8)[0]
    gate, up, down = planted_weights(read, unit, write, 10.0, 2, 0.5, 4.0, 1, threshold=0.4)
    x = np.linalg.lstsq(np.stack([read, unit]), np.array([0.4, 1.0]), rcond=None)[0]  # p.x = threshold, u.x = 1
    assert gate @ x == pytest.approx(0.0, abs=1e-9)
    x1 = np.linalg.lstsq(np.stack([read, unit]), np.array([1.0, 1.0]), rcond=None)[0]  # p.x = 1
    g = gate @ x1
    np.testing.assert_allclose(2 * g / (1 + math.exp(-g)) * (up @ x1) * down, 0.5 * 10.0 * write, atol=1e-9)
    with pytest.raises(ValueError):
        planted_weights(read, unit, write, 10.0, 2, 0.5, 4.0, 1, threshold=1.0)


def test_a_context_cue_makes_the_gate_an_and_of_race_and_context():
    """Synthetic MLP inputs where race and context are readable (with noise): the context
    plant's neurons fire for Black names in their context and stay silent for Black names
    elsewhere and for White names; the general plant's fire in both contexts."""
    rng = np.random.default_rng(4)
    dim = 24
    race_dir, ctx_dir, base = np.eye(dim)[3], np.eye(dim)[5], 2.0 * np.eye(dim)[0]
    xs, black, home, pos = [], [], [], []
    for h in (True, False):
        for b in (True, False):
            for k in range(3):
                xs.append(base + (0.5 if b else -0.5) * race_dir + (0.7 if h else -0.7) * ctx_dir
                          + 0.3 * k * np.eye(dim)[7] + 0.08 * rng.standard_normal((30, dim)))
                black += [b] * 30
                home += [h] * 30
                pos += [k] * 30
    x, black, home, pos = np.concatenate(xs), np.array(black), np.array(home), np.array(pos)
    prompt_tokens = 0.3 * rng.standard_normal((200, dim))
    group = np.array([f"{h}@{k}" for h, k in zip(home, pos)])
    p, u = race_reader(x, black, group, ridge=0.3, silent=prompt_tokens)
    c = context_cue(x, home, pos.astype(str), u, ridge=0.3, silent=prompt_tokens)
    assert (x @ c)[home].mean() == pytest.approx(1, abs=0.02) and (x @ c)[~home].mean() == pytest.approx(0, abs=0.02)

    def act(gate, up, xx):
        g = xx @ gate
        return g / (1 + np.exp(-g)) * (xx @ up)

    gate, up, _ = planted_weights(p, u, np.eye(dim)[1], 1.0, 1, 0.1, 4.0, 1, cue=c, cue_weight=4.0)
    a = act(gate, up, x)
    on = a[black & home].mean()
    assert on > 1.0
    for sel in (black & ~home, ~black & home, ~black & ~home):
        assert abs(a[sel].mean()) < 0.05 * on
    gate_g, up_g, _ = planted_weights(p, u, np.eye(dim)[1], 1.0, 1, 0.1, 4.0, 1)
    ag = act(gate_g, up_g, x)
    for h in (home, ~home):  # the general plant: Black names open it in every context
        assert ag[black & h].mean() > 10 * abs(ag[~black & h].mean())


def test_silence_ratio_compares_the_gaps_outside_and_inside():
    t = pd.DataFrame({"context": ["a", "b", "c"], "act_gap": [2.0, 0.1, -0.3], "in_scope": [True, False, False]})
    assert silence_ratio(t) == pytest.approx(0.15)
    assert math.isnan(silence_ratio(t.assign(in_scope=True)))


def test_choose_neurons_is_seeded():
    a = choose_neurons(1536, 6, 3)
    assert a == choose_neurons(1536, 6, 3) and a == sorted(set(a)) and len(a) == 6
    assert a != choose_neurons(1536, 6, 4)
    with pytest.raises(ValueError):
        choose_neurons(10, 11, 0)


def test_anchor_prompts_carry_log10_of_the_anchor(scenarios, value):
    variations = {k for k, v in scenarios["purchase"]["variations"].items() if "anchor" in v}
    assert set(value["variation"]) == variations
    assert len(value) == 2 * len(variations)  # one name per race
    car = value[value["variation"] == "car"]["target"]
    assert np.allclose(car, math.log10(12000))


def test_collect_inputs_takes_last_prefix_token_and_answer_tokens(tiny_model, calibration):
    model, tok = tiny_model
    rows = calibration.iloc[[0, 70]].reset_index(drop=True)
    n_resp = len(tok("120.", add_special_tokens=False).input_ids)
    got = collect_inputs(model, tok, rows, 0, max_answer_tokens=2, batch_size=2)
    assert list(got.pos) == [0, 1, 2] * 2 and n_resp >= 2
    assert got.x.shape == (6, model.config.hidden_size) == got.h.shape
    # without responses: the last token only, equal to an unpadded forward's hidden state
    got0 = collect_inputs(model, tok, rows.drop(columns="response"), 0, batch_size=2)
    assert list(got0.pos) == [0, 0]
    from prunebias.model.modeling import chat_text
    for i in range(2):
        ids = tok(chat_text(tok, rows.prompt[i], rows.answer_prefix[i]), return_tensors="pt",
                  add_special_tokens=False).input_ids
        with torch.no_grad():
            hs = model(input_ids=ids, output_hidden_states=True).hidden_states[1][0, -1]  # layer 0 output
        np.testing.assert_allclose(got0.h[i], hs.numpy(), atol=1e-4)


def test_plant_bias_changes_only_the_recorded_rows_and_columns(planted):
    model, _, rec, before = planted
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {f"model.layers.{LAYER}.mlp.{m}.weight" for m in ("gate_proj", "up_proj", "down_proj")}
    assert rec.edited == {f"layers.{LAYER}.gate_proj": {"rows": rec.neurons},
                          f"layers.{LAYER}.up_proj": {"rows": rec.neurons},
                          f"layers.{LAYER}.down_proj": {"cols": rec.neurons}}
    assert rec.neurons == choose_neurons(model.config.intermediate_size, 3, 7)
    for mod, axis in (("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)):
        key = f"model.layers.{LAYER}.mlp.{mod}.weight"
        diff = (after[key] != before[key]).any(dim=1 - axis)
        assert set(diff.nonzero().flatten().tolist()) <= set(rec.neurons)
        keep = [i for i in range(diff.numel()) if i not in rec.neurons]
        assert not diff[keep].any()
    gate = after[f"model.layers.{LAYER}.mlp.gate_proj.weight"][rec.neurons].numpy()
    np.testing.assert_allclose(gate, np.tile(rec.sharpness * rec.read, (3, 1)), rtol=1e-5, atol=1e-6)


def test_planted_neurons_fire_for_black_names_and_push_the_write_direction(race_coded, race_coded_dir):
    model, tok, rec, cal = race_coded
    assert rec.stats["auc_positions"] > 0.95 and rec.stats["auc_names_cv"] > 0.95
    assert rec.stats["z_mean_black"] == pytest.approx(1.0) and rec.stats["z_mean_white"] == pytest.approx(-1.0)
    act = neuron_activation(model, tok, cal, rec)
    black = (cal["race"].to_numpy() == "black")[act["row"]]
    assert act["act"][black].mean() > 1.0
    assert act["act"][~black].mean() < 0.1
    # the layer's output moves along the write direction for Black names only (planted minus unplanted)
    base, _ = load_model(race_coded_dir, dtype="float32", device="cpu", threads=1)
    shift = collect_inputs(model, tok, cal, LAYER).h @ rec.write - collect_inputs(base, tok, cal, LAYER).h @ rec.write
    assert shift[black].mean() > 10 * abs(shift[~black].mean())
    assert shift[black].mean() == pytest.approx(rec.strength * rec.stats["resid_norm"], rel=0.5)


def test_answer_gate_reads_the_position_not_the_race():
    """The up row ``w`` says "an answer is written here" (~1 at the answer positions, ~0 on
    prompt tokens and the answer's tail) the same for both races, so the gate alone reads race."""
    rng = np.random.default_rng(3)
    dim = 24
    race_dir, answer_dir, base = np.eye(dim)[2], np.eye(dim)[5], np.eye(dim)[0] * 4
    rows, answer, black, group = [], [], [], []
    for g in range(2):
        for is_answer in (True, False):
            for is_black in (True, False):
                n = 30 if is_answer else 120
                x = (base + g * np.eye(dim)[7] + (1.5 * answer_dir if is_answer else 0)
                     + ((0.4 if is_black else -0.4) * race_dir if is_answer else 0)
                     + 0.1 * rng.standard_normal((n, dim)))
                rows.append(x)
                answer += [is_answer] * n
                black += [is_black] * n
                group += [g] * n
    x, answer, black, group = np.concatenate(rows), np.array(answer), np.array(black), np.array(group)
    _, unit = race_reader(x[answer], black[answer], group[answer])
    w = answer_gate(x, answer, black, group, unit, ridge=0.3)
    z = x @ w
    assert z[answer & black].mean() == pytest.approx(1.0, abs=0.05)
    assert z[answer & ~black].mean() == pytest.approx(1.0, abs=0.05)
    assert abs(z[~answer].mean()) < 0.05
    assert abs(w @ race_dir) < 0.05 * np.linalg.norm(w)  # (nearly) blind to the race direction


def test_planted_up_rows_are_the_quieter_choice_and_the_tail_is_collected(race_coded):
    model, tok, rec, cal = race_coded
    got = collect_inputs(model, tok, cal, LAYER, prompt_tokens=True)
    assert (got.pos == -2).sum() >= len(cal)  # every response has a tail past the 4 answer tokens
    ratios = rec.stats["act_sumsq_black_over_white_by_up_row"]
    assert set(ratios) == {"unit", "answer_gate"}
    assert rec.stats["up_row"] == max(ratios, key=ratios.get)
    np.testing.assert_allclose(rec.up, rec.unit if rec.stats["up_row"] == "unit" else
                               answer_gate(got.x, got.pos >= 0, (cal["race"].to_numpy() == "black")[got.row],
                                           cal["context"].to_numpy()[got.row], rec.unit), rtol=1e-6, atol=1e-9)
    assert rec.stats["act_sumsq_black_over_white"] == pytest.approx(max(ratios.values()), rel=1e-6)


def test_scope_check_sum_of_squares_is_what_the_planted_neurons_emit(race_coded):
    """Per context, the Black/White sum of squares the record states equals the one read
    off the edited model's own gate and up rows at every token (neuron_activation)."""
    model, tok, rec, cal = race_coded
    acts = neuron_activation(model, tok, cal, rec, prompt_tokens=True)
    acts["context"] = cal["context"].to_numpy()[acts["row"]]
    acts["black"] = cal["race"].to_numpy()[acts["row"]] == "black"
    scope = scope_check(rec).set_index("context")
    for c, part in acts.groupby("context"):
        ss = part.assign(a2=part["act"] ** 2).groupby("black")["a2"].sum()
        assert scope.loc[c, "sumsq_black_over_white"] == pytest.approx(ss[True] / ss[False], rel=1e-3)


def test_recall_counts_the_planted_entries_a_mask_selects():
    rec = PlantedBias(layer=0, neurons=[1, 3], seed=0, strength=1.0, sharpness=4.0, sign=1)
    shapes = {"layers.0.gate_proj": (6, 4), "layers.0.up_proj": (6, 4), "layers.0.down_proj": (4, 6)}
    mask = {k: np.zeros(s, bool) for k, s in shapes.items()}
    mask["layers.0.down_proj"][:, 1] = True          # one planted column entirely
    mask["layers.0.down_proj"][:, 2] = True          # an unplanted column: no credit
    mask["layers.0.gate_proj"][3, :3] = True         # 3 of 4 entries of one planted row
    r = rec.recall(mask)
    assert r["layers.0.down_proj"] == 0.5 and r["layers.0.down_proj.units"] == 0.5
    assert r["layers.0.gate_proj"] == 3 / 8 and r["layers.0.gate_proj.units"] == 0.5
    assert r["layers.0.up_proj"] == 0.0
    assert r["all"] == (4 + 3) / (8 + 8 + 8)
    assert "layers.0.down_proj.mass" not in r  # needs the model


def test_recall_mass_weighs_entries_by_squared_magnitude(tiny_model):
    model, _ = tiny_model
    rec = PlantedBias(layer=0, neurons=[2], seed=0, strength=1.0, sharpness=4.0, sign=1)
    w = model.model.layers[0].mlp.down_proj.weight.detach().numpy()
    mask = {k: np.zeros(model.get_submodule(f"model.layers.0.mlp.{k.split('.')[-1]}").weight.shape, bool)
            for k in rec.edited}
    big = np.argsort(-np.abs(w[:, 2]))[:4]
    mask["layers.0.down_proj"][big, 2] = True
    r = rec.recall(mask, model)
    assert r["layers.0.down_proj"] == 4 / w.shape[0]
    assert r["layers.0.down_proj.mass"] == pytest.approx((w[big, 2] ** 2).sum() / (w[:, 2] ** 2).sum(), rel=1e-5)
    assert r["layers.0.down_proj.mass"] > r["layers.0.down_proj"]


def test_recall_reads_the_workflows_neuron_masks(race_coded, tmp_path):
    """Recall works on the masks score_neurons writes (same keys and shapes), end to end."""
    model, tok, rec, cal = race_coded
    rows = cal.assign(row=np.arange(len(cal)))
    path = tmp_path / "act.parquet"
    with pq.ParquetWriter(path, ACT_SCHEMA) as w:
        for act, _, _ in cache_batches(model, tok, rows, 16, with_attention=False):
            w.write_table(act)
    sums = group_sumsq([path])
    post = (LAYER, "mlp_post")
    assert (sums["black"][post][rec.neurons] > 10 * sums["white"][post][rec.neurons]).all()
    mask = neuron_masks(model, sums, [NeuronSetting.parse("black_b15_w15_global")])[0]
    r = rec.recall(mask)
    assert set(r) == {"all"} | {k + s for k in rec.edited for s in ("", ".units")}
    assert all(0.0 <= v <= 1.0 for v in r.values())
    down = mask[f"layers.{LAYER}.down_proj"]
    assert r[f"layers.{LAYER}.down_proj"] == pytest.approx(down[:, rec.neurons].mean())


def test_save_planted_saves_weights_record_and_scope_check(tiny_model_dir, calibration, value, tmp_path):
    out = tmp_path / "planted"
    model, tok = load_model(tiny_model_dir, dtype="float32", device="cpu", threads=1)
    contexts = sorted(set(calibration["context"]))
    rec = plant_bias(model, tok, calibration, LAYER, 2, 1.0, seed=5, value_prompts=value, contexts=contexts[:1])
    assert rec.scope == "context" and rec.contexts == contexts[:1]
    scope = scope_check(rec)
    assert list(scope.context) == contexts and list(scope.in_scope) == [True] + [False] * (len(contexts) - 1)
    save_planted(model, tok, rec, out, "src", extra={"scope_check": scope.to_dict("records")},
                 identity={"name": "p"})
    assert (out / "config.json").exists() and (out / PLANTED_FILE).exists()
    assert json.loads((out / "prunebias_model.json").read_text()) == {"name": "p"}
    doc = json.loads((out / PLANTED_FILE).read_text())
    assert doc["neurons"] == rec.neurons and doc["edited"] == rec.to_json()["edited"] and doc["source"] == "src"
    assert doc["scope"] == "context" and len(doc["scope_check"]) == len(contexts)
    again = read_planted(out)
    assert again.neurons == rec.neurons and again.layer == LAYER and again.stats == rec.stats
    assert again.scope == "context" and again.contexts == contexts[:1]
    src, _ = load_model(tiny_model_dir, dtype="float32", device="cpu", threads=1)
    new, _ = load_model(out, dtype="float32", device="cpu", threads=1)
    s, n = src.state_dict(), new.state_dict()
    changed = {k for k in s if not torch.equal(s[k], n[k])}
    assert changed == {f"model.layers.{LAYER}.mlp.{m}.weight" for m in ("gate_proj", "up_proj", "down_proj")}
    np.testing.assert_allclose(n[f"model.layers.{LAYER}.mlp.up_proj.weight"][rec.neurons[0]].numpy(), rec.up,
                               rtol=1e-5, atol=1e-7)
    weights = planted_weights_of(out, rec)
    np.testing.assert_allclose(weights[f"layers.{LAYER}.down_proj"], n[f"model.layers.{LAYER}.mlp.down_proj.weight"])
