"""Applying masks: exact zeroing, exact restore (checksum), head ablations, controls."""

import numpy as np
import pytest
import torch

from prunebias.model.architecture import check_architecture
from prunebias.methods.masks import Mask
from conftest import state_checksum
from prunebias.model.pruning import pruned


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
    from prunebias.model.modeling import load_model

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


def test_matched_neuron_control_keeps_count_and_band(fresh_model):
    """Controls: same count per matrix (per row for row selection), from the next band down
    (the source group's top 2p% minus its top p%, without the other group's top p%), never
    the real weights and never a weight in both groups' top p%; the band by hand on one matrix."""
    import torch

    from prunebias.model.architecture import linear
    from prunebias.methods.controls import matched_neuron_control, neuron_controls, next_band
    from prunebias.methods.settings import NeuronSetting
    from prunebias.methods.scoring import set_difference_mask

    model, _ = fresh_model
    g = torch.Generator().manual_seed(0)
    w = linear(model, 0, "q_proj").weight.detach()
    sb, sw = torch.rand(w.shape[1], generator=g) * 4, torch.rand(w.shape[1], generator=g) * 4
    real = set_difference_mask(w, sb, sw, 15, 15).numpy()
    band = next_band(w, sb, sw, 15, 15, per_row=False)

    def top(scores, frac):  # by hand: a full sort, the k-th largest as the threshold
        k = int(np.ceil(frac * scores.size))
        return scores >= np.sort(scores.ravel())[::-1][k - 1]

    black = (w.abs() * sb.sqrt()[None, :]).numpy()
    white = (w.abs() * sw.sqrt()[None, :]).numpy()
    assert (band == (top(black, 0.30) & ~top(black, 0.15) & ~top(white, 0.15))).all()
    assert not (band & real).any() and not (band & top(black, 0.15) & top(white, 0.15)).any()
    ctrl = matched_neuron_control(real, band, False, np.random.default_rng(1))
    assert ctrl.sum() == real.sum() and not (ctrl & real).any() and (band[ctrl]).all()
    real_row = set_difference_mask(w, sb, sw, 15, 15, per_row=True).numpy()
    band_row = next_band(w, sb, sw, 15, 15, per_row=True)
    ctrl_row = matched_neuron_control(real_row, band_row, True, np.random.default_rng(1))
    assert (ctrl_row.sum(1) == real_row.sum(1)).all() and not (ctrl_row & real_row).any()
    roomy = (band_row & ~real_row).sum(1) >= real_row.sum(1)  # elsewhere the band is too small: filled outside
    assert roomy.sum() > 10 and (band_row[roomy] | ~ctrl_row[roomy]).all()
    sums = {"black": {(0, "attn_in"): sb}, "white": {(0, "attn_in"): sw}}
    method = NeuronSetting("black", 15, 15, "global")
    a, b = neuron_controls(model, {"layers.0.q_proj": real}, sums, method, [5, 6])
    assert a["layers.0.q_proj"].sum() == real.sum() and band[a["layers.0.q_proj"]].all()
    again = neuron_controls(model, {"layers.0.q_proj": real}, sums, method, [5])[0]
    assert np.array_equal(a["layers.0.q_proj"], again["layers.0.q_proj"])  # seeded
    assert not np.array_equal(a["layers.0.q_proj"], b["layers.0.q_proj"])  # draws differ
    white_mask = set_difference_mask(w, sw, sb, 15, 15).numpy()  # direction white: the roles swap
    (c,) = neuron_controls(model, {"layers.0.q_proj": white_mask}, sums, NeuronSetting("white", 15, 15), [5])
    assert next_band(w, sw, sb, 15, 15, per_row=False)[c["layers.0.q_proj"]].all()


def test_matched_head_control_keeps_layers():
    from prunebias.methods.controls import matched_head_control

    heads = np.zeros((4, 6), dtype=bool)
    heads[2, [0, 3]] = True
    heads[3, :] = True  # a full layer: the control can only take the same heads
    for seed in range(5):
        ctrl = matched_head_control(heads, np.random.default_rng(seed))
        assert (ctrl.sum(1) == heads.sum(1)).all()
        assert not (ctrl[2] & heads[2]).any() and ctrl[3].all()


def test_mask_shape_mismatch_is_refused(fresh_model):
    model, _ = fresh_model
    bad = Mask({"kind": "neurons"}, {"layers.0.q_proj": np.zeros((3, 3), bool)})
    with pytest.raises(ValueError, match="shape"):
        with pruned(model, bad):
            pass
