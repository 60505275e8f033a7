"""Rule score_neurons: the masks of every method family that learns from the activation
cache (``prunebias.methods.registry``: Wanda set differences by default) of one source ->
``results/masks/{model}/{kind}/{setting}/{source}.npz``, one mask per configured setting.

Wanda: score_ij = |W_ij| * ||X_j||_2 with the norms of the White and of the Black prompts
of the source's contexts, summed from the activation cache (never recomputed); see
``prunebias.methods.neurons``. Each family's ``learn`` gets the same sums. Only masks are written,
never dense score matrices. With cross-fitting each fold's mask learns on that fold's
names (one file holds them all).
"""

import time

from prunebias.model.activations import group_sumsq, names_filter
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import write_mask
from prunebias.methods.registry import FAMILIES, learn_all
from prunebias.model.modeling import load_model, read_identity


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_neurons")
    p = smk.params
    t0 = time.perf_counter()
    model, _ = load_model(smk.input.model, "float32", p.device, smk.threads)
    identity = read_identity(smk.input.model)
    per_fold = [learn_all(p.learned, model, group_sumsq(smk.input.activations, names_filter(f.learn)))
                for f in p.folds]
    for i, (path, (family, setting)) in enumerate(zip(smk.output, p.learned)):
        kind = FAMILIES[family].kind
        arrays = per_fold[0][i]
        meta = {"model": identity, "method": {"name": kind, "family": family, **setting.params()},
                "source": p.source.name, "sources": list(p.contexts), "combine": p.source.combine,
                "learn_names": p.folds[0].learn, "folds": [f.describe() for f in p.folds]}
        write_mask(path, kind, meta, arrays, [masks[i] for masks in per_fold[1:]])
        n = sum(int(a.sum()) for key, a in arrays.items() if key != "scores")
        tot = sum(a.size for key, a in arrays.items() if key != "scores")
        log.info("%s %s %s: %d of %d entries (%.3f%%)", p.source.name, family, setting.name, n, tot, 100 * n / tot)
    log.info("scored %d settings, %d fold(s), in %.1f s", len(p.learned), len(p.folds), time.perf_counter() - t0)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
