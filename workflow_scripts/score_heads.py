"""Rule score_heads: one-shot attention-head masks of one source ->
``results/masks/{model}/heads/{setting}/{source}.npz``, one mask per configured setting.

Each head's score comes from the cached attention to the name's tokens, averaged over the
White and over the Black prompts of the source's contexts (``prunebias.heads``); with
cross-fitting, one mask per fold from that fold's learning names.
"""


from prunebias.heads import check_head_budget, group_attention, select_heads
from prunebias.logs import setup_logging
from prunebias.masks import write_mask
from prunebias.modeling import read_identity


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_heads")
    p = smk.params
    identity = read_identity(smk.input.model)
    check_head_budget(p.settings, identity["n_layers"] * identity["n_heads"], "localization.heads.k")
    atts = [group_attention(smk.input.attention, identity["n_layers"], identity["n_heads"], f.learn)
            for f in p.folds]
    for path, setting in zip(smk.output, p.settings):
        chosen = [select_heads(att["white"], att["black"], setting) for att in atts]
        arrays = [{"heads": heads.numpy(), "scores": scores.numpy()} for heads, scores in chosen]
        att = atts[0]
        meta = {"model": identity, "method": {"name": "heads", **setting.params()}, "source": p.source.name,
                "sources": list(p.contexts), "combine": p.source.combine, "learn_names": p.folds[0].learn,
                "folds": [f.describe() for f in p.folds],
                "white_mean": att["white"].tolist(), "black_mean": att["black"].tolist()}
        write_mask(path, "heads", meta, arrays[0], arrays[1:])
        where = [(int(i) // identity["n_heads"], int(i) % identity["n_heads"]) for i in chosen[0][0].flatten().nonzero()]
        log.info("%s %s: heads (layer, head) %s", p.source.name, setting.name, where)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
