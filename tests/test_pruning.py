"""Applying masks: exact zeroing, exact restore (checksum), head ablations, controls."""

import numpy as np
import pytest
import torch

from workflow_scripts.architecture import check_architecture
from workflow_scripts.masks import Mask
from workflow_scripts.pruning import pruned, random_like, state_checksum


def neuron_mask(model, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for i, layer in enumerate(model.model.layers):
        for block, mods in (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
                            ("mlp", ("gate_proj", "up_proj", "down_proj"))):
            for m in mods:
                shape = tuple(getattr(getattr(layer, block), m).weight.shape)
                arrays[f"layers.{i}.{m}"] = rng.random(shape) < density
    return Mask({"kind": "neurons"}, arrays)


@pytest.fixture()
def fresh_model(tiny_model_dir):
    from workflow_scripts.modeling import load_model

    return load_model(tiny_model_dir, dtype="float32", device="cpu", threads=1, attn_implementation="eager")


def test_neuron_mask_zeroes_exactly_and_restores_bit_for_bit(fresh_model):
    model, _ = fresh_model
    before = state_checksum(model)
    mask = neuron_mask(model)
    with pruned(model, mask) as n:
        assert n == sum(int(a.sum()) for a in mask.arrays.values())
        w = model.model.layers[1].mlp.up_proj.weight
        m = torch.from_numpy(mask.arrays["layers.1.up_proj"])
        assert (w[m] == 0).all() and (w[~m] != 0).all()
        assert state_checksum(model) != before
    assert state_checksum(model) == before


def test_restore_happens_even_when_evaluation_fails(fresh_model):
    model, _ = fresh_model
    before = state_checksum(model)
    with pytest.raises(RuntimeError):
        with pruned(model, neuron_mask(model)):
            raise RuntimeError("job failed mid-evaluation")
    assert state_checksum(model) == before


def test_head_ablations(fresh_model):
    model, tok = fresh_model
    geo = check_architecture(model)
    heads = np.zeros((geo.n_layers, geo.n_heads), bool)
    heads[1, 2] = True
    mask = Mask({"kind": "heads"}, {"heads": heads})
    ids = tok("I want to buy a car from Jamal Washington.", return_tensors="pt", add_special_tokens=False).input_ids
    before = state_checksum(model)
    sl = slice(2 * geo.head_dim, 3 * geo.head_dim)
    with pruned(model, mask, "q_rows"):
        q = model.model.layers[1].self_attn.q_proj.weight
        assert (q[sl] == 0).all() and (q[: sl.start] != 0).all()
        att = model(input_ids=ids, output_attentions=True).attentions[1][0, 2]  # (T, T)
        t = att.shape[0]
        expected = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
        torch.testing.assert_close(att, expected)  # zero queries -> uniform causal attention
    assert state_checksum(model) == before
    with pruned(model, mask, "o_cols"):
        o = model.model.layers[1].self_attn.o_proj.weight
        assert (o[:, sl] == 0).all() and (o[:, : sl.start] != 0).all()
    assert state_checksum(model) == before
    with pytest.raises(ValueError, match="ablation"):
        with pruned(model, mask, "rows"):
            pass


def test_random_control_matches_counts(fresh_model):
    model, _ = fresh_model
    mask = neuron_mask(model, density=0.05)
    ctrl = random_like(mask, seed=3)
    for k, a in mask.arrays.items():
        assert ctrl.arrays[k].sum() == a.sum() and ctrl.arrays[k].shape == a.shape
        assert not np.array_equal(ctrl.arrays[k], a)
    again = random_like(mask, seed=3)
    assert all(np.array_equal(again.arrays[k], ctrl.arrays[k]) for k in ctrl.arrays)
    heads = Mask({"kind": "heads"}, {"heads": np.eye(2, 4, dtype=bool), "scores": np.ones((2, 4))})
    h = random_like(heads, seed=1)
    assert h.arrays["heads"].sum() == 2 and "scores" not in h.arrays


def test_mask_shape_mismatch_is_refused(fresh_model):
    model, _ = fresh_model
    bad = Mask({"kind": "neurons"}, {"layers.0.q_proj": np.zeros((3, 3), bool)})
    with pytest.raises(ValueError, match="shape"):
        with pruned(model, bad):
            pass
