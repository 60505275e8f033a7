"""Stage 4b': greedy head selection (the authors' code) -> ``results/masks/heads/greedy_k{K}/{source}.npz``.

Step by step: ablate the heads chosen so far, re-run the model over the source's prompts
+ baseline answers, and add the not-yet-chosen head with the highest attention from the
answer to the name (White + Black means summed; the query positions are those that
generate the answer tokens, or the answer tokens themselves with ``params.head_queries:
answer``, see ``cache_activations``). Later picks therefore see the model
without the earlier heads, unlike the one-shot ranking of ``score_heads``. The mask's
``scores`` hold K - step for chosen heads (K for the first pick), 0 elsewhere.
"""

import sys
from pathlib import Path

if "snakemake" in globals():  # run by Snakemake's script: directive
    sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # type: ignore[name-defined]  # noqa: F821

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from workflow_scripts.architecture import check_architecture
from workflow_scripts.cache_activations import cache_batches
from workflow_scripts.masks import Mask
from workflow_scripts.pruning import pruned
from workflow_scripts.score_heads import race_means


def mean_attention(model: Any, tok: Any, rows: pd.DataFrame, batch_size: int,
                   query_positions: str = "generating") -> dict[str, torch.Tensor]:
    """Mean name-attention (layers x heads) per race, from one attention-only pass over ``rows``."""
    geo = check_architecture(model)
    tables = [h.to_pandas() for _, h in cache_batches(model, tok, rows, batch_size, with_sites=False,
                                                      query_positions=query_positions)]
    return race_means(pd.concat(tables, ignore_index=True), geo.n_layers, geo.n_heads, "greedy head selection")


def greedy_heads(model: Any, tok: Any, rows: pd.DataFrame, k: int, batch_size: int, ablation: str = "q_rows",
                 query_positions: str = "generating") -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """(chosen heads bool L x H, rank scores, picks in order) after k greedy steps."""
    geo = check_architecture(model)
    chosen = np.zeros((geo.n_layers, geo.n_heads), dtype=bool)
    order: list[tuple[int, int]] = []
    for _ in range(min(k, chosen.size)):
        with pruned(model, Mask({"kind": "heads"}, {"heads": chosen.copy()}), ablation):
            att = mean_attention(model, tok, rows, batch_size, query_positions)
        score = (att["white"] + att["black"]).numpy().astype(float)
        score[chosen] = -math.inf
        score[~np.isfinite(score)] = -math.inf
        layer, head = np.unravel_index(int(np.argmax(score)), score.shape)
        chosen[layer, head] = True
        order.append((int(layer), int(head)))
    scores = np.zeros(chosen.shape, dtype=np.float32)
    for step, (layer, head) in enumerate(order):
        scores[layer, head] = len(order) - step
    return chosen, scores, order


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    import json

    from workflow_scripts.files import read_parquet
    from workflow_scripts.logs import setup_logging
    from workflow_scripts.masks import write_mask
    from workflow_scripts.modeling import IDENTITY_FILE, load_model

    log = setup_logging(smk.log[0], "prunebias.score_heads_greedy")
    frames = [read_parquet(p, ["prompt", "answer_prefix", "response", "name", "race", "sample"])
              for p in smk.input.answers]
    rows = pd.concat(frames, ignore_index=True)
    if smk.params.max_samples_per_name is not None:
        rows = rows[rows["sample"] < smk.params.max_samples_per_name]
    if smk.params.learn_names is not None:  # name hold-out: learn on one half of the names
        rows = rows[rows["name"].isin(set(smk.params.learn_names))]
    rows = rows.reset_index(drop=True)
    rows["row"] = np.arange(len(rows))
    identity = json.loads((Path(smk.input.model) / IDENTITY_FILE).read_text())
    model, tok = load_model(smk.input.model, smk.params.dtype, smk.params.device, smk.threads,
                            attn_implementation="eager")
    head_queries = smk.params.head_queries
    for path in smk.output:
        k = int(Path(path).parent.name.removeprefix("greedy_k"))
        chosen, scores, order = greedy_heads(model, tok, rows, k, smk.params.batch_size, smk.params.ablation,
                                             query_positions=head_queries)
        meta = {"model": identity, "method": {"name": "heads", "score": "greedy", "k": k,
                                              "ablation": smk.params.ablation, "head_queries": head_queries,
                                              "order": order},
                "source": smk.wildcards.source, "sources": list(smk.params.contexts),
                "combine": smk.params.combine}
        write_mask(path, "heads", meta, {"heads": chosen, "scores": scores})
        log.info("%s greedy_k%d: heads in order %s", smk.wildcards.source, k, order)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
