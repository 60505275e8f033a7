"""Matched random controls: masks of the same size and shape as a real mask, drawn at random
from where the real mask could have come from.

Why matched: a real neuron mask sits in the top of its score distribution (large
weights on active channels) and name heads sit in a few layers. A uniform random mask
of the same count removes mostly tiny weights, or heads of any layer, and is not the
right null. A matched control keeps

- neurons: the count per weight matrix (per output row for ``row`` selection), drawn
  from the next score band down (``next_band``): the source group's top 2p% minus its top
  p%, without the other group's top p%. Chosen by measurement (benchmarks/RESULTS.md,
  "Which control"): the old band (the source's top p% minus the real mask, i.e. the
  weights in both groups' top p%) damaged the model far more than the real mask
  (perplexity 46-48 against 38) and shrank the planted bias itself; the reverse-direction
  set difference is a race-selected edit (it raised |effect|); a set difference of
  race-blind name halves holds a third of the real count. The next band matched the real
  mask's perplexity and anomaly rate and moved no bias;
- heads: the count per layer, drawn from the other heads of the same layer;
- race directions: a direction drawn uniformly on the sphere with the real one's norm
  (projection needs only its direction; the norm keeps an affine edit comparable).

Pure functions: arrays in, arrays out; the scores come from ``scoring``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prunebias.model.architecture import MODULES, linear
from prunebias.methods.directions import random_direction
from prunebias.methods.settings import NeuronSetting
from prunebias.methods.scoring import top_fraction, wanda_scores


def next_band(weight: torch.Tensor, sumsq_source: torch.Tensor, sumsq_other: torch.Tensor, p_source: float,
              p_other: float, per_row: bool) -> np.ndarray:
    """The band neuron controls are drawn from: the source group's top 2p% minus its top p%
    (the next band down), without the other group's top ``p_other``%.

    It holds no weight of the real mask and none of the weights a set difference keeps out
    (the intersection of both groups' top p%: the shared high-magnitude channels, whose
    removal broke the model in issue 23), and it is not selected by race.
    """
    scores = wanda_scores(weight, sumsq_source)
    band = top_fraction(scores, min(100.0, 2 * p_source), per_row) & ~top_fraction(scores, p_source, per_row)
    return (band & ~top_fraction(wanda_scores(weight, sumsq_other), p_other, per_row)).cpu().numpy()


def _draw(candidates: np.ndarray, fallback: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices from ``candidates`` (then from ``fallback`` if there are too few)."""
    if count <= candidates.size:
        return rng.choice(candidates, size=count, replace=False)
    extra = np.setdiff1d(fallback, candidates)
    return np.concatenate([candidates, rng.choice(extra, size=min(count - candidates.size, extra.size),
                                                  replace=False)])


def matched_neuron_control(real: np.ndarray, band: np.ndarray, per_row: bool, rng: np.random.Generator) -> np.ndarray:
    """A random mask with the real mask's count (per matrix, or per row) from ``band`` minus ``real``.

    If the band holds too few other weights, the rest comes from anywhere in the matrix
    outside the real mask (so the count always matches).
    """
    out = np.zeros_like(real, dtype=bool)
    if per_row:
        for r in np.flatnonzero(real.any(axis=1)):
            cand = np.flatnonzero(band[r] & ~real[r])
            out[r, _draw(cand, np.flatnonzero(~real[r]), int(real[r].sum()), rng)] = True
        return out
    flat_real, flat_band = real.reshape(-1), band.reshape(-1)
    cand = np.flatnonzero(flat_band & ~flat_real)
    out.reshape(-1)[_draw(cand, np.flatnonzero(~flat_real), int(flat_real.sum()), rng)] = True
    return out


def matched_head_control(heads: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random head mask with the real mask's count in every layer, from that layer's other heads."""
    out = np.zeros_like(heads, dtype=bool)
    for layer in np.flatnonzero(heads.any(axis=1)):
        cand = np.flatnonzero(~heads[layer])
        out[layer, _draw(cand, np.arange(heads.shape[1]), int(heads[layer].sum()), rng)] = True
    return out


def neuron_controls(model: Any, real: dict[str, np.ndarray], sums: dict[str, dict[tuple[int, str], torch.Tensor]],
                    setting: NeuronSetting, seeds: list[int]) -> list[dict[str, np.ndarray]]:
    """One matched control per seed for a neuron mask ({``layers.L.module``: bool})."""
    source = setting.direction  # the group whose top scores the mask is drawn from
    other = "white" if source == "black" else "black"
    p_source, p_other = ((setting.p_black, setting.p_white) if source == "black"
                         else (setting.p_white, setting.p_black))
    per_row = setting.selection == "row"
    rngs = [np.random.default_rng(s) for s in seeds]
    out: list[dict[str, np.ndarray]] = [{} for _ in seeds]
    for key in sorted(k for k in real if k != "scores"):
        _, layer, module = key.split(".")
        site = (int(layer), MODULES[module][1])
        w = linear(model, int(layer), module).weight.detach().float()
        band = next_band(w, sums[source][site].to(w.device), sums[other][site].to(w.device), p_source, p_other,
                         per_row)
        for i, rng in enumerate(rngs):
            out[i][key] = matched_neuron_control(real[key], band, per_row, rng)
    return out


def unit_controls(real: dict[str, np.ndarray], seeds: list[int]) -> list[dict[str, np.ndarray]]:
    """Matched controls of a whole-neuron mask (``gradmlp_``): in every layer as many whole
    MLP neurons (gate and up rows, down column) as the real mask, drawn from that layer's
    other neurons; other matrices stay empty. The structure is the null's, not the band:
    a scattered-weight control would remove far less of any one neuron."""
    out: list[dict[str, np.ndarray]] = [{k: np.zeros_like(a, dtype=bool) for k, a in real.items() if k != "scores"}
                                        for _ in seeds]
    layers = sorted({int(k.split(".")[1]) for k in real if k.endswith(".gate_proj")})
    rngs = [np.random.default_rng(s) for s in seeds]
    for layer in layers:
        gate, up, down = (f"layers.{layer}.{m}" for m in ("gate_proj", "up_proj", "down_proj"))
        chosen = real[gate].any(axis=1)
        if not chosen.any():
            continue
        for arrays, rng in zip(out, rngs):
            pick = _draw(np.flatnonzero(~chosen), np.arange(chosen.size), int(chosen.sum()), rng)
            arrays[gate][pick] = True
            arrays[up][pick] = True
            arrays[down][:, pick] = True
    return out


# The registry's controls (``prunebias.methods.registry``): one signature, (real mask's arrays, seeds,
# setting, inputs) -> one array dict per seed; ``inputs`` loads the model and the fold's
# summed activations on first use (``methods.ControlInputs``).

def band_controls(real: dict[str, np.ndarray], seeds: list[int], setting: Any, inputs: Any
                  ) -> list[dict[str, np.ndarray]]:
    """Neuron controls from the next score band down of the setting's Wanda band (``setting.band``)."""
    return neuron_controls(inputs.load_model(), real, inputs.load_sums(), setting.band, seeds)


def whole_neuron_controls(real: dict[str, np.ndarray], seeds: list[int], setting: Any, inputs: Any
                          ) -> list[dict[str, np.ndarray]]:
    """Whole MLP neurons, as many per layer as the real mask (``unit_controls``)."""
    return unit_controls(real, seeds)


def head_controls(real: dict[str, np.ndarray], seeds: list[int], setting: Any, inputs: Any
                  ) -> list[dict[str, np.ndarray]]:
    """Heads, as many per layer as the real mask, from the layer's other heads."""
    return [{"heads": matched_head_control(real["heads"], np.random.default_rng(s))} for s in seeds]


def uniform_controls(real: dict[str, np.ndarray], seeds: list[int], setting: Any, inputs: Any
                     ) -> list[dict[str, np.ndarray]]:
    """The real mask's count per matrix, uniformly from the matrix's other weights: the null of
    a family without a score band to draw from."""
    rngs = [np.random.default_rng(s) for s in seeds]
    keys = sorted(k for k in real if k != "scores")
    return [{k: matched_neuron_control(real[k], ~real[k], False, rng) for k in keys} for rng in rngs]


def direction_controls(real: dict[str, np.ndarray], seeds: list[int], setting: Any, inputs: Any
                       ) -> list[dict[str, np.ndarray]]:
    """A random direction of the real direction's norm per seed (``directions.random_direction``)."""
    v = real["direction"]
    return [{"direction": random_direction(v.size, float(np.linalg.norm(v)), s).astype(np.float32)} for s in seeds]
