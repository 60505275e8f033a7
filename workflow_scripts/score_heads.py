"""Rule score_heads: the masks of every method family that learns from the head-attention
cache (``prunebias.methods.registry``: one-shot attention-head masks by default) of one source ->
``results/masks/{model}/{kind}/{setting}/{source}.npz``, one mask per configured setting.

Each head's score comes from the cached attention to the name's tokens, averaged over the
White and over the Black prompts of the source's contexts (``prunebias.methods.heads``); with
cross-fitting, one mask per fold from that fold's learning names.
"""

from prunebias.methods.heads import check_head_budget, group_attention
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import write_mask
from prunebias.methods.registry import FAMILIES, learn_all
from prunebias.model.modeling import read_identity


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_heads")
    p = smk.params
    identity = read_identity(smk.input.model)
    families = list(dict.fromkeys(f for f, _ in p.learned))
    for family in families:
        check_head_budget([s for f, s in p.learned if f == family], identity["n_layers"] * identity["n_heads"],
                          FAMILIES[family].config_key)
    atts = [group_attention(smk.input.attention, identity["n_layers"], identity["n_heads"], f.learn)
            for f in p.folds]
    per_fold = [learn_all(p.learned, att["white"], att["black"]) for att in atts]
    att = atts[0]
    for i, (path, (family, setting)) in enumerate(zip(smk.output, p.learned)):
        arrays = [fold[i] for fold in per_fold]
        kind = FAMILIES[family].kind
        meta = {"model": identity, "method": {"name": kind, "family": family, **setting.params()},
                "source": p.source.name, "sources": list(p.contexts), "combine": p.source.combine,
                "learn_names": p.folds[0].learn, "folds": [f.describe() for f in p.folds],
                "white_mean": att["white"].tolist(), "black_mean": att["black"].tolist()}
        write_mask(path, kind, meta, arrays[0], arrays[1:])
        if "heads" in arrays[0]:
            where = [(int(i) // identity["n_heads"], int(i) % identity["n_heads"])
                     for i in arrays[0]["heads"].flatten().nonzero()[0]]
            log.info("%s %s %s: heads (layer, head) %s", p.source.name, family, setting.name, where)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
