"""Race-direction editing, the rival of pruning (issue 25, item 3; Karvonen & Marks 2025,
arXiv 2506.10922): the mean difference of residual-stream activations between Black- and
White-name prompts, and its removal by weight orthogonalization.

Every matrix that writes into the residual stream (the token embeddings, each layer's
o_proj and down_proj, and their biases where a model has them) is projected off the unit
direction v: W' = W - v (v^T W) for a writer whose output is its rows, E' = E - (E v) v^T
for the embeddings. The residual stream is the sum of these writes, so after the edit it
has no component along v at any layer, and the edited weights save and export like a
pruned model's. A tied output head shares the embedding matrix: it is untied first so
that the readout stays the model's own.

In the workflow (method family ``direction``, ``prunebias.methods.registry``): ``cache_activations``
caches each name's residual stream (``activations.name_residuals``), ``score_directions``
learns one direction per setting and fold (``direction_masks``), ``draw_controls`` draws
random directions of the same norm (``controls.direction_controls``) and
``pruning.pruned`` applies a direction file like a mask, by ``orthogonalized``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from prunebias.model.architecture import decoder_layers
from prunebias.methods.settings import DirectionSetting


def race_direction(acts: np.ndarray, names: np.ndarray, races: np.ndarray) -> np.ndarray:
    """Black minus White mean of ``acts`` (rows: prompts), each name weighing once: the
    rows are averaged within a name first (names are the unit, as in every estimate here)."""
    acts, names, races = np.asarray(acts, float), np.asarray(names), np.asarray(races)
    means = {}
    for race in ("black", "white"):
        keep = races == race
        if not keep.any():
            raise ValueError(f"no rows with race {race!r}: a direction needs both races")
        per_name = [acts[keep & (names == n)].mean(0) for n in np.unique(names[keep])]
        means[race] = np.mean(per_name, axis=0)
    return means["black"] - means["white"]


def direction_masks(means: pd.DataFrame, settings: Sequence[DirectionSetting]) -> list[dict[str, np.ndarray]]:
    """One ``{"direction": float32 (d_model,)}`` per ``DirectionSetting``: the race direction
    of the names in ``means`` (``activations.name_residuals``: one row per name and
    position, ``mean`` n_layers x d_model) at the setting's position and layer."""
    out = []
    for s in settings:
        rows = means[means["position"] == s.position]
        if rows.empty:
            raise ValueError(f"no cached residuals at position {s.position!r}")
        acts = np.stack([m[s.layer(m.shape[0])] for m in rows["mean"]])
        out.append({"direction": race_direction(acts, rows["name"].to_numpy(), rows["race"].to_numpy())
                    .astype(np.float32)})
    return out


def common_direction(directions: list[np.ndarray]) -> np.ndarray:
    """The common direction of a pool's members: the mean of their unit directions (what
    they share; opposite members cancel) at their mean norm. A common mask of neurons is
    their intersection; a direction has no intersection, and its norm does not matter to
    the projection."""
    mean = np.mean([unit(d, "member direction") for d in directions], axis=0)
    return (unit(mean, "members' mean direction (they cancel)")
            * np.mean([np.linalg.norm(d) for d in directions])).astype(np.float32)


def random_direction(dim: int, norm: float, seed: int) -> np.ndarray:
    """A direction of norm ``norm`` drawn uniformly on the sphere: the matched control."""
    v = np.random.default_rng(seed).standard_normal(dim)
    return v / np.linalg.norm(v) * norm


# decoder-layer norms that rescale o_proj's and down_proj's outputs per channel before they
# reach the residual stream (Gemma 3): a write projected off v gets a component along v back
POST_WRITE_NORMS = ("post_feedforward_layernorm",)


def residual_writers(model: Any) -> list[tuple[str, torch.nn.Parameter]]:
    """(key, parameter) of everything that writes into the residual stream, embeddings first:
    each layer's o_proj and down_proj weights and, where a model has them, their biases.
    Refuses an architecture that normalizes those writes before they are added (the
    projection would not remove the direction there)."""
    out = [("embed_tokens", model.get_input_embeddings().weight)]
    for i, layer in enumerate(decoder_layers(model)):
        if any(hasattr(layer, n) for n in POST_WRITE_NORMS):
            raise ValueError(f"{model.config.model_type}: layer {i} normalizes its attention and MLP outputs after "
                             "o_proj and down_proj write (Gemma 3), so projecting a direction out of the weights "
                             "leaves it in the residual stream; race directions support models without such norms")
        for name, mod in ((f"layers.{i}.o_proj", layer.self_attn.o_proj), (f"layers.{i}.down_proj", layer.mlp.down_proj)):
            out.append((name, mod.weight))
            if mod.bias is not None:
                out.append((f"{name}.bias", mod.bias))
    return out


def unit(direction: np.ndarray, what: str = "direction") -> np.ndarray:
    """``direction`` / its norm; a direction that is not finite or has no length is an error
    (projecting it would fill every writer with NaN, and every answer would be an anomaly)."""
    d = np.asarray(direction, dtype=np.float64)
    norm = float(np.linalg.norm(d))
    if not np.isfinite(d).all() or norm < 1e-12:
        raise ValueError(f"the {what} has norm {norm!r} or non-finite entries: there is nothing to project out")
    return d / norm


@contextlib.contextmanager
def orthogonalized(model: Any, direction: np.ndarray) -> Iterator[int]:
    """The residual writers of ``model`` projected off ``direction`` inside the block,
    restored exactly after (as ``pruning.pruned`` restores a mask). Yields the number of
    parameters edited. A tied output head is untied first and stays untied (its config
    says so), with the readout's own weights."""
    unit(direction)
    writers = residual_writers(model)
    if model.get_output_embeddings() is not None and (
            model.get_output_embeddings().weight is model.get_input_embeddings().weight):
        head = model.get_output_embeddings()
        head.weight = torch.nn.Parameter(head.weight.detach().clone())  # untie (and left untied): the readout keeps its weights
        model.config.tie_word_embeddings = False  # saved and reloaded untied, not re-tied to the edited embeddings
    saved = [(w, w.data.clone()) for _, w in writers]
    try:
        with torch.no_grad():
            for key, w in writers:
                v = torch.as_tensor(direction, dtype=torch.float32, device=w.device)
                v = v / v.norm()
                x = w.data.float()
                if key == "embed_tokens":  # (vocab, d): each row is a write
                    x -= torch.outer(x @ v, v)
                elif key.endswith(".bias"):  # (d,): one write
                    x -= v * (v @ x)
                else:  # (d, k): each column is a write
                    x -= torch.outer(v, v @ x)
                w.data.copy_(x.to(w.dtype))
        yield len(writers)
    finally:
        for w, data in saved:
            w.data.copy_(data)
