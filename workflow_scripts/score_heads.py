"""Rule score_heads: one-shot attention-head masks of one source ->
``results/masks/{model}/heads/{setting}/{source}.npz``, one mask per configured setting.

Each head's score comes from the cached attention to the name's tokens, averaged over the
White and over the Black prompts of the source's contexts (``prunebias.heads``).
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
    att = group_attention(smk.input.attention, identity["n_layers"], identity["n_heads"], p.learn_names)
    for path, setting in zip(smk.output, p.settings):
        heads, scores = select_heads(att["white"], att["black"], setting)
        meta = {"model": identity, "method": {"name": "heads", **setting.params()}, "source": p.source.name,
                "sources": list(p.contexts), "combine": p.source.combine, "learn_names": p.learn_names,
                "white_mean": att["white"].tolist(), "black_mean": att["black"].tolist()}
        write_mask(path, "heads", meta, {"heads": heads.numpy(), "scores": scores.numpy()})
        chosen = [(int(i) // identity["n_heads"], int(i) % identity["n_heads"]) for i in heads.flatten().nonzero()]
        log.info("%s %s: heads (layer, head) %s", p.source.name, setting.name, chosen)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
