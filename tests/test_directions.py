"""Direction editing's core (issue 25, item 3), checked against independent computations:
the direction by hand, the edited residual stream by the model's own hidden states."""

import numpy as np
import pytest
import torch

from conftest import state_checksum
from prunebias.directions import orthogonalized, race_direction, random_direction, residual_writers


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
