"""A differentiable bias objective tied to the answer's value.

For each prompt (its chat text ends with the answer prefix, "... My offer is $"), the
model's probability of each of K candidate answers is teacher-forced: the candidate's
tokens, then a token that ends the number (any token that does not continue it with a
digit, ',' or '.'), so the probability of "25" does not also count "250". Normalized
over the grid, these give q_k, and the expected answer E = sum_k q_k v_k (or the
expected log answer). The bias objective

    B = mean E over White-name prompts - mean E over Black-name prompts

is a smooth function of every weight, so its gradient attributes the money-valued bias
(``attribution``). Sampled answers stay the measure of bias; ``grid_agreement`` says how
well E follows them, name by name.

Cost: one forward pass over each prompt, then all K candidates at once on its cached
keys and values (a few tokens each), so the grid costs little more than the prompt.

The name path (``name_alpha``): the input embeddings of the name's tokens are moved to
``baseline + alpha * (embedding - baseline)``, with the baseline the mean embedding of
every name token of both races (a race-neutral name). At alpha = 0 the races differ
only in their names' token counts; at 1 the prompts are unchanged. Integrated gradients
(``attribution``) average the gradient of B along this path, where the race signal is
not yet strong enough to saturate the answer's probabilities.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats
from transformers import DynamicCache

from prunebias.model.activations import char_spans, name_spans
from prunebias.model.modeling import chat_text


def answer_grid(low: float, high: float, k: int) -> np.ndarray:
    """K values spread log-uniformly over the plausible range, rounded to 2 significant digits
    (whole numbers from 1 up: models write "2", not "2.3"); repeats removed."""
    if not (high > 0 and k >= 2):
        raise ValueError(f"need high > 0 and k >= 2 (got range [{low}, {high}], k={k})")
    lo = low if low > 0 else high * 1e-3
    vals = [float(f"{v:.2g}") for v in np.geomspace(lo, high, k)]
    return np.unique([float(round(v)) if v >= 1 else v for v in vals])


def format_answer(v: float) -> str:
    """An amount the way chat models write it: thousands separated by commas, no trailing zeros."""
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.6f}".rstrip("0").rstrip(".")


@functools.lru_cache(maxsize=4)
def continues_number(tok: Any) -> torch.Tensor:
    """Bool over the vocabulary: tokens that would extend a number just written (digit, ',', '.').

    Decoding every token takes a while on a large vocabulary; cached per tokenizer (read only)."""
    n = len(tok)
    out = torch.zeros(n, dtype=torch.bool)
    for i in range(n):
        s = tok.decode([i])
        if s and (s[0].isdigit() or s[0] in ",."):
            out[i] = True
    return out


def candidate_ids(tok: Any, text: str, candidates: Sequence[str], base: list[int] | None = None) -> list[list[int]]:
    """Token ids of each candidate as it continues ``text`` (tokenized together, then split);
    ``base``: the ids of ``text`` when the caller has them already."""
    base = tok(text, add_special_tokens=False).input_ids if base is None else base
    out = []
    for c in candidates:
        ids = tok(text + c, add_special_tokens=False).input_ids
        if ids[:len(base)] == base and len(ids) > len(base):
            out.append(ids[len(base):])
        else:  # the prefix's last token merged with the candidate: tokenize the candidate alone
            out.append(tok(c, add_special_tokens=False).input_ids)
    return out


def _fit(mask: torch.Tensor, n: int) -> torch.Tensor:
    """A vocabulary mask cut or padded (False) to the model's output size, which can exceed
    the tokenizer's (Qwen2.5: 151,936 logits for 151,665 tokens)."""
    if mask.numel() >= n:
        return mask[:n]
    return torch.cat([mask, torch.zeros(n - mask.numel(), dtype=torch.bool)])


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Softmax in float32 for half-precision models, in the model's own precision above that."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def name_token_masks(tok: Any, texts: Sequence[str], rows: pd.DataFrame) -> list[np.ndarray]:
    """Per text, bool per token (no special tokens added): the tokens of the row's name, at
    every occurrence of it in the prompt."""
    out = []
    for text, prompt, name in zip(texts, rows["prompt"], rows["name"]):
        spans = name_spans(text, prompt, name) or [char_spans(text, prompt, name, "")[0]]
        offsets = np.asarray(tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"])
        real = offsets[:, 1] > offsets[:, 0]
        out.append(real & np.any([(offsets[:, 0] < n1) & (offsets[:, 1] > n0) for n0, n1 in spans], axis=0))
    return out


@torch.no_grad()
def name_baseline(model: Any, tok: Any, rows: pd.DataFrame) -> torch.Tensor:
    """Mean input embedding of every name token in ``rows`` (both races): the race-neutral
    start of the name path."""
    texts = prompt_texts(rows, tok)
    ids = [np.asarray(tok(t, add_special_tokens=False).input_ids)[m]
           for t, m in zip(texts, name_token_masks(tok, texts, rows))]
    flat = torch.as_tensor(np.concatenate(ids), device=next(model.parameters()).device)
    return model.get_input_embeddings()(flat).mean(0)


def grid_log_probs(model: Any, tok: Any, texts: Sequence[str], candidates: Sequence[str],
                   extends: torch.Tensor | None = None, name_masks: Sequence[np.ndarray] | None = None,
                   name_alpha: float = 1.0, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """log P(candidate k, then the number ends | text p) for every p, k: a (P, K) tensor with grad.

    One pass over the left-padded texts, then the K candidates of every text in one pass
    over the cached keys and values (right-padded; causal attention keeps pads unseen).
    ``name_masks`` (per text, from ``name_token_masks``), ``name_alpha`` and ``baseline``:
    the name path (module docstring); off at alpha = 1.
    """
    extends = continues_number(tok) if extends is None else extends
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    P, K = len(texts), len(candidates)
    enc = [tok(t, add_special_tokens=False).input_ids for t in texts]
    T = max(len(e) for e in enc)
    ids = torch.full((P, T), pad, dtype=torch.long)
    mask = torch.zeros((P, T), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, T - len(e):] = torch.tensor(e)
        mask[i, T - len(e):] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    inputs: dict[str, torch.Tensor] = {"input_ids": ids}
    if name_alpha != 1.0:
        if name_masks is None or baseline is None:
            raise ValueError("the name path needs name_masks and a baseline")
        on = torch.zeros((P, T), dtype=torch.bool)
        for i, m in enumerate(name_masks):
            on[i, T - len(m):] = torch.as_tensor(m)
        emb = model.get_input_embeddings()(ids)
        moved = baseline.to(emb.dtype) + name_alpha * (emb - baseline.to(emb.dtype))
        inputs = {"inputs_embeds": torch.where(on.to(device)[..., None], moved, emb)}
    cache = DynamicCache()
    first = model(**inputs, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                  logits_to_keep=1)  # only the last position's logits: no (P, T, vocab) tensor
    logp0 = torch.log_softmax(_at_least_fp32(first.logits[:, -1]), -1)  # (P, V): the first candidate token
    cands = [candidate_ids(tok, t, candidates, e) for t, e in zip(texts, enc)]
    L = max(len(c) for per in cands for c in per)
    cid = torch.full((P * K, L), pad, dtype=torch.long)
    cmask = torch.zeros((P * K, L), dtype=torch.long)
    lengths = torch.zeros(P * K, dtype=torch.long)
    for i, per in enumerate(cands):
        for k, c in enumerate(per):
            cid[i * K + k, :len(c)] = torch.tensor(c)
            cmask[i * K + k, :len(c)] = 1
            lengths[i * K + k] = len(c)
    cid, cmask, lengths = cid.to(device), cmask.to(device), lengths.to(device)
    cache.batch_repeat_interleave(K)
    full_mask = torch.cat([mask.repeat_interleave(K, 0), cmask], 1)
    pos2 = mask.sum(1).repeat_interleave(K).unsqueeze(1) + torch.arange(L, device=device).unsqueeze(0)
    second = model(input_ids=cid, attention_mask=full_mask, position_ids=pos2, cache=cache, use_cache=True)
    logp = torch.log_softmax(_at_least_fp32(second.logits), -1)  # (P*K, L, V): token j+1 given candidate[:j+1]
    first_tok = logp0.repeat_interleave(K, 0).gather(1, cid[:, :1]).squeeze(1)
    rest = logp[:, :-1].gather(2, cid[:, 1:].unsqueeze(-1)).squeeze(-1) * cmask[:, 1:]
    last = logp[torch.arange(P * K, device=device), lengths - 1]  # distribution after the candidate
    ends = ~_fit(extends, last.shape[-1]).to(device)  # tokens past the tokenizer's ids end nothing: never written
    log_end = torch.logsumexp(last[:, ends], -1)  # log P(the number ends here), stably
    total = first_tok + rest.sum(1) + log_end
    return total.view(P, K)


def expected_answer(log_probs: torch.Tensor, values: Sequence[float], log_value: bool = False) -> torch.Tensor:
    """E[answer] (or E[log answer]) per prompt under the grid distribution (rows normalized)."""
    v = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=log_probs.dtype, device=log_probs.device)
    if log_value:
        v = torch.log(v)
    return (torch.softmax(log_probs, -1) * v).sum(-1)


def race_weights(races: Sequence[str]) -> np.ndarray:
    """c_p with B = sum_p c_p E_p: +1/n_white for White prompts, -1/n_black for Black ones."""
    r = np.asarray(races)
    nw, nb = int((r == "white").sum()), int((r == "black").sum())
    if nw == 0 or nb == 0:
        raise ValueError(f"the objective needs prompts of both races (white {nw}, black {nb})")
    return np.where(r == "white", 1.0 / nw, np.where(r == "black", -1.0 / nb, 0.0))


def prompt_texts(rows: pd.DataFrame, tok: Any) -> list[str]:
    """The chat texts that end where the answer starts."""
    return [chat_text(tok, p, a) for p, a in zip(rows["prompt"], rows["answer_prefix"])]


def bias_objective(model: Any, tok: Any, rows: pd.DataFrame, values: Sequence[float], batch_size: int = 16,
                   log_value: bool = False, backward: bool = False, name_alpha: float = 1.0,
                   baseline: torch.Tensor | None = None) -> tuple[float, np.ndarray]:
    """(B, E per prompt) over ``rows`` (prompt, answer_prefix, race; name for the name path), in batches.

    With ``backward``, the gradient of B accumulates in the ``.grad`` of every parameter
    that requires it (B is linear in the per-prompt E, so batch gradients simply add).
    ``name_alpha`` < 1 with ``baseline`` (``name_baseline``): B at that point of the name path.
    """
    texts = prompt_texts(rows, tok)
    masks = name_token_masks(tok, texts, rows) if name_alpha != 1.0 else None
    weights = race_weights(rows["race"].to_numpy())
    candidates = [format_answer(v) for v in values]
    extends = continues_number(tok)
    total, per_prompt = 0.0, []
    with torch.set_grad_enabled(backward):
        for start in range(0, len(texts), batch_size):
            sl = slice(start, start + batch_size)
            lp = grid_log_probs(model, tok, texts[sl], candidates, extends, masks[sl] if masks else None, name_alpha,
                                baseline)
            e = expected_answer(lp, values, log_value)
            part = (e * torch.as_tensor(weights[sl], dtype=e.dtype, device=e.device)).sum()
            if backward:
                part.backward()
            total += float(part.detach())
            per_prompt.append(e.detach().cpu().numpy())
    return total, np.concatenate(per_prompt)


def grid_agreement(rows: pd.DataFrame, expected: np.ndarray, value: str = "outcome") -> dict[str, float]:
    """How well the grid expectation follows the sampled answers: Pearson and Spearman
    correlation of per-name means (usable answers only), and the number of names."""
    df = rows.assign(expected=expected)
    ok = df[~df["anomaly"].astype(bool) & np.isfinite(df[value].astype(float))]
    by = ok.groupby("name").agg(sampled=(value, "mean"), expected=("expected", "mean"))
    if len(by) < 3 or by["sampled"].std() == 0 or by["expected"].std() == 0:
        return {"names": float(len(by)), "pearson": math.nan, "spearman": math.nan}
    return {"names": float(len(by)), "pearson": float(stats.pearsonr(by["sampled"], by["expected"])[0]),
            "spearman": float(stats.spearmanr(by["sampled"], by["expected"])[0])}
