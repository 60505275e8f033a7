"""Wanda set-difference masks of a whole model from summed activation norms.

For each linear module of each decoder layer: score_ij = |W_ij| * ||X_j||_2 with the norms
of the White and of the Black prompts (from ``activations.group_sumsq``, never
recomputed); setting "black" = top p_black % of the Black scores minus top p_white % of
the White scores, "white" the reverse (``scoring.set_difference_mask``).
"""

from typing import Any, Sequence

import numpy as np
import torch

from prunebias.model.architecture import MODULES, check_architecture, linear
from prunebias.errors import ConfigError
from prunebias.methods.settings import NeuronSetting
from prunebias.methods.scoring import set_difference_mask


def neuron_masks(model: Any, sums: dict[str, dict[tuple[int, str], torch.Tensor]],
                 settings: Sequence[NeuronSetting]) -> list[dict[str, np.ndarray]]:
    """One {``layers.L.module``: bool mask} dict per setting; the norms are shared across settings."""
    geo = check_architecture(model)
    out: list[dict[str, np.ndarray]] = [{} for _ in settings]
    for layer in range(geo.n_layers):
        for module, (_, site) in MODULES.items():
            w = linear(model, layer, module).weight.detach()
            sw, sb = sums["white"][(layer, site)].to(w.device), sums["black"][(layer, site)].to(w.device)
            if sw.numel() != w.shape[1]:
                raise ConfigError(f"layer {layer} {module}", f"cache has {sw.numel()} channels, weight has {w.shape[1]}",
                                  "the activation cache was made with another model: delete results/activations")
            for i, s in enumerate(settings):
                per_row = s.selection == "row"
                if s.direction == "black":
                    m = set_difference_mask(w, sb, sw, s.p_black, s.p_white, per_row)
                else:
                    m = set_difference_mask(w, sw, sb, s.p_white, s.p_black, per_row)
                out[i][f"layers.{layer}.{module}"] = m.cpu().numpy()
    return out
