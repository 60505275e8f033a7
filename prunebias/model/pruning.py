"""Apply a mask to a loaded model and undo it exactly.

Neurons: the masked weights are set to zero. Heads (query heads, GQA-aware), two
ablations, named in every output:
- ``q_rows`` (the paper): zero the head's rows of q_proj (and its q bias), so its
  queries are zero and its attention becomes uniform over the prefix — not silent;
- ``o_cols``: zero the head's input columns of o_proj, removing the head's output.
``pruned(...)`` is a context manager: on exit the saved original values are written
back, so the model is bit-for-bit the one that was loaded (tested by checksum).
Race directions (kind ``directions``) are projected out of every residual writer
(``directions.orthogonalized``) and restored the same way; a tied output head is untied
first and stays untied, with its weights unchanged.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from prunebias.model.architecture import MODULES, check_architecture, linear
from prunebias.methods.directions import orthogonalized
from prunebias.methods.masks import Mask, read_mask

HEAD_ABLATIONS = ("q_rows", "o_cols")


def _targets(model: Any, mask: Mask, ablation: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, bool mask of its entries to zero) pairs."""
    out = []
    if mask.kind == "neurons":
        for key, arr in mask.arrays.items():
            if key == "scores":
                continue
            _, layer, module = key.split(".")
            if module not in MODULES:
                raise ValueError(f"unknown module in mask: {key}")
            w = linear(model, int(layer), module).weight
            if tuple(w.shape) != arr.shape:
                raise ValueError(f"mask {key} has shape {arr.shape}, weight {tuple(w.shape)}")
            out.append((w, torch.from_numpy(arr)))
        return out
    geo = check_architecture(model)
    heads = mask.arrays["heads"]
    if heads.shape != (geo.n_layers, geo.n_heads):
        raise ValueError(f"head mask shape {heads.shape}, model has {(geo.n_layers, geo.n_heads)}")
    if ablation not in HEAD_ABLATIONS:
        raise ValueError(f"unknown head ablation {ablation!r}; use one of {HEAD_ABLATIONS}")
    for layer, head in zip(*np.nonzero(heads)):
        sl = slice(int(head) * geo.head_dim, (int(head) + 1) * geo.head_dim)
        mod = linear(model, int(layer), "q_proj" if ablation == "q_rows" else "o_proj")
        m = torch.zeros_like(mod.weight, dtype=torch.bool)
        if ablation == "q_rows":
            m[sl, :] = True
            if mod.bias is not None:
                mb = torch.zeros_like(mod.bias, dtype=torch.bool)
                mb[sl] = True
                out.append((mod.bias, mb))
        else:
            m[:, sl] = True
        out.append((mod.weight, m))
    return out


@contextlib.contextmanager
@torch.no_grad()
def pruned(model: Any, mask: Mask | str | Path, ablation: str = "q_rows") -> Iterator[int]:
    """Zero the mask's weights inside the block; yields the number of zeroed entries (of a
    direction: the number of matrices projected).

    ``mask`` is a ``Mask`` or the path of a mask file; ``ablation`` applies to head masks.
    """
    if not isinstance(mask, Mask):
        mask = read_mask(mask)
    if mask.kind == "directions":
        with orthogonalized(model, mask.arrays["direction"]) as n:
            yield n
        return
    targets = _targets(model, mask, ablation)
    saved = []
    for param, m in targets:
        m = m.to(param.device)
        saved.append((param, m, param.data[m].clone()))
        param.data[m] = 0
    try:
        yield int(sum(int(m.sum()) for _, m in targets))
    finally:
        for param, m, values in saved:
            param.data[m] = values

