"""Stage 4c: the "common" mask of a pool of contexts -> ``results/masks/{kind}/{variant}/common@{pool}.npz``.

Neurons: the weights present in *every* context's set-difference mask (intersection).
Heads: the k heads chosen most often across the contexts (ties: summed scores), as in
the paper's common head set.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

import numpy as np
import torch

from workflow_scripts.masks import Mask
from workflow_scripts.scoring import common_heads


def intersect_neuron_masks(masks: list[Mask]) -> dict[str, np.ndarray]:
    keys = [k for k in masks[0].arrays if k != "scores"]
    return {k: np.logical_and.reduce([m.arrays[k] for m in masks]) for k in keys}


def common_head_mask(masks: list[Mask], k: int) -> dict[str, np.ndarray]:
    chosen = common_heads([torch.from_numpy(m.arrays["heads"]) for m in masks],
                          [torch.from_numpy(m.arrays["scores"]) for m in masks], k)
    freq = np.sum([m.arrays["heads"] for m in masks], axis=0).astype(np.float32)
    return {"heads": chosen.numpy(), "scores": freq}


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.masks import check_model, read_mask, write_mask

    log = setup_logging(smk.log[0], "prunebias.combine_masks")
    masks = [read_mask(p) for p in smk.input.masks]
    for p, m in zip(smk.input.masks[1:], masks[1:]):
        check_model(m, masks[0].meta["model"], str(p))
    kind = masks[0].kind
    arrays = (intersect_neuron_masks(masks) if kind == "neurons"
              else common_head_mask(masks, int(max(m.arrays["heads"].sum() for m in masks))))
    meta = {"model": masks[0].meta["model"], "method": masks[0].meta["method"], "source": f"common@{smk.wildcards.pool}",
            "sources": [m.meta["source"] for m in masks], "combine": "common"}
    write_mask(smk.output[0], kind, meta, arrays)
    n = sum(int(a.sum()) for k, a in arrays.items() if k != "scores")
    log.info("common mask over %d contexts: %d pruned", len(masks), n)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
