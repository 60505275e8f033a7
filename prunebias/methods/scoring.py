"""Pure scoring and selection: Wanda scores, top-p% sets, set differences, head rankings.

No I/O and no model: tensors in, tensors out, so each rule is checked by hand in tests.
"""

from __future__ import annotations

import math

import torch


def wanda_scores(weight: torch.Tensor, sumsq: torch.Tensor) -> torch.Tensor:
    """score_ij = |W_ij| * ||X_j||_2 with ||X_j||_2 = sqrt(sum over tokens of x_j^2)."""
    return weight.abs().float() * sumsq.float().clamp(min=0).sqrt()[None, :]


def top_fraction(scores: torch.Tensor, percent: float, per_row: bool = False) -> torch.Tensor:
    """Bool mask of the top ``percent``% entries, over the whole matrix or within each row.

    Uses ``topk`` (a selection, not a full sort); exactly ceil(p% * n) entries are chosen,
    ties broken by position as topk does.
    """
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if per_row:
        k = math.ceil(scores.shape[1] * percent / 100.0)
        idx = scores.topk(k, dim=1).indices
        mask.scatter_(1, idx, True)
    else:
        k = math.ceil(scores.numel() * percent / 100.0)
        idx = scores.flatten().topk(k).indices
        mask.view(-1)[idx] = True
    return mask


def set_difference_mask(weight: torch.Tensor, sumsq_a: torch.Tensor, sumsq_b: torch.Tensor, p_a: float,
                        p_b: float, per_row: bool = False) -> torch.Tensor:
    """Weights in the top p_a% for group a but not in the top p_b% for group b."""
    top_a = top_fraction(wanda_scores(weight, sumsq_a), p_a, per_row)
    top_b = top_fraction(wanda_scores(weight, sumsq_b), p_b, per_row)
    return top_a & ~top_b


def head_scores(white: torch.Tensor, black: torch.Tensor, kind: str) -> torch.Tensor:
    """Rank scores per (layer, head) from mean name-attention of each group.

    ``sum``: white + black (the paper's choice: heads that attend to names at all);
    ``diff``: |white - black| (heads whose attention to names differs by race).
    """
    if kind == "sum":
        return white + black
    if kind == "diff":
        return (white - black).abs()
    raise ValueError(f"unknown head score {kind!r}")


def top_k_heads(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool (layers, heads) mask of the k highest scores (NaN scores never chosen)."""
    flat = torch.nan_to_num(scores.flatten().float(), nan=-math.inf)
    k = min(k, flat.numel())
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    mask[flat.topk(k).indices] = True
    return mask.view(scores.shape)


def common_heads(masks: list[torch.Tensor], scores: list[torch.Tensor], k: int) -> torch.Tensor:
    """The k heads chosen most often across sources; ties broken by summed score."""
    freq = torch.stack([m.float() for m in masks]).sum(0)
    total = torch.stack([torch.nan_to_num(s.float()) for s in scores]).sum(0)
    span = float(total.abs().max()) + 1.0
    rank = freq + (total / span) * 0.5 / max(1, len(masks))  # tie-break stays below one vote
    rank = torch.where(freq > 0, rank, torch.full_like(rank, -math.inf))
    return top_k_heads(rank, k)
