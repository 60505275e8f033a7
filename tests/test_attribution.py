"""The grid bias objective and its gradient attribution, against hand computations on the tiny model."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO
from prunebias.methods.attribution import head_deltas, linear_weights, weight_attribution
from prunebias.methods.attribution_select import select_weights
from prunebias.audit.contexts import load_yaml, resolve_context
from prunebias.audit.names import load_names
from prunebias.methods.objective import (answer_grid, bias_objective, candidate_ids, continues_number, expected_answer,
                                 format_answer, grid_agreement, grid_log_probs, prompt_texts, race_weights)
from prunebias.audit.prompts import build_prompts

VALUES = [5.0, 40.0, 300.0, 2500.0]


def b_with(model, tok, rows, values, w, i, j, value, batch_size=6):
    """B with the single weight w[i, j] set to ``value``; the weight is restored afterwards."""
    old = float(w.data[i, j])
    with torch.no_grad():
        w.data[i, j] = value
        try:
            return bias_objective(model, tok, rows, values, batch_size=batch_size)[0]
        finally:
            w.data[i, j] = old


@pytest.fixture(scope="module")
def rows():
    names = load_names(REPO / "data/names/audit40.csv", use_surnames=False)
    ctx = resolve_context("purchase-bicycle", load_yaml(REPO / "data/scenarios.yaml"))
    df = build_prompts(ctx, names, 1, 0)
    # a few names of each race, with prompts of different lengths (padding is exercised)
    return pd.concat([df[df.race == "white"].head(3), df[df.race == "black"].head(3)], ignore_index=True)


@pytest.fixture(scope="module")
def hand_planted(tmp_path_factory):
    """The hand-planted tiny model (tests/tiny_model.py), 6 prompts per race with surnames, a grid."""
    from tiny_model import build_planted_model

    from prunebias.model.modeling import load_model

    model_dir = build_planted_model(tmp_path_factory.mktemp("planted") / "m")
    model, tok = load_model(model_dir, dtype="float32", device="cpu", threads=1)
    names = load_names(REPO / "data/names/audit40.csv", use_surnames=True)
    ctx = resolve_context("purchase-bicycle", load_yaml(REPO / "data/scenarios.yaml"))
    df = build_prompts(ctx, names, 1, 0)
    rows = pd.concat([df[df.race == "white"].head(6), df[df.race == "black"].head(6)], ignore_index=True)
    return model, tok, rows, answer_grid(0, 100, 8)


@pytest.fixture(scope="module")
def model64(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).double().eval()


def test_grid_and_formatting():
    grid = answer_grid(100, 1e6, 9)
    assert grid[0] == 100 and grid[-1] == 1e6 and len(grid) == 9
    assert np.allclose(np.diff(np.log10(grid)), 0.5, atol=0.05)  # log-uniform, 2 significant digits
    assert answer_grid(0, 1000, 4)[0] == 1.0  # a range from 0 starts at 1e-3 of the top
    assert [format_answer(v) for v in (25000, 1.5, 300.0, 1234567)] == ["25,000", "1.5", "300", "1,234,567"]


@torch.no_grad()
def test_grid_log_probs_match_one_sequence_at_a_time(tiny_model, rows):
    """The cached, padded, batched computation against a plain forward pass per (prompt, candidate)."""
    model, tok = tiny_model
    texts = prompt_texts(rows, tok)
    cands = [format_answer(v) for v in VALUES]
    got = grid_log_probs(model, tok, texts, cands)
    ext = continues_number(tok)
    for i, text in enumerate(texts):
        base = tok(text, add_special_tokens=False).input_ids
        for k, cid in enumerate(candidate_ids(tok, text, cands)):
            ids = torch.tensor([base + cid])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
            want = sum(float(logp[len(base) - 1 + j, t]) for j, t in enumerate(cid))
            want += float(torch.log(1 - logp[-1].exp()[ext].sum()))
            assert float(got[i, k]) == pytest.approx(want, abs=2e-4)


def test_expected_answer_and_bias_by_hand(tiny_model, rows):
    model, tok = tiny_model
    with torch.no_grad():
        lp = grid_log_probs(model, tok, prompt_texts(rows, tok), [format_answer(v) for v in VALUES])
    q = np.exp(lp.double().numpy())
    q /= q.sum(1, keepdims=True)
    e_hand = q @ np.array(VALUES)
    assert expected_answer(lp, VALUES).numpy() == pytest.approx(e_hand, rel=1e-5)
    assert expected_answer(lp, VALUES, log_value=True).numpy() == pytest.approx(q @ np.log(VALUES), rel=1e-5)
    b, e = bias_objective(model, tok, rows, VALUES, batch_size=4)  # batches of 4 and 2
    white = rows.race.to_numpy() == "white"
    assert e == pytest.approx(e_hand, rel=1e-4)
    assert b == pytest.approx(e_hand[white].mean() - e_hand[~white].mean(), rel=1e-4, abs=1e-6)
    assert race_weights(["white", "black", "black"]).tolist() == [1.0, -0.5, -0.5]


def test_gradient_matches_finite_differences(model64, tiny_model, rows):
    """dB/dW from the batched, cached backward pass against central differences (float64 weights;
    attention still normalizes in float32, so the steps are large enough to rise above that)."""
    _, tok = tiny_model
    b, scores, _, _ = weight_attribution(model64, tok, rows, VALUES, batch_size=4)
    weights = linear_weights(model64)
    for key in ["layers.0.q_proj", "layers.0.v_proj", "layers.1.down_proj", "layers.1.o_proj"]:
        w = weights[key]
        s = scores[key].double()
        i, j = np.unravel_index(int(torch.argmax(s.abs())), s.shape)  # the strongest entry of the matrix
        old = float(w.data[i, j])

        def central(eps):
            up, down = (b_with(model64, tok, rows, VALUES, w, i, j, old + e) for e in (eps, -eps))
            return (up - down) / (2 * eps)

        grad = (4 * central(1e-3) - central(2e-3)) / 3  # Richardson: the eps^2 term cancels
        assert float(s[i, j]) == pytest.approx(-old * grad, rel=0.03), key


def test_gradient_matches_plain_autograd_one_sequence_at_a_time(model64, tiny_model, rows):
    """The cached, padded, batched gradient against autograd through one full sequence per
    (prompt, candidate): no cache, no padding, B assembled by hand."""
    _, tok = tiny_model
    b, scores, _, _ = weight_attribution(model64, tok, rows, VALUES, batch_size=4)
    weights = linear_weights(model64)
    for p in model64.parameters():
        p.requires_grad_(False)
    for w in weights.values():
        w.requires_grad_(True)
    try:
        texts, cands, ext = prompt_texts(rows, tok), [format_answer(v) for v in VALUES], continues_number(tok)
        total = 0.0
        for c, text in zip(race_weights(rows.race.to_numpy()), texts):
            base = tok(text, add_special_tokens=False).input_ids
            lps = []
            for cid in candidate_ids(tok, text, cands):
                logp = torch.log_softmax(model64(input_ids=torch.tensor([base + cid])).logits[0], -1)
                lps.append(sum(logp[len(base) - 1 + j, t] for j, t in enumerate(cid))
                           + torch.logsumexp(logp[-1][~ext], -1))
            q = torch.softmax(torch.stack(lps), 0)
            total = total + c * (q * torch.tensor(VALUES, dtype=q.dtype)).sum()
        total.backward()
        assert float(total.detach()) == pytest.approx(b, rel=1e-9)
        for key, w in weights.items():
            torch.testing.assert_close(scores[key], (-(w.detach() * w.grad)).float(), rtol=1e-4, atol=1e-8)
    finally:
        for p in model64.parameters():
            p.requires_grad_(True)
            p.grad = None


def test_first_order_estimate_against_exact_ablation(model64, tiny_model, rows):
    """Zeroing the top-attributed weights one at a time: the predicted change of B against the real one."""
    _, tok = tiny_model
    b, scores, heads, expected = weight_attribution(model64, tok, rows, VALUES, batch_size=6)
    weights = linear_weights(model64)
    flat = sorted(((abs(float(v)), k, idx) for k, s in scores.items() for idx, v in np.ndenumerate(s.numpy())),
                  reverse=True)[:8]
    predicted, actual = [], []
    for _, key, (i, j) in flat:
        predicted.append(float(scores[key][i, j]))
        actual.append(b_with(model64, tok, rows, VALUES, weights[key], i, j, 0.0) - b)
    predicted, actual = np.array(predicted), np.array(actual)
    assert (np.sign(predicted) == np.sign(actual)).mean() >= 0.75
    assert np.corrcoef(predicted, actual)[0, 1] > 0.8
    # a head's delta sums S over the entries its ablation zeroes: q_proj rows (default) or o_proj columns
    hd = scores["layers.0.o_proj"].shape[1] // heads.shape[1]
    assert float(heads[0, 1]) == pytest.approx(float(scores["layers.0.q_proj"][hd:2 * hd].sum()), rel=1e-5)
    o_cols = head_deltas(scores, heads.shape[0], heads.shape[1], hd, "o_cols")
    assert float(o_cols[0, 1]) == pytest.approx(float(scores["layers.0.o_proj"][:, hd:2 * hd].sum()), rel=1e-5)
    assert len(expected) == len(rows)
    assert all(w.grad is None for w in model64.parameters())  # nothing kept after scoring


def test_selection_moves_b_toward_zero():
    s = torch.tensor([[0.5, -2.0, 0.1], [-0.3, 1.0, -0.05]])
    assert select_weights(s, b=1.0, count=2).tolist() == [[False, True, False], [True, False, False]]
    assert select_weights(s, b=-1.0, count=2).tolist() == [[True, False, False], [False, True, False]]
    assert select_weights(s, b=1.0, count=10).sum() == 3  # only entries that shrink |B|
    assert select_weights(s, b=1.0, count=1).sum() == 1  # heads are selected the same way


def test_grid_agreement_of_per_name_means():
    rows = pd.DataFrame({"name": list("aabbccdd"), "anomaly": [False] * 8,
                         "outcome": [1, 3, 2, 4, 5, 7, 9, 9.0]})
    got = grid_agreement(rows, np.array([2, 2, 3, 3, 6, 6, 8, 10.0]))
    assert got["names"] == 4 and got["pearson"] == pytest.approx(1.0) and got["spearman"] == pytest.approx(1.0)


def test_gradient_attribution_is_blind_to_a_saturated_plant(hand_planted):
    """The known limit of -W * dB/dW: in the hand-planted model the race pathway saturates
    the answer's probabilities (a step function of the race signal, behind two RMSNorms), so
    the gradient at the two planted weights vanishes although zeroing either one removes the
    whole bias. The name path's integrated gradient (4 steps) does not reach the narrow
    transition either: Wanda's activation sizes are what find this plant."""
    from tiny_model import PLANTED

    model, tok, rows, values = hand_planted
    b, scores, _, _ = weight_attribution(model, tok, rows, values, batch_size=6)
    _, integrated, _, _ = weight_attribution(model, tok, rows, values, batch_size=6, steps=4)
    assert b > 0.2
    weights = linear_weights(model)
    for key, r, c in PLANTED:
        assert abs(float(scores[key][r, c])) < 1e-6 and abs(float(integrated[key][r, c])) < 1e-6
        after = b_with(model, tok, rows, values, weights[key], r, c, 0.0)
        assert abs(after) < 0.1 * b  # the ablation removes >= 90% of B


def test_faithfulness_removes_each_head_and_neuron_alone(model64, tiny_model, rows):
    """Predicted (sum of S over a head's q_proj rows; over a neuron's gate and up rows and
    down column) against the measured change of B when that unit alone is removed; the
    model is restored after each. The measured change of the top neuron is checked by hand."""
    from prunebias.methods.attribution import neuron_deltas
    from prunebias.methods.faithfulness import faithfulness
    from conftest import state_checksum

    _, tok = tiny_model
    before = state_checksum(model64)
    b, scores, heads, _ = weight_attribution(model64, tok, rows, VALUES, batch_size=6)
    table, rho = faithfulness(model64, tok, rows, VALUES, heads, b, "head", top=8, batch_size=6)
    assert len(table) == 8 and table["predicted"].abs().is_monotonic_decreasing
    assert state_checksum(model64) == before
    assert rho > 0.5, (rho, table)
    neurons = neuron_deltas(scores, heads.shape[0])
    assert neurons.shape == (2, 64)
    assert float(neurons[1, 5]) == pytest.approx(float(scores["layers.1.gate_proj"][5].sum()
                                                       + scores["layers.1.up_proj"][5].sum()
                                                       + scores["layers.1.down_proj"][:, 5].sum()), rel=1e-6)
    table, rho = faithfulness(model64, tok, rows, VALUES, neurons, b, "neuron", top=6, batch_size=6)
    assert list(table.unit.unique()) == ["neuron"] and len(table) == 6
    top = table.iloc[0]
    mlp = model64.model.layers[int(top.layer)].mlp
    saved = [mlp.gate_proj.weight.data.clone(), mlp.up_proj.weight.data.clone(), mlp.down_proj.weight.data.clone()]
    with torch.no_grad():  # by hand: zero the neuron's three slices
        mlp.gate_proj.weight[int(top["index"])] = 0
        mlp.up_proj.weight[int(top["index"])] = 0
        mlp.down_proj.weight[:, int(top["index"])] = 0
        after = bias_objective(model64, tok, rows, VALUES, batch_size=6)[0]
        mlp.gate_proj.weight.data, mlp.up_proj.weight.data, mlp.down_proj.weight.data = saved
    assert top.measured == pytest.approx(after - b, rel=1e-9, abs=1e-12)
    assert state_checksum(model64) == before
    assert rho > 0.5, (rho, table)


def test_name_path_moves_only_the_name_tokens(tiny_model, rows):
    """The name's tokens are found by character offsets; at alpha = 0 every name is the same
    race-neutral embedding, so two prompts whose names have as many tokens score the same grid;
    at alpha = 1 nothing moves."""
    from prunebias.methods.objective import name_baseline, name_token_masks

    model, tok = tiny_model
    texts = prompt_texts(rows, tok)
    masks = name_token_masks(tok, texts, rows)
    for text, m, name in zip(texts, masks, rows["name"]):
        ids = tok(text, add_special_tokens=False).input_ids
        assert tok.decode([i for i, on in zip(ids, m) if on]).strip() == name
    base = name_baseline(model, tok, rows)
    cands = [format_answer(v) for v in VALUES]
    n_tok = [int(m.sum()) for m in masks]
    lengths = [len(m) for m in masks]
    pair = next((i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))
                if n_tok[i] == n_tok[j] and lengths[i] == lengths[j] and rows.race[i] != rows.race[j])
    with torch.no_grad():
        plain = grid_log_probs(model, tok, texts, cands)
        same = grid_log_probs(model, tok, texts, cands, name_masks=masks, name_alpha=1.0, baseline=base)
        zero = grid_log_probs(model, tok, texts, cands, name_masks=masks, name_alpha=0.0, baseline=base)
    assert torch.equal(plain, same)
    i, j = pair
    assert not torch.allclose(plain[i], plain[j], atol=1e-4)
    assert torch.allclose(zero[i], zero[j], atol=1e-5)
    with pytest.raises(ValueError, match="name path"):
        grid_log_probs(model, tok, texts, cands, name_alpha=0.5)


def test_integrated_gradient_is_the_mean_of_the_path_gradients(model64, tiny_model, rows):
    """steps = 2: S is -W times the mean of dB/dW at alpha 1/2 and 1, each computed on its own."""
    from prunebias.methods.attribution import name_path
    from prunebias.methods.objective import name_baseline

    _, tok = tiny_model
    assert name_path(1) == [1.0] and name_path(4) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError):
        name_path(0)
    b, scores, _, _ = weight_attribution(model64, tok, rows, VALUES, batch_size=6, steps=2)
    w = model64.model.layers[1].mlp.down_proj.weight
    base = name_baseline(model64, tok, rows)
    grads = []
    for alpha in (0.5, 1.0):
        for p in model64.parameters():
            p.requires_grad_(p is w)
        bias_objective(model64, tok, rows, VALUES, batch_size=4, backward=True, name_alpha=alpha, baseline=base)
        grads.append(w.grad.clone())
        w.grad = None
    for p in model64.parameters():
        p.requires_grad_(True)
    want = -(w.detach() * (grads[0] + grads[1]) / 2)
    assert torch.allclose(scores["layers.1.down_proj"].double(), want.float().double(), rtol=1e-4, atol=1e-12)
    assert b == pytest.approx(bias_objective(model64, tok, rows, VALUES, batch_size=6)[0], rel=1e-9)


def test_snip_importance_and_the_set_difference(model64, tiny_model):
    """|W * dL/dW| on a text against plain autograd of the next-token cross-entropy; the
    protected top share of a matrix is never selected."""
    import torch.nn.functional as F

    from prunebias.methods.attribution import text_importance
    from prunebias.methods.attribution_select import protect

    _, tok = tiny_model
    text = "The committee met on Tuesday and agreed on the budget for the new library."
    got = text_importance(model64, tok, text)
    ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
    w = model64.model.layers[0].self_attn.v_proj.weight
    w.grad = None
    loss = F.cross_entropy(model64(input_ids=ids).logits[0, :-1], ids[0, 1:])
    (g,) = torch.autograd.grad(loss, w)
    assert torch.allclose(got["layers.0.v_proj"].double(), (w.detach() * g).abs().float().double(), rtol=1e-4,
                          atol=1e-12)
    assert all(p.grad is None for p in model64.parameters())
    toward = {"a": -torch.arange(1.0, 11.0).view(2, 5)}  # every entry's removal shrinks |B|; -10 most
    importance = {"a": torch.zeros(2, 5)}
    importance["a"][1, 4] = 5.0  # the entry ordinary text needs most is also the top bias entry
    kept = protect(toward, importance, 10)  # top 10% of 10 entries: one
    chosen = select_weights(kept["a"], 1.0, 2)
    assert not chosen[1, 4] and chosen[1, 3] and chosen[1, 2]
    assert protect(toward, importance, 0) is toward


def patched_b(model, tok, rows, values, layer, head, eps):
    """B with head (layer, head)'s post-name outputs of each White/Black pair moved a share eps
    toward the pair's mean, computed one prompt at a time (no batch, no padding): an
    independent check of ``head_patching``."""
    from prunebias.model.architecture import check_architecture, linear
    from prunebias.methods.patching import pair_rows, post_name_lengths

    geo = check_architecture(model)
    sl = slice(head * geo.head_dim, (head + 1) * geo.head_dim)
    o_proj = linear(model, layer, "o_proj")
    candidates = [format_answer(v) for v in values]

    def run(text, edit=None):
        seen = []

        def hook(_m, args):
            x = args[0]
            seen.append(x.detach().clone())
            return None if edit is None else (edit(len(seen) - 1, x),)

        h = o_proj.register_forward_pre_hook(hook)
        try:
            with torch.no_grad():
                e = expected_answer(grid_log_probs(model, tok, [text], candidates), values)
        finally:
            h.remove()
        return float(e[0]), seen

    total = 0.0
    pairs = pair_rows(rows)
    for w, b in pairs:
        pair = rows.loc[[w, b]].reset_index(drop=True)
        texts = prompt_texts(pair, tok)
        post = post_name_lengths(tok, texts, pair)
        span = int(min(post))
        acts = [run(t)[1] for t in texts]
        for i, sign in ((0, 1.0), (1, -1.0)):
            own, other = acts[i], acts[1 - i]

            def edit(call, x, own=own, other=other):
                x = x.clone()
                if call == 0:  # the prompt: the last `span` positions
                    mid = (own[0][0, -span:, sl] + other[0][0, -span:, sl]) / 2
                    x[0, -span:, sl] += eps * (mid - own[0][0, -span:, sl])
                else:  # the candidates: every position
                    x[..., sl] += eps * ((own[1][..., sl] + other[1][..., sl]) / 2 - own[1][..., sl])
                return x

            total += sign * (run(texts[i], edit)[0] - run(texts[i])[0]) / len(pairs)
    return total


def test_head_patching_against_a_patch_computed_by_hand(model64, tiny_model, rows):
    """The first-order change of B per head equals the derivative of the hand-made patch
    (central difference, float64), for every head of the tiny model."""
    from prunebias.methods.patching import head_patching, pair_rows

    _, tok = tiny_model
    assert len(pair_rows(rows)) == 3
    before = [p.requires_grad for p in model64.parameters()]
    deltas, info = head_patching(model64, tok, rows, VALUES, batch_size=2)
    assert info["pairs"] == 3 and info["mean_span"] > 5
    # activations only: no weight gradient computed or kept, requires_grad as it was
    assert all(p.grad is None for p in model64.parameters())
    assert [p.requires_grad for p in model64.parameters()] == before
    eps = 1e-2  # central difference: error ~ eps^2; smaller steps drown in the rounding of E (~1e3)
    for layer in range(deltas.shape[0]):
        for head in range(deltas.shape[1]):
            fd = (patched_b(model64, tok, rows, VALUES, layer, head, eps)
                  - patched_b(model64, tok, rows, VALUES, layer, head, -eps)) / (2 * eps)
            assert float(deltas[layer, head]) == pytest.approx(fd, rel=5e-3, abs=1e-4), (layer, head)
    assert deltas.abs().max() > 1e-4  # not all zero


def test_patching_finds_the_saturated_head_that_weight_gradients_miss(hand_planted):
    """In the hand-planted model the race pathway (layer 0, head 0) saturates the Black
    prompts' answers, and -W * dB/dW is ~0 at its weights (the test above). Patching is not
    blind: a White prompt is not saturated against the Black prompt's head output, so both
    the plain and the integrated estimate (8 steps) rank head (0, 0) first by far. The plain
    one overshoots (the first order of a step); the integrated one undershoots (the step lies
    before its first point, alpha = 1/16): a ranking, not a size."""
    from prunebias.methods.patching import head_patching

    model, tok, rows, values = hand_planted
    b, _ = bias_objective(model, tok, rows, values, batch_size=6)
    assert b > 0.5
    for steps in (1, 8):
        deltas, _ = head_patching(model, tok, rows, values, batch_size=6, steps=steps)
        others = deltas.flatten()[1:].abs().max()
        assert float(deltas[0, 0]) < -100 * float(others), (steps, deltas)  # removing it moves B toward 0


def test_whole_neuron_selection_and_its_controls():
    """Whole MLP neurons by their summed S within the MLP budget, only those that move B
    toward 0, and their protection; controls: as many whole neurons per layer, elsewhere."""
    from prunebias.methods.attribution_select import mlp_count, protect_units, select_neurons
    from prunebias.methods.controls import unit_controls

    shapes = {f"layers.{L}.{m}": s for L in range(2) for m, s in
              [("gate_proj", (6, 4)), ("up_proj", (6, 4)), ("down_proj", (4, 6)), ("q_proj", (4, 4))]}
    toward = torch.tensor([[0.0, -3.0, 1.0, -0.5, 0.0, 0.0], [-2.0, 0.0, 0.0, 0.0, 0.0, -0.1]])
    counts = {"layers.0.gate_proj": 10, "layers.1.down_proj": 20, "layers.0.q_proj": 99}
    assert mlp_count(counts) == 30  # 2 neurons of 12 weights fit
    got = select_neurons(toward, mlp_count(counts), shapes)
    assert got["layers.0.gate_proj"][:, 0].tolist() == [False, True, False, False, False, False]
    assert got["layers.1.up_proj"].any(axis=1).tolist() == [True, False, False, False, False, False]
    assert got["layers.1.down_proj"][:, 0].all() and got["layers.1.down_proj"].sum() == 4
    assert not got["layers.0.q_proj"].any() and sum(int(a.sum()) for a in got.values()) == 24
    assert sum(int(a.sum()) for a in select_neurons(toward, 10**6, shapes).values()) == 4 * 12  # negatives only
    spared = protect_units(toward, torch.tensor([[0, 9, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1.0]]), 100 / 6)
    assert float(spared[0, 1]) == 0 and float(spared[1, 5]) == 0 and float(spared[1, 0]) == -2
    a, b = unit_controls(got, [1, 2])
    for ctrl in (a, b):
        for L in range(2):
            real_rows = got[f"layers.{L}.gate_proj"].any(axis=1)
            rows_ = ctrl[f"layers.{L}.gate_proj"].any(axis=1)
            assert rows_.sum() == real_rows.sum() and not (rows_ & real_rows).any()
            assert (ctrl[f"layers.{L}.up_proj"].any(axis=1) == rows_).all()
            assert (ctrl[f"layers.{L}.down_proj"].any(axis=0) == rows_).all()
        assert not ctrl["layers.0.q_proj"].any()
