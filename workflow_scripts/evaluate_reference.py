"""Rule evaluate_reference: the unpruned model's answers on one target's evaluation prompts
-> ``results/eval/{model}/reference/{target}.parquet`` and ``{target}.json`` (perplexity).

Exactly the prompts and seeds every mask is evaluated with (``evaluate_pruned``), so the
comparison of pruned and unpruned answers is paired.
"""

from prunebias.model.evaluation import EvalGroup, evaluation_job
from prunebias.workflow.logs import setup_logging


def main(smk) -> None:  # pragma: no cover - exercised through snakemake in tests
    log = setup_logging(smk.log[0], "prunebias.evaluate_reference")
    group = EvalGroup({"method": "reference", "setting": "none", "source": "none"}, [], smk.output.answers,
                      smk.output.info)
    evaluation_job([group], smk.input.model, smk.input.prompts, smk.input.text, smk.params, smk.threads, log)


if "snakemake" in globals():
    main(snakemake)  # type: ignore[name-defined]  # noqa: F821
