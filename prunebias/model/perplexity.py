"""Perplexity on a neutral text: the capability check before and after pruning."""

from __future__ import annotations

import math
from typing import Any

import torch


@torch.inference_mode()
def perplexity(model: Any, tok: Any, text: str, window: int = 128, max_tokens: int = 1024) -> float:
    """exp(mean next-token NLL) over non-overlapping windows of the text, batched."""
    nll = text_nll(model, tok, text, window, max_tokens)
    return math.nan if nll is None else float(torch.exp(nll))


def text_nll(model: Any, tok: Any, text: str, window: int = 128, max_tokens: int = 1024) -> torch.Tensor | None:
    """Mean next-token NLL of the text (a scalar tensor, differentiable outside inference mode).

    Every token after the first of each non-overlapping window is predicted once; windows
    are padded on the right and padding is ignored. None for a text of under two tokens.
    """
    ids = tok(text, add_special_tokens=False).input_ids[:max_tokens]
    chunks = [ids[i:i + window] for i in range(0, len(ids), window)]
    chunks = [c for c in chunks if len(c) > 1]
    if not chunks:
        return None
    width = max(len(c) for c in chunks)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    inp = torch.full((len(chunks), width), pad, dtype=torch.long)
    att = torch.zeros((len(chunks), width), dtype=torch.long)
    for i, c in enumerate(chunks):
        inp[i, :len(c)] = torch.tensor(c)
        att[i, :len(c)] = 1
    device = next(model.parameters()).device
    logits = model(input_ids=inp.to(device), attention_mask=att.to(device)).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    target = inp[:, 1:].to(device)
    nll = -logp.gather(-1, target[..., None])[..., 0]
    valid = att[:, 1:].to(device).bool()
    return nll[valid].mean()
