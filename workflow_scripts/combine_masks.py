"""Rule combine_masks: the "common" mask of a pool -> ``results/masks/{kind}/{setting}/common@{pool}.npz``.

Neurons: the weights present in *every* member's mask (``masks.intersect_neuron_masks``).
Heads: the k heads chosen most often across the members (``heads.common_head_mask``).
"""

from prunebias.heads import common_head_mask
from prunebias.logs import setup_logging
from prunebias.masks import check_model, intersect_neuron_masks, read_mask, write_mask


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.combine_masks")
    masks = [read_mask(p) for p in smk.input.masks]
    for p, m in zip(smk.input.masks[1:], masks[1:]):
        check_model(m, masks[0].meta["model"], str(p))
    kind = masks[0].kind
    arrays = (intersect_neuron_masks(masks) if kind == "neurons"
              else common_head_mask(masks, int(max(m.arrays["heads"].sum() for m in masks))))
    meta = {"model": masks[0].meta["model"], "method": masks[0].meta["method"], "source": smk.params.source.name,
            "sources": [m.meta["source"] for m in masks], "combine": "common"}
    write_mask(smk.output[0], kind, meta, arrays)
    n = sum(int(a.sum()) for k, a in arrays.items() if k != "scores")
    log.info("common mask over %d contexts: %d pruned", len(masks), n)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
