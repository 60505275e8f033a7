"""Rule draw_controls: matched random controls of one mask ->
``results/masks/{model}/random_{kind}/{setting}/{source}/draw{d}.npz``.

The mask's family (``prunebias.methods.registry``) says how: each draw has the real mask's count
per weight matrix (per row for ``row`` selection), per layer (whole MLP neurons, heads),
drawn from the next score band down or the same layers (see ``prunebias.methods.controls``).
Neuron bands are the source group's top 2p% minus its top p% of Wanda scores, without the
other group's top p%, over the source's prompts (for ``common@POOL``: over the pool's
prompts), from the activation cache. Seeds derive from (seed, "control", kind, setting,
source, draw).
With cross-fitting every draw holds one control per fold, each matched to that fold's mask
and drawn from that fold's learning names' band (further folds salt the seed with the fold).
"""

from prunebias.model.activations import group_sumsq, names_filter
from prunebias.errors import ConfigError
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import check_model, read_folds, write_mask
from prunebias.methods.registry import FAMILIES, ControlInputs
from prunebias.model.modeling import load_model, read_identity
from prunebias.seeds import derive_seed

DROPPED = ("counts", "shapes", "n_pruned", "n_total", "format", "kind", "fold_counts", "fold")  # recomputed by write_mask


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.draw_controls")
    p = smk.params
    folds = read_folds(smk.input.mask)
    check_model(folds[0], read_identity(smk.input.model), smk.input.mask)  # a mask of another model: refuse
    if len(folds) != len(p.folds):
        raise ConfigError(smk.input.mask, f"the mask holds {len(folds)} fold(s), the config {len(p.folds)}",
                          "delete the stale masks (results/masks) and rerun snakemake")
    # fold 0 keeps the seeds of a run without cross-fitting; further folds salt them
    fold_seeds = [[derive_seed(p.seed, "control", p.kind, p.setting.name, p.source.name, d, *(("fold", k) if k else ()))
                   for d in range(len(smk.output))] for k in range(len(folds))]
    control = FAMILIES[p.family].control
    loaded = []  # the model, loaded on first use (a band control needs the weights)

    def model_once():
        if not loaded:
            loaded.append(load_model(smk.input.model, "float32", p.device, smk.threads)[0])
        return loaded[0]

    per_fold = []  # per fold: one array dict per draw
    for real, fold, seeds in zip(folds, p.folds, fold_seeds):
        inputs = ControlInputs(model_once, lambda names=fold.learn: group_sumsq(smk.input.activations,
                                                                                 names_filter(names)))
        per_fold.append(control(real.arrays, seeds, p.setting, inputs))
    real = folds[0]
    for d, (path, seed) in enumerate(zip(smk.output, fold_seeds[0])):
        meta = {k: v for k, v in real.meta.items() if k not in DROPPED}
        meta.update({"control": "matched_random", "draw": d, "control_seed": seed})
        write_mask(path, real.kind, meta, per_fold[0][d], [draws[d] for draws in per_fold[1:]])
        log.info("%s %s %s draw %d: %s pruned (real %s), per fold", p.kind, p.setting.name, p.source.name, d,
                 [sum(int(a.sum()) for a in draws[d].values() if a.dtype == bool) for draws in per_fold],
                 [f.meta["n_pruned"] for f in folds])


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
