"""Rule measure_side_effects: lm-evaluation-harness tasks on the unpruned model and on
each selected mask (and its first matched random control) ->
``results/side_effects/{model}/items.parquet`` (per item and model) and
``results/tables/{model}/side_effects.csv`` (paired differences with CIs, ``prunebias.report.side_effects``).

One model load: each mask is applied in place and restored after its tasks; no weights
are written. The tasks are loaded (offline) before the model, so a missing dataset stops
the job at once.
"""

from prunebias.files import write_csv, write_parquet
from prunebias.workflow.logs import setup_logging
from prunebias.model.modeling import load_model
from prunebias.report.side_effects import evaluate_models, higher_is_better, is_task_file, load_tasks, side_effect_table


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.measure_side_effects")
    p = smk.params
    resolved = iter(smk.input.task_yamls)  # each task file where this run found it, in the configured order
    tasks = load_tasks([next(resolved) if is_task_file(t) else t for t in p.tasks])
    log.info("tasks: %s", ", ".join(f"{n} ({len(t.eval_docs)} items)" for n, t in tasks.items()))
    model, tok = load_model(smk.input.model, p.dtype, p.device, smk.threads)
    masks = dict(zip(p.masks, smk.input.masks))  # paths: one mask in memory at a time
    items, scores = evaluate_models(model, tok, tasks, masks, p.ablation, p.batch_size, p.limit, p.bootstrap_iters,
                                    p.seed, log)
    table = side_effect_table(items, scores, p.masks, higher_is_better(tasks), p.n_boot, p.seed)
    write_parquet(items, smk.output.per_item)
    write_csv(table, smk.output.table)
    log.info("%d rows: %d tasks, %d pruned models", len(table), len(tasks), len(masks))


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
