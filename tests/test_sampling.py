import numpy as np
import pytest
import torch

from prunebias.model.modeling import chat_text, eos_token_ids
from prunebias.audit.parsing import number_complete
from prunebias.model.sampling import Sampling, _gumbel_rows, sample_all, sample_batch

NAMES = ["Jamal Washington", "Jake Becker", "Emily Becker", "Tanisha Washington", "DeAndre Washington"]


def _texts(tok, n=10):
    return [chat_text(tok, f"I want to buy a car from {NAMES[i % len(NAMES)]}. Offer?", "My initial offer is $")
            for i in range(n)]


def test_greedy_matches_transformers_generate(tiny_model):
    """Our KV-cache loop with left padding equals HF generate, prompt by prompt."""
    model, tok = tiny_model
    texts = _texts(tok, 5)
    ours = sample_batch(model, tok, texts, [0] * 5, Sampling(temperature=0, max_new_tokens=6), eos_ids=set())
    for text, (answer, n) in zip(texts, ours):
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        ref = model.generate(**enc, max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
        assert answer == tok.decode(ref[0, enc.input_ids.shape[1]:], skip_special_tokens=True)
        assert n == 6


def test_seeded_answers_repeat_and_do_not_depend_on_batch_size(tiny_model):
    model, tok = tiny_model
    texts, seeds = _texts(tok, 12), list(range(100, 112))
    eos = eos_token_ids(model, tok)
    runs = [sample_all(model, tok, texts, seeds, Sampling(batch_size=bs, max_new_tokens=8), eos, number_complete)
            for bs in (12, 12, 5, 1)]
    assert runs[0] == runs[1] == runs[2] == runs[3]
    other = sample_all(model, tok, texts, [s + 1 for s in seeds], Sampling(max_new_tokens=8), eos, number_complete)
    assert other != runs[0]


def test_gumbel_max_samples_the_softmax():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5])
    temperature = 0.6
    n = 20000
    gens = [torch.Generator().manual_seed(i) for i in range(n)]
    draws = (logits / temperature + _gumbel_rows(gens, 5)).argmax(-1).numpy()
    freq = np.bincount(draws, minlength=5) / n
    expected = torch.softmax(logits / temperature, -1).numpy()
    assert freq == pytest.approx(expected, abs=0.012)


def test_early_stop_cuts_after_the_number(tiny_model):
    model, tok = tiny_model
    texts = _texts(tok, 6)
    long = sample_batch(model, tok, texts, list(range(6)), Sampling(max_new_tokens=10), set())
    short = sample_batch(model, tok, texts, list(range(6)), Sampling(max_new_tokens=10), set(), number_complete)
    for (a, _), (b, nb) in zip(long, short):
        assert a.startswith(b)  # same draws, only truncated
        assert nb == 10 or number_complete(b)


def test_sample_all_fails_instead_of_dropping_answers(tiny_model, monkeypatch):
    """A batch that comes back short must stop the job, not shift answers against their prompts."""
    from prunebias.model import sampling

    model, tok = tiny_model
    real = sampling.sample_batch
    monkeypatch.setattr(sampling, "sample_batch", lambda *a, **k: real(*a, **k)[:-1])
    texts = _texts(tok, 3)
    settings = Sampling(max_new_tokens=2, temperature=1.0, batch_size=2)
    with pytest.raises(RuntimeError, match="answers for a batch"):
        sampling.sample_all(model, tok, texts, [1, 2, 3], settings, eos_token_ids(model, tok))
    monkeypatch.setattr(sampling, "sample_batch", real)
    assert len(sampling.sample_all(model, tok, texts, [1, 2, 3], settings, eos_token_ids(model, tok))) == 3


def _row_by_row_gumbel(gens, vocab):
    """The sampler's noise before it moved to the logits' device (the reference)."""
    rows = []
    for g in gens:
        if g is None:
            rows.append(torch.zeros(vocab))
        else:
            u = torch.rand(vocab, generator=g).clamp_(1e-20, 1.0 - 1e-7)
            rows.append(-torch.log(-torch.log(u)))
    return torch.stack(rows)


def test_device_noise_is_the_row_by_row_noise_bit_for_bit():
    """On the CPU the answers stay those of the earlier sampler: the same noise, step after
    step, with finished rows (None) drawing nothing."""
    new = [None if s % 3 == 0 else torch.Generator().manual_seed(s) for s in range(12)]
    old = [None if s % 3 == 0 else torch.Generator().manual_seed(s) for s in range(12)]
    for _ in range(3):
        assert torch.equal(_gumbel_rows(new, 4099), _row_by_row_gumbel(old, 4099))
    assert _gumbel_rows([None, None], 7).abs().sum() == 0
