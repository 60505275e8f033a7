"""Attention-head masks: which heads attend to the name, and how to pick them.

A head's score comes from its attention mass on the name's tokens (the head-attention
cache, ``activations``), averaged over the White and over the Black prompts:
``sum`` (White + Black, the paper) or ``diff`` (|White - Black|), and the mask is the
top-k heads (one-shot); ``setdiff``: the top k heads by Black attention minus the top
k_white by White (the paper's final design: top 40 minus top 5); ``greedy`` (the
authors' code): ablate the heads chosen so far, re-run the model over the prompts +
baseline answers, and add the not-yet-chosen head with the highest White + Black
attention, so later picks see the model without the earlier heads. A greedy mask's
``scores`` hold K - step for chosen heads (K for the first pick), 0 elsewhere.
The common mask of a pool: the k heads chosen most often across its contexts (ties:
summed scores), as in the paper's common head set.
"""

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from prunebias.model.activations import cache_batches
from prunebias.model.architecture import check_architecture
from prunebias.errors import ConfigError
from prunebias.files import read_parquet
from prunebias.methods.masks import Mask
from prunebias.methods.settings import HeadSetting
from prunebias.model.pruning import pruned
from prunebias.methods.scoring import common_heads, head_scores, top_k_heads


def check_head_budget(settings: Iterable[Any], n_heads_total: int, key: str) -> None:
    """Every head setting's k lies below the model's number of heads. A mask of every head
    leaves no other head for its matched random controls (real minus random is 0 by
    construction) and its name would claim a k the model does not have."""
    for s in settings:
        k = getattr(s, "k", None)
        if k is not None and k >= n_heads_total:
            raise ConfigError(f"config: {key}", f"{s.name}: k = {k} is not below the model's {n_heads_total} heads",
                              f"choose k below {n_heads_total} (a few percent of the heads, e.g. "
                              f"{max(1, n_heads_total // 25)})")


def select_heads(white: torch.Tensor, black: torch.Tensor, setting: HeadSetting) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen heads, ranking scores) of one one-shot setting."""
    if setting.score == "setdiff":
        chosen = top_k_heads(black, setting.k) & ~top_k_heads(white, setting.k_white)
        return chosen, black - white
    scores = head_scores(white, black, setting.score)
    return top_k_heads(scores, setting.k), scores


def attention_masks(white: torch.Tensor, black: torch.Tensor, settings: Sequence[HeadSetting]
                    ) -> list[dict[str, np.ndarray]]:
    """The one-shot head masks of ``settings`` from the races' mean attention to the name
    (the ``attention`` family's learn): chosen heads and their ranking scores."""
    out = []
    for s in settings:
        heads, scores = select_heads(white, black, s)
        out.append({"heads": heads.numpy(), "scores": scores.numpy()})
    return out


def race_means(df: pd.DataFrame, n_layers: int, n_heads: int, where: str) -> dict[str, torch.Tensor]:
    """Mean name-attention (layers x heads) per race over head-attention rows with an answer."""
    df = df[df["n_answer_tokens"] > 0]
    out = {}
    for race in ("white", "black"):
        sub = df[df["race"] == race]
        if sub.empty:
            raise ConfigError(where, f"no prompts with race '{race}' and a non-empty answer",
                              "check the names file and the baseline answers")
        arr = np.stack(sub["attn"].to_numpy())
        if arr.shape[1] != n_layers * n_heads:
            raise ConfigError(where, f"attention cache has {arr.shape[1]} heads, model {n_layers * n_heads}",
                              "delete results/head_attention and rerun")
        out[race] = torch.from_numpy(arr.mean(0).reshape(n_layers, n_heads))
    return out


def group_attention(paths: Iterable[str | Path], n_layers: int, n_heads: int,
                    names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Mean name-attention (layers x heads) per race over the prompts of all files (of ``names`` only if given)."""
    frames = [read_parquet(p, ["name", "race", "attn", "n_answer_tokens"]) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    if names is not None:
        df = df[df["name"].isin(set(names))]
    return race_means(df, n_layers, n_heads, ", ".join(map(str, paths)))


def mean_attention(model: Any, tok: Any, rows: pd.DataFrame, batch_size: int,
                   query_positions: str = "generating") -> dict[str, torch.Tensor]:
    """Mean name-attention (layers x heads) per race, from one attention-only pass over ``rows``."""
    geo = check_architecture(model)
    tables = [h.to_pandas() for _, h, _ in cache_batches(model, tok, rows, batch_size, with_sites=False,
                                                      query_positions=query_positions)]
    return race_means(pd.concat(tables, ignore_index=True), geo.n_layers, geo.n_heads, "greedy head selection")


def greedy_heads(model: Any, tok: Any, rows: pd.DataFrame, k: int, batch_size: int, ablation: str = "q_rows",
                 query_positions: str = "generating") -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(chosen heads bool L x H, rank scores, picks in order) after k greedy steps."""
    geo = check_architecture(model)
    chosen = np.zeros((geo.n_layers, geo.n_heads), dtype=bool)
    order: list[tuple[int, int]] = []
    for _ in range(min(k, chosen.size)):
        with pruned(model, Mask({"kind": "heads"}, {"heads": chosen.copy()}), ablation):
            att = mean_attention(model, tok, rows, batch_size, query_positions)
        score = (att["white"] + att["black"]).numpy().astype(float)
        score[chosen] = -math.inf
        score[~np.isfinite(score)] = -math.inf
        layer, head = np.unravel_index(int(np.argmax(score)), score.shape)
        chosen[layer, head] = True
        order.append((int(layer), int(head)))
    scores = np.zeros(chosen.shape, dtype=np.float32)
    for step, (layer, head) in enumerate(order):
        scores[layer, head] = len(order) - step
    return chosen, scores, order


def common_head_mask(masks: list[Mask], k: int) -> dict[str, np.ndarray]:
    """The k heads chosen most often by ``masks``; ``scores`` = how many chose each head."""
    chosen = common_heads([torch.from_numpy(m.arrays["heads"]) for m in masks],
                          [torch.from_numpy(m.arrays["scores"]) for m in masks], k)
    freq = np.sum([m.arrays["heads"] for m in masks], axis=0).astype(np.float32)
    return {"heads": chosen.numpy(), "scores": freq}
