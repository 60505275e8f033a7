"""Direction editing's core (issue 25, item 3), checked against independent computations:
the direction by hand, the edited residual stream by the model's own hidden states."""

import numpy as np
import pytest
import torch

from conftest import state_checksum
from prunebias.methods.directions import orthogonalized, race_direction, random_direction, residual_writers


def test_the_direction_weighs_each_name_once():
    acts = np.array([[1.0, 0.0], [3.0, 0.0], [10.0, 2.0], [0.0, 1.0]])
    names = np.array(["a", "a", "b", "c"])  # a: two prompts, b and c: one each
    races = np.array(["black", "black", "black", "white"])
    # black: mean of name means (2, 0) and (10, 2) = (6, 1); white: (0, 1)
    assert race_direction(acts, names, races).tolist() == [6.0, 0.0]
    with pytest.raises(ValueError, match="needs both races"):
        race_direction(acts, names, np.array(["black"] * 4))


def test_the_random_control_has_the_norm_and_its_seed():
    a, b = random_direction(64, 2.5, seed=1), random_direction(64, 2.5, seed=1)
    assert np.linalg.norm(a) == pytest.approx(2.5) and np.array_equal(a, b)
    assert not np.allclose(a, random_direction(64, 2.5, seed=2))


def test_orthogonalized_model_has_no_component_along_the_direction(tiny_model):
    model, tok = tiny_model
    enc = tok(["Offer for Jamal's bicycle", "Offer for Jake's car"], return_tensors="pt", padding=True)
    d = model.config.hidden_size
    v = torch.as_tensor(random_direction(d, 1.0, seed=3), dtype=torch.float32)
    before = state_checksum(model)
    with torch.no_grad():
        plain = model(**enc, output_hidden_states=True).hidden_states
        with orthogonalized(model, v.numpy()) as n_edited:
            edited = model(**enc, output_hidden_states=True).hidden_states
    assert n_edited == len(residual_writers(model)) == 1 + 2 * model.config.num_hidden_layers
    # every residual stream before the final norm: the component along v is gone
    for h0, h1 in zip(plain[:-1], edited[:-1]):
        assert (h0 @ v).abs().max() > 1e-2
        assert (h1 @ v).abs().max() < 1e-4 * h1.abs().max()
    assert state_checksum(model) == before  # restored exactly


# --- direction editing in the workflow: the residual cache, the learner, its control ------

def test_the_answer_position_generates_the_first_answer_token_with_either_padding():
    from prunebias.model.activations import answer_positions

    # right padding: row 0 answers at 3-4 (generated from 2); row 1 has no answer (last real 2)
    tokens = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    answer = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert answer_positions(answer, tokens).tolist() == [2, 2]
    # left padding: the same rows shifted right
    tokens = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    answer = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert answer_positions(answer, tokens).tolist() == [3, 5]


def test_cached_residuals_are_the_models_hidden_states(tiny_model):
    """Each name's cached residual sum equals the decoder layers' outputs (the model's own
    hidden_states) at the answer position and over the name's tokens, prompt by prompt.
    transformers gives the last layer's output after the final norm: that layer is
    compared through the norm, for the name answered once."""
    import pandas as pd
    import pyarrow as pa

    from prunebias.model.activations import cache_batches, name_residuals
    from prunebias.model.modeling import chat_text

    model, tok = tiny_model
    rows = pd.DataFrame([
        {"row": i, "context": "purchase-car", "race": race, "gender": "man", "name": name, "sample": s,
         "prompt": f"I want to buy a car from {name}." + " Now." * i, "answer_prefix": "My offer is $",
         "response": resp}
        for i, ((name, race), s, resp) in enumerate([(("Jake Becker", "white"), 0, "120"),
                                                     (("Jamal Washington", "black"), 0, "77"),
                                                     (("Jamal Washington", "black"), 1, ""),
                                                     (("Emily Becker", "white"), 0, "15k")])])
    tables = [r for _, _, r in cache_batches(model, tok, rows, 3, with_attention=False, with_sites=False,
                                             with_residuals=True)]
    cached = pa.concat_tables(tables).to_pandas()
    assert set(cached.position) == {"answer", "name"} and cached.n_prompts.sum() == 2 * len(rows)
    n_layers = model.config.num_hidden_layers
    want: dict = {}
    counts = rows.name.value_counts()
    for r in rows.itertuples():
        text = chat_text(tok, r.prompt, r.answer_prefix, r.response)
        enc = tok(text, return_tensors="pt", add_special_tokens=False, return_offsets_mapping=True)
        with torch.no_grad():
            hs = model(input_ids=enc.input_ids, output_hidden_states=True).hidden_states[1:]
        offsets = enc.offset_mapping[0]
        start = text.find(r.prompt) + r.prompt.find(r.name)
        name_tok = [(s < start + len(r.name)) and (e > start) for s, e in offsets.tolist()]
        # the token before the first one that reaches into the response (none: the last token)
        answer_start = text.rfind(r.response) if r.response else len(text)
        ans = next((i for i, (s, e) in enumerate(offsets.tolist()) if e > answer_start), len(offsets)) - 1
        for pos, vec in (("answer", torch.stack([h[0, ans] for h in hs])),
                         ("name", torch.stack([h[0, torch.tensor(name_tok)].mean(0) for h in hs]))):
            want[(r.name, pos)] = want.get((r.name, pos), 0) + vec.numpy() / counts[r.name]
    means = name_residuals_frame(cached)
    for (name, pos), expected in want.items():
        got = means[(means.name == name) & (means.position == pos)]["mean"].iloc[0]
        assert got.shape == (n_layers, model.config.hidden_size)
        np.testing.assert_allclose(got[:-1], expected[:-1], rtol=1e-4, atol=1e-4)
        if counts[name] == 1 and pos == "answer":
            with torch.no_grad():
                normed = model.model.norm(torch.from_numpy(got[-1]).float()).numpy()
            np.testing.assert_allclose(normed, expected[-1], rtol=1e-4, atol=1e-4)


def name_residuals_frame(cached):
    """``name_residuals`` of an in-memory residual table (via a Parquet file, as in the workflow)."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from prunebias.model.activations import RESID_SCHEMA, name_residuals

    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/r.parquet"
        pq.write_table(pa.Table.from_pandas(cached, schema=RESID_SCHEMA, preserve_index=False), path)
        return name_residuals([path])


def test_a_direction_setting_reads_its_layer_and_position():
    import pandas as pd

    from prunebias.methods.directions import direction_masks
    from prunebias.methods.settings import DirectionSetting

    rng = np.random.default_rng(0)
    means = pd.DataFrame([{"name": f"n{i}", "race": "black" if i < 3 else "white", "position": pos,
                           "n_prompts": 2, "mean": rng.standard_normal((4, 5))}
                          for i in range(6) for pos in ("answer", "name")])
    s = DirectionSetting(50, "name")
    assert s.layer(4) == 2 and DirectionSetting(100).layer(4) == 3 and DirectionSetting(1).layer(30) == 0
    assert DirectionSetting.parse(s.name) == s and s.name == "resid_d50_name"
    (got,) = direction_masks(means, [s])
    rows = means[means.position == "name"]
    hand = (np.mean([m[2] for m in rows[rows.race == "black"]["mean"]], axis=0)
            - np.mean([m[2] for m in rows[rows.race == "white"]["mean"]], axis=0))
    np.testing.assert_allclose(got["direction"], hand, rtol=1e-6)
    assert got["direction"].dtype == np.float32
    with pytest.raises(ValueError, match="not a direction setting"):
        DirectionSetting.parse("resid_d0_answer")


def test_the_control_is_a_random_direction_of_the_same_norm_and_a_pool_shares_its_members():
    from prunebias.methods.controls import direction_controls
    from prunebias.methods.directions import common_direction

    real = {"direction": np.array([3.0, 4.0, 0.0, 0.0], dtype=np.float32)}
    a, b = direction_controls(real, [1, 2], None, None)
    for d in (a, b):
        assert np.linalg.norm(d["direction"]) == pytest.approx(5.0, rel=1e-6)
    assert not np.allclose(a["direction"], b["direction"])
    x, y = np.array([2.0, 0.0, 0.0]), np.array([0.0, 4.0, 0.0])
    c = common_direction([x, y])  # the bisector, at the mean norm 3
    np.testing.assert_allclose(c, np.array([1, 1, 0]) / np.sqrt(2) * 3, rtol=1e-6)


def test_a_direction_file_round_trips_with_its_folds(tmp_path):
    from prunebias.methods.masks import read_folds, read_meta, write_mask

    v0, v1 = np.arange(4, dtype=np.float32), -np.arange(4, dtype=np.float32)
    path = tmp_path / "d.npz"
    write_mask(path, "directions", {"method": {"layer": 1}}, {"direction": v0}, [{"direction": v1}])
    meta = read_meta(path)
    assert meta["kind"] == "directions" and meta["n_pruned"] == 0 and meta["n_total"] == 0
    f0, f1 = read_folds(path)
    np.testing.assert_array_equal(f0.arrays["direction"], v0)
    np.testing.assert_array_equal(f1.arrays["direction"], v1)
    assert set(f0.arrays) == {"direction"}


def test_a_direction_removes_the_planted_write_it_is_aligned_with():
    """direction_recall by hand: the share of the planted down columns' squared magnitude
    along the direction."""
    from prunebias.planted.planted_recall import direction_recall
    from prunebias.planted.planting import PlantedBias

    planted = PlantedBias(layer=0, neurons=[1, 3], seed=0, strength=0.1, sharpness=1.0, sign=1, stats={})
    down = np.zeros((4, 5))
    down[:, 1] = [1.0, 0.0, 0.0, 0.0]
    down[:, 3] = [0.0, 1.0, 0.0, 0.0]
    got = direction_recall(planted, np.array([1.0, 1.0, 0.0, 0.0]), {"layers.0.down_proj": down})
    assert got["recall_down_mass"] == pytest.approx(0.5)  # (1/2 + 1/2) of 2
    assert np.isnan(got["recall_neurons"])


def test_a_tied_head_is_untied_once_and_the_edit_saves_and_reloads_as_applied(tiny_model_dir, tmp_path):
    """SmolLM2 ties its output head to the embeddings: the edit unties it (the readout keeps
    its weights), restores the model exactly after, applies again identically, and a
    model saved inside the edit reloads untied with the edited logits."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    model.get_output_embeddings().weight = model.get_input_embeddings().weight  # tied, as SmolLM2 is
    model.config.tie_word_embeddings = True
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tok(["Offer for Jamal's bicycle"], return_tensors="pt").input_ids
    v = random_direction(model.config.hidden_size, 1.0, seed=5)
    with torch.no_grad():
        plain = model(ids).logits
        with orthogonalized(model, v):
            assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
            edited = model(ids).logits
            model.save_pretrained(tmp_path / "edited", safe_serialization=True)
        assert not model.config.tie_word_embeddings
        assert torch.equal(model(ids).logits, plain)  # restored: the untied head holds the same weights
        with orthogonalized(model, v):
            assert torch.equal(model(ids).logits, edited)
        reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "edited").eval()
        assert reloaded.get_output_embeddings().weight is not reloaded.get_input_embeddings().weight
        assert torch.equal(reloaded(ids).logits, edited) and not torch.equal(edited, plain)


def test_a_direction_that_cannot_be_projected_is_refused(tiny_model_dir):
    import copy

    from transformers import AutoModelForCausalLM

    from prunebias.methods.directions import common_direction

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    for bad in (np.zeros(model.config.hidden_size), np.full(model.config.hidden_size, np.nan)):
        with pytest.raises(ValueError, match="nothing to project out"):
            with orthogonalized(model, bad):
                pass
    with pytest.raises(ValueError, match="cancel"):
        common_direction([np.array([1.0, 0.0]), np.array([-2.0, 0.0])])
    # a layer that normalizes its writes after o_proj and down_proj (Gemma 3) would put the
    # direction back: refused, not half done
    gemma_like = copy.deepcopy(model)
    gemma_like.model.layers[1].post_feedforward_layernorm = torch.nn.Identity()
    with pytest.raises(ValueError, match="normalizes its attention and MLP outputs"):
        residual_writers(gemma_like)
