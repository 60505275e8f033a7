"""Rule score_heads_greedy: greedy head selection (the authors' code) ->
``results/masks/{model}/heads/greedy_k{K}/{source}.npz``, one mask per configured K.

See ``prunebias.methods.heads.greedy_heads``: ablate the heads chosen so far, re-run the model
over the source's prompts + baseline answers, add the head with the highest name
attention. The mask's metadata records the picks in order.
"""


import numpy as np
import pandas as pd

from prunebias.files import read_parquet
from prunebias.methods.heads import check_head_budget, greedy_heads
from prunebias.workflow.logs import setup_logging
from prunebias.methods.masks import write_mask
from prunebias.model.modeling import load_model, read_identity


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.score_heads_greedy")
    p = smk.params
    identity = read_identity(smk.input.model)
    check_head_budget(p.settings, identity["n_layers"] * identity["n_heads"], "localization.heads.greedy")
    frames = [read_parquet(f, ["prompt", "answer_prefix", "response", "name", "race", "sample"])
              for f in smk.input.answers]
    rows = pd.concat(frames, ignore_index=True)
    if p.max_samples_per_name is not None:
        rows = rows[rows["sample"] < p.max_samples_per_name]
    model, tok = load_model(smk.input.model, p.dtype, p.device, smk.threads, attn_implementation="eager")
    for path, setting in zip(smk.output, p.settings):
        picked = []
        for fold in p.folds:  # name hold-out: learn on the fold's names (cross-fitting: each fold)
            mine = rows if fold.learn is None else rows[rows["name"].isin(set(fold.learn))]
            mine = mine.reset_index(drop=True)
            mine["row"] = np.arange(len(mine))
            picked.append(greedy_heads(model, tok, mine, setting.k, p.batch_size, p.ablation,
                                       query_positions=p.head_queries))
        order = picked[0][2]
        meta = {"model": identity, "method": {"name": "heads", "family": "greedy", **setting.params(),
                                              "ablation": p.ablation, "head_queries": p.head_queries, "order": order},
                "source": p.source.name, "sources": list(p.contexts), "combine": p.source.combine,
                "learn_names": p.folds[0].learn, "folds": [f.describe() for f in p.folds]}
        arrays = [{"heads": chosen, "scores": scores} for chosen, scores, _ in picked]
        write_mask(path, "heads", meta, arrays[0], arrays[1:])
        log.info("%s %s: heads in order %s", p.source.name, setting.name, order)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
