"""Rule cache_activations: one forward pass over prompt + baseline answer ->
``results/activations/{model}/{context}.parquet`` (per-channel sums of squared linear-layer
inputs, per prompt), ``results/head_attention/{model}/{context}.parquet`` (per-head attention
to the name) and, when race directions are learned, ``results/residuals/{model}/{context}.parquet``
(the residual stream per name at the answer and name positions). The formats are documented
in ``prunebias.model.activations``.

Memory is bounded by one batch: each batch is written as its own Parquet row group.
"""

import contextlib
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from prunebias.model.activations import ACT_SCHEMA, HEAD_SCHEMA, RESID_SCHEMA, cache_batches
from prunebias.files import atomic_path, read_parquet
from prunebias.workflow.logs import progress, setup_logging
from prunebias.model.modeling import load_model


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.cache_activations")
    answers = read_parquet(smk.input.answers, ["prompt", "answer_prefix", "response", "name", "race", "sample"])
    answers = answers.reset_index(drop=True)
    answers["row"] = np.arange(len(answers), dtype=np.int64)
    if smk.params.max_samples_per_name is not None:  # bound the cache for big sampling configs
        answers = answers[answers["sample"] < smk.params.max_samples_per_name].reset_index(drop=True)
    model, tok = load_model(smk.input.model, smk.params.dtype, smk.params.device, smk.threads,
                            attn_implementation="eager")
    t0 = time.perf_counter()
    head_queries = smk.params.head_queries
    log.info("head attention averaged over the %s query positions", head_queries)
    residuals = getattr(smk.output, "residuals", None)  # only when race directions are learned
    with contextlib.ExitStack() as stack:
        wa = stack.enter_context(pq.ParquetWriter(stack.enter_context(atomic_path(smk.output.activations)), ACT_SCHEMA))
        wh = stack.enter_context(pq.ParquetWriter(stack.enter_context(atomic_path(smk.output.heads)), HEAD_SCHEMA))
        wr = (stack.enter_context(pq.ParquetWriter(stack.enter_context(atomic_path(residuals)), RESID_SCHEMA))
              if residuals else None)
        with progress(total=len(answers), desc="caching", unit="prompt") as bar:
            for act, head, resid in cache_batches(model, tok, answers, smk.params.batch_size,
                                                  query_positions=head_queries, with_residuals=wr is not None):
                wa.write_table(act, row_group_size=len(act))
                wh.write_table(head)
                if wr is not None:
                    wr.write_table(resid)
                bar.update(head.num_rows)
    size = Path(smk.output.activations).stat().st_size
    log.info("%d prompts cached in %.1f s; activation cache %.1f MB (%.1f KB per prompt)", len(answers),
             time.perf_counter() - t0, size / 1e6, size / 1e3 / max(1, len(answers)))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
