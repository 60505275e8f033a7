"""Rule score_neurons: Wanda set-difference masks of one source ->
``results/masks/{model}/neurons/{setting}/{source}.npz``, one mask per configured setting.

score_ij = |W_ij| * ||X_j||_2 with the norms of the White and of the Black prompts of the
source's contexts, summed from the activation cache (never recomputed); see
``prunebias.neurons``. Only masks are written, never dense score matrices.
"""

import time

from prunebias.activations import group_sumsq, names_filter
from prunebias.logs import setup_logging
from prunebias.masks import write_mask
from prunebias.modeling import load_model, read_identity
from prunebias.neurons import neuron_masks


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_neurons")
    p = smk.params
    t0 = time.perf_counter()
    sums = group_sumsq(smk.input.activations, names_filter(p.learn_names))
    model, _ = load_model(smk.input.model, "float32", p.device, smk.threads)
    identity = read_identity(smk.input.model)
    masks = neuron_masks(model, sums, p.settings)
    for path, setting, arrays in zip(smk.output, p.settings, masks):
        meta = {"model": identity, "method": {"name": "neurons", **setting.params()}, "source": p.source.name,
                "sources": list(p.contexts), "combine": p.source.combine, "learn_names": p.learn_names}
        write_mask(path, "neurons", meta, arrays)
        n = sum(int(a.sum()) for a in arrays.values())
        tot = sum(a.size for a in arrays.values())
        log.info("%s %s: %d of %d weights (%.3f%%)", p.source.name, setting.name, n, tot, 100 * n / tot)
    log.info("scored %d settings in %.1f s", len(masks), time.perf_counter() - t0)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
