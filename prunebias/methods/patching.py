"""Attribution patching of attention heads between White- and Black-name prompts.

Pairs a White-name prompt with a Black-name prompt of the same template (context,
detail level, gender, sample; names taken in order). The prompts differ only in the
name, so the tokens after it are the same: positions are aligned from the end. For a
head h (its slice of o_proj's input, TransformerLens' ``hook_z``), patching the
White prompt's output at every post-name position (prompt and candidate answers) with
the Black prompt's changes that prompt's grid expectation by about

    (z_black - z_white) . dE_white/dz        (Nanda; Syed et al. 2023)

and symmetrically for the Black prompt. ``head_patching`` returns, per head, the
first-order change of B when the head stops telling the races apart (both prompts of
a pair patched half way, to the mean of the two): half the sum of the two directions.
Positions up to the name are left alone (they are the same text, or the name itself,
whose token counts differ between names).

``steps`` > 1: integrated gradients along the patch (Hanna et al. 2024's EAP-IG, on
activations): every head's post-name output moved from the prompt's own to its pair's,
z + alpha (z_pair - z), alpha at the midpoints of ``steps`` equal parts, the gradient
averaged; it reaches a pathway whose effect is saturated at alpha = 0, where the plain
gradient is 0. ``steps`` = 1 is the plain estimate at alpha = 0.

Every pass goes through ``objective.grid_log_probs`` (the same grid, batched), with
forward pre-hooks on o_proj; no weight gradient is computed (every parameter's
``requires_grad`` is off during the passes and restored after), and one batch's
recordings are kept at a time.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from prunebias.model.architecture import check_architecture, linear
from prunebias.model.hooks import hooked
from prunebias.methods.objective import (continues_number, expected_answer, format_answer, grid_log_probs,
                                 name_token_masks, prompt_texts)

PAIR_KEYS = ["context", "detail_level", "gender", "sample"]


def pair_rows(rows: pd.DataFrame) -> list[tuple[int, int]]:
    """(White row, Black row) index pairs of the same template: within each group of
    ``PAIR_KEYS``, names in order; the larger race's surplus is left unpaired."""
    keys = [k for k in PAIR_KEYS if k in rows.columns]
    out = []
    for _, g in rows.groupby(keys, sort=True) if keys else [(None, rows)]:
        white = g[g["race"] == "white"].sort_values("name").index
        black = g[g["race"] == "black"].sort_values("name").index
        out.extend(zip(white.tolist(), black.tolist()))
    if not out:
        raise ValueError("attribution patching needs White and Black prompts of the same template")
    return out


def post_name_lengths(tok: Any, texts: Sequence[str], rows: pd.DataFrame) -> np.ndarray:
    """Per text, the number of tokens after the name's last token."""
    out = []
    for m in name_token_masks(tok, texts, rows):
        hit = np.flatnonzero(m)
        out.append(len(m) - (int(hit[-1]) + 1 if len(hit) else len(m)))
    return np.asarray(out)


def aligned_lengths(tok: Any, texts_a: Sequence[str], texts_b: Sequence[str], post_a: np.ndarray,
                    post_b: np.ndarray) -> np.ndarray:
    """Per pair, how many final tokens the two texts share after their names (the patched span)."""
    out = []
    for ta, tb, pa, pb in zip(texts_a, texts_b, post_a, post_b):
        a, b = tok(ta, add_special_tokens=False).input_ids, tok(tb, add_special_tokens=False).input_ids
        n = 0
        while n < min(pa, pb) and a[-1 - n] == b[-1 - n]:
            n += 1
        out.append(n)
    return np.asarray(out)


class _HookZ:
    """Forward pre-hooks on every layer's o_proj: record its input (``record``), or move it
    toward the recorded pair's and add (pair - own) . grad per head (``attribute``)."""

    def __init__(self, model: Any) -> None:
        geo = check_architecture(model)
        self.n_layers, self.n_heads, self.head_dim = geo.n_layers, geo.n_heads, geo.head_dim
        self.modules = [linear(model, layer, "o_proj") for layer in range(geo.n_layers)]
        self.mode = "off"
        self.calls: list[int] = [0] * geo.n_layers
        self.saved: dict[tuple[int, int], torch.Tensor] = {}  # (layer, call) -> recorded input
        self.pair: dict[tuple[int, int], torch.Tensor] = {}  # the pair's, aligned to this batch
        self.own: dict[tuple[int, int], torch.Tensor] = {}  # this batch's at alpha 0
        self.alpha = 0.0
        self.total = torch.zeros(geo.n_layers, geo.n_heads, dtype=torch.float64)

    @contextlib.contextmanager
    def installed(self) -> Iterator[_HookZ]:
        with hooked((m, "input", self._hook(layer)) for layer, m in enumerate(self.modules)):
            yield self

    def start(self, mode: str) -> None:
        self.mode = mode
        self.calls = [0] * self.n_layers

    def _hook(self, layer: int):
        def hook(_module, args):
            (x,) = args
            key = (layer, self.calls[layer])
            self.calls[layer] += 1
            if self.mode == "record":
                self.saved[key] = x.detach().clone()
                return None
            if self.mode != "attribute":
                return None
            own, pair = self.own[key].to(x.dtype), self.pair[key].to(x.dtype)
            if not x.requires_grad:  # nothing upstream needs a gradient (the first layer)
                x = x.detach().requires_grad_(True)
            if self.alpha:  # the value moves to the interpolation; the gradient still flows through x
                x = x + (own + self.alpha * (pair - own) - x).detach()
            x.register_hook(self._grad(layer, pair - own))  # zero outside the patched span
            return (x,)
        return hook

    def _grad(self, layer: int, delta: torch.Tensor):
        def hook(g: torch.Tensor) -> None:
            term = (delta.double() * g.double()).reshape(*g.shape[:-1], self.n_heads, self.head_dim)
            self.total[layer] += term.sum(dim=tuple(range(term.dim() - 2)) + (term.dim() - 1,)).cpu()
        return hook


def _align(own: torch.Tensor, other: torch.Tensor, spans: np.ndarray, prompt_pass: bool) -> torch.Tensor:
    """``other``'s activations placed at ``own``'s positions over each pair's shared final span,
    and ``own``'s elsewhere (so their difference is 0 there). Prompt pass (left-padded): the
    last ``span`` positions of each row; candidate pass (the same candidate tokens): all."""
    if not prompt_pass:
        if own.shape != other.shape:
            raise ValueError("paired prompts tokenize their candidate answers differently")
        return other
    out = own.clone()
    To, Tb = own.shape[1], other.shape[1]
    for i, s in enumerate(spans):
        if s:
            out[i, To - s:] = other[i, Tb - s:]
    return out


def head_patching(model: Any, tok: Any, rows: pd.DataFrame, values: Sequence[float], batch_size: int = 8,
                  log_value: bool = False, steps: int = 1) -> tuple[torch.Tensor, dict[str, Any]]:
    """Per head (layers x heads), the first-order change of B (``objective``) when the head's
    post-name outputs of each White/Black pair are set to the pair's mean (module docstring),
    and {pairs, mean aligned span}. B's weights are those of the paired rows (1/n per race)."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps}")
    alphas = [0.0] if steps == 1 else [(k + 0.5) / steps for k in range(int(steps))]
    pairs = pair_rows(rows)
    white = rows.loc[[w for w, _ in pairs]].reset_index(drop=True)
    black = rows.loc[[b for _, b in pairs]].reset_index(drop=True)
    texts_w, texts_b = prompt_texts(white, tok), prompt_texts(black, tok)
    spans = aligned_lengths(tok, texts_w, texts_b, post_name_lengths(tok, texts_w, white),
                            post_name_lengths(tok, texts_b, black))
    candidates = [format_answer(v) for v in values]
    extends = continues_number(tok)
    hz = _HookZ(model)
    n = len(pairs)
    saved = {p: p.requires_grad for p in model.parameters()}  # no weight gradient: activations only
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        _patch_batches(model, tok, hz, texts_w, texts_b, spans, candidates, extends, values, log_value, alphas,
                       batch_size, n)
    finally:
        for p, req in saved.items():
            p.requires_grad_(req)
    hz.mode = "off"
    return hz.total.float(), {"pairs": n, "mean_span": float(spans.mean())}


def _patch_batches(model: Any, tok: Any, hz: _HookZ, texts_w: list[str], texts_b: list[str], spans: np.ndarray,
                   candidates: list[str], extends: torch.Tensor, values: Sequence[float], log_value: bool,
                   alphas: list[float], batch_size: int, n: int) -> None:
    """The passes of ``head_patching``, one batch of pairs at a time (recordings freed per batch)."""
    with hz.installed():
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            batch = {"white": texts_w[sl], "black": texts_b[sl]}
            hz.own, hz.pair = {}, {}  # the previous batch's recordings go before this one's are made
            recorded = {}
            for race in ("white", "black"):  # each side's own outputs
                hz.start("record")
                hz.saved = {}
                with torch.no_grad():
                    grid_log_probs(model, tok, batch[race], candidates, extends)
                recorded[race] = hz.saved
            for own, other, sign in (("white", "black", 1.0), ("black", "white", -1.0)):
                hz.own = recorded[own]
                hz.pair = {key: _align(x, recorded[other][key], spans[sl], key[1] == 0)
                           for key, x in recorded[own].items()}
                for alpha in alphas:
                    hz.alpha = alpha
                    hz.start("attribute")
                    with torch.enable_grad():
                        lp = grid_log_probs(model, tok, batch[own], candidates, extends)
                        e = expected_answer(lp, values, log_value)
                        # B = mean E_white - mean E_black over the pairs; half of each direction
                        (e.sum() * (sign / n / 2 / len(alphas))).backward()
            del recorded
    hz.own, hz.pair, hz.saved = {}, {}, {}
