"""Mask construction: time for every neuron mask of the default config, and an estimate
for Llama-3-8B.

Reads the activation caches under results/activations (run the workflow first), builds
the masks for each default source with ``topk`` selection, and compares with a full
sort per matrix (the reference). The 8B estimate scales the measured seconds per
scored weight to 6.98 B weights (CPU); on a GPU, selection is memory-bound and runs at
a small fraction of that.
"""

from __future__ import annotations

import time

import torch
from common import REPO, machine, prepared_model_dir, save

from prunebias.model.architecture import MODULES, check_architecture, linear
from prunebias.model.modeling import load_model
from prunebias.model.activations import group_sumsq
from prunebias.methods.neurons import neuron_masks
from prunebias.methods.settings import NeuronSetting
from prunebias.methods.scoring import wanda_scores

LLAMA3_8B_WEIGHTS = 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336)


def sort_based(model, sums, p: float) -> float:
    """Reference: full sort of every score matrix to find the top p%."""
    geo = check_architecture(model)
    t = time.perf_counter()
    for layer in range(geo.n_layers):
        for module, (_, site) in MODULES.items():
            w = linear(model, layer, module).weight.detach()
            for race in ("white", "black"):
                s = wanda_scores(w, sums[race][(layer, site)]).flatten()
                order = torch.sort(s, descending=True).indices
                mask = torch.zeros_like(s, dtype=torch.bool)
                mask[order[: int(p / 100 * s.numel())]] = True
    return time.perf_counter() - t


def main() -> dict:
    torch.set_num_threads(2)
    caches = sorted((REPO / "results/activations").glob("*/*.parquet"))
    if not caches:
        raise SystemExit("no activation caches: run `make run` (or snakemake) first")
    model, _ = load_model(prepared_model_dir(), "float32", "auto", 2)
    n_weights = sum(linear(model, i, m).weight.numel() for i in range(check_architecture(model).n_layers)
                    for m in MODULES)
    variants = [NeuronSetting("black", 15, 15, "global")]
    t = time.perf_counter()
    loads = 0.0
    for path in caches:
        t0 = time.perf_counter()
        sums = group_sumsq([path])
        loads += time.perf_counter() - t0
        neuron_masks(model, sums, variants)
    total = time.perf_counter() - t
    per_source = total / len(caches)
    ref = sort_based(model, group_sumsq([caches[0]]), 15)
    t = time.perf_counter()
    neuron_masks(model, group_sumsq([caches[0]]), variants)
    ours_one = time.perf_counter() - t
    sec_per_weight = (per_source - loads / len(caches)) / n_weights
    return {"machine": machine(), "sources": len(caches), "seconds_all_sources": total,
            "seconds_per_source": per_source, "seconds_loading_cache": loads,
            "topk_seconds_one_source": ours_one, "sort_seconds_one_source": ref,
            "sort_over_topk": ref / ours_one, "weights_scored": n_weights,
            "llama3_8b_cpu_estimate_s_per_source": sec_per_weight * LLAMA3_8B_WEIGHTS}


if __name__ == "__main__":
    save("masks", main())
