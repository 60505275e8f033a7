"""Rule combine_masks: the "common" mask of a pool -> ``results/masks/{model}/{kind}/{setting}/common@{pool}.npz``.

Neurons: the weights present in *every* member's mask, ANDed on the packed bits one
member and one matrix at a time (``masks.write_common_neuron_mask``: the peak is about
one packed mask). Heads: the k heads chosen most often across the members
(``heads.common_head_mask``; a head mask is a few hundred booleans).
"""

from prunebias.heads import common_head_mask
from prunebias.logs import setup_logging
from prunebias.masks import check_model, read_mask, read_meta, write_common_neuron_mask, write_mask


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.combine_masks")
    paths = list(smk.input.masks)
    metas = [read_meta(p) for p in paths]
    meta = {"model": metas[0]["model"], "method": metas[0]["method"], "source": smk.params.source.name,
            "sources": [m["source"] for m in metas], "combine": "common"}
    if metas[0]["kind"] == "neurons":
        n = write_common_neuron_mask(paths, smk.output[0], meta)
    else:
        masks = [read_mask(p) for p in paths]
        for p, m in zip(paths[1:], masks[1:]):
            check_model(m, masks[0].meta["model"], str(p))
        arrays = common_head_mask(masks, int(max(m.arrays["heads"].sum() for m in masks)))
        write_mask(smk.output[0], "heads", meta, arrays)
        n = int(arrays["heads"].sum())
    log.info("common mask over %d contexts: %d pruned", len(paths), n)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
