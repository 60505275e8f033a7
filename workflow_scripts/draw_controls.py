"""Stage 4d: matched random controls of one mask -> ``results/masks/random_{kind}/{setting}/{source}/draw{d}.npz``.

Each draw has the real mask's count per weight matrix (per row for ``row`` selection) or
per layer (heads), drawn from the same score band or the same layers (see ``controls``).
Neuron bands are the top p% of the source group's Wanda scores over the source's
prompts (for ``common@POOL``: over the pool's prompts), from the activation cache.
Seeds derive from (seed, "control", kind, setting, source, draw).
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import numpy as np

    from workflow_scripts.controls import matched_head_control, neuron_controls
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.masks import read_mask, write_mask
    from workflow_scripts.seeds import derive_seed

    log = setup_logging(smk.log[0], "prunebias.draw_controls")
    wc = smk.wildcards
    real = read_mask(smk.input.mask)
    seeds = [derive_seed(smk.params.seed, "control", wc.kind, wc.variant, wc.source, d) for d in range(len(smk.output))]
    if real.kind == "neurons":
        from workflow_scripts.modeling import load_model
        from workflow_scripts.score_neurons import group_sumsq, names_filter

        sums = group_sumsq(smk.input.activations, names_filter(smk.params.learn_names))
        model, _ = load_model(smk.input.model, "float32", smk.params.device, smk.threads)
        draws = neuron_controls(model, real.arrays, sums, real.meta["method"], seeds)
    else:
        draws = [{"heads": matched_head_control(real.arrays["heads"], np.random.default_rng(s))} for s in seeds]
    for d, (path, arrays, seed) in enumerate(zip(smk.output, draws, seeds)):
        meta = {k: v for k, v in real.meta.items() if k not in ("counts", "shapes", "n_pruned", "n_total", "format",
                                                               "kind")}
        meta.update({"control": "matched_random", "draw": d, "control_seed": seed})
        write_mask(path, real.kind, meta, arrays)
        log.info("%s %s %s draw %d: %d pruned (real %d)", wc.kind, wc.variant, wc.source, d,
                 sum(int(a.sum()) for k, a in arrays.items() if k != "scores"), real.meta["n_pruned"])


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
