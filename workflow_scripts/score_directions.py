"""Rule score_directions: the race directions of one source (every setting of every method
family that learns from the residual cache, ``prunebias.methods.registry``: ``direction`` by
default) -> ``results/masks/{model}/directions/{setting}/{source}.npz``.

A direction is the Black - White mean difference of the residual stream after one
decoder layer at one position, each learning name weighing once
(``prunebias.methods.directions``); with cross-fitting, one per fold from that fold's learning
names. The cache holds each name's summed residuals (``activations.name_residuals``), so
a pool or a name half needs no new model run.
"""

import numpy as np

from prunebias.model.activations import name_residuals
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import write_mask
from prunebias.methods.registry import FAMILIES, learn_all
from prunebias.model.modeling import read_identity


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_directions")
    p = smk.params
    identity = read_identity(smk.input.model)
    means = name_residuals(smk.input.residuals)  # every name once; each fold keeps its learning names
    per_fold = [learn_all(p.learned, means[means["name"].isin(set(f.learn))]) for f in p.folds]
    for i, (path, (family, setting)) in enumerate(zip(smk.output, p.learned)):
        arrays = [fold[i] for fold in per_fold]
        norms = [float(np.linalg.norm(a["direction"])) for a in arrays]
        layer = setting.layer(identity["n_layers"])
        # how much the direction depends on which names learned it (a mask's fold Jaccard)
        cos = (float(arrays[0]["direction"] @ arrays[1]["direction"] / (norms[0] * norms[1]))
               if len(arrays) > 1 and norms[0] * norms[1] > 0 else None)
        meta = {"model": identity, "method": {"name": FAMILIES[family].kind, "family": family, **setting.params(),
                                              "layer": layer, "norms": norms, "fold_cosine": cos},
                "source": p.source.name, "sources": list(p.contexts), "combine": p.source.combine,
                "learn_names": p.folds[0].learn, "folds": [f.describe() for f in p.folds]}
        write_mask(path, FAMILIES[family].kind, meta, arrays[0], arrays[1:])
        log.info("%s %s %s: layer %d, norm per fold %s, cosine of folds 0 and 1 %s", p.source.name, family,
                 setting.name, layer, [round(n, 3) for n in norms], cos)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
