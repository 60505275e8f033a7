"""Rule combine_masks: the "common" mask of a pool -> ``results/masks/{model}/{kind}/{setting}/common@{pool}.npz``.

Neurons: the weights present in *every* member's mask, ANDed on the packed bits one
member and one matrix at a time (``masks.write_common_neuron_mask``: the peak is about
one packed mask). Heads: the k heads chosen most often across the members
(``heads.common_head_mask``; a head mask is a few hundred booleans). Race directions: the
mean of the members' unit directions at their mean norm (``directions.common_direction``:
what the members' directions share). With cross-fitting,
fold by fold: fold k of the common mask combines fold k of every member.
"""

import numpy as np

from prunebias.methods.directions import common_direction
from prunebias.errors import ConfigError
from prunebias.methods.heads import common_head_mask
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import Mask, check_model, read_folds, read_meta, write_common_neuron_mask, write_mask


def _members(paths: list[str]) -> list[list[Mask]]:
    """Per member file, its folds; every member from the first one's model, with as many folds."""
    members = [read_folds(p) for p in paths]
    for p, m in zip(paths[1:], members[1:]):
        check_model(m[0], members[0][0].meta["model"], str(p))
        if len(m) != len(members[0]):
            raise ConfigError(str(p), f"{len(m)} fold(s), but {paths[0]} holds {len(members[0])}",
                              "delete the stale masks (results/masks) and rerun snakemake")
    return members


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.combine_masks")
    paths = list(smk.input.masks)
    metas = [read_meta(p) for p in paths]
    meta = {"model": metas[0]["model"], "method": metas[0]["method"], "source": smk.params.source.name,
            "sources": [m["source"] for m in metas], "combine": "common"}
    for key in ("learn_names", "folds"):  # the members' folds (the same names in every member)
        if key in metas[0]:
            meta[key] = metas[0][key]
    if metas[0]["kind"] == "neurons":
        n = write_common_neuron_mask(paths, smk.output[0], meta)
    elif metas[0]["kind"] == "directions":
        members = _members(paths)
        arrays = [{"direction": common_direction([m.arrays["direction"] for m in fold])} for fold in zip(*members)]
        meta["method"] = {**meta["method"], "norms": [float(np.linalg.norm(a["direction"])) for a in arrays],
                          "fold_cosine": None}  # the members' own no longer describe it
        write_mask(smk.output[0], "directions", meta, arrays[0], arrays[1:])
        n = 0
    else:
        members = _members(paths)
        arrays = [common_head_mask(fold, int(max(m.arrays["heads"].sum() for m in fold)))
                  for fold in zip(*members)]
        write_mask(smk.output[0], "heads", meta, arrays[0], arrays[1:])
        n = int(arrays[0]["heads"].sum())
    log.info("common mask over %d contexts: %d pruned", len(paths), n)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
