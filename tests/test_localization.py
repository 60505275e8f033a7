"""Activation cache, Wanda scores and masks checked against plain-torch computations."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from prunebias.model.architecture import check_architecture
from prunebias.model.activations import HEAD_SCHEMA, cache_batches
from prunebias.methods.masks import intersect_neuron_masks
from prunebias.errors import ConfigError
from prunebias.methods.masks import Mask, check_model, read_mask, write_mask
from prunebias.model.modeling import chat_text, load_model
from prunebias.model.activations import group_sumsq
from prunebias.methods.neurons import neuron_masks
from prunebias.methods.settings import NeuronSetting
from prunebias.methods.scoring import common_heads, set_difference_mask, top_fraction, top_k_heads, wanda_scores

NAMES = [("Jake Becker", "white"), ("Jamal Washington", "black"), ("Emily Becker", "white"),
         ("Tanisha Washington", "black"), ("Logan Becker", "white"), ("Tyrone Washington", "black")]


def prompts_frame(n=6):
    rows = []
    for i in range(n):
        name, race = NAMES[i % len(NAMES)]
        rows.append({"row": i, "context": "purchase-car", "race": race, "gender": "man", "name": name,
                     "sample": i // len(NAMES), "prompt": f"I want to buy a car from {name}. Offer?" + " Now." * (i % 3),
                     "answer_prefix": "My offer is $", "response": ["120", "4 dollars", "77", "", "9", "15k"][i % 6]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def eager_model(tiny_model_dir):
    return load_model(tiny_model_dir, dtype="float32", device="cpu", threads=1, attn_implementation="eager")


def cache_frames(model, tok, rows, batch_size):
    acts, heads = [], []
    for a, h, _ in cache_batches(model, tok, rows, batch_size):
        acts.append(a)
        heads.append(h)
    return pa.concat_tables(acts).to_pandas(), pa.concat_tables(heads).to_pandas()


@torch.no_grad()
def hand_sites(model, tok, text):
    """Per-token inputs of every linear layer, by plain torch from hidden states (no hooks)."""
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    out = model(input_ids=ids, output_hidden_states=True, output_attentions=True)
    geo = check_architecture(model)
    sites = {}
    for layer_idx, layer in enumerate(model.model.layers):
        h = out.hidden_states[layer_idx][0]
        x = layer.input_layernorm(h)
        sites[(layer_idx, "attn_in")] = x
        v = layer.self_attn.v_proj(x).view(-1, geo.n_kv_heads, geo.head_dim)
        v = v.repeat_interleave(geo.n_heads // geo.n_kv_heads, dim=1)  # GQA: query head -> its kv head
        attn = out.attentions[layer_idx][0]  # (H, T, T)
        z = torch.einsum("hts,shd->thd", attn, v).reshape(-1, geo.n_heads * geo.head_dim)
        sites[(layer_idx, "attn_z")] = z
        r = h + layer.self_attn.o_proj(z)
        m = layer.post_attention_layernorm(r)
        sites[(layer_idx, "mlp_in")] = m
        sites[(layer_idx, "mlp_post")] = layer.mlp.act_fn(layer.mlp.gate_proj(m)) * layer.mlp.up_proj(m)
        # the residual stream we rebuilt must equal the model's next hidden state
        nxt = r + layer.mlp.down_proj(sites[(layer_idx, "mlp_post")])
        if layer_idx + 1 < len(model.model.layers):
            assert torch.allclose(nxt, out.hidden_states[layer_idx + 1][0], atol=1e-5)
    return sites


def test_cache_matches_hand_computation(eager_model):
    model, tok = eager_model
    rows = prompts_frame(3)
    acts, _ = cache_frames(model, tok, rows, batch_size=3)  # padded batch
    for i in (0, 2):
        r = rows.iloc[i]
        text = chat_text(tok, r.prompt, r.answer_prefix, r.response)
        sites = hand_sites(model, tok, text)
        got = acts[acts.row == i]
        assert set(got.n_tokens) == {len(tok(text, add_special_tokens=False).input_ids)}
        assert len(got) == len(sites)
        for rec in got.itertuples():
            expected = sites[(rec.layer, rec.site)].square().sum(0).numpy()
            np.testing.assert_allclose(rec.sumsq, expected, rtol=1e-4, atol=1e-6)


def test_wanda_mask_of_one_layer_by_hand(eager_model):
    model, tok = eager_model
    rows = prompts_frame(6)
    acts, _ = cache_frames(model, tok, rows, batch_size=4)
    # hand norms for q_proj of layer 1: sum over the group's prompts, then sqrt
    norms = {}
    for race in ("white", "black"):
        tot = 0
        for r in rows[rows.race == race].itertuples():
            tot = tot + hand_sites(model, tok, chat_text(tok, r.prompt, r.answer_prefix, r.response))[(1, "attn_in")] \
                .square().sum(0)
        norms[race] = tot.sqrt()
    w = model.model.layers[1].self_attn.q_proj.weight.detach()
    score_b, score_w = w.abs() * norms["black"], w.abs() * norms["white"]
    k_b, k_w = math.ceil(0.2 * w.numel()), math.ceil(0.1 * w.numel())
    top_b = np.zeros(w.numel(), bool)
    top_b[np.argsort(-score_b.flatten().numpy(), kind="stable")[:k_b]] = True
    top_w = np.zeros(w.numel(), bool)
    top_w[np.argsort(-score_w.flatten().numpy(), kind="stable")[:k_w]] = True
    expected = (top_b & ~top_w).reshape(w.shape)

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.parquet"
        pq.write_table(pa.Table.from_pandas(acts, preserve_index=False), path)
        sums = group_sumsq([path])
    setting = NeuronSetting("black", 20, 10, "global")
    got = neuron_masks(model, sums, [setting])[0]["layers.1.q_proj"]
    assert got.sum() > 0
    np.testing.assert_array_equal(got, expected)


def test_top_fraction_and_set_difference_on_hand_matrix():
    s = torch.tensor([[9.0, 1.0, 5.0, 3.0], [2.0, 8.0, 7.0, 0.0]])
    assert top_fraction(s, 25).nonzero().tolist() == [[0, 0], [1, 1]]  # 2 of 8
    assert top_fraction(s, 50, per_row=True).tolist() == [[True, False, True, False], [False, True, True, False]]
    w = torch.ones(2, 4)
    a = torch.tensor([4.0, 1.0, 9.0, 1.0])  # group a: channels 2, 0 strongest
    b = torch.tensor([1.0, 1.0, 9.0, 4.0])  # group b: channels 2, 3 strongest
    m = set_difference_mask(w, a, b, 50, 50)
    assert m.tolist() == [[True, False, False, False], [True, False, False, False]]
    rev = set_difference_mask(w, b, a, 50, 50)
    assert rev.tolist() == [[False, False, False, True], [False, False, False, True]]
    # a larger p for the subtracted group can only shrink the mask
    assert set_difference_mask(w, a, b, 50, 75).sum() <= m.sum()
    assert torch.equal(wanda_scores(torch.tensor([[-2.0]]), torch.tensor([9.0])), torch.tensor([[6.0]]))
    with pytest.raises(ValueError):
        top_fraction(s, 0)


def test_head_rankings():
    scores = torch.tensor([[0.1, 0.9], [0.5, float("nan")]])
    assert top_k_heads(scores, 2).tolist() == [[False, True], [True, False]]
    m1 = torch.tensor([[True, True], [False, False]])
    m2 = torch.tensor([[True, False], [True, False]])
    s = torch.tensor([[1.0, 0.2], [0.9, 0.0]])
    assert common_heads([m1, m2], [s, s], 1).tolist() == [[True, False], [False, False]]
    # tie between (0,1) and (1,0) (one vote each): the higher summed score wins
    assert common_heads([m1, m2], [s, s], 2).tolist() == [[True, False], [True, False]]


def test_subset_rebuild_equals_rerun(eager_model, tmp_path):
    model, tok = eager_model
    rows = prompts_frame(6)
    full, _ = cache_frames(model, tok, rows, batch_size=6)
    subset_rows = rows[rows.row.isin([0, 1, 3, 4])]
    rerun, _ = cache_frames(model, tok, subset_rows, batch_size=2)
    p_full, p_rerun = tmp_path / "full.parquet", tmp_path / "rerun.parquet"
    pq.write_table(pa.Table.from_pandas(full, preserve_index=False), p_full)
    pq.write_table(pa.Table.from_pandas(rerun, preserve_index=False), p_rerun)
    from_subset = group_sumsq([p_full], keep=lambda df: df["row"].isin([0, 1, 3, 4]))
    from_rerun = group_sumsq([p_rerun])
    for race in ("white", "black"):
        for key in from_rerun[race]:
            torch.testing.assert_close(from_subset[race][key], from_rerun[race][key], rtol=1e-5, atol=1e-6)
    v = [NeuronSetting("black", 15, 15, "row")]
    a, b = neuron_masks(model, from_subset, v)[0], neuron_masks(model, from_rerun, v)[0]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_head_attention_finds_name_tokens(eager_model):
    model, tok = eager_model
    rows = prompts_frame(6)
    _, heads = cache_frames(model, tok, rows, batch_size=6)
    geo = check_architecture(model)
    assert (heads.n_name_tokens > 0).all()
    assert list(heads.n_answer_tokens > 0) == [r != "" for r in rows.response]
    for attn, n_ans in zip(heads.attn, heads.n_answer_tokens):
        assert len(attn) == geo.n_layers * geo.n_heads
        if n_ans:
            assert ((attn >= 0) & (attn <= 1)).all()
    # name tokens decode back to the name
    r = rows.iloc[1]
    text = chat_text(tok, r.prompt, r.answer_prefix, r.response)
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    from prunebias.model.activations import char_spans, token_masks

    (n0, n1), _ = char_spans(text, r.prompt, r["name"], r.response)
    mask = token_masks(torch.tensor([enc.offset_mapping]), [(n0, n1)])[0]
    assert tok.decode([t for t, m in zip(enc.input_ids, mask) if m]).strip() == r["name"]


def test_mask_file_roundtrip_and_model_check(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"layers.0.q_proj": rng.random((5, 7)) < 0.3, "layers.0.down_proj": rng.random((3, 11)) < 0.1}
    ident = {"name": "m", "config_sha256": "abc", "n_layers": 1, "n_heads": 2}
    write_mask(tmp_path / "m.npz", "neurons", {"model": ident, "method": {"name": "neurons"}}, arrays)
    m = read_mask(tmp_path / "m.npz")
    for k, a in arrays.items():
        np.testing.assert_array_equal(m.arrays[k], a)
    assert m.meta["n_pruned"] == sum(int(a.sum()) for a in arrays.values())
    assert m.meta["counts"]["layers.0.q_proj"] == int(arrays["layers.0.q_proj"].sum())
    check_model(m, ident, "here")
    with pytest.raises(ConfigError, match="made for model"):
        check_model(m, {**ident, "config_sha256": "zzz", "name": "other"}, "mask.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="bad.npz"):
        read_mask(tmp_path / "bad.npz")


def test_common_mask_is_intersection():
    rng = np.random.default_rng(1)
    masks = [Mask({"kind": "neurons"}, {"k": rng.random((4, 4)) < 0.6}) for _ in range(3)]
    got = intersect_neuron_masks(masks)["k"]
    np.testing.assert_array_equal(got, masks[0].arrays["k"] & masks[1].arrays["k"] & masks[2].arrays["k"])


def test_other_architectures_are_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=16, n_positions=16))
    with pytest.raises(ConfigError, match="model.layers"):
        check_architecture(gpt2)


def test_greedy_heads_rerun_the_model_after_each_pick(eager_model):
    from conftest import state_checksum
    from prunebias.methods.heads import greedy_heads, mean_attention

    model, tok = eager_model
    rows = prompts_frame(6)
    before = state_checksum(model)
    att = mean_attention(model, tok, rows, 4)
    one_shot_first = np.unravel_index(int(torch.argmax(att["white"] + att["black"])), (2, 4))
    chosen, scores, order = greedy_heads(model, tok, rows, 3, batch_size=4)
    assert state_checksum(model) == before  # every step's ablation was undone
    assert chosen.sum() == 3 and len(set(order)) == 3
    assert order[0] == tuple(int(i) for i in one_shot_first)
    assert [scores[layer, head] for layer, head in order] == [3, 2, 1]
    # the second pick is made on the model without the first head
    first = np.zeros((2, 4), bool)
    first[order[0]] = True
    from prunebias.model.pruning import pruned

    with pruned(model, Mask({"kind": "heads"}, {"heads": first})):
        att2 = mean_attention(model, tok, rows, 4)
    s2 = (att2["white"] + att2["black"]).numpy()
    s2[first] = -np.inf
    assert order[1] == tuple(int(i) for i in np.unravel_index(int(np.argmax(s2)), s2.shape))


@torch.no_grad()
def hand_name_attention(model, tok, r, query_positions):
    """Mean name-attention (layers x heads) of one prompt, unpadded, by plain torch from
    ``output_attentions``: the name and answer tokens from character offsets, the query
    positions t - 1 (``generating``) or t (``answer``) for each answer token t."""
    text = chat_text(tok, r.prompt, r.answer_prefix, r.response)
    assert text.endswith(r.response)
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    n0 = text.find(r.prompt) + r.prompt.find(r["name"])
    n1, r0 = n0 + len(r["name"]), len(text) - len(r.response)
    name_idx = [i for i, (s, e) in enumerate(enc.offset_mapping) if s < n1 and e > n0]
    ans_idx = [i for i, (s, e) in enumerate(enc.offset_mapping) if e > r0] if r.response else []
    query = [t - 1 for t in ans_idx] if query_positions == "generating" else ans_idx
    if query_positions == "generating" and ans_idx:
        # from the last token before the response through the second-to-last answer token
        last_before = max(i for i, (_, e) in enumerate(enc.offset_mapping) if e <= r0)
        assert query == list(range(last_before, len(enc.input_ids) - 1))
    out = model(input_ids=torch.tensor([enc.input_ids]), output_attentions=True)
    att = torch.stack(out.attentions)[:, 0]  # (L, H, T, T)
    if not query:
        return torch.zeros(att.shape[:2]), len(ans_idx), 0
    return att[:, :, query][..., name_idx].sum(-1).mean(-1), len(ans_idx), len(query)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_head_attention_query_positions_by_hand(eager_model, padding_side):
    """``generating`` averages the name-attention over the positions t - 1 that produce the
    answer tokens t, ``answer`` (the old behaviour) over the answer tokens; both equal a
    plain-torch computation on the unpadded prompt, whichever side the batch is padded."""
    model, tok = eager_model
    rows = prompts_frame(6)
    # the answer's first token " 1" straddles the prefix/response boundary ("... is " + "120")
    rows = pd.concat([rows, rows.iloc[[0]].assign(row=6, answer_prefix="My offer is ", response="120")],
                     ignore_index=True)
    r = rows.iloc[6]
    text = chat_text(tok, r.prompt, r.answer_prefix, r.response)
    first = next(s for s, e in tok(text, return_offsets_mapping=True, add_special_tokens=False).offset_mapping
                 if e > len(text) - 3)
    assert first < len(text) - 3  # it does straddle
    geo = check_architecture(model)
    old_side = tok.padding_side
    tok.padding_side = padding_side
    try:
        got = {q: pa.concat_tables([h for _, h, _ in cache_batches(model, tok, rows, 4, with_sites=False,
                                                                query_positions=q)]).to_pandas()
               for q in ("generating", "answer")}
    finally:
        tok.padding_side = old_side
    assert list(got["generating"].columns) == HEAD_SCHEMA.names
    for q, heads in got.items():
        for (_, r), rec in zip(rows.iterrows(), heads.itertuples()):
            expected, n_ans, n_query = hand_name_attention(model, tok, r, q)
            assert (rec.row, rec.n_answer_tokens, rec.n_query_tokens) == (r.row, n_ans, n_query)
            np.testing.assert_allclose(np.asarray(rec.attn).reshape(geo.n_layers, geo.n_heads), expected.numpy(),
                                       rtol=1e-4, atol=1e-6)
    gen, ans = (np.stack(got[q].attn) for q in ("generating", "answer"))
    assert not np.allclose(gen, ans)  # the shift by one does change the values
    assert list(got["generating"].n_query_tokens) == list(got["answer"].n_answer_tokens)  # empty answer: 0
    with pytest.raises(ValueError, match="query_positions"):
        next(cache_batches(model, tok, rows, 4, query_positions="prompt"))


def test_greedy_heads_pass_the_query_positions_through(eager_model):
    from prunebias.methods.heads import race_means
    from prunebias.methods.heads import greedy_heads, mean_attention

    model, tok = eager_model
    rows = prompts_frame(6)
    for q in ("generating", "answer"):
        heads = pa.concat_tables([h for _, h, _ in cache_batches(model, tok, rows, 4, with_sites=False,
                                                              query_positions=q)]).to_pandas()
        expected = race_means(heads, 2, 4, "test")
        att = mean_attention(model, tok, rows, 4, query_positions=q)
        for race in ("white", "black"):
            torch.testing.assert_close(att[race], expected[race])
        _, _, order = greedy_heads(model, tok, rows, 1, batch_size=4, query_positions=q)
        assert order[0] == tuple(int(i) for i in np.unravel_index(int(torch.argmax(att["white"] + att["black"])), (2, 4)))
    gen, ans = mean_attention(model, tok, rows, 4), mean_attention(model, tok, rows, 4, query_positions="answer")
    assert not torch.allclose(gen["white"], ans["white"])  # the default is "generating", not the old positions
