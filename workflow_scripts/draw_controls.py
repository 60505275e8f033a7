"""Rule draw_controls: matched random controls of one mask ->
``results/masks/{model}/random_{kind}/{setting}/{source}/draw{d}.npz``.

Each draw has the real mask's count per weight matrix (per row for ``row`` selection) or
per layer (heads), drawn from the next score band down or the same layers (see
``prunebias.controls``). Neuron bands are the source group's top 2p% minus its top p% of
Wanda scores, without the other group's top p%, over the source's prompts (for
``common@POOL``: over the pool's prompts), from the activation cache. Seeds derive from (seed, "control", kind, setting, source, draw).
"""

import numpy as np

from prunebias.activations import group_sumsq, names_filter
from prunebias.controls import matched_head_control, neuron_controls, unit_controls
from prunebias.logs import setup_logging
from prunebias.masks import check_model, read_mask, write_mask
from prunebias.modeling import load_model, read_identity
from prunebias.seeds import derive_seed

DROPPED = ("counts", "shapes", "n_pruned", "n_total", "format", "kind")  # recomputed by write_mask


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.draw_controls")
    p = smk.params
    real = read_mask(smk.input.mask)
    check_model(real, read_identity(smk.input.model), smk.input.mask)  # a mask of another model: refuse
    seeds = [derive_seed(p.seed, "control", p.kind, p.setting.name, p.source.name, d) for d in range(len(smk.output))]
    if getattr(p.setting, "whole", False):  # whole MLP neurons: random whole neurons, same count per layer
        draws = unit_controls(real.arrays, seeds)
    elif p.kind == "neurons":
        sums = group_sumsq(smk.input.activations, names_filter(p.learn_names))
        model, _ = load_model(smk.input.model, "float32", p.device, smk.threads)
        draws = neuron_controls(model, real.arrays, sums, p.setting.band, seeds)  # band: Wanda's
    else:
        draws = [{"heads": matched_head_control(real.arrays["heads"], np.random.default_rng(s))} for s in seeds]
    for d, (path, arrays, seed) in enumerate(zip(smk.output, draws, seeds)):
        meta = {k: v for k, v in real.meta.items() if k not in DROPPED}
        meta.update({"control": "matched_random", "draw": d, "control_seed": seed})
        write_mask(path, real.kind, meta, arrays)
        log.info("%s %s %s draw %d: %d pruned (real %d)", p.kind, p.setting.name, p.source.name, d,
                 sum(int(a.sum()) for k, a in arrays.items() if k != "scores"), real.meta["n_pruned"])


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
